"""Page validation and delta merging, without a network."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import SourceError
from syncd.model import ABSENT, EntraGroup, EntraUser, overlay_user, unknown_user
from syncd.read import ReadAccumulator
from syncd.source.pages import (
    RawPage,
    _id,
    groups_page,
    malformed,
    parse_page,
    user_from_item,
    users_page,
)

G = "11111111-1111-4111-8111-111111111111"
U1 = "22222222-2222-4222-8222-222222222222"
U2 = "33333333-3333-4333-8333-333333333333"


def page(items, **links):
    return orjson.dumps({"value": items, **{f"@odata.{k}": v for k, v in links.items()}})


@pytest.mark.parametrize("body,problem", [
    (b"", "empty"),
    (b"[]", "JSON object"),
    (b'{"value": {}}', "value"),
    (b'{"nothing": 1}', "value"),
    (b'{"value": [1]}', "not an object"),
    (b'{"value": [], "@odata.nextLink": 5}', "nextLink"),
    (b'{"value": [{"id": "x"', "JSON"),
])
def test_bad_pages(body, problem):
    with pytest.raises(SourceError) as err:
        parse_page(body, "/v1.0/users/delta")
    assert err.value.kind == "malformed" and problem in str(err.value) and "/v1.0/users/delta" in str(err.value)


def test_uppercase_ids_are_normalised():
    raw = parse_page(page([{"id": U1.upper(), "accountEnabled": True}], deltaLink="https://g/x"), "/u")
    assert users_page(raw, "/u").users[0].id == U1


def test_a_property_left_out_is_absent_and_null_is_not_known():
    """R14a: a delta round sends at least the changed properties; one left out is unchanged
    (ABSENT, laid over what is known later), never false or empty. A null accountEnabled
    is "not known", neither enabled nor disabled."""
    raw = parse_page(page([{"id": U1, "displayName": "Renamed"}, {"id": U2, "accountEnabled": None, "mail": None}]), "/u")
    renamed, nulls = users_page(raw, "/u").users
    assert renamed.display_name == "Renamed"
    assert renamed.account_enabled is ABSENT and renamed.user_principal_name is ABSENT and renamed.partial
    assert nulls.account_enabled is None and nulls.mail is None and nulls.display_name is ABSENT
    with pytest.raises(TypeError):
        bool(renamed.account_enabled)  # a rule that forgot to lay it over fails loudly


def test_an_object_that_comes_again_partial_changes_only_what_it_carries():
    acc = ReadAccumulator(full=False)
    whole = {"id": U1, "userPrincipalName": "a@x", "displayName": "A", "mail": None, "accountEnabled": True, "userType": "Member"}
    acc.add(users_page(parse_page(page([whole]), "/u"), "/u"))
    acc.add(users_page(parse_page(page([{"id": U1, "displayName": "A2"}]), "/u"), "/u"))
    acc.add(users_page(parse_page(page([{"id": U1, "accountEnabled": False}]), "/u"), "/u"))
    user = acc.finish().users[U1]
    assert user == EntraUser(U1, "a@x", "A2", None, False, "Member") and not user.partial
    acc = ReadAccumulator(full=False)
    acc.add(groups_page(parse_page(page([{"id": G, "displayName": "Sales", "securityEnabled": False}]), "/g"), "/g"))
    acc.add(groups_page(parse_page(page([{"id": G, "displayName": "Sales 2"}]), "/g"), "/g"))
    acc.add(groups_page(parse_page(page([{"id": G, "members@delta": []}]), "/g"), "/g"))  # a later slice: no properties
    assert acc.finish().groups[G] == EntraGroup(G, "Sales 2", False)


def test_a_partial_object_seen_alone_stays_partial_until_the_mirror_is_laid_under_it():
    acc = ReadAccumulator(full=False)
    acc.add(users_page(parse_page(page([{"id": U1, "displayName": "B"}, {"id": U1, "mail": "m@x"}]), "/u"), "/u"))
    user = acc.finish().users[U1]
    assert user.partial and (user.display_name, user.mail) == ("B", "m@x") and user.account_enabled is ABSENT
    known = EntraUser(U1, "b@x", "old", None, True, "Guest")
    assert overlay_user(known, user) == EntraUser(U1, "b@x", "B", "m@x", True, "Guest")
    assert overlay_user(unknown_user(U1), user) == EntraUser(U1, None, "B", "m@x", None, None)


json_value = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
user_item = st.fixed_dictionaries(
    # (and ids a check of many at once must not let through: GUIDs run together, one with a newline)
    {"id": st.sampled_from([U1, U2, U1.upper(), "not-a-guid", 7, None, U1 + "\n", f"{U1}\n{U2}", U1[:-1], U1 + "0"])},
    optional={
        "userPrincipalName": json_value, "displayName": json_value, "mail": json_value,
        "accountEnabled": json_value, "userType": json_value, "@removed": st.just({"reason": "changed"}),
    },
)


@given(st.lists(user_item, max_size=6))
def test_users_page_takes_each_item_as_user_from_item_does(items):
    """users_page inlines user_from_item and _id (its hot loop): same users, same errors."""
    try:
        expected = [(("removed", _id(i, "/u")) if "@removed" in i else ("user", user_from_item(i, "/u"))) for i in items]
    except SourceError as exc:
        with pytest.raises(SourceError) as err:
            users_page(RawPage(items, None, None), "/u")
        assert str(err.value) == str(exc)
        return
    page = users_page(RawPage(items, None, None), "/u")
    assert page.users == [u for kind, u in expected if kind == "user"]
    assert page.removed_users == [u for kind, u in expected if kind == "removed"]
    assert all(type(u) is type(user_from_item({"id": U1}, "/u")) for u in page.users)


member = st.fixed_dictionaries(
    {"id": st.sampled_from([U1, U2.upper(), "not-a-guid", None, f"{U1}\n{U2}"]),
     "@odata.type": st.sampled_from(["#microsoft.graph.user", "#microsoft.graph.group", "#x"])},
    optional={"@removed": st.just({"reason": "deleted"})},
)


@given(st.lists(member | st.just(5), max_size=5))
def test_a_groups_page_checks_each_member_as_id_does(members):
    """groups_page checks a group's member ids at once: the same members, the same errors."""
    item = {"id": G, "displayName": "Team", "members@delta": members}
    try:
        expected = []
        for m in members:
            if not isinstance(m, dict):
                raise malformed("/g", f"group {G}: a member is not an object")
            expected.append((_id(m, "/g"), "@removed" in m))
    except SourceError as exc:
        with pytest.raises(SourceError) as err:
            groups_page(RawPage([item], None, None), "/g")
        assert str(err.value) == str(exc)
        return
    page = groups_page(RawPage([item], None, None), "/g")
    assert set(page.members_added[G]) | page.members_removed[G] == {mid for mid, _ in expected}
    assert all(mid.islower() or not mid.isalpha() for mid, _ in expected)


