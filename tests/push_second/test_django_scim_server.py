"""What django-scim2-server does, measured over its own API with plain httpx: the behaviours
conftest.py lists, where it differs from scim2-server. If an upgrade changes one, this says
which before the push tests fail for a reason that is hard to see."""

from __future__ import annotations

import httpx

from tests.push_second.conftest import TOKEN, DjangoScim, View

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_discovery_paging_and_auth(djscim: DjangoScim) -> None:
    view = View(djscim.base_url)
    spc = view.http.get("ServiceProviderConfig").json()
    assert spc["bulk"] == {"supported": False, "maxOperations": 0, "maxPayloadSize": 0}
    assert spc["etag"] == {"supported": False} and spc["sort"] == {"supported": False}
    assert spc["filter"] == {"supported": True, "maxResults": 200} and spc["patch"] == {"supported": True}
    schemas = {s["id"]: s for s in view.http.get("Schemas").json()["Resources"]}
    user_attrs = {a["name"] for a in schemas[USER]["attributes"]}
    assert user_attrs == {"userName", "name", "emails", "active", "externalId"}  # no displayName
    assert view.http.get("Users", params={"count": 1001}).status_code == 400
    assert view.http.get("Users/not-a-uuid").status_code == 404
    refused = httpx.get(djscim.base_url + "/Users", headers={"Authorization": "Bearer nope"}, trust_env=False)
    assert refused.status_code == 401 and "WWW-Authenticate" not in refused.headers
    assert TOKEN not in refused.text
    view.close()


def test_users_groups_and_patch(djscim: DjangoScim) -> None:
    view = View(djscim.base_url)
    alice = view.post("Users", {"userName": "alice@x", "displayName": "Alice", "externalId": "e-1",
                                "emails": [{"type": "work", "primary": True, "value": "alice@x.com"}]})
    assert "displayName" not in alice and alice["emails"] == [{"value": "alice@x.com", "primary": True}]
    assert alice["active"] is True and alice["externalId"] == "e-1"
    # unique as sent, found ignoring case
    assert view.http.post("Users", json={"schemas": [USER], "userName": "alice@x"}).status_code == 409
    other = view.post("Users", {"userName": "ALICE@x"})
    found = view.http.get("Users", params={"filter": 'userName eq "Alice@X"'}).json()["Resources"]
    assert {u["id"] for u in found} == {alice["id"], other["id"]}
    # PATCH answers 200 with the resource; a displayName is dropped without an error
    after = view.patch(f"Users/{alice['id']}", {"op": "replace", "path": "displayName", "value": "Alice A."},
                       {"op": "replace", "path": "active", "value": False})
    assert after["active"] is False and "displayName" not in after
    # groups: created with members; not unique by displayName; members removed by filter
    team = view.post("Groups", {"displayName": "Team", "members": [{"value": alice["id"]}, {"value": other["id"]}]})
    assert {m["value"] for m in team["members"]} == {alice["id"], other["id"]}
    view.post("Groups", {"displayName": "team"})
    after = view.patch(f"Groups/{team['id']}", {"op": "remove", "path": f'members[value eq "{other["id"]}"]'},
                       {"op": "replace", "path": "displayName", "value": "Team 2"})
    assert [m["value"] for m in after["members"]] == [alice["id"]] and after["displayName"] == "Team 2"
    # DELETE of a user only deactivates it
    assert view.http.delete(f"Users/{other['id']}").status_code == 204
    assert view.http.get(f"Users/{other['id']}").json()["active"] is False
    view.close()
