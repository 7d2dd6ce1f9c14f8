"""What scim2-server really does (the facts tests/push/conftest.py's docstring lists), checked
with plain httpx so a new scim2-server release that changes one of them is seen here first."""

from __future__ import annotations

import httpx

from tests.push.conftest import TOKEN, ScimServer

U = "urn:ietf:params:scim:schemas:core:2.0:User"
G = "urn:ietf:params:scim:schemas:core:2.0:Group"
P = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _client(server: ScimServer, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=server.tenant() + "/", headers={"Authorization": f"Bearer {token}"}, trust_env=False)


def test_what_scim2_server_supports(bulk_server: ScimServer) -> None:
    c = _client(bulk_server)
    spc = c.get("ServiceProviderConfig").json()
    assert spc["patch"]["supported"] and spc["bulk"]["maxOperations"] == 1000 and spc["filter"]["maxResults"] == 1000
    alice = c.post("Users", json={"schemas": [U], "userName": "alice@x", "externalId": "E1"})
    assert alice.status_code == 201 and alice.headers["ETag"].startswith('W/"')
    dup = c.post("Users", json={"schemas": [U], "userName": "ALICE@x"})
    assert dup.status_code == 409 and dup.json()["scimType"] == "uniqueness"
    assert c.get("Users", params={"filter": 'userName eq "Alice@X"'}).json()["totalResults"] == 1
    assert c.get("Users", params={"filter": 'externalId eq "e1"'}).json()["totalResults"] == 0  # case-exact
    assert c.post("Groups", json={"schemas": [G], "displayName": "Team"}).status_code == 201
    team2 = c.post("Groups", json={"schemas": [G], "displayName": "team", "members": [{"value": "no-such-id"}]})
    assert team2.status_code == 201  # displayName not unique, members not checked
    uid = alice.json()["id"]
    gid = team2.json()["id"]
    add = {"schemas": [P], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}
    first = c.patch(f"Groups/{gid}", json=add)
    assert first.status_code == 204 and not first.content
    assert c.patch(f"Groups/{gid}", json=add).headers["ETag"] == first.headers["ETag"]  # nothing changed
    remove = {"schemas": [P], "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]}
    assert c.patch(f"Groups/{gid}", json=remove).status_code == 204
    assert c.post("Users", json={"schemas": [U], "userName": "b@x", "bogus": 1}).status_code == 400
    stale = c.patch(f"Users/{uid}", headers={"If-Match": 'W/"0"'},
                    json={"schemas": [P], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert stale.status_code == 412
    bulk = c.post("Bulk", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"schemas": [U], "userName": "carol@x"}},
        {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": [G], "displayName": "B",
                                                                      "members": [{"value": "bulkId:u"}]}},
    ]}).json()["Operations"]
    assert [o["status"] for o in bulk] == ["201", "201"] and "response" not in bulk[0] and bulk[0]["location"]
    carol_id = bulk[0]["location"].rsplit("/", 1)[-1]
    assert c.get(bulk[1]["location"].split("/v2/", 1)[1]).json()["members"][0]["value"] == carol_id
    page = c.get("Users", params={"startIndex": 2, "count": 1, "excludedAttributes": "emails"}).json()
    assert (page["startIndex"], page["itemsPerPage"], page["totalResults"]) == (2, 1, 2)
    listing = c.get("Groups", params={"excludedAttributes": "members"}).json()["Resources"]
    assert all("members" not in g for g in listing)
    refused = _client(bulk_server, "wrong").get("Users")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_patch_refused_where_not_announced(servers: dict[str, ScimServer]) -> None:
    c = _client(servers["put"])
    uid = c.post("Users", json={"schemas": [U], "userName": "a@x"}).json()["id"]
    patch = c.patch(f"Users/{uid}", json={"schemas": [P], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert patch.status_code == 501
    assert c.post("Bulk", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}).status_code == 501
