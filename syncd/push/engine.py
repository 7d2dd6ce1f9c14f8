"""Bring one SCIM application in step with the local directory (R20-R26): the push's entry point.

    push_application(app, conn, directory, *, cycle_id, dry_run=False, full_reconcile=False,
                     staged_deactivation_ids=(), approve_deactivations=False,
                     options=None, transport=None) -> AppOutcome

Called by the cycle **after** its local transaction committed, once per enabled ``[[scim]]``
application, with the store's connection (autocommit, as ``Store.conn``; the push commits
its own small transactions) and the directory as committed (``Store.load_directory()``:
every user, group and membership; ``managed`` says what is pushed). ``staged_deactivation_ids``
are **local user ids** whose deactivation is held back (R15's staged ones, when the cycle
applied them locally some other way; users R15 staged are still active locally, so they
are held back from applications by themselves). ``approve_deactivations`` lifts this
application's own ``deactivation_threshold`` (R24), as ``sync --approve-deactivations``.

One push:

1. ``diff`` the desired state (``diff.desired_state``) against the store's record of the
   application. Nothing to send, and not a full reconcile: no request at all (R24).
2. Read ``ServiceProviderConfig`` once (PATCH? Bulk and its limits? filter?).
3. Full reconcile (R26): read the application's users and groups (paged), take them as the
   state instead of the store's record, repair the managed objects that differ (entries
   say "drift"), count the objects syncd does not manage and never touch them. A listing
   that fails is not acted on.
4. R22: before any create, look up the names to create, ignoring case: one filter query
   each when they are few (scim2-server's filters scan every resource: a query costs as
   much as a page of the listing), else the listing read once in the push. A match is
   linked (entry ``adopt``) and then only updated where it differs.
5. Send the operations: users first, then groups (members need the users' ids), then
   deletions; ``/Bulk`` when the application announces it and PATCH (within maxOperations
   and maxPayloadSize), else plain requests ``concurrency`` at a time. A 409 on a create, a
   404 on a linked object, or a create whose answer was lost leads to a fresh look-up and
   a new round. Outcomes are committed to the store a batch at a time, so a kill leaves
   at most the last batch unrecorded, which step 4 finds again in the next push.
6. Every outcome becomes a report entry (``"target": app.name``) *and* a store record from
   the same ``_record_*`` call. Failures wait with back-off (``store.apps``: the first two
   retried at the next push, then after 2, 4 ... 32 pushes) and on every full reconcile.

A stop of the service (``Options.cancel`` set) sends no new request: the requests in flight
finish and are recorded as in step 5, what was not sent is sent by the next push (step 4
finds what was created), and the outcome says the push was interrupted (``interrupted``).

A dry run does steps 1-4 with reads only and returns every request it would send
(``AppOutcome.planned``: method, path, a summary of the body), sending no write.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from ..config import ScimApp
from ..errors import SyncdError
from ..model import Directory
from ..store import apps
from ..store.db import utcnow
from .diff import (
    LOCAL_NAMES,
    AppGroup,
    AppState,
    AppUser,
    Desired,
    Op,
    PushPlan,
    UserValues,
    desired_state,
    diff,
    is_park,
    name_waves,
)
from .scim import (
    BULK_REQUEST,
    GROUP_SCHEMA,
    PATCH_OP,
    USER_SCHEMA,
    AuthRefused,
    Cancelled,
    Capabilities,
    Options,
    ScimClient,
    ScimError,
    Unknown,
    app_id_of,
)

MEMBER_CHUNK = 250  # member values per PATCH request (Entra's own engine sends far fewer)
FILTER_LOOKUPS = 10  # up to this many names are looked up by filter; more read the listing once
BATCH = 200  # plain requests whose outcomes are committed together
ROUNDS = 4  # match -> send -> look up what 409/404/lost answers left -> send again ...


@dataclass
class AppOutcome:
    """What one push did (or, in a dry run, would do)."""

    app: str
    status: str = "succeeded"  # succeeded | partial | held | failed | disabled
    entries: list[dict[str, Any]] = field(default_factory=list)  # SPEC §4 entries + "target"
    errors: list[str] = field(default_factory=list)
    requests: int = 0  # requests sent, retries included
    throttled: int = 0
    planned: list[dict[str, Any]] = field(default_factory=list)  # dry run: the requests a push would send
    unmanaged: dict[str, int] = field(default_factory=dict)  # full reconcile: objects there syncd does not manage
    held: bool = False  # R12 held something back, or a threshold staged deactivations
    auth_refused: bool = False
    interrupted: bool = False  # the service stopped: requests not sent yet were left for the next push

    @property
    def counts(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for e in self.entries:
            c[e["action"] if e["status"] == "success" else {"skipped": "skip", "staged": "staged"}.get(e["status"], "failure")] += 1
        return dict(sorted(c.items()))


def push_application(
    app: ScimApp,
    conn: sqlite3.Connection,
    directory: Directory,
    *,
    cycle_id: str,
    dry_run: bool = False,
    full_reconcile: bool = False,
    staged_deactivation_ids: Iterable[int] = (),
    approve_deactivations: bool = False,
    options: Options | None = None,
    transport: httpx.BaseTransport | None = None,
) -> AppOutcome:
    """Bring ``app`` in step with ``directory`` (see the module docstring)."""
    outcome = AppOutcome(app.name)
    if not app.enabled:
        outcome.status = "disabled"
        return outcome
    push = _Push(app, conn, desired_state(directory), outcome, cycle_id=cycle_id, dry_run=dry_run,
                 full=full_reconcile, hold=frozenset(staged_deactivation_ids), approve=approve_deactivations,
                 options=options or Options(), transport=transport)
    push.run()
    return outcome


def user_values(resource: dict[str, Any]) -> UserValues:
    """A SCIM User resource in syncd's terms (the primary email, else the first)."""
    emails = [e for e in resource.get("emails") or [] if isinstance(e, dict)]
    primary = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
    return UserValues(
        str(resource.get("userName") or ""), resource.get("displayName"), primary.get("value") if primary else None,
        bool(resource.get("active", False)), resource.get("externalId"),
    )