def groups(items, acc):
    acc.add(groups_page(parse_page(page(items), "/g"), "/g"))


def test_members_merge_across_pages_and_replays():
    acc = ReadAccumulator(full=False)
    groups([{"id": G, "displayName": "Team", "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": U1}]}], acc)
    # the next page carries the same group with only more members (a big group)
    groups([{"id": G, "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": U2},
                                        {"@odata.type": "#microsoft.graph.user", "id": U1, "@removed": {"reason": "deleted"}}]}], acc)
    read = acc.finish()
    assert read.groups[G].display_name == "Team"  # not erased by the property-less slice
    assert read.members_added == {G: {U2: "user"}}
    assert read.members_removed == {G: {U1}}
    # a replay re-adding U1 wins over the earlier removal
    groups([{"id": G, "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": U1}]}], acc)
    read = acc.finish()
    assert read.members_added[G] == {U2: "user", U1: "user"} and not read.members_removed


def test_removed_then_back_user():
    acc = ReadAccumulator(full=False)
    acc.add(users_page(parse_page(page([{"id": U1, "@removed": {"reason": "changed"}}]), "/u"), "/u"))
    acc.add(users_page(parse_page(page([{"id": U1, "userPrincipalName": "a@b", "accountEnabled": True}]), "/u"), "/u"))
    read = acc.finish()
    assert U1 in read.users and not read.removed_users


def test_removed_group_drops_its_members():
    acc = ReadAccumulator(full=False)
    groups([{"id": G, "displayName": "T", "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": U1}]}], acc)
    groups([{"id": G, "@removed": {"reason": "deleted"}}], acc)
    read = acc.finish()
    assert read.removed_groups == {G} and not read.groups and not read.members_added


def test_full_read_lists_memberless_groups():
    acc = ReadAccumulator(full=True)
    groups([{"id": G, "displayName": "Empty"}], acc)
    assert acc.finish().members_added == {G: {}}


def test_member_with_bad_id_is_malformed():
    with pytest.raises(SourceError) as err:
        groups_page(parse_page(page([{"id": G, "members@delta": [{"id": "nope"}]}]), "/g"), "/g")
    assert err.value.kind == "malformed"
