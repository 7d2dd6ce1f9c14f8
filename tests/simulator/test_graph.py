"""Graph v1.0 reads other than delta: shapes, paging, $select/$filter, permissions, errors."""

from __future__ import annotations

import re

import pytest

from syncd.simulator import Simulator

from .conftest import DOMAIN, GraphClient

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_service_principal_and_its_errors(simulator, graph):
    t = simulator.tenant
    r = graph.get(f"/v1.0/servicePrincipals/{t.service_principal_id}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["request-id"] and r.headers["client-request-id"]
    body = r.json()
    assert body["id"] == t.service_principal_id and body["appId"] == t.client_id
    assert body["@odata.context"].endswith("$metadata#servicePrincipals/$entity")

    r = graph.get("/v1.0/servicePrincipals/6f1c2a51-7e0d-4c55-9a43-9b1d5f2b7a10",
                  headers={"client-request-id": "mine"})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "Request_ResourceNotFound"
    assert error["innerError"]["client-request-id"] == "mine" == r.headers["client-request-id"]
    assert error["innerError"]["request-id"] == r.headers["request-id"]

    r = graph.get("/v1.0/servicePrincipals/not-a-guid")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "Request_BadRequest"
    assert "Invalid object identifier" in r.json()["error"]["message"]


def test_app_role_assigned_to_pages_with_top(simulator, graph):
    t = simulator.tenant
    for i in range(5):
        t.assign(t.add_user(f"extra{i}@{DOMAIN}"))
    pages = graph.pages(f"/v1.0/servicePrincipals/{t.service_principal_id}/appRoleAssignedTo",
                        params={"$top": "3"})
    assert [len(p["value"]) for p in pages] == [3, 3, 1]
    items = [i for p in pages for i in p["value"]]
    assert {i["principalId"] for i in items} == set(t.assigned())
    team = next(i for i in items if i["principalType"] == "Group")
    assert team["principalDisplayName"] == "Team" and team["resourceId"] == t.service_principal_id
    assert team["appRoleId"] == "00000000-0000-0000-0000-000000000000"
    assert len(team["id"]) == 43 and team["createdDateTime"].endswith("Z")
    r = graph.get(f"/v1.0/servicePrincipals/{t.service_principal_id}/appRoleAssignedTo",
                  params={"$top": "1000"})
    assert r.status_code == 400


@pytest.mark.parametrize(("missing", "url"), [
    ("User.Read.All", "/v1.0/users"),
    ("User.Read.All", "/v1.0/users/delta()"),
    ("GroupMember.Read.All", "/v1.0/groups/delta"),
    ("GroupMember.Read.All", "/v1.0/groups"),
    ("Application.Read.All", "/v1.0/servicePrincipals/{sp}/appRoleAssignedTo"),
])
def test_missing_permission_is_403(simulator, graph, missing, url):
    simulator.tenant.permissions.discard(missing)
    r = graph.get(url.format(sp=simulator.tenant.service_principal_id))
    assert r.status_code == 403
    assert r.json()["error"] == {**r.json()["error"], "code": "Authorization_RequestDenied",
                                 "message": "Insufficient privileges to complete the operation."}


def test_users_list_select_filter_and_single(simulator, graph):
    t = simulator.tenant
    users, _ = graph.collect("/v1.0/users")
    assert len(users) == 3
    assert "accountEnabled" not in users[0]  # not in Graph's default set
    assert set(users[0]) >= {"id", "displayName", "userPrincipalName", "mail", "businessPhones"}

    users, _ = graph.collect("/v1.0/users", params={"$select": "displayName,accountEnabled"})
    assert users[0] == {"id": t.ids["ada"], "displayName": "Ada Lovelace", "accountEnabled": True}

    r = graph.get("/v1.0/users", params={"$filter": f"userPrincipalName eq 'BOB@{DOMAIN}'"})
    assert [u["id"] for u in r.json()["value"]] == [t.ids["bob"]]
    r = graph.get("/v1.0/users", params={
        "$filter": f"id eq '{t.ids['ada']}' or id eq '{t.ids['cyd']}'", "$select": "id"})
    assert [u["id"] for u in r.json()["value"]] == [t.ids["ada"], t.ids["cyd"]]
    assert graph.get("/v1.0/users", params={"$filter": "startswith(displayName,'A')"}
                     ).json()["error"]["code"] == "Request_UnsupportedQuery"
    assert graph.get("/v1.0/users", params={"$select": "nope"}).status_code == 400

    assert graph.get(f"/v1.0/users/{t.ids['bob']}").json()["userPrincipalName"] == f"bob@{DOMAIN}"
    assert graph.get(f"/v1.0/users/bob@{DOMAIN}").json()["id"] == t.ids["bob"]
    t.soft_delete_user(t.ids["bob"])
    assert graph.get(f"/v1.0/users/{t.ids['bob']}").status_code == 404
    assert len(graph.collect("/v1.0/users")[0]) == 2


def test_guest_upn_with_ext_marker_resolves(simulator, graph):
    guest = simulator.tenant.add_user(f"jo_fabrikam.com#EXT#@{DOMAIN}", user_type="Guest")
    r = graph.get(f"/v1.0/users/jo_fabrikam.com%23EXT%23@{DOMAIN}",
                  params={"$select": "userType"})
    assert r.json() == {"@odata.context": r.json()["@odata.context"], "id": guest,
                        "userType": "Guest"}


def test_groups_members_transitive_and_member_of(simulator, graph):
    t = simulator.tenant
    inner = t.add_group("Inner")
    deep = t.add_user(f"deep@{DOMAIN}")
    t.add_member(inner, deep)
    t.add_member(t.ids["team"], inner)
    t.add_member(t.ids["team"], t.add_device("PC-1"))
    t.add_member(t.ids["team"], t.add_service_principal("Bot"))

    r = graph.get("/v1.0/groups", params={"$filter": "displayName eq 'team'"})
    assert [g["id"] for g in r.json()["value"]] == [t.ids["team"]]
    assert graph.get(f"/v1.0/groups/{t.ids['team']}").json()["securityEnabled"] is True
    assert graph.get("/v1.0/groups/nope").status_code == 400

    members, _ = graph.collect(f"/v1.0/groups/{t.ids['team']}/members", params={"$top": "2"})
    assert [m["@odata.type"] for m in members] == [
        "#microsoft.graph.user", "#microsoft.graph.user", "#microsoft.graph.group",
        "#microsoft.graph.device", "#microsoft.graph.servicePrincipal"]
    transitive, _ = graph.collect(f"/v1.0/groups/{t.ids['team']}/transitiveMembers")
    assert deep in {m["id"] for m in transitive} and len(transitive) == 6

    groups, _ = graph.collect(f"/v1.0/users/{deep}/memberOf")
    assert [(g["@odata.type"], g["id"]) for g in groups] == [("#microsoft.graph.group", inner)]


def test_get_by_ids(simulator, graph):
    t = simulator.tenant
    ids = [t.ids["ada"], t.ids["team"], "0a0b0c0d-0000-4000-8000-000000000000"]
    r = graph.http.post("/v1.0/directoryObjects/getByIds", json={"ids": ids, "types": ["user", "group"]})
    assert r.status_code == 200
    assert [(o["@odata.type"], o["id"]) for o in r.json()["value"]] == [
        ("#microsoft.graph.user", t.ids["ada"]), ("#microsoft.graph.group", t.ids["team"])]
    r = graph.http.post("/v1.0/directoryObjects/getByIds", json={"ids": ids, "types": ["group"]})
    assert [o["id"] for o in r.json()["value"]] == [t.ids["team"]]
    r = graph.http.post("/v1.0/directoryObjects/getByIds", json={"ids": [ids[0]] * 1001})
    assert r.status_code == 400


def test_soft_delete_hides_from_members_and_assignments(simulator, graph):
    t = simulator.tenant
    t.soft_delete_user(t.ids["bob"])
    t.soft_delete_user(t.ids["ada"])
    members, _ = graph.collect(f"/v1.0/groups/{t.ids['team']}/members")
    assert [m["id"] for m in members] == [t.ids["cyd"]]
    assigned, _ = graph.collect(f"/v1.0/servicePrincipals/{t.service_principal_id}/appRoleAssignedTo")
    assert [a["principalId"] for a in assigned] == [t.ids["team"]]
    t.restore_user(t.ids["bob"])
    t.restore_user(t.ids["ada"])
    members, _ = graph.collect(f"/v1.0/groups/{t.ids['team']}/members")
    assert {m["id"] for m in members} == {t.ids["bob"], t.ids["cyd"]}
    assert t.ids["ada"] in t.assigned()


def test_request_log(simulator: Simulator, graph: GraphClient):
    simulator.reset_log()
    graph.get("/v1.0/users", params={"$top": "1"})
    graph.get("/v1.0/nothing-here")
    assert simulator.requests == [("GET", "/v1.0/users?%24top=1", 200),
                                  ("GET", "/v1.0/nothing-here", 400)]
    assert simulator.graph_request_count() == 2 and simulator.token_request_count() == 0


def test_ids_are_guids(simulator):
    t = simulator.tenant
    assert all(GUID.match(x) for x in (t.tenant_id, t.client_id, t.service_principal_id, *t.ids.values()))