def user_body(v: UserValues) -> dict[str, Any]:
    """R21: the user's attributes as SCIM sends them."""
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": v.user_name, "active": v.active}
    if v.display_name is not None:
        body["displayName"] = v.display_name
    if v.email is not None:
        body["emails"] = [{"type": "work", "primary": True, "value": v.email}]
    if v.external_id is not None:
        body["externalId"] = v.external_id
    return body


_SCIM_ATTR = {"user_name": "userName", "display_name": "displayName", "email": "emails", "active": "active",
              "external_id": "externalId"}


def _replace(attr: str, value: Any) -> dict[str, Any]:
    path = _SCIM_ATTR[attr]
    if value is None:
        return {"op": "remove", "path": path}
    if attr == "email":
        value = [{"type": "work", "primary": True, "value": value}]
    return {"op": "replace", "path": path, "value": value}


@dataclass
class _Req:
    """One request for (part of) one operation."""

    method: str
    path: str
    body: dict[str, Any] | None
    op: Op
    attrs: bool = True  # carries the operation's attribute changes
    add: tuple[int, ...] = ()  # the members it adds / removes (local ids)
    remove: tuple[int, ...] = ()
    put: bool = False  # a PUT: read the resource first and keep what syncd does not manage

    @property
    def create(self) -> bool:
        return self.method == "POST"

    def summary(self) -> str:
        op = self.op
        if op.kind == "create_user" and op.user:
            return f"userName={op.user.user_name} active={str(op.user.active).lower()}"
        if op.kind == "update_user":
            return ("replace " if not self.put else "put ") + ", ".join(_SCIM_ATTR[a] for a in op.changed)
        if op.kind == "delete_group":
            return f"delete group {op.name}"
        parts = []
        if self.attrs and op.changed:
            parts.append("replace " + ", ".join(_SCIM_ATTR[a] for a in op.changed))
        if op.kind == "create_group" and op.group:
            parts.insert(0, f"displayName={op.group.display_name}")
        if self.add:
            parts.append(f"add {len(self.add)} member(s)")
        if self.remove:
            parts.append(f"remove {len(self.remove)} member(s)")
        return "; ".join(parts)


class _Relink(Exception):
    """The object must be looked up again (409 on create, 404 on a linked object, lost answer)."""


