"""The documented Graph behaviours the simulator answers with (``sim.quirks``, expiry styles,
Retry-After forms), seen by a plain HTTPS client: the simulator's own answers, byte for byte
where it matters. See the package docstring of ``syncd.simulator`` for the sources.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from syncd.simulator import Quirks, Simulator, Tenant

from .conftest import DOMAIN, GraphClient

USERS = "/v1.0/users/delta"
GROUPS = "/v1.0/groups/delta"
USEL = {"$select": "displayName,userPrincipalName,accountEnabled,mail,userType"}
GSEL = {"$select": "displayName,securityEnabled,members"}
USER_PROPS = {"id", "displayName", "userPrincipalName", "accountEnabled", "mail", "userType"}
MINIMAL = "return=minimal"


def walk(graph: GraphClient, url: str, prefer: str | None = None, size: int | None = None,
         **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
    """Every page of a round, sending the same Prefer header on each request: (pages, deltaLink)."""
    preferences = [p for p in (prefer, f"odata.maxpagesize={size}" if size else None) if p]
    headers = {"Prefer": ", ".join(preferences)} if preferences else {}
    pages = []
    response = graph.http.get(url, headers=headers, **kwargs)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        assert len(pages) < 1000, "a round that never ends"
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return pages, body["@odata.deltaLink"]
        response = graph.http.get(body["@odata.nextLink"], headers=headers)


def items(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for p in pages for i in p["value"]]


def by_id(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        assert item["id"] not in out, f"{item['id']} twice"
        out[item["id"]] = item
    return out


# ---------------------------------------------------------------------------- partial objects


def test_return_minimal_sends_only_what_changed(simulator, graph):
    t = simulator.tenant
    ids = t.ids
    _, link = walk(graph, USERS, params=USEL)
    t.update_user(ids["ada"], display_name="Ada King")
    t.disable_user(ids["bob"])
    t.update_user(ids["cyd"], mail=f"cyd@{DOMAIN}", user_type="Guest")
    t.update_user(ids["ada"], mail=None)  # set to null: the null is sent
    new = t.add_user(f"new@{DOMAIN}", "New")
    pages, _ = walk(graph, link, MINIMAL)
    got = by_id(items(pages))
    assert got == {
        ids["ada"]: {"id": ids["ada"], "displayName": "Ada King", "mail": None},
        ids["bob"]: {"id": ids["bob"], "accountEnabled": False},
        ids["cyd"]: {"id": ids["cyd"], "mail": f"cyd@{DOMAIN}", "userType": "Guest"},
        new: {"id": new, "displayName": "New", "userPrincipalName": f"new@{DOMAIN}",
              "accountEnabled": True, "mail": None, "userType": "Member"},
    }
    # the same link without the header: full objects (the default)
    pages, _ = walk(graph, link)
    assert all(set(i) == USER_PROPS for i in items(pages))


def test_a_renamed_user_is_exactly_id_and_display_name(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    t.update_user(t.ids["bob"], display_name="Robert")
    pages, _ = walk(graph, link, MINIMAL)
    assert items(pages) == [{"id": t.ids["bob"], "displayName": "Robert"}]
    # an update that changed nothing still shows the user, with nothing but its id
    _, link = walk(graph, link)
    t.update_user(t.ids["bob"], display_name="Robert")
    pages, _ = walk(graph, link, MINIMAL)
    assert items(pages) == [{"id": t.ids["bob"]}]


def test_initial_rounds_are_full_even_with_return_minimal(simulator, graph):
    pages, _ = walk(graph, USERS, MINIMAL, params=USEL)
    assert len(items(pages)) == 3 and all(set(i) == USER_PROPS for i in items(pages))


def test_properties_changed_without_the_header(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    t.update_user(t.ids["ada"], upn=f"ada.k@{DOMAIN}")
    simulator.quirks.properties = "changed"
    assert items(walk(graph, link)[0]) == [{"id": t.ids["ada"], "userPrincipalName": f"ada.k@{DOMAIN}"}]
    simulator.quirks.properties = "full"  # switched back at run time, same link
    assert set(items(walk(graph, link)[0])[0]) == USER_PROPS


def test_return_minimal_wins_over_properties_full_and_some(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    t.update_user(t.ids["cyd"], display_name="Cydney")
    for properties in ("full", "some"):
        simulator.quirks.properties = properties
        assert items(walk(graph, link, MINIMAL)[0]) == [{"id": t.ids["cyd"], "displayName": "Cydney"}]


def test_properties_some_adds_a_stable_part_of_the_others():
    t = Tenant(seed=5)
    users = [t.add_user(f"s{i}@{DOMAIN}", f"S{i}") for i in range(20)]
    with Simulator(t, quirks=Quirks(properties="some", seed=3)) as sim:
        graph = GraphClient(sim)
        _, link = walk(graph, USERS, params=USEL)
        for uid in users:
            t.update_user(uid, display_name=f"renamed {uid[:4]}")
        first = by_id(items(walk(graph, link, size=7)[0]))
        again = by_id(items(walk(graph, link, size=3)[0]))
        assert first == again, "the same round, paged differently, sends the same subset"
        assert set(first) == set(users)
        for uid, item in first.items():
            assert item["displayName"] == f"renamed {uid[:4]}"  # the change is always there
            assert {"id", "displayName"} <= set(item) <= USER_PROPS
        extra = [set(i) - {"id", "displayName"} for i in first.values()]
        assert any(extra) and not all(e == USER_PROPS - {"id", "displayName"} for e in extra)
        sim.quirks.seed = 4
        assert by_id(items(walk(graph, link)[0])) != first, "another seed, another subset"
        graph.close()


def test_created_restored_and_deleted_users_under_return_minimal(simulator, graph):
    t = simulator.tenant
    ids = t.ids
    _, link = walk(graph, USERS, params=USEL)
    t.soft_delete_user(ids["bob"])
    t.soft_delete_user(ids["cyd"])
    t.hard_delete_user(ids["cyd"])
    pages, link = walk(graph, link, MINIMAL)
    assert by_id(items(pages)) == {ids["bob"]: {"id": ids["bob"], "@removed": {"reason": "changed"}},
                                   ids["cyd"]: {"id": ids["cyd"], "@removed": {"reason": "deleted"}}}
    t.restore_user(ids["bob"])  # comes back as a whole object, without annotation
    pages, _ = walk(graph, link, MINIMAL)
    assert items(pages) == [{"id": ids["bob"], "displayName": "Bob", "userPrincipalName": f"bob@{DOMAIN}",
                             "accountEnabled": True, "mail": None, "userType": "Member"}]


def test_groups_under_return_minimal(simulator, graph):
    t = simulator.tenant
    ids = t.ids
    _, link = walk(graph, GROUPS, params=GSEL)
    t.rename_group(ids["team"], "Dream Team")
    pages, link = walk(graph, link, MINIMAL)
    assert items(pages) == [{"id": ids["team"], "displayName": "Dream Team"}]
    t.update_group(ids["team"], security_enabled=False)
    pages, link = walk(graph, link, MINIMAL)
    assert items(pages) == [{"id": ids["team"], "securityEnabled": False}]
    t.remove_member(ids["team"], ids["cyd"])  # members only: no property at all
    pages, link = walk(graph, link, MINIMAL)
    assert items(pages) == [{"id": ids["team"], "members@delta": [
        {"@odata.type": "#microsoft.graph.user", "id": ids["cyd"], "@removed": {"reason": "deleted"}}]}]
    new = t.add_group("New")
    t.add_member(new, ids["ada"])
    pages, _ = walk(graph, link, MINIMAL)
    assert items(pages) == [{"id": new, "displayName": "New", "securityEnabled": True, "members@delta": [
        {"@odata.type": "#microsoft.graph.user", "id": ids["ada"]}]}]


def test_omit_null_leaves_out_what_was_never_set(simulator, graph):
    t = simulator.tenant
    ids = t.ids
    simulator.quirks.omit_null = True
    pages, link = walk(graph, USERS, params=USEL)
    got = by_id(items(pages))
    assert "mail" not in got[ids["bob"]] and got[ids["ada"]]["mail"] == f"ada@{DOMAIN}"
    t.update_user(ids["ada"], mail=None)
    t.update_user(ids["bob"], display_name="Robert")
    got = by_id(items(walk(graph, link)[0]))
    assert got[ids["ada"]]["mail"] is None, "a property set to null is sent as null"
    assert "mail" not in got[ids["bob"]] and got[ids["bob"]]["displayName"] == "Robert"


def test_changes_to_unselected_properties_can_stay_out(simulator, graph):
    t = simulator.tenant
    ids = t.ids
    simulator.quirks.hide_unselected = True
    _, link = walk(graph, USERS, params={"$select": "displayName"})
    _, glink = walk(graph, GROUPS, params={"$select": "displayName,members"})
    t.update_user(ids["ada"], mail="ada@elsewhere.example")  # not selected: not in the round
    t.update_user(ids["bob"], display_name="Robert", enabled=False)
    t.soft_delete_user(ids["cyd"])  # a deletion always shows
    t.update_group(ids["team"], security_enabled=False)
    assert by_id(items(walk(graph, link)[0])) == {
        ids["bob"]: {"id": ids["bob"], "displayName": "Robert"},
        ids["cyd"]: {"id": ids["cyd"], "@removed": {"reason": "changed"}}}
    # the group shows only for the membership change cyd's deletion made
    assert items(walk(graph, glink)[0]) == [{"id": ids["team"], "displayName": "Team", "members@delta": [
        {"@odata.type": "#microsoft.graph.user", "id": ids["cyd"], "@removed": {"reason": "deleted"}}]}]
    simulator.quirks.hide_unselected = False
    assert {i["id"] for i in items(walk(graph, link)[0])} == {ids["ada"], ids["bob"], ids["cyd"]}


# ---------------------------------------------------------------------------- rounds and pages


def test_removed_in_the_initial_round(simulator, graph):
    t = simulator.tenant
    t.soft_delete_user(t.ids["bob"])
    assert t.ids["bob"] not in by_id(items(walk(graph, USERS, params=USEL)[0]))
    simulator.quirks.removed_in_initial = True
    got = by_id(items(walk(graph, USERS, params=USEL)[0]))
    assert got[t.ids["bob"]] == {"id": t.ids["bob"], "@removed": {"reason": "changed"}}
    assert set(got[t.ids["ada"]]) == USER_PROPS


def test_a_group_without_members_has_no_members_delta(simulator, graph):
    empty = simulator.tenant.add_group("Empty")
    assert by_id(items(walk(graph, GROUPS, params=GSEL)[0]))[empty]["members@delta"] == []
    simulator.quirks.omit_empty_members = True
    got = by_id(items(walk(graph, GROUPS, params=GSEL)[0]))
    assert "members@delta" not in got[empty]
    assert len(got[simulator.tenant.ids["team"]]["members@delta"]) == 2


def test_continuation_entries_repeat_the_group_properties():
    t = Tenant(seed=2)
    big = t.add_group("Big")
    for i in range(5):
        t.add_member(big, t.add_user(f"b{i}@{DOMAIN}"))
    with Simulator(t, members_per_page=2) as sim:
        graph = GraphClient(sim)
        entries = items(walk(graph, GROUPS, params=GSEL)[0])
        assert [set(e) for e in entries] == [{"id", "displayName", "securityEnabled", "members@delta"},
                                             {"id", "members@delta"}, {"id", "members@delta"}]
        sim.quirks.continuation_props = True
        entries = items(walk(graph, GROUPS, params=GSEL)[0])
        assert [e["displayName"] for e in entries] == ["Big"] * 3
        assert sum(len(e["members@delta"]) for e in entries) == 5
        graph.close()


@pytest.mark.parametrize("empty", [1, 3])
def test_empty_pages_with_a_next_link(simulator, graph, empty):
    t = simulator.tenant
    plain, link = walk(graph, USERS, size=2, params=USEL)
    simulator.quirks.empty_pages = empty
    pages, link = walk(graph, USERS, size=2, params=USEL)
    assert pages[0]["value"] == [] and "@odata.nextLink" in pages[0], "the first page is empty"
    assert items(pages) == items(plain)
    # N empty pages before each of the 2 pages of data, and N before a last empty page
    assert len(pages) == 2 * (empty + 1) + empty + 1
    assert pages[-1]["value"] == [] and "@odata.deltaLink" in pages[-1]
    # incremental rounds too, and a round with nothing in it
    t.update_user(t.ids["ada"], display_name="Ada K")
    pages, link = walk(graph, link, size=2)
    assert [i["displayName"] for i in items(pages)] == ["Ada K"] and pages[0]["value"] == []
    pages, _ = walk(graph, link)
    assert items(pages) == [] and len(pages) == empty + 1


def test_objects_repeated_on_a_later_page(simulator, graph):
    t = simulator.tenant
    for i in range(4):
        t.add_user(f"r{i}@{DOMAIN}")
    plain = items(walk(graph, USERS, size=3, params=USEL)[0])
    simulator.quirks.repeat = 1
    pages, _ = walk(graph, USERS, size=3, params=USEL)
    ids = [[i["id"] for i in p["value"]] for p in pages]
    assert ids[1][0] == ids[0][-1] and ids[2][0] == ids[1][-1], ids
    assert pages[-1]["value"] == [plain[-1]], "the last object comes again on a page of its own"
    assert {i["id"] for i in items(pages)} == {i["id"] for i in plain}
    assert len(items(pages)) == len(plain) + len(pages) - 1


def test_repeated_groups_come_without_members(simulator, graph):
    t = simulator.tenant
    other = t.add_group("Other")
    t.add_member(other, t.ids["ada"])
    simulator.quirks.repeat = 1
    entries = items(walk(graph, GROUPS, size=1, params=GSEL)[0])
    assert [e["id"] for e in entries] == [t.ids["team"], t.ids["team"], other, other]
    assert "members@delta" in entries[0] and "members@delta" not in entries[1]
    assert entries[1] == {"id": t.ids["team"], "displayName": "Team", "securityEnabled": True}


def test_a_delta_link_called_twice_replays_its_changes(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    t.update_user(t.ids["ada"], display_name="Once")
    first, next_link = walk(graph, link)
    again, _ = walk(graph, link)
    assert items(first) == items(again) and [i["displayName"] for i in items(first)] == ["Once"]
    assert items(walk(graph, next_link)[0]) == []


def test_replay_quirk_redelivers_the_last_round(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    t.update_user(t.ids["ada"], display_name="First")
    simulator.quirks.replay = True
    pages, link = walk(graph, link)
    assert [i["displayName"] for i in items(pages)] == ["First"]
    simulator.quirks.replay = False
    t.update_user(t.ids["bob"], display_name="Second")
    pages, link = walk(graph, link)
    assert {i["displayName"] for i in items(pages)} == {"First", "Second"}, "First is replayed"
    assert items(walk(graph, link)[0]) == []


def test_processing_delay_holds_a_change_back_for_a_later_round(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    simulator.quirks.lag = 600  # longer than the test: the change is too young to show
    t.update_user(t.ids["ada"], display_name="Late")
    pages, link = walk(graph, link)
    assert items(pages) == []
    simulator.quirks.lag = 0
    assert [i["displayName"] for i in items(walk(graph, link)[0])] == ["Late"]


# ---------------------------------------------------------------------------- errors and headers


def test_gone_with_only_a_location_header(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    t.expire_delta_tokens(style="gone_bare")
    r = graph.http.get(link)
    assert r.status_code == 410
    assert r.content == b"" and r.headers["Content-Length"] == "0"
    assert "Content-Type" not in r.headers
    location = r.headers["Location"]
    query = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert query["$deltatoken"] == [""], "an empty $deltatoken, as the overview says"
    assert query["$select"] == ["id,displayName,userPrincipalName,accountEnabled,mail,userType"]
    # following it starts a new round
    pages, link = walk(graph, location)
    assert len(items(pages)) == 3 and graph.http.get(link).status_code == 200


@pytest.mark.parametrize("style", ["resyncRequired", "syncStateNotFound"])
def test_stale_tokens_as_400(simulator, graph, style):
    first = graph.get(USERS, page_size=1).json()
    simulator.tenant.expire_delta_tokens(style=style)
    r = graph.http.get(first["@odata.nextLink"])
    assert r.status_code == 400 and r.json()["error"]["code"] == style


def test_unknown_expiry_style_is_refused(simulator):
    with pytest.raises(ValueError):
        simulator.tenant.expire_delta_tokens(style="teapot")


def test_usage_headers(simulator, graph):
    assert "x-ms-resource-unit" not in graph.http.get(USERS).headers
    simulator.quirks.set(usage_headers=True, throttle_limit_percentage=0.9)
    r = graph.http.get(USERS)
    assert r.headers["x-ms-resource-unit"] == "1" and r.headers["x-ms-throttle-limit-percentage"] == "0.9"


def test_quirks_refuse_unknown_names_and_bad_values(simulator):
    q = simulator.quirks
    with pytest.raises(TypeError):
        q.set(colour="blue")
    with pytest.raises(ValueError):
        q.set(properties="most", repeat=2)
    assert q.properties == "full" and q.repeat == 0, "a refused change changes nothing"
    q.set(repeat=2, empty_pages=1)
    assert q.reset() == Quirks()


def test_prefer_header_sent_twice_or_with_other_preferences(simulator, graph):
    t = simulator.tenant
    _, link = walk(graph, USERS, params=USEL)
    t.update_user(t.ids["ada"], display_name="Two headers")
    r = graph.http.get(link, headers=httpx.Headers([("Prefer", "odata.maxpagesize=5"),
                                                    ("Prefer", "return=minimal")]))
    assert r.json()["value"] == [{"id": t.ids["ada"], "displayName": "Two headers"}]
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=5"
    r = graph.http.get(link, headers={"Prefer": "return=representation"})
    assert set(r.json()["value"][0]) == USER_PROPS
