"""Delta queries: ``/users/delta`` and ``/groups/delta`` as Graph v1.0 serves them.

A round starts without a token (initial read: every object as of now), pages with
``$skiptoken`` and ends with a ``@odata.deltaLink`` whose ``$deltatoken`` remembers the
tenant version. A later call with that token returns what changed since (from the tenant's
change log, so O(changes)), and a new deltaLink. Calling the same deltaLink again replays
its changes (tokens are stateless).

Tokens are opaque base64url JSON holding the whole cursor (resource, mode, versions,
positions, $select, $filter, epoch): the server keeps no per-client state. A token from an
older epoch (see ``Tenant.expire_delta_tokens``) is refused the way Graph refuses an
expired one.

How an incremental round represents an updated object, and the other documented
behaviours (empty pages, repeats, replays, delays, ...), follow ``sim.quirks``
(:class:`~syncd.simulator.quirks.Quirks`); with every quirk off the answers are the plain
ones: full objects, no empty pages, each object once.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from .odata import (
    DEFAULTS,
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
from .quirks import Quirks
from .tenant import ALL, GROUP_BITS, REMOVED, USER_BITS, Group, Tenant, User

Resource = Literal["users", "groups"]
MAX_FILTER_IDS = 50
REMOVED_CHANGED = {"reason": "changed"}  # soft delete: restorable
REMOVED_DELETED = {"reason": "deleted"}  # hard delete / membership removal

# incremental change lists are recomputed per page; keep the last few (they are immutable)
_CACHE_SIZE = 8

_EXTRAS = frozenset({"rp", "d"})  # optional cursor fields (repeats due, data done)
GroupChange = tuple[str, int, list[dict[str, Any]]]  # (gid, GROUP_BITS mask, member items)


@dataclass
class DeltaSettings:
    users_page_size: int = 200  # default page when the client sends no odata.maxpagesize
    groups_page_size: int = 100
    members_per_page: int = 500  # members@delta entries per page; a bigger group spans pages
    page_size_cap: int = 999


class DeltaService:
    def __init__(self, tenant: Tenant, settings: DeltaSettings, quirks: Quirks | None = None) -> None:
        self.tenant = tenant
        self.settings = settings
        self.quirks = quirks if quirks is not None else Quirks()
        self._cache: OrderedDict[tuple, Any] = OrderedDict()

    # ------------------------------------------------------------------ entry point

    def page(self, resource: Resource, params: dict[str, str], base_url: str,
             preferred_size: int | None, minimal: bool = False) -> Page:
        """One page; ``minimal``: the request said ``Prefer: return=minimal``."""
        t = self.tenant
        q = self.quirks
        default = (self.settings.users_page_size if resource == "users"
                   else self.settings.groups_page_size)
        size = max(1, min(preferred_size or default, self.settings.page_size_cap))
        with t.lock:
            if "$skiptoken" in params:
                state = self._load(params["$skiptoken"], resource, "skip", base_url)
            elif params.get("$deltatoken") not in (None, "", "latest"):
                token = self._load(params["$deltatoken"], resource, "delta", base_url)
                until = t.version
                if q.lag > 0:  # processing delays: the newest changes are not visible yet
                    until = max(token["v"], min(until, t.version_at(time.monotonic() - q.lag)))
                state = {**token, "k": "skip", "m": "c", "a": token["v"], "b": until,
                         "p": 0, "q": 0}
            else:
                # no token, or an empty one (the Location of a 410 Gone): a new round
                state = self._fresh_state(resource, params)
                if params.get("$deltatoken") == "latest":
                    # "start tracking from now": no data, just a link
                    return Page(self._context(base_url, resource, state["s"]), [],
                                delta_link=self._delta_link(base_url, resource, state, t.version))
            mode = "changed" if minimal else q.properties
            context = self._context(base_url, resource, state["s"])
            z = state.get("z", 0)
            if z < q.empty_pages:  # "more pages ... even if the current response is empty"
                return Page(context, [], next_link=self._link(base_url, resource, {**state, "z": z + 1}))
            items = self._repeats(resource, state, mode) if state.get("rp") else []
            cursor: tuple[int, int] | None = None
            fresh: list[dict[str, Any]] = []
            if not state.get("d"):
                if resource == "users":
                    fresh, cursor = self._users_page(state, size, mode)
                else:
                    fresh, cursor = self._groups_page(state, size, mode)
                items += fresh
            page = Page(context, items)
            carry: dict[str, Any] = {"z": 0, "rp": None, "d": None}
            if q.repeat and fresh:
                carry["rp"] = list(dict.fromkeys(i["id"] for i in fresh))[-q.repeat:]
            if cursor is not None:
                page.next_link = self._link(base_url, resource,
                                            {**state, **carry, "p": cursor[0], "q": cursor[1]})
            elif fresh and (q.empty_pages or carry["rp"]):
                # end on a later page: the empty ones, and the repeats of this one
                page.next_link = self._link(base_url, resource, {**state, **carry, "d": 1})
            else:
                version = state["a"] if q.replay else state["b"]
                page.delta_link = self._delta_link(base_url, resource, state, version)
            return page

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
            style = t.delta_expiry_style
            if style in ("gone", "gone_bare"):
                # "a Location header containing a request URL with an empty $deltaToken"
                query = []
                if state.get("s"):
                    query.append("$select=" + quote(",".join(state["s"]), safe=",$"))
                if state.get("f"):
                    query.append("$filter=" + quote(" or ".join(f"id eq '{i}'" for i in state["f"])))
                query.append("$deltatoken=")
                fresh = f"{base_url}/v1.0/{resource}/delta?" + "&".join(query)
                raise GraphError(410, "resyncRequired",
                                 "Resync required. Replace any local cached data with a full "
                                 "delta sync starting from the URL in the Location header.",
                                 headers={"Location": fresh}, body=style == "gone")
            if style == "resyncRequired":
                raise GraphError(400, "resyncRequired",
                                 "The delta token is no longer valid, and the app must reset "
                                 "the sync state.")
            raise GraphError(400, "syncStateNotFound",
                             "The sync state generation is not found. The delta token is expired.")
        return state

    def _link(self, base_url: str, resource: str, state: dict[str, Any]) -> str:
        # unset cursor extras stay out of the token
        clean = {k: v for k, v in state.items() if v is not None or k not in _EXTRAS}
        return f"{base_url}/v1.0/{resource}/delta?$skiptoken=" + encode_token(clean)

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

    # ------------------------------------------------------------------ representations

    def _projector(self, kind: str, select: tuple[str, ...] | None, mode: str, salt: int):
        """object, change mask -> the JSON dict an incremental round sends for it.

        ``ALL`` (created, restored) or mode "full": every selected property. Otherwise the
        properties the mask names ("changed"), plus a deterministic-random part of the
        others ("some"). ``omit_null`` drops null values the change did not set.
        """
        q = self.quirks
        full = projection(kind, select)
        bits = USER_BITS if kind == "user" else GROUP_BITS
        selected = select or DEFAULTS[kind]
        omit_null = q.omit_null

        def project(obj: Any, mask: int) -> dict[str, Any]:
            if mode == "full" or mask == ALL:
                item = full(obj)
            else:
                rng = random.Random(f"{q.seed}:{obj.id}:{salt}") if mode == "some" else None
                names = tuple(n for n in selected if n == "id" or bits.get(n, 0) & mask
                              or (rng is not None and rng.random() < 0.5))
                item = projection(kind, names)(obj)
            if omit_null:
                kept = mask if mask != ALL else 0  # a creation's nulls were never set
                item = {k: v for k, v in item.items()
                        if v is not None or k == "id" or bits.get(k, 0) & kept}
            return item

        return project

    def _tracked(self, kind: str, select: tuple[str, ...] | None) -> int:
        """The change-mask bits a round notices: all, or with ``hide_unselected`` those of
        the selected properties (plus deletions)."""
        if not self.quirks.hide_unselected:
            return ALL
        bits = USER_BITS if kind == "user" else GROUP_BITS
        return REMOVED | sum(bits.get(n, 0) for n in (select or DEFAULTS[kind]))

    def _user_changes(self, state: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
        filter_ids = state["f"]
        tracked = self._tracked("user", tuple(state["s"]) if state["s"] else None)
        key = ("users", state["a"], state["b"], tuple(filter_ids or ()), tracked)

        def compute() -> tuple[list[str], dict[str, int]]:
            props = self.tenant.user_changed_props(state["a"], state["b"])
            if filter_ids is not None or tracked != ALL:
                wanted = set(filter_ids) if filter_ids is not None else None
                props = {uid: m for uid, m in props.items()
                         if (wanted is None or uid in wanted) and m & tracked}
            return list(props), props

        return self._cached(key, compute)

    def _user_item(self, uid: str, user: User | None, mask: int, project) -> dict[str, Any]:
        if user is None:
            return {"id": uid, "@removed": REMOVED_DELETED}
        if user.soft_deleted:
            return {"id": uid, "@removed": REMOVED_CHANGED}
        return project(user, mask)

    def _repeats(self, resource: Resource, state: dict[str, Any], mode: str) -> list[dict[str, Any]]:
        """The objects the previous page ended with, again (``Quirks.repeat``)."""
        t = self.tenant
        select = tuple(state["s"]) if state["s"] else None
        incremental = state["m"] == "c"
        out = []
        if resource == "users":
            project = self._projector("user", select, mode, state["b"])
            masks = self._user_changes(state)[1] if incremental else {}
            for uid in state["rp"]:
                user = t.users.get(uid)
                if not incremental and (user is None or (user.soft_deleted
                                                         and not self.quirks.removed_in_initial)):
                    continue
                out.append(self._user_item(uid, user, masks.get(uid, ALL), project))
            return out
        props = tuple(n for n in select if n != "members") if select else None
        project = self._projector("group", props, mode, state["b"])
        with_members = select is not None and "members" in select
        gmasks = self._group_changes(state, with_members)[1] if incremental else {}
        for gid in state["rp"]:
            group = t.groups.get(gid)
            if group is None:
                if incremental:
                    out.append({"id": gid, "@removed": REMOVED_DELETED})
                continue
            out.append(project(group, gmasks.get(gid, ALL)))
        return out

    # ------------------------------------------------------------------ users

    def _users_page(self, state: dict[str, Any], size: int, mode: str
                    ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
        t = self.tenant
        q = self.quirks
        select = tuple(state["s"]) if state["s"] else None
        filter_ids: list[str] | None = state["f"]
        items: list[dict[str, Any]] = []
        next_pos: int | None = None
        if state["m"] == "i":
            plain = not (q.omit_null or q.removed_in_initial)
            project = projection("user", select)
            full = self._projector("user", select, "full", state["b"])
            if filter_ids is None:
                entries = t.users.scan(state["p"])
            else:
                entries = ((pos, t.users.get(filter_ids[pos]))
                           for pos in range(state["p"], len(filter_ids)))
            for pos, user in entries:
                if user is None or (user.soft_deleted and not q.removed_in_initial):
                    continue
                if len(items) == size:
                    next_pos = pos
                    break
                if plain:  # the hot path of a big initial read: one projection call
                    items.append(project(user))
                elif user.soft_deleted:
                    items.append({"id": user.id, "@removed": REMOVED_CHANGED})
                else:
                    items.append(full(user, ALL))
        else:
            ids, masks = self._user_changes(state)
            project = self._projector("user", select, mode, state["b"])
            for pos in range(state["p"], len(ids)):
                if len(items) == size:
                    next_pos = pos
                    break
                uid = ids[pos]
                items.append(self._user_item(uid, t.users.get(uid), masks[uid], project))
        return items, (None if next_pos is None else (next_pos, 0))

    # ------------------------------------------------------------------ groups

    def _member_ref(self, member_id: str) -> dict[str, Any]:
        kind = self.tenant.kind_of(member_id) or "user"
        return {"@odata.type": ODATA_TYPE[kind], "id": member_id}

    def _group_changes(self, state: dict[str, Any], with_members: bool
                       ) -> tuple[list[GroupChange], dict[str, int]]:
        select = state["s"]
        tracked = self._tracked("group", tuple(n for n in select if n != "members") if select else None)
        key = ("groups", state["a"], state["b"], tuple(state["f"] or ()), with_members, tracked)
        return self._cached(key, lambda: self._compute_group_changes(state, with_members, tracked))

    def _compute_group_changes(self, state: dict[str, Any], with_members: bool, tracked: int
                               ) -> tuple[list[GroupChange], dict[str, int]]:
        t = self.tenant
        changes: list[GroupChange] = []
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
            if changed is not None and not changed & tracked:
                changed = None  # nothing it selects changed (hide_unselected)
            if changed is not None or refs:
                # only members changed: the group's own properties did not (mask 0)
                changes.append((gid, changed or 0, refs))
        return changes, {gid: mask for gid, mask, _ in changes}

    def _groups_page(self, state: dict[str, Any], size: int, mode: str
                     ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
        """Groups, each with its ``members@delta`` when ``members`` is selected.

        A page holds at most ``size`` group entries and ``members_per_page`` member refs; a
        group with more members continues on the next page as ``{"id", "members@delta"}``
        (the same id again: clients must merge by id), with its properties again when
        ``Quirks.continuation_props``.
        """
        t = self.tenant
        q = self.quirks
        select = state["s"]
        # members@delta only when asked for: Graph's default properties leave it out
        with_members = bool(select) and "members" in select
        props = tuple(n for n in select if n != "members") if select else None
        budget = self.settings.members_per_page
        items: list[dict[str, Any]] = []
        cursor: tuple[int, int] | None = None
        p, q_pos = state["p"], state["q"]

        if state["m"] == "i":
            project = self._projector("group", props, "full", state["b"])
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
                resume = q_pos if pos == p else 0
                item = self._group_head(group, resume, project, ALL)
                if with_members:
                    refs: list[dict[str, Any]] = []
                    for mpos, mid in group.members.scan(resume):
                        if len(refs) == budget:
                            cursor = (pos, mpos)
                            break
                        refs.append(self._member_ref(mid))
                    if refs or not q.omit_empty_members:
                        item["members@delta"] = refs
                    budget -= len(refs)
                items.append(item)
                if cursor is not None:
                    break
        else:
            changes = self._group_changes(state, with_members)[0]
            project = self._projector("group", props, mode, state["b"])
            for i in range(p, len(changes)):
                if len(items) == size or (with_members and budget <= 0):
                    cursor = (i, 0)
                    break
                gid, mask, refs = changes[i]
                group = t.groups.get(gid)
                if group is None:
                    items.append({"id": gid, "@removed": REMOVED_DELETED})
                    continue
                resume = q_pos if i == p else 0
                item = self._group_head(group, resume, project, mask)
                if with_members and refs:
                    chunk = refs[resume:resume + budget]
                    item["members@delta"] = chunk
                    budget -= len(chunk)
                    if resume + len(chunk) < len(refs):
                        cursor = (i, resume + len(chunk))
                items.append(item)
                if cursor is not None:
                    break
        return items, cursor

    def _group_head(self, group: Group, resume: int, project, mask: int) -> dict[str, Any]:
        """A group's entry before its members: its properties, or on a continuation page
        only its id (unless ``continuation_props``)."""
        if resume == 0 or self.quirks.continuation_props:
            return project(group, mask)
        return {"id": group.id}