class _Push:
    def __init__(self, app: ScimApp, conn: sqlite3.Connection, desired: Desired, outcome: AppOutcome, *,
                 cycle_id: str, dry_run: bool, full: bool, hold: frozenset[int], approve: bool,
                 options: Options, transport: httpx.BaseTransport | None) -> None:
        self.app, self.conn, self.desired, self.out = app, conn, desired, outcome
        self.cycle_id, self.dry_run, self.full, self.hold, self.approve = cycle_id, dry_run, full, hold, approve
        self.options, self.transport = options, transport
        stored = apps.load(conn, app.name)
        self.state = AppState(
            {u: AppUser(r[0], UserValues(*r[1:])) for u, r in stored.users.items()},
            {g: AppGroup(r[0], r[1], r[2], frozenset(stored.members.get(g, ())), r[3]) for g, r in stored.groups.items()},
        )
        self.batch = apps.Batch()
        self.push_no = apps.pushes(conn, app.name) + 1
        self.client: ScimClient | None = None
        self.reached = False  # ServiceProviderConfig was read: the application answers
        self.held_recorded = False
        self.caps = Capabilities()
        self.use_bulk = False
        self.listings: dict[str, list[dict[str, Any]]] = {}  # read once per push (R22)
        self.failed: set[str] = set()  # keys that failed in this push: not tried again in it
        self.relinked: Counter[str] = Counter()
        self.drift_sig: set[tuple] | None = None  # the operations due without drift (full reconcile)
        self.held_users: frozenset[int] = frozenset()
        self.wanted_keys: set[str] = set()

    # ------------------------------------------------------------------ the push

    def run(self) -> None:
        out = self.out
        waiting = apps.failures(self.conn, self.app.name)
        backing_off = {k for k, (_, until, _) in waiting.items() if until >= self.push_no} if not self.full else set()
        first = diff(self.desired, self.state, threshold=self.app.deactivation_threshold, hold=self.hold,
                     approve=self.approve, app=self.app.name)
        self.wanted_keys = {op.key for op in first.ops}
        sendable = [op for op in first.ops if op.key not in backing_off and op.kind != "forget_group"]
        for op in first.ops:
            if op.key in backing_off:
                attempts, until, error = waiting[op.key]
                self._entry(op.action, "user" if op.key.startswith("user") else "group", self._entra(op), op.name,
                            "skipped", f"failed {attempts} time(s), last: {error}; backing off, tried again in "
                            f"{until - self.push_no + 1} push(es)", error=True)
        if not self.dry_run:
            apps.start_push(self.conn, self.app.name)
        try:
            self._forget_groups(first.ops)
            if not (sendable or self.full):
                self._held(first)
            else:
                token = self.app.read_token()
                with ScimClient(self.app, token, self.options, transport=self.transport) as client:
                    self.client = client
                    try:
                        self._converse(backing_off)
                    finally:
                        out.requests, out.throttled = client.requests, client.throttled
        except AuthRefused as exc:
            out.auth_refused = True
            out.errors.append(str(exc))
        except Cancelled:
            out.interrupted = True
            out.errors.append(f"{self.app.name}: the service is stopping: the push was interrupted after "
                              f"{out.requests} request(s)")
        except (ScimError, SyncdError) as exc:
            out.errors.append(f"{self.app.name}: {exc}")
        finally:
            self._flush()
        if not out.auth_refused and not out.errors and not self.dry_run:
            # a failure the directory no longer asks for stops waiting
            apps.forget_failures(self.conn, self.app.name, set(waiting) - self.wanted_keys - self.failed)
        if out.auth_refused or ((sendable or self.full) and not self.reached):
            out.status = "failed"
        elif out.errors or any(e["status"] == "failure" or (e["status"] == "skipped" and e.get("error")) for e in out.entries):
            out.status = "partial"
        elif out.held:
            out.status = "held"
        if not self.dry_run:
            apps.finish_push(self.conn, self.app.name, cycle_id=self.cycle_id, status=out.status, ended_at=utcnow(),
                             requests=out.requests, errors=out.errors)

    def _converse(self, backing_off: set[str]) -> None:
        assert self.client is not None
        self.caps = self.client.capabilities()
        self.reached = True
        self.use_bulk = self.caps.bulk and self.caps.patch
        if self.full:
            self._reconcile()
        for round_no in range(ROUNDS):
            plan = self._plan(round_no)
            ops = [op for op in plan.ops if op.key not in backing_off and op.key not in self.failed]
            if any(op.kind in ("create_user", "create_group") for op in ops) and self._match(ops, fresh=round_no > 0):
                plan = self._plan(round_no)
                ops = [op for op in plan.ops if op.key not in backing_off and op.key not in self.failed]
            ops = [op for op in ops if op.kind != "forget_group"]
            if not ops:
                return
            if self.dry_run:
                self._preview(ops)
                return
            relink = self._send(ops)
            if relink:
                self._match(relink, fresh=True)
        leftover = [op for op in self._plan(ROUNDS).ops if op.key not in backing_off and op.key not in self.failed]
        for op in leftover:
            if op.kind != "forget_group":
                self._fail(op, "not in step after several rounds (409/404 answers): tried again next push")

    def _plan(self, round_no: int) -> PushPlan:
        plan = diff(self.desired, self.state, threshold=self.app.deactivation_threshold if round_no == 0 else 0,
                    hold=self.hold | self.held_users, approve=self.approve or round_no > 0, app=self.app.name)
        if round_no == 0 and not self.held_recorded:
            self._held(plan)
        return plan

    def _held(self, plan: PushPlan) -> None:
        self.held_recorded = True
        self.held_users = plan.held_users
        for h in plan.held:
            user = self.desired.users.get(h.local_id) or (self.state.users[h.local_id].values if h.local_id in self.state.users else None)
            if h.kind == "user":
                self._entry("deactivate", "user", user.external_id if user else None, h.name, h.status, h.reason)
            else:
                group = self._group_name(h.group_id)
                self._entry("remove_member", "membership", self._group_entra(h.group_id), f"{group} / {h.name}", h.status,
                            h.reason, error=h.error)
        if plan.held:
            self.out.held = True
        self.out.errors.extend(plan.errors)

    def _forget_groups(self, ops: list[Op]) -> None:
        for op in ops:
            if op.kind == "forget_group" and op.old_group is not None:
                self._entry("skip", "group", op.old_group.external_id, op.name, "skipped",
                            "no longer managed: left as it is in the application (Administrators is never deleted there)")
                if not self.dry_run:
                    self.state.groups.pop(op.local_id, None)
                    self.batch.groups_gone.add(op.local_id)

    # ------------------------------------------------------------------ R26: drift

    def _reconcile(self) -> None:
        assert self.client is not None
        try:
            users = self._listing("Users", fresh=True)
            groups = self._listing("Groups", fresh=True, members=True)
        except ScimError as exc:
            if isinstance(exc, AuthRefused):
                raise
            self.out.errors.append(f"{self.app.name}: reading the application for the full reconcile failed, "
                                   f"drift not repaired this cycle: {exc}")
            return
        before = diff(self.desired, self.state, hold=self.hold, approve=True)
        self.drift_sig = {_sig(op) for op in before.ops}
        unheld = self._unheld_user_attrs()
        by_id = {str(r.get("id")): r for r in users}
        g_by_id = {str(r.get("id")): r for r in groups}
        users_now: dict[int, AppUser] = {}
        for uid, au in self.state.users.items():
            r = by_id.get(au.app_id)
            if r is None:
                self.batch.users_gone.add(uid)  # deleted there by hand: created again (R22 looks first)
                continue
            values = user_values(r)
            if unheld:  # what the application does not hold cannot have drifted there
                values = values._replace(**{a: getattr(au.values, a) for a in unheld})
            users_now[uid] = AppUser(au.app_id, values)
            if users_now[uid] != au and not self.dry_run:
                self.batch.users[uid] = (au.app_id, *users_now[uid].values)
        local_of = {au.app_id: uid for uid, au in users_now.items()}
        groups_now: dict[int, AppGroup] = {}
        for gid, ag in self.state.groups.items():
            r = g_by_id.get(ag.app_id)
            if r is None:
                self.batch.groups_gone.add(gid)
                continue
            members = frozenset(local_of[m] for m in _member_ids(r) if m in local_of)
            groups_now[gid] = AppGroup(ag.app_id, str(r.get("displayName") or ""), r.get("externalId"), members, ag.created)
            if groups_now[gid] != ag and not self.dry_run:
                self.batch.groups[gid] = (ag.app_id, groups_now[gid].display_name, groups_now[gid].external_id, ag.created)
                self.batch.members_added.update((gid, u) for u in members - ag.members)
                self.batch.members_removed.update((gid, u) for u in ag.members - members)
        if self.dry_run:
            self.batch = apps.Batch()
        self.state = AppState(users_now, groups_now)
        self._flush()
        self._match([op for op in diff(self.desired, self.state, approve=True).ops
                     if op.kind in ("create_user", "create_group")], fresh=False)
        linked_users = {au.app_id for au in self.state.users.values()}
        linked_groups = {ag.app_id for ag in self.state.groups.values()}
        self.out.unmanaged = {"users": sum(1 for i in by_id if i not in linked_users),
                              "groups": sum(1 for i in g_by_id if i not in linked_groups)}

    def _unheld_user_attrs(self) -> tuple[str, ...]:
        """The mapped user attributes (R21) the application's User schema does not declare.

        An application may support only part of RFC 7643's User (django-scim2-server has no
        displayName: it drops one sent, without an error, and never returns it). Its listing
        then lacks the attribute on every user; read as a change by hand, each full reconcile
        would "repair" every user again. userName is required and externalId is a common
        attribute (not listed in a schema), so both are always compared; an application that
        publishes no /Schemas has everything compared, as before."""
        assert self.client is not None
        declared = self.client.schema_attributes(USER_SCHEMA)
        if declared is None:
            return ()
        return tuple(a for a in ("display_name", "email", "active") if _SCIM_ATTR[a].lower() not in declared)

    # ------------------------------------------------------------------ R22: matching

    def _listing(self, resource: str, *, fresh: bool, members: bool = False) -> list[dict[str, Any]]:
        assert self.client is not None
        key = resource + ("+members" if members else "")
        if fresh or key not in self.listings:
            params = {} if members or resource == "Users" else {"excludedAttributes": "members"}
            self.listings[key] = list(self.client.listing(resource, caps=self.caps, params=params))
        return self.listings[key]

    def _lookup(self, resource: str, attr: str, names: list[str], fresh: bool) -> dict[str, list[dict[str, Any]]]:
        """Resources by lower-cased ``attr``, for ``names``: by filter when few, else from the listing."""
        assert self.client is not None
        found: dict[str, list[dict[str, Any]]] = {}
        cached = self.listings.get(resource + "+members") or self.listings.get(resource)
        if (cached is None or fresh) and self.caps.filter and len(names) <= FILTER_LOOKUPS:
            for name in names:
                for r in self.client.find(resource, attr, name):
                    found.setdefault(str(r.get(attr) or "").lower(), []).append(r)
            return found
        rows = cached if cached is not None and not fresh else self._listing(resource, fresh=True)
        wanted = {n.lower() for n in names}
        for r in rows:
            value = str(r.get(attr) or "").lower()
            if value in wanted:
                found.setdefault(value, []).append(r)
        return found

    def _match(self, ops: list[Op], *, fresh: bool) -> bool:
        """Link the objects to create that the application already has (R22). True if any was."""
        ops = [op for op in ops if op.key not in self.failed]
        # only objects not linked (any more): a linked one is never re-pointed at another object
        users = [op for op in ops if op.user and op.local_id not in self.state.users]
        groups = [op for op in ops if op.group and op.local_id not in self.state.groups]
        linked = False
        taken_u = {au.app_id for au in self.state.users.values()}
        if users:
            found = self._lookup("Users", "userName", [op.user.user_name for op in users if op.user], fresh)
            for op in users:
                assert op.user is not None
                hit = _best(found.get(op.user.user_name.lower(), []), "userName", op.user.user_name, taken_u)
                if hit is None:
                    continue
                taken_u.add(str(hit["id"]))
                values = user_values(hit)
                self.state.users[op.local_id] = AppUser(str(hit["id"]), values)
                self._record_link_user(op.local_id, str(hit["id"]), values)
                linked = True
        if groups:
            taken_g = {ag.app_id for ag in self.state.groups.values()}
            found = self._lookup("Groups", "displayName", [op.group.display_name for op in groups if op.group], fresh)
            local_of = {au.app_id: uid for uid, au in self.state.users.items()}
            for op in groups:
                assert op.group is not None
                hit = _best(found.get(op.group.display_name.lower(), []), "displayName", op.group.display_name, taken_g)
                if hit is None:
                    continue
                taken_g.add(str(hit["id"]))
                assert self.client is not None
                if "members" not in hit:
                    try:
                        hit = self.client.json("GET", f"Groups/{hit['id']}")
                    except ScimError as exc:
                        if isinstance(exc, AuthRefused):
                            raise
                        self._fail(op, f"reading the matching group failed: {exc}")
                        continue
                members = frozenset(local_of[m] for m in _member_ids(hit) if m in local_of)
                ag = AppGroup(str(hit["id"]), str(hit.get("displayName") or ""), hit.get("externalId"), members, False)
                self.state.groups[op.local_id] = ag
                self._record_link_group(op.local_id, ag)
                linked = True
        self._flush()
        return linked

    # ------------------------------------------------------------------ sending

    def _requests(self, op: Op, *, preview: bool = False) -> list[_Req]:
        """The requests of one operation (ids resolved now: users are sent before groups).

        ``preview``: users not created yet stand as ``new:LOCAL_ID`` (a dry run creates nothing)."""
        if op.kind == "create_user":
            assert op.user is not None
            return [_Req("POST", "Users", user_body(op.user), op)]
        if op.kind == "update_user":
            assert op.user is not None
            app_id = self.state.users[op.local_id].app_id
            if not self.caps.patch:
                return [_Req("PUT", f"Users/{app_id}", user_body(op.user), op, put=True)]
            patch = {"schemas": [PATCH_OP], "Operations": [_replace(a, getattr(op.user, a)) for a in op.changed]}
            return [_Req("PATCH", f"Users/{app_id}", patch, op)]
        ids = _AppIds(self.state, self.desired if preview else None)  # (read now: users go first)
        if op.kind == "create_group":
            assert op.group is not None
            sent = tuple(sorted(m for m in op.group.members if m in ids))
            body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": op.group.display_name}
            if op.group.external_id is not None:
                body["externalId"] = op.group.external_id
            if sent:
                body["members"] = [{"value": ids[m]} for m in sent]
            return [_Req("POST", "Groups", body, op, add=sent)]
        if op.kind == "delete_group":
            assert op.old_group is not None
            return [_Req("DELETE", f"Groups/{op.old_group.app_id}", None, op)]
        assert op.kind == "update_group" and op.group is not None and op.old_group is not None
        app_id = op.old_group.app_id
        add = tuple(m for m in op.add if m in ids)
        if not self.caps.patch:
            return [_Req("PUT", f"Groups/{app_id}", None, op, add=add, remove=op.remove, put=True)]
        attrs: list[dict[str, Any]] = []
        if "display_name" in op.changed:
            attrs.append({"op": "replace", "path": "displayName", "value": op.group.display_name})
        if "external_id" in op.changed:
            attrs.append(_replace("external_id", op.group.external_id))
        reqs: list[_Req] = []
        changes = [("add", m) for m in add] + [("remove", m) for m in op.remove]
        for i in range(0, max(len(changes), 1), MEMBER_CHUNK):
            part = changes[i:i + MEMBER_CHUNK]
            adds = tuple(m for kind, m in part if kind == "add")
            removes = tuple(m for kind, m in part if kind == "remove")
            operations = list(attrs) if i == 0 else []
            if adds:
                operations.append({"op": "add", "path": "members", "value": [{"value": ids[m]} for m in adds]})
            operations.extend({"op": "remove", "path": f'members[value eq "{ids[m]}"]'} for m in removes if m in ids)
            if operations:
                reqs.append(_Req("PATCH", f"Groups/{app_id}", {"schemas": [PATCH_OP], "Operations": operations}, op,
                                 attrs=i == 0, add=adds, remove=removes))
        return reqs

    def _preview(self, ops: list[Op]) -> None:
        """Dry run: every request the push would send, and the entries it would record."""
        for op in (op for phase in self._phases(ops) for op in phase):
            for req in self._requests(op, preview=True):
                self.out.planned.append({"method": req.method, "path": "/" + req.path, "summary": req.summary(),
                                         "bulk": self.use_bulk})
                self._entries_of(req, "success", None)

    def _send(self, ops: list[Op]) -> list[Op]:
        """Send the operations in phases; the ones to look up again are returned."""
        relink: list[Op] = []
        parked: list[Op] = []  # (users parked for a swap: name_waves)
        try:
            for phase in self._phases(ops):
                # a user whose park failed, or was not found (relinked), waits for the next round
                phase = [op for op in phase if op.kind != "update_user" or (op.key not in self.failed and op.local_id in self.state.users)]
                parked += [op for op in phase if is_park(op)]
                relink += self._sent(phase)
        finally:
            self._unpark(parked)
        return relink

    def _sent(self, phase: list[Op]) -> list[Op]:
        reqs = [req for op in phase for req in self._requests(op)]
        relink = self._send_bulk(reqs) if self.use_bulk else self._send_plain(reqs)
        self._flush()
        return relink

    def _unpark(self, parked: list[Op]) -> None:
        """A user parked for a swap whose own rename did not go through takes its old name
        back, free again since the swap did not happen; not once the service is stopping."""
        back = []
        for park in parked:
            au = self.state.users.get(park.local_id)
            assert park.user is not None and park.old_user is not None
            if au is not None and au.values.user_name == park.user.user_name:
                back.append(Op("update_user", park.local_id, "update", user=au.values._replace(user_name=park.old_user.user_name),
                               old_user=au.values, changed=("user_name",)))
        if back and not self.options.cancelled:
            self._sent(back)

    def _phases(self, ops: list[Op]) -> list[list[Op]]:
        """Users (in ``name_waves``: a name is let go of before it is taken), then groups
        created and updated (their members exist by then), then groups deleted."""
        groups = [op for op in ops if op.kind in ("create_group", "update_group")]
        gone = [op for op in ops if op.kind == "delete_group"]
        return [phase for phase in (*name_waves(ops, self.state), groups, gone) if phase]

    def _send_plain(self, reqs: list[_Req]) -> list[Op]:
        assert self.client is not None
        relink: list[Op] = []
        for start in range(0, len(reqs), BATCH):
            stopping: Cancelled | None = None
            for req, future in self.client.map(self._one, reqs[start:start + BATCH]):
                exc = future.exception()
                if exc is None:
                    self._done(req, future.result())
                elif isinstance(exc, AuthRefused):
                    self._flush()
                    raise exc
                elif isinstance(exc, Cancelled):
                    stopping = exc  # (the requests in flight still finish: their outcomes are recorded first)
                elif isinstance(exc, _Relink):
                    self._unlink(req.op)
                    relink.append(req.op)
                elif isinstance(exc, ScimError):
                    self._fail(req.op, str(exc), req)
                else:
                    raise exc
            self._flush()
            if stopping is not None:
                raise stopping
        return relink

    def _one(self, req: _Req) -> str | None:
        """Send one request; the new resource's id for a create. Raises ``_Relink`` for R22."""
        assert self.client is not None
        try:
            if req.put:
                self._put(req)
                return None
            response = self.client.request(req.method, req.path, body=req.body, create=req.create)
        except Unknown as exc:
            raise _Relink(str(exc)) from None
        except AuthRefused:
            raise
        except ScimError as exc:
            if exc.status == 409 and req.create:
                raise _Relink(str(exc)) from None
            if exc.status == 404 and req.op.kind == "delete_group":
                return None  # already gone
            if exc.status == 404 and not req.create:
                raise _Relink(str(exc)) from None
            raise
        return app_id_of(response) if req.create else None

    def _put(self, req: _Req) -> None:
        """PUT where the application has no PATCH: read, change what syncd manages, write back."""
        assert self.client is not None
        current = self.client.json("GET", req.path)
        if not isinstance(current, dict):
            raise ScimError(f"GET {req.path}: not a resource")
        body = {k: v for k, v in current.items() if k not in ("meta", "id")}
        op = req.op
        if op.kind == "update_user" and op.user:
            for attr in ("displayName", "emails", "externalId"):
                body.pop(attr, None)
            body.update(user_body(op.user))
        elif op.group is not None:
            ids = _AppIds(self.state)
            removed = {ids[m] for m in req.remove if m in ids}
            members = [m for m in current.get("members") or [] if isinstance(m, dict) and m.get("value") not in removed]
            have = {m.get("value") for m in members}
            members += [{"value": ids[m]} for m in req.add if ids[m] not in have]
            body.update({"schemas": current.get("schemas") or [GROUP_SCHEMA], "displayName": op.group.display_name,
                         "members": [{"value": m["value"]} for m in members]})
            if op.group.external_id is not None:
                body["externalId"] = op.group.external_id
            else:
                body.pop("externalId", None)
        self.client.request("PUT", req.path, body=body)
        return None

    def _send_bulk(self, reqs: list[_Req]) -> list[Op]:
        """Bulk requests within maxOperations and maxPayloadSize; one commit per bulk."""
        assert self.client is not None
        relink: list[Op] = []
        limit_ops = self.caps.bulk_max_operations
        limit_bytes = (self.caps.bulk_max_payload or 1 << 20) - 1024  # (room for the envelope)
        batches: list[list[tuple[_Req, dict[str, Any], int]]] = [[]]
        size = 0
        for n, req in enumerate(reqs):
            operation: dict[str, Any] = {"method": req.method, "path": "/" + req.path}
            if req.create:
                operation["bulkId"] = f"b{n}"
            if req.body is not None:
                operation["data"] = req.body
            length = len(orjson.dumps(operation)) + 1
            if batches[-1] and (len(batches[-1]) >= limit_ops or size + length > limit_bytes):
                batches.append([])
                size = 0
            batches[-1].append((req, operation, n))
            size += length
        plain: list[_Req] = []  # sent in a bulk, answered 429/5xx or not at all: again, plainly
        unsent: list[_Req] = []
        for batch in batches:
            if not batch:
                continue
            if len(batch) == 1:
                unsent.append(batch[0][0])  # (one operation: a bulk would only wrap it)
                continue
            body = {"schemas": [BULK_REQUEST], "Operations": [operation for _, operation, _ in batch]}
            try:
                answer = self.client.json("POST", "Bulk", body=body, create=any(r.create for r, _, _ in batch))
            except Unknown as exc:
                # the creates may or may not be there: look them up; the rest is sent again next round
                for req, _, _ in batch:
                    if req.create:
                        relink.append(req.op)
                self.out.errors.append(f"{self.app.name}: POST /Bulk: {exc}; looking the creates up again")
                continue
            except AuthRefused:
                raise
            except ScimError as exc:
                # a Bulk the application refuses whole: the rest of this push goes plain
                self.use_bulk = False
                unsent.extend(req for req, _, _ in batch)
                self.out.errors.append(f"{self.app.name}: POST /Bulk refused ({exc}): sending plain requests")
                continue
            results = answer.get("Operations") if isinstance(answer, dict) else None
            if not isinstance(results, list):
                results = []
            by_bulk_id = {r.get("bulkId"): r for r in results if isinstance(r, dict) and r.get("bulkId")}
            for i, (req, operation, _) in enumerate(batch):
                result = by_bulk_id.get(operation.get("bulkId")) if req.create else None
                if result is None and i < len(results) and isinstance(results[i], dict) and results[i].get("method") == req.method:
                    result = results[i]
                if result is None:
                    if req.create:
                        relink.append(req.op)  # no answer for it: look it up
                    else:
                        plain.append(req)
                    continue
                status = int(str(result.get("status", "0"))[:3] or 0)
                if status < 300:
                    location = result.get("location")
                    self._done(req, str(location).rstrip("/").rsplit("/", 1)[-1] if req.create and location else None)
                elif (status == 409 and req.create) or (status == 404 and req.op.kind != "delete_group"):
                    self._unlink(req.op)
                    relink.append(req.op)
                elif status == 404:
                    self._done(req, None)
                elif status in (429, 500, 502, 503, 504):
                    plain.append(req)  # (the plain path retries with back-off; a create is looked up first)
                else:
                    detail = result.get("response", {}).get("detail") if isinstance(result.get("response"), dict) else None
                    self._fail(req.op, f"{req.method} /{req.path}: {status} {detail or ''}".strip(), req)
            self._flush()
        # a create whose bulk answer said 5xx may have happened: it is looked up first
        relink.extend(r.op for r in plain if r.create)
        relink += self._send_plain(unsent + [r for r in plain if not r.create])
        return relink

    # ------------------------------------------------------------------ outcomes: entries + store

    def _done(self, req: _Req, app_id: str | None) -> None:
        op = req.op
        if op.kind == "create_user":
            assert op.user is not None
            if not app_id:
                self._fail(op, "POST /Users: the answer names no id")
                return
            self.state.users[op.local_id] = AppUser(app_id, op.user)
            self.batch.users[op.local_id] = (app_id, *op.user)
        elif op.kind == "update_user":
            assert op.user is not None
            au = self.state.users[op.local_id]
            self.state.users[op.local_id] = AppUser(au.app_id, op.user)
            self.batch.users[op.local_id] = (au.app_id, *op.user)
        elif op.kind == "create_group":
            assert op.group is not None
            if not app_id:
                self._fail(op, "POST /Groups: the answer names no id")
                return
            ag = AppGroup(app_id, op.group.display_name, op.group.external_id, frozenset(req.add), True)
            self.state.groups[op.local_id] = ag
            self.batch.groups[op.local_id] = (app_id, ag.display_name, ag.external_id, True)
            self.batch.members_added.update((op.local_id, m) for m in req.add)
        elif op.kind == "update_group":
            assert op.group is not None
            ag = self.state.groups[op.local_id]
            if req.attrs:
                ag = ag._replace(display_name=op.group.display_name, external_id=op.group.external_id)
            ag = ag._replace(members=(ag.members | set(req.add)) - set(req.remove))
            self.state.groups[op.local_id] = ag
            self.batch.groups[op.local_id] = (ag.app_id, ag.display_name, ag.external_id, ag.created)
            self.batch.members_added.update((op.local_id, m) for m in req.add)
            self.batch.members_removed.update((op.local_id, m) for m in req.remove)
        elif op.kind == "delete_group":
            self.state.groups.pop(op.local_id, None)
            self.batch.groups_gone.add(op.local_id)
        self.batch.succeeded.add(op.key)
        self.batch.failed.pop(op.key, None)
        self._entries_of(req, "success", None)

    def _fail(self, op: Op, error: str, req: _Req | None = None) -> None:
        self.failed.add(op.key)
        if not self.dry_run:
            self.batch.failed[op.key] = (op.name, error)
        self._entries_of(req or _Req("", "", None, op, add=op.add, remove=op.remove), "failure", error)

    def _unlink(self, op: Op) -> None:
        """A linked object the application answered 404 for: forget the link, look it up again."""
        self.relinked[op.key] += 1
        if self.relinked[op.key] > 2:
            self._fail(op, "the application keeps refusing it (409/404) and no object of that name is found")
            return
        if op.kind == "update_user" and op.local_id in self.state.users:
            del self.state.users[op.local_id]
            self.batch.users_gone.add(op.local_id)
        elif op.kind == "update_group" and op.local_id in self.state.groups:
            del self.state.groups[op.local_id]
            self.batch.groups_gone.add(op.local_id)

    def _record_link_user(self, uid: int, app_id: str, values: UserValues) -> None:
        if not self.dry_run:
            self.batch.users[uid] = (app_id, *values)
        want = self.desired.users.get(uid)
        self._entry("adopt", "user", want.external_id if want else values.external_id, values.user_name, "success",
                    f"an existing user of {self.app.name} with the same userName (R22): linked, not created",
                    app_id=app_id)

    def _record_link_group(self, gid: int, ag: AppGroup) -> None:
        if not self.dry_run:
            self.batch.groups[gid] = (ag.app_id, ag.display_name, ag.external_id, False)
            self.batch.members_added.update((gid, m) for m in ag.members)
        want = self.desired.groups.get(gid)
        self._entry("adopt", "group", want.external_id if want else ag.external_id, ag.display_name, "success",
                    f"an existing group of {self.app.name} with the same displayName (R22): linked, not created",
                    app_id=ag.app_id)

    def _entries_of(self, req: _Req, status: str, error: str | None) -> None:
        op = req.op
        drift = self.drift_sig is not None and _sig(op) not in self.drift_sig
        reason = (f"failed: {error}" if error else
                  f"drift: changed in {self.app.name} by hand, repaired" if drift else f"pushed to {self.app.name}")
        if op.kind in ("create_user", "update_user"):
            assert op.user is not None
            old = op.old_user
            attrs = op.changed if op.kind == "update_user" else tuple(a for a in LOCAL_NAMES if getattr(op.user, a) is not None)
            modified = {LOCAL_NAMES[a]: {"old": _shown(a, getattr(old, a)) if old else None, "new": _shown(a, getattr(op.user, a))}
                        for a in attrs}
            self._entry(op.action, "user", op.user.external_id, op.user.user_name, status, reason, modified)
            return
        gname = op.name
        gentra = op.group.external_id if op.group else op.old_group.external_id if op.old_group else None
        if op.kind == "delete_group" or (op.kind in ("create_group", "update_group") and req.attrs and
                                         (op.kind == "create_group" or op.changed)):
            modified = {}
            if op.kind == "create_group":
                modified = {"name": {"old": None, "new": gname}}
            elif "display_name" in op.changed and op.old_group:
                modified = {"name": {"old": op.old_group.display_name, "new": gname}}
            self._entry(op.action, "group", gentra, gname, status, reason, modified)
        for action, members in (("add_member", req.add), ("remove_member", req.remove)):
            for uid in members:
                user = self.desired.users.get(uid) or (self.state.users[uid].values if uid in self.state.users else None)
                self._entry(action, "membership", gentra, f"{gname} / {user.user_name if user else uid}", status, reason,
                            user_entra_id=user.external_id if user else None)

    def _entry(self, action: str, object_type: str, entra_id: str | None, name: str, status: str, reason: str,
               modified: dict[str, Any] | None = None, *, error: bool = False, **extra: Any) -> None:
        entry = {"action": action, "object_type": object_type, "entra_id": entra_id, "name": name, "status": status,
                 "reason": reason, "modified": modified or {}, "target": self.app.name, **extra}
        if error:
            entry["error"] = True
        self.out.entries.append(entry)

    def _group_name(self, gid: int | None) -> str:
        g = self.desired.groups.get(gid) if gid is not None else None
        return g.display_name if g else self.state.groups[gid].display_name if gid in self.state.groups else "?"

    def _group_entra(self, gid: int | None) -> str | None:
        g = self.desired.groups.get(gid) if gid is not None else None
        return g.external_id if g else None

    def _entra(self, op: Op) -> str | None:
        if op.user is not None:
            return op.user.external_id
        if op.group is not None:
            return op.group.external_id
        return op.old_group.external_id if op.old_group else None

    def _flush(self) -> None:
        if self.dry_run:
            self.batch = apps.Batch()
            return
        if self.batch:
            apps.commit(self.conn, self.app.name, self.batch, push=self.push_no, now=utcnow())
        self.batch = apps.Batch()


