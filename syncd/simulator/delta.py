"""Delta queries: ``/users/delta`` and ``/groups/delta`` as Graph v1.0 serves them.

A round starts without a token (initial read: every object as of now), pages with
``$skiptoken`` and ends with a ``@odata.deltaLink`` whose ``$deltatoken`` remembers the
tenant version. A later call with that token returns what changed since (from the tenant's
change log, so O(changes)), and a new deltaLink.

Tokens are opaque base64url JSON holding the whole cursor (resource, mode, versions,
positions, $select, $filter, epoch): the server keeps no per-client state. A token from an
older epoch (see ``Tenant.expire_delta_tokens``) is refused the way Graph refuses an
expired one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from .odata import (
    ODATA_TYPE,
    GraphError,
    Page,
    bad_request,
    decode_token,
    encode_token,
    parse_filter,
    parse_select,
    projection,
)
from .tenant import Tenant

Resource = Literal["users", "groups"]
MAX_FILTER_IDS = 50
REMOVED_CHANGED = {"reason": "changed"}  # soft delete: restorable
REMOVED_DELETED = {"reason": "deleted"}  # hard delete / membership removal

# incremental change lists are recomputed per page; keep the last few (they are immutable)
_CACHE_SIZE = 8

GroupChange = tuple[str, bool, list[dict[str, Any]]]  # (gid, group changed?, member items)


@dataclass
class DeltaSettings:
    users_page_size: int = 200  # default page when the client sends no odata.maxpagesize
    groups_page_size: int = 100
    members_per_page: int = 500  # members@delta entries per page; a bigger group spans pages
    page_size_cap: int = 999


class DeltaService:
    def __init__(self, tenant: Tenant, settings: DeltaSettings) -> None:
        self.tenant = tenant
        self.settings = settings
        self._cache: OrderedDict[tuple, Any] = OrderedDict()

    # ------------------------------------------------------------------ entry point

    def page(self, resource: Resource, params: dict[str, str], base_url: str,
             preferred_size: int | None) -> Page:
        t = self.tenant
        default = (self.settings.users_page_size if resource == "users"
                   else self.settings.groups_page_size)
        size = max(1, min(preferred_size or default, self.settings.page_size_cap))
        with t.lock:
            if "$skiptoken" in params:
                state = self._load(params["$skiptoken"], resource, "skip", base_url)
            elif "$deltatoken" in params and params["$deltatoken"] != "latest":
                token = self._load(params["$deltatoken"], resource, "delta", base_url)
                state = {**token, "k": "skip", "m": "c", "a": token["v"], "b": t.version,
                         "p": 0, "q": 0}
            else:
                state = self._fresh_state(resource, params)
                if params.get("$deltatoken") == "latest":
                    # "start tracking from now": no data, just a link
                    return Page(self._context(base_url, resource, state["s"]), [],
                                delta_link=self._delta_link(base_url, resource, state, t.version))
            if resource == "users":
                return self._users_page(state, size, base_url)
            return self._groups_page(state, size, base_url)

    # ------------------------------------------------------------------ tokens

    def _fresh_state(self, resource: Resource, params: dict[str, str]) -> dict[str, Any]:
        kind = "user" if resource == "users" else "group"
        select = parse_select(params.get("$select"), kind,
                              extra=("members",) if resource == "groups" else ())
        terms = parse_filter(params.get("$filter"), {"id": "id"})
        ids = [value for _, value in terms] if terms is not None else None
        if ids is not None and len(ids) > MAX_FILTER_IDS:
            raise bad_request(f"Too many object ids in the filter: at most {MAX_FILTER_IDS} "
                              "'id eq' clauses are supported by delta queries.")
        return {"k": "skip", "r": resource, "t": self.tenant.tenant_id,
                "e": self.tenant.delta_epoch, "s": list(select) if select else None, "f": ids,
                "m": "i", "a": 0, "b": self.tenant.version, "p": 0, "q": 0}

    def _load(self, token: str, resource: Resource, kind: str, base_url: str) -> dict[str, Any]:
        t = self.tenant
        state = decode_token(token)
        if (state is None or state.get("k") != kind or state.get("r") != resource
                or state.get("t") != t.tenant_id):
            raise GraphError(400, "syncStateNotFound",
                             "The sync state generation is not found or the token is invalid.")
        if state.get("e") != t.delta_epoch:
            if t.delta_expiry_style == "gone":
                fresh = f"{base_url}/v1.0/{resource}/delta"
                query = []
                if state.get("s"):
                    query.append("$select=" + quote(",".join(state["s"]), safe=",$"))
                if state.get("f"):
                    query.append("$filter=" + quote(" or ".join(f"id eq '{i}'" for i in state["f"])))
                if query:
                    fresh += "?" + "&".join(query)
                raise GraphError(410, "resyncRequired",
                                 "Resync required. Replace any local cached data with a full "
                                 "delta sync starting from the URL in the Location header.",
                                 headers={"Location": fresh})
            raise GraphError(400, "syncStateNotFound",
                             "The sync state generation is not found. The delta token is expired.")
        return state

    def _next_link(self, base_url: str, resource: str, state: dict[str, Any],
                   p: int, q: int) -> str:
        return (f"{base_url}/v1.0/{resource}/delta?$skiptoken="
                + encode_token({**state, "p": p, "q": q}))

    def _delta_link(self, base_url: str, resource: str, state: dict[str, Any],
                    version: int) -> str:
        token = {"k": "delta", "r": resource, "t": state["t"], "e": state["e"],
                 "s": state["s"], "f": state["f"], "v": version}
        return f"{base_url}/v1.0/{resource}/delta?$deltatoken=" + encode_token(token)

    @staticmethod
    def _context(base_url: str, resource: str, select: list[str] | None) -> str:
        suffix = f"({','.join(select)})" if select else ""
        return f"{base_url}/v1.0/$metadata#{resource}{suffix}"

    def _cached(self, key: tuple, compute):
        value = self._cache.get(key)
        if value is None:
            value = compute()
            self._cache[key] = value
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return value

    # ------------------------------------------------------------------ users

    def _users_page(self, state: dict[str, Any], size: int, base_url: str) -> Page:
        t = self.tenant
        select = tuple(state["s"]) if state["s"] else None
        project = projection("user", select)
        filter_ids: list[str] | None = state["f"]
        items: list[dict[str, Any]] = []
        next_pos: int | None = None
        if state["m"] == "i" and filter_ids is None:
            for pos, user in t.users.scan(state["p"]):
                if user.soft_deleted:
                    continue
                if len(items) == size:
                    next_pos = pos
                    break
                items.append(project(user))
        else:
            if state["m"] == "i":
                ids = filter_ids or []
            else:
                key = ("users", state["a"], state["b"], tuple(filter_ids or ()))
                ids = self._cached(key, lambda: self._filtered(
                    t.user_changes(state["a"], state["b"]), filter_ids))
            start = state["p"]
            for pos in range(start, len(ids)):
                if len(items) == size:
                    next_pos = pos
                    break
                user = t.users.get(ids[pos])
                if state["m"] == "i":
                    if user is not None and not user.soft_deleted:
                        items.append(project(user))
                elif user is None:
                    items.append({"id": ids[pos], "@removed": REMOVED_DELETED})
                elif user.soft_deleted:
                    items.append({"id": ids[pos], "@removed": REMOVED_CHANGED})
                else:
                    items.append(project(user))
        page = Page(self._context(base_url, "users", state["s"]), items)
        if next_pos is None:
            page.delta_link = self._delta_link(base_url, "users", state, state["b"])
        else:
            page.next_link = self._next_link(base_url, "users", state, next_pos, 0)
        return page

    @staticmethod
    def _filtered(ids: list[str], filter_ids: list[str] | None) -> list[str]:
        if filter_ids is None:
            return ids
        wanted = set(filter_ids)
        return [i for i in ids if i in wanted]

    # ------------------------------------------------------------------ groups

    def _member_ref(self, member_id: str) -> dict[str, Any]:
        kind = self.tenant.kind_of(member_id) or "user"
        return {"@odata.type": ODATA_TYPE[kind], "id": member_id}

    def _group_changes(self, state: dict[str, Any], with_members: bool) -> list[GroupChange]:
        t = self.tenant
        changes = []
        for gid, (changed, members) in t.group_changes(state["a"], state["b"]).items():
            if state["f"] is not None and gid not in state["f"]:
                continue
            refs: list[dict[str, Any]] = []
            if with_members:
                for mid, (kind, added) in members.items():
                    ref: dict[str, Any] = {"@odata.type": ODATA_TYPE.get(kind, ODATA_TYPE["user"]),
                                           "id": mid}
                    if not added:
                        ref["@removed"] = REMOVED_DELETED
                    refs.append(ref)
            if changed or refs:
                changes.append((gid, changed, refs))
        return changes

    def _groups_page(self, state: dict[str, Any], size: int, base_url: str) -> Page:
        """Groups, each with its ``members@delta`` when ``members`` is selected.

        A page holds at most ``size`` group entries and ``members_per_page`` member refs; a
        group with more members continues on the next page as ``{"id", "members@delta"}``
        (the same id again: clients must merge by id).
        """
        t = self.tenant
        select = state["s"]
        # members@delta only when asked for: Graph's default properties leave it out
        with_members = bool(select) and "members" in select
        props = tuple(n for n in select if n != "members") if select else None
        project = projection("group", props)
        budget = self.settings.members_per_page
        items: list[dict[str, Any]] = []
        cursor: tuple[int, int] | None = None
        p, q = state["p"], state["q"]

        if state["m"] == "i":
            if state["f"] is None:
                entries = t.groups.scan(p)
            else:
                entries = ((i, t.groups.get(gid)) for i, gid in enumerate(state["f"]) if i >= p)
            for pos, group in entries:
                if group is None:
                    continue
                if len(items) == size or (with_members and budget <= 0):
                    cursor = (pos, 0)
                    break
                resume = q if pos == p else 0
                item: dict[str, Any] = project(group) if resume == 0 else {"id": group.id}
                if with_members:
                    refs: list[dict[str, Any]] = []
                    for mpos, mid in group.members.scan(resume):
                        if len(refs) == budget:
                            cursor = (pos, mpos)
                            break
                        refs.append(self._member_ref(mid))
                    item["members@delta"] = refs
                    budget -= len(refs)
                items.append(item)
                if cursor is not None:
                    break
        else:
            key = ("groups", state["a"], state["b"], tuple(state["f"] or ()), with_members)
            changes = self._cached(key, lambda: self._group_changes(state, with_members))
            for i in range(p, len(changes)):
                if len(items) == size or (with_members and budget <= 0):
                    cursor = (i, 0)
                    break
                gid, _changed, refs = changes[i]
                group = t.groups.get(gid)
                if group is None:
                    items.append({"id": gid, "@removed": REMOVED_DELETED})
                    continue
                resume = q if i == p else 0
                item = project(group) if resume == 0 else {"id": gid}
                if with_members and refs:
                    chunk = refs[resume:resume + budget]
                    item["members@delta"] = chunk
                    budget -= len(chunk)
                    if resume + len(chunk) < len(refs):
                        cursor = (i, resume + len(chunk))
                items.append(item)
                if cursor is not None:
                    break

        page = Page(self._context(base_url, "groups", select), items)
        if cursor is None:
            page.delta_link = self._delta_link(base_url, "groups", state, state["b"])
        else:
            page.next_link = self._next_link(base_url, "groups", state, *cursor)
        return page
