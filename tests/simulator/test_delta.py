"""users/delta and groups/delta: initial rounds, changes, removals, members@delta, expiry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from syncd.simulator import Simulator, Tenant

from .conftest import DOMAIN, GraphClient

USERS = "/v1.0/users/delta()"
GROUPS = "/v1.0/groups/delta()"
SEL = {"$select": "displayName,userPrincipalName,accountEnabled,mail,userType"}
GSEL = {"$select": "displayName,securityEnabled,members"}


def by_id(items):
    return {i["id"]: i for i in items}


def merge_groups(items):
    """Merge a groups delta round by id, as clients must (one group can span pages)."""
    out: dict[str, dict] = {}
    for item in items:
        merged = out.setdefault(item["id"], {"members@delta": []})
        merged.update({k: v for k, v in item.items() if k != "members@delta"})
        merged["members@delta"] += item.get("members@delta", [])
    return out


def test_initial_round_pages_and_selects(simulator, graph):
    t = simulator.tenant
    for i in range(7):
        t.add_user(f"u{i}@{DOMAIN}")
    pages = graph.pages(USERS, page_size=4, params=SEL)
    assert [len(p["value"]) for p in pages] == [4, 4, 2]
    assert all("@odata.nextLink" in p and "@odata.deltaLink" not in p for p in pages[:-1])
    assert "@odata.deltaLink" in pages[-1] and "@odata.nextLink" not in pages[-1]
    assert "$skiptoken=" in pages[0]["@odata.nextLink"]
    assert "$deltatoken=" in pages[-1]["@odata.deltaLink"]
    assert pages[0]["@odata.context"].endswith(
        "$metadata#users(id,displayName,userPrincipalName,accountEnabled,mail,userType)")
    ada = pages[0]["value"][0]
    assert ada == {"id": t.ids["ada"], "displayName": "Ada Lovelace",
                   "userPrincipalName": f"ada@{DOMAIN}", "accountEnabled": True,
                   "mail": f"ada@{DOMAIN}", "userType": "Member"}
    # without parentheses, and the default page size
    items, link = graph.collect("/v1.0/users/delta", params={"$select": "id"})
    assert len(items) == 10 and link and all(set(i) == {"id"} for i in items)


def test_page_size_is_capped_and_preference_applied(simulator, graph):
    r = graph.get(USERS, page_size=5000)
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=999"


def test_no_change_round_is_empty(simulator, graph):
    _, link = graph.collect(USERS, params=SEL)
    items, link2 = graph.collect(link)
    assert items == [] and link2
    items, _ = graph.collect(link2)
    assert items == []


def test_each_kind_of_user_change(simulator, graph):
    t = simulator.tenant
    ids = t.ids
    _, link = graph.collect(USERS, params=SEL)
    new = t.add_user(f"new@{DOMAIN}", "New Person")
    t.update_user(ids["ada"], display_name="Ada King", mail="ada.king@contoso.com")
    t.disable_user(ids["bob"])
    t.enable_user(ids["cyd"])
    items, link = graph.collect(link)
    changed = by_id(items)
    assert set(changed) == {new, ids["ada"], ids["bob"], ids["cyd"]}
    # full representation of the selected properties, not just what changed
    assert changed[ids["ada"]] == {"id": ids["ada"], "displayName": "Ada King",
                                   "userPrincipalName": f"ada@{DOMAIN}", "accountEnabled": True,
                                   "mail": "ada.king@contoso.com", "userType": "Member"}
    assert changed[ids["bob"]]["accountEnabled"] is False
    assert changed[ids["cyd"]]["accountEnabled"] is True

    t.soft_delete_user(ids["bob"])
    t.soft_delete_user(new)
    t.hard_delete_user(new)
    items, link = graph.collect(link)
    assert by_id(items) == {ids["bob"]: {"id": ids["bob"], "@removed": {"reason": "changed"}},
                            new: {"id": new, "@removed": {"reason": "deleted"}}}

    t.restore_user(ids["bob"])
    items, link = graph.collect(link)
    assert items == [{"id": ids["bob"], "displayName": "Bob", "userPrincipalName": f"bob@{DOMAIN}",
                      "accountEnabled": False, "mail": None, "userType": "Member"}]
    items, _ = graph.collect(link)
    assert items == []


def test_changes_during_a_round_come_in_the_next_one(simulator, graph):
    t = simulator.tenant
    first = graph.get(USERS, page_size=1, params=SEL).json()
    t.update_user(t.ids["ada"], display_name="Changed meanwhile")
    items, link = graph.collect(first["@odata.nextLink"], page_size=1)
    items, _ = graph.collect(link)
    assert [i["displayName"] for i in items] == ["Changed meanwhile"]


def test_incremental_round_pages_too(simulator, graph):
    t = simulator.tenant
    _, link = graph.collect(USERS, params=SEL)
    for i in range(5):
        t.add_user(f"x{i}@{DOMAIN}")
    pages = graph.pages(link, page_size=2)
    assert [len(p["value"]) for p in pages] == [2, 2, 1]


def test_deltatoken_latest_and_id_filter(simulator, graph):
    t = simulator.tenant
    r = graph.get(USERS, params={**SEL, "$deltatoken": "latest"}).json()
    assert r["value"] == [] and "@odata.deltaLink" in r
    t.update_user(t.ids["bob"], display_name="Robert")
    items, _ = graph.collect(r["@odata.deltaLink"])
    assert [i["displayName"] for i in items] == ["Robert"]

    flt = f"id eq '{t.ids['ada']}' or id eq '{t.ids['cyd']}'"
    items, link = graph.collect(USERS, params={**SEL, "$filter": flt})
    assert [i["id"] for i in items] == [t.ids["ada"], t.ids["cyd"]]
    t.update_user(t.ids["bob"], display_name="Bobby")
    t.update_user(t.ids["cyd"], display_name="Cydney")
    items, _ = graph.collect(link)
    assert [i["displayName"] for i in items] == ["Cydney"]
    many = " or ".join(f"id eq '{t.new_guid()}'" for _ in range(51))
    assert graph.get(USERS, params={"$filter": many}).status_code == 400


@pytest.mark.parametrize("style", ["gone", "syncStateNotFound"])
def test_expired_tokens(simulator, graph, style):
    t = simulator.tenant
    first = graph.get(USERS, page_size=1, params=SEL).json()
    _, link = graph.collect(USERS, params=SEL)
    t.expire_delta_tokens(style=style)
    for url in (link, first["@odata.nextLink"]):
        r = graph.get(url)
        if style == "gone":
            assert r.status_code == 410
            assert r.json()["error"]["code"] == "resyncRequired"
            fresh = r.headers["Location"]
            assert parse_qs(urlsplit(fresh).query)["$select"] == [
                "id,displayName,userPrincipalName,accountEnabled,mail,userType"]
        else:
            assert r.status_code == 400 and r.json()["error"]["code"] == "syncStateNotFound"
    # a new round works, and its tokens are good
    items, link = graph.collect(USERS, params=SEL)
    assert len(items) == 3 and graph.get(link).status_code == 200


def test_garbage_or_foreign_tokens_are_refused(simulator, graph):
    assert graph.get(USERS + "?$deltatoken=garbage").json()["error"]["code"] == "syncStateNotFound"
    _, users_link = graph.collect(USERS)
    token = parse_qs(urlsplit(users_link).query)["$deltatoken"][0]
    assert graph.get(f"{GROUPS}?$deltatoken={token}").status_code == 400


# ---------------------------------------------------------------------------- groups


def test_groups_initial_round_lists_all_members(simulator, graph):
    t = simulator.tenant
    items, link = graph.collect(GROUPS, params=GSEL)
    assert items == [{"id": t.ids["team"], "displayName": "Team", "securityEnabled": True,
                      "members@delta": [
                          {"@odata.type": "#microsoft.graph.user", "id": t.ids["bob"]},
                          {"@odata.type": "#microsoft.graph.user", "id": t.ids["cyd"]}]}]
    items, _ = graph.collect(GROUPS, params={"$select": "displayName"})
    assert items == [{"id": t.ids["team"], "displayName": "Team"}]
    assert link


def test_big_group_spans_pages_and_merges():
    t = Tenant(seed=3)
    big = t.add_group("Big")
    small = t.add_group("Small")
    users = [t.add_user(f"u{i}@{DOMAIN}") for i in range(25)]
    for uid in users:
        t.add_member(big, uid)
    t.add_member(small, users[0])
    t.add_member(big, small)
    with Simulator(t, members_per_page=10) as sim:
        graph = GraphClient(sim)
        pages = graph.pages(GROUPS, params=GSEL)
        ids_per_page = [[i["id"] for i in p["value"]] for p in pages]
        assert ids_per_page == [[big], [big], [big, small]]
        assert [len(i["members@delta"]) for p in pages for i in p["value"]] == [10, 10, 6, 1]
        # continuation entries carry only the id and more members
        assert set(pages[1]["value"][0]) == {"id", "members@delta"}
        merged = merge_groups(i for p in pages for i in p["value"])
        assert [m["id"] for m in merged[big]["members@delta"]] == [*users, small]
        assert merged[big]["members@delta"][-1]["@odata.type"] == "#microsoft.graph.group"
        assert merged[big]["displayName"] == "Big"

        # incremental: 15 new members split the same way, removals marked
        link = pages[-1]["@odata.deltaLink"]
        more = [t.add_user(f"v{i}@{DOMAIN}") for i in range(15)]
        for uid in more:
            t.add_member(big, uid)
        t.remove_member(big, users[3])
        pages = graph.pages(link, page_size=999)
        assert [len(i["members@delta"]) for p in pages for i in p["value"]] == [10, 6]
        merged = merge_groups(i for p in pages for i in p["value"])
        refs = merged[big]["members@delta"]
        assert [r["id"] for r in refs] == [*more, users[3]]
        assert refs[-1]["@removed"] == {"reason": "deleted"}
        graph.close()


def test_each_kind_of_group_change(simulator, graph):
    t = simulator.tenant
    ids = t.ids
    _, link = graph.collect(GROUPS, params=GSEL)

    t.rename_group(ids["team"], "Dream Team")
    new = t.add_group("New")
    t.add_member(new, ids["ada"])
    items, link = graph.collect(link)
    got = by_id(items)
    assert got[ids["team"]] == {"id": ids["team"], "displayName": "Dream Team", "securityEnabled": True}
    assert got[new]["members@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": ids["ada"]}]

    # membership only: the group comes with its properties and just the member changes
    t.remove_member(ids["team"], ids["cyd"])
    t.add_member(ids["team"], ids["ada"])
    items, link = graph.collect(link)
    assert items == [{"id": ids["team"], "displayName": "Dream Team", "securityEnabled": True,
                      "members@delta": [
                          {"@odata.type": "#microsoft.graph.user", "id": ids["cyd"],
                           "@removed": {"reason": "deleted"}},
                          {"@odata.type": "#microsoft.graph.user", "id": ids["ada"]}]}]

    # a soft-deleted user leaves its groups; restoring brings it back
    t.soft_delete_user(ids["bob"])
    items, link = graph.collect(link)
    assert items[0]["members@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": ids["bob"],
                                          "@removed": {"reason": "deleted"}}]
    t.restore_user(ids["bob"])
    items, link = graph.collect(link)
    assert items[0]["members@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": ids["bob"]}]

    t.delete_group(new)
    items, link = graph.collect(link)
    assert items == [{"id": new, "@removed": {"reason": "deleted"}}]
    assert graph.collect(link)[0] == []


def test_member_changes_are_invisible_without_members_selected(simulator, graph):
    t = simulator.tenant
    _, link = graph.collect(GROUPS, params={"$select": "displayName"})
    t.remove_member(t.ids["team"], t.ids["cyd"])
    assert graph.collect(link)[0] == []