class _AppIds:
    """The application's id of each linked user, looked up in the state (not copied per
    operation); with ``preview``'s desired users, ``new:LOCAL_ID`` for those a dry run
    would create."""

    def __init__(self, state: AppState, preview: Desired | None = None) -> None:
        self._users, self._new = state.users, preview.users if preview is not None else {}

    def __contains__(self, uid: int) -> bool:
        return uid in self._users or uid in self._new

    def __getitem__(self, uid: int) -> str:
        au = self._users.get(uid)
        if au is not None:
            return au.app_id
        if uid in self._new:
            return f"new:{uid}"
        raise KeyError(uid)


def _sig(op: Op) -> tuple:
    return (op.kind, op.local_id, op.changed, op.add, op.remove)


def _shown(attr: str, value: Any) -> Any:
    if attr == "active":
        return "active" if value else "deactivated"
    return value


def _member_ids(resource: dict[str, Any]) -> list[str]:
    return [str(m.get("value")) for m in resource.get("members") or [] if isinstance(m, dict) and m.get("value")]


def _best(candidates: list[dict[str, Any]], attr: str, name: str, taken: set[str]) -> dict[str, Any] | None:
    """The match for ``name``: same case first, never an object already linked to another."""
    free = [c for c in candidates if c.get("id") and str(c["id"]) not in taken]
    exact = [c for c in free if c.get(attr) == name]
    return exact[0] if exact else free[0] if free else None
