"""The Microsoft Graph v1.0 routes syncd uses (everything but the HTTP plumbing).

``GraphApi.handle`` maps (method, path, query, body) to a :class:`Page` or an entity dict,
or raises :class:`GraphError`. Permissions are checked against ``tenant.permissions`` at
request time (Graph checks the token's roles; reading them live lets a test revoke a
permission without waiting for a new token).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from .delta import DeltaService
from .odata import (
    GraphError,
    Page,
    bad_request,
    decode_token,
    encode_token,
    invalid_object_id,
    is_guid,
    not_found,
    parse_filter,
    parse_select,
    parse_top,
    projection,
)
from .tenant import Assignment, Group, Tenant, User

READ_USERS = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
              "Directory.ReadWrite.All")
READ_GROUPS = ("GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All",
               "Directory.Read.All", "Directory.ReadWrite.All")
READ_APPS = ("Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All",
             "Directory.ReadWrite.All")
MAX_GET_BY_IDS = 1000
DEFAULT_TOP = 100

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), name) for method, pattern, name in [
        ("GET", r"^/v1\.0/users/(?:microsoft\.graph\.)?delta(?:\(\))?$", "users_delta"),
        ("GET", r"^/v1\.0/groups/(?:microsoft\.graph\.)?delta(?:\(\))?$", "groups_delta"),
        ("GET", r"^/v1\.0/users$", "users"),
        ("GET", r"^/v1\.0/users/([^/]+)$", "user"),
        ("GET", r"^/v1\.0/users/([^/]+)/memberOf$", "user_member_of"),
        ("GET", r"^/v1\.0/groups$", "groups"),
        ("GET", r"^/v1\.0/groups/([^/]+)$", "group"),
        ("GET", r"^/v1\.0/groups/([^/]+)/members$", "group_members"),
        ("GET", r"^/v1\.0/groups/([^/]+)/transitiveMembers$", "group_transitive_members"),
        ("GET", r"^/v1\.0/servicePrincipals/([^/]+)$", "service_principal"),
        ("GET", r"^/v1\.0/servicePrincipals/([^/]+)/appRoleAssignedTo$", "app_role_assigned_to"),
        ("POST", r"^/v1\.0/directoryObjects/getByIds$", "get_by_ids"),
    ]
]


def forbidden() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied",
                      "Insufficient privileges to complete the operation.")


class GraphApi:
    def __init__(self, tenant: Tenant, delta: DeltaService, page_size_cap: int = 999) -> None:
        self.tenant = tenant
        self.delta = delta
        self.page_size_cap = page_size_cap

    # ------------------------------------------------------------------ dispatch

    def handle(self, method: str, path: str, params: dict[str, str], body: Any,
               base_url: str, preferred_size: int | None,
               minimal: bool = False) -> Page | dict[str, Any]:
        for route_method, pattern, name in _ROUTES:
            m = pattern.match(path)
            if m is None:
                continue
            if route_method != method:
                raise GraphError(405, "Request_BadRequest",
                                 f"The HTTP method '{method}' is not allowed on this resource.")
            handler: Callable[..., Page | dict[str, Any]] = getattr(self, "_" + name)
            with self.tenant.lock:
                return handler(*m.groups(), params=params, body=body, base=base_url,
                               preferred=preferred_size, minimal=minimal)
        raise GraphError(400, "BadRequest",
                         f"Resource not found for the segment '{path.rsplit('/', 1)[-1]}'.")

    def _require(self, allowed: tuple[str, ...]) -> None:
        if not self.tenant.permissions.intersection(allowed):
            raise forbidden()

    # ------------------------------------------------------------------ paging

    def _paged(self, route: str, params: dict[str, str], base: str, context: str,
               items_from: Callable[[dict[str, Any]], Iterator[tuple[int, dict[str, Any]]]],
               state: dict[str, Any] | None = None) -> Page:
        """A $top/$skiptoken page over ``items_from(state)``, which yields (position, item)."""
        if "$skiptoken" in params:
            state = decode_token(params["$skiptoken"])
            if state is None or state.get("k") != "list" or state.get("r") != route:
                raise bad_request("Invalid paging token ($skiptoken).")
        else:
            state = {**(state or {}), "k": "list", "r": route, "p": 0,
                     "top": parse_top(params.get("$top"), DEFAULT_TOP, self.page_size_cap)}
        items: list[dict[str, Any]] = []
        next_pos: int | None = None
        for pos, item in items_from(state):
            if len(items) == state["top"]:
                next_pos = pos
                break
            items.append(item)
        page = Page(context, items)
        if next_pos is not None:
            page.next_link = f"{base}{route}?$skiptoken=" + encode_token({**state, "p": next_pos})
        return page

    @staticmethod
    def _scan_list(values: list[Any], start: int) -> Iterator[tuple[int, Any]]:
        for pos in range(start, len(values)):
            yield pos, values[pos]

    def _typed(self, oid: str, select: tuple[str, ...] | None) -> dict[str, Any] | None:
        obj = self.tenant.directory_object(oid)
        if obj is None:
            return None
        return projection(obj.kind, select, with_type=True)(obj)

    # ------------------------------------------------------------------ delta

    def _users_delta(self, *, params, base, preferred, minimal, **_) -> Page:
        self._require(READ_USERS)
        return self.delta.page("users", params, base, preferred, minimal)

    def _groups_delta(self, *, params, base, preferred, minimal, **_) -> Page:
        self._require(READ_GROUPS)
        return self.delta.page("groups", params, base, preferred, minimal)

    # ------------------------------------------------------------------ users

    def _users(self, *, params, base, **_) -> Page:
        self._require(READ_USERS)
        t = self.tenant
        select = parse_select(params.get("$select"), "user")
        terms = parse_filter(params.get("$filter"), {
            "id": "id", "userPrincipalName": "upn", "mail": "mail", "displayName": "display_name"})
        context = f"{base}/v1.0/$metadata#users" + (f"({','.join(select)})" if select else "")
        state = {"s": list(select) if select else None,
                 "f": [list(term) for term in terms] if terms else None}

        def items(state: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
            project = projection("user", tuple(state["s"]) if state["s"] else None)
            if state["f"]:
                matches = self._match_users(state["f"])
                for pos, user in self._scan_list(matches, state["p"]):
                    yield pos, project(user)
                return
            for pos, user in t.users.scan(state["p"]):
                if not user.soft_deleted:
                    yield pos, project(user)

        return self._paged("/v1.0/users", params, base, context, items, state)

    def _match_users(self, terms: list[list[str]]) -> list[User]:
        t = self.tenant
        found: dict[str, User] = {}
        for prop, value in terms:
            if prop == "id":
                user = t.users.get(value)
                candidates = [user] if user is not None else []
            elif prop == "userPrincipalName":
                user = t.user_by_upn(value)
                candidates = [user] if user is not None else []
            else:
                attr = {"mail": "mail", "displayName": "display_name"}[prop]
                wanted = value.lower()
                candidates = [u for u in t.users.values()
                              if (getattr(u, attr) or "").lower() == wanted]
            for user in candidates:
                if not user.soft_deleted:
                    found[user.id] = user
        return list(found.values())

    def _find_user(self, key: str) -> User:
        t = self.tenant
        user = t.users.get(key) if is_guid(key) else t.user_by_upn(key)
        if user is None or user.soft_deleted:
            raise not_found(key)
        return user

    def _user(self, key: str, *, params, base, **_) -> dict[str, Any]:
        self._require(READ_USERS)
        user = self._find_user(key)
        select = parse_select(params.get("$select"), "user")
        return {"@odata.context": f"{base}/v1.0/$metadata#users/$entity",
                **projection("user", select)(user)}

    def _user_member_of(self, key: str, *, params, base, **_) -> Page:
        self._require(READ_USERS)
        user = self._find_user(key)
        select = parse_select(params.get("$select"), "group", lenient=True)
        group_ids = self.tenant.groups_of(user.id)
        context = f"{base}/v1.0/$metadata#directoryObjects"

        def items(state: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
            project = projection("group", tuple(state["s"]) if state["s"] else None, True)
            for pos, gid in self._scan_list(state["g"], state["p"]):
                group = self.tenant.groups.get(gid)
                if group is not None:
                    yield pos, project(group)

        return self._paged(f"/v1.0/users/{user.id}/memberOf", params, base, context, items,
                           {"s": list(select) if select else None, "g": group_ids})

    # ------------------------------------------------------------------ groups

    def _find_group(self, gid: str) -> Group:
        if not is_guid(gid):
            raise invalid_object_id(gid)
        group = self.tenant.groups.get(gid)
        if group is None:
            raise not_found(gid)
        return group

    def _groups(self, *, params, base, **_) -> Page:
        self._require(READ_GROUPS)
        t = self.tenant
        select = parse_select(params.get("$select"), "group")
        terms = parse_filter(params.get("$filter"), {"id": "id", "displayName": "name"})
        context = f"{base}/v1.0/$metadata#groups" + (f"({','.join(select)})" if select else "")

        def items(state: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
            project = projection("group", tuple(state["s"]) if state["s"] else None)
            if state["f"]:
                ids = {v for p, v in state["f"] if p == "id"}
                names = {v.lower() for p, v in state["f"] if p == "displayName"}
                matches = [g for g in t.groups.values()
                           if g.id in ids or g.name.lower() in names]
                for pos, group in self._scan_list(matches, state["p"]):
                    yield pos, project(group)
                return
            for pos, group in t.groups.scan(state["p"]):
                yield pos, project(group)

        return self._paged("/v1.0/groups", params, base, context, items,
                           {"s": list(select) if select else None,
                            "f": [list(term) for term in terms] if terms else None})

    def _group(self, gid: str, *, params, base, **_) -> dict[str, Any]:
        self._require(READ_GROUPS)
        group = self._find_group(gid)
        select = parse_select(params.get("$select"), "group")
        return {"@odata.context": f"{base}/v1.0/$metadata#groups/$entity",
                **projection("group", select)(group)}

    def _group_members(self, gid: str, *, params, base, **_) -> Page:
        self._require(READ_GROUPS)
        group = self._find_group(gid)
        select = parse_select(params.get("$select"), "user", lenient=True)

        def items(state: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
            sel = tuple(state["s"]) if state["s"] else None
            group = self.tenant.groups.get(gid)
            if group is None:
                return
            for pos, mid in group.members.scan(state["p"]):
                item = self._typed(mid, sel)
                if item is not None:
                    yield pos, item

        return self._paged(f"/v1.0/groups/{group.id}/members", params, base,
                           f"{base}/v1.0/$metadata#directoryObjects", items,
                           {"s": list(select) if select else None})

    def _group_transitive_members(self, gid: str, *, params, base, **_) -> Page:
        self._require(READ_GROUPS)
        group = self._find_group(gid)
        select = parse_select(params.get("$select"), "user", lenient=True)

        def items(state: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
            sel = tuple(state["s"]) if state["s"] else None
            members = self._transitive(gid)
            for pos, mid in self._scan_list(members, state["p"]):
                item = self._typed(mid, sel)
                if item is not None:
                    yield pos, item

        return self._paged(f"/v1.0/groups/{group.id}/transitiveMembers", params, base,
                           f"{base}/v1.0/$metadata#directoryObjects", items,
                           {"s": list(select) if select else None})

    def _transitive(self, gid: str) -> list[str]:
        """Every member of the group and of its nested groups, once, breadth first."""
        seen: dict[str, None] = {}
        queue = [gid]
        visited_groups = {gid}
        while queue:
            group = self.tenant.groups.get(queue.pop(0))
            if group is None:
                continue
            for mid in group.members:
                if mid not in seen:
                    seen[mid] = None
                if mid in self.tenant.groups and mid not in visited_groups:
                    visited_groups.add(mid)
                    queue.append(mid)
        return list(seen)

    # ------------------------------------------------------------------ service principals

    def _service_principal(self, spid: str, *, params, base, **_) -> dict[str, Any]:
        self._require(READ_APPS)
        if not is_guid(spid):
            raise invalid_object_id(spid)
        sp = self.tenant.service_principals.get(spid)
        if sp is None:
            raise not_found(spid)
        t = self.tenant
        entity = {
            "@odata.context": f"{base}/v1.0/$metadata#servicePrincipals/$entity",
            "id": sp.id, "deletedDateTime": None, "accountEnabled": True, "appId": sp.app_id,
            "appDisplayName": sp.name, "displayName": sp.name,
            "appOwnerOrganizationId": t.tenant_id, "appRoleAssignmentRequired": True,
            "servicePrincipalType": "Application", "signInAudience": "AzureADMyOrg",
            "servicePrincipalNames": [sp.app_id], "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
            "appRoles": [],
        }
        select = params.get("$select")
        if select:
            wanted = {s.strip().lower() for s in select.split(",")} | {"id", "@odata.context"}
            entity = {k: v for k, v in entity.items() if k.lower() in wanted}
        return entity

    def _assignment_item(self, a: Assignment) -> dict[str, Any]:
        t = self.tenant
        return {"id": a.id, "deletedDateTime": None, "appRoleId": a.app_role_id,
                "createdDateTime": a.created,
                "principalDisplayName": t.principal_display_name(a.principal_id),
                "principalId": a.principal_id, "principalType": a.principal_type,
                "resourceDisplayName": t.app_name, "resourceId": t.service_principal_id}

    def _app_role_assigned_to(self, spid: str, *, params, base, **_) -> Page:
        self._require(READ_APPS)
        if not is_guid(spid):
            raise invalid_object_id(spid)
        t = self.tenant
        if spid not in t.service_principals:
            raise not_found(spid)
        select = params.get("$select")
        wanted = ({s.strip() for s in select.split(",")} | {"id"}) if select else None

        def items(state: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
            if spid != t.service_principal_id:
                return  # other service principals have no assignments in the simulator
            for pos, a in t.assignments.scan(state["p"]):
                item = self._assignment_item(a)
                if state["w"]:
                    item = {k: v for k, v in item.items() if k in state["w"]}
                yield pos, item

        return self._paged(f"/v1.0/servicePrincipals/{spid}/appRoleAssignedTo", params, base,
                           f"{base}/v1.0/$metadata#servicePrincipals('{spid}')/appRoleAssignedTo",
                           items, {"w": sorted(wanted) if wanted else None})

    # ------------------------------------------------------------------ getByIds

    def _get_by_ids(self, *, body, base, **_) -> Page:
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise bad_request("Invalid request body: 'ids' is required.")
        ids: list[Any] = body["ids"]
        if len(ids) > MAX_GET_BY_IDS:
            raise bad_request(f"Too many identifiers: at most {MAX_GET_BY_IDS} are allowed.")
        types = body.get("types") or ["user", "group", "device", "servicePrincipal"]
        wanted = {str(k).lower() for k in types}
        perms = self.tenant.permissions
        readable = {
            "user": bool(perms.intersection(READ_USERS)),
            "group": bool(perms.intersection(READ_GROUPS)),
            "serviceprincipal": bool(perms.intersection(READ_APPS)),
            "device": bool(perms.intersection(("Device.Read.All", "Directory.Read.All"))),
        }
        if not any(readable[k] for k in wanted if k in readable):
            raise forbidden()
        items = []
        for oid in ids:
            if not isinstance(oid, str) or not is_guid(oid):
                raise invalid_object_id(str(oid))
            obj = self.tenant.directory_object(oid)
            if obj is None or obj.kind.lower() not in wanted or not readable[obj.kind.lower()]:
                continue
            items.append(projection(obj.kind, None, with_type=True)(obj))
        return Page(f"{base}/v1.0/$metadata#directoryObjects", items)
