"""The in-memory Entra tenant the simulator serves, and the change log its delta queries read.

Every mutation bumps ``Tenant.version`` and appends to a per-resource change log (parallel
lists of versions and ids), so an incremental delta query is a bisect plus a scan of the
changes since its token: O(changes), never O(tenant).

Objects are slotted and hold only what Graph returns, to keep a 1M-user tenant in a few
hundred MB. Collections are :class:`Ordered` (insertion order, stable positions), so a
paging cursor is just a position and resuming a page costs nothing.

Readable for assertions (treat them as read-only; change the tenant through the methods):

- ``t.users``: Ordered mapping id -> :class:`User` (``.id .upn .display_name .mail
  .enabled .user_type .soft_deleted``; soft-deleted users stay, with ``soft_deleted=True``;
  hard-deleted ones are gone)
- ``t.groups``: Ordered mapping id -> :class:`Group` (``group.members`` is an Ordered set of
  member ids; soft-deleted users are taken out and put back on restore)
- ``t.devices``, ``t.service_principals``: dict id -> :class:`Device` / :class:`ServicePrincipal`
  (the app's own service principal is there too)
- ``t.assignments``: Ordered mapping principal id -> :class:`Assignment`
- ``t.assigned()``: {principal id: "User" | "Group"}; ``t.members_of(gid)``: list of member ids;
  ``t.groups_of(oid)``: the groups oid is a direct member of; ``t.user_by_upn(upn)``;
  ``t.kind_of(oid)``: "user" | "group" | "device" | "servicePrincipal" | None
- ``t.version``: bumped by every change (delta tokens remember it)

The change log also records *which* properties each change touched (a bit mask per entry,
``USER_BITS`` / ``GROUP_BITS``; ``ALL`` for a creation or a restore), so the delta service can
answer an incremental round with only the changed properties, as Graph does with
``Prefer: return=minimal``. Still O(changes): one small int per log entry.
"""

from __future__ import annotations

import base64
import bisect
import random
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_PERMISSIONS = frozenset({"Application.Read.All", "User.Read.All", "GroupMember.Read.All"})
DEFAULT_APP_ROLE_ID = "00000000-0000-0000-0000-000000000000"  # "Default Access"

MemberKind = Literal["user", "group", "device", "servicePrincipal"]
# how a refused delta/skip token is answered (Graph does each of these):
# "gone": 410 + Location + error body; "gone_bare": 410 + Location, no body at all;
# "syncStateNotFound" / "resyncRequired": 400 with that error code
ExpiryStyle = Literal["gone", "gone_bare", "syncStateNotFound", "resyncRequired"]
EXPIRY_STYLES = ("gone", "gone_bare", "syncStateNotFound", "resyncRequired")

# change-log masks: which tracked properties a change touched (JSON names)
USER_BITS = {"displayName": 1, "userPrincipalName": 2, "mail": 4, "accountEnabled": 8, "userType": 16}
GROUP_BITS = {"displayName": 1, "securityEnabled": 2}
ALL = -1  # every property: a creation or a restore (the whole object is news)
REMOVED = 1 << 8  # no property: the object was deleted (soft or hard)
_USER_FIELD_BITS = {"display_name": 1, "upn": 2, "mail": 4, "enabled": 8, "user_type": 16}

T = TypeVar("T")


class Ordered(Mapping[str, T], Generic[T]):
    """A keyed collection in insertion order whose positions never move.

    Removing leaves a tombstone (``None``) so a position handed out in a skiptoken keeps
    pointing at the same place; re-adding a removed key appends it at the end. The map holds
    key -> item (no position ints: 28 bytes each, 56 MB for 1M users + 1M memberships), so
    a removal finds its slot with ``list.index`` -- O(n) at C speed, and removals are rare.
    """

    __slots__ = ("_items", "_map")

    def __init__(self) -> None:
        self._items: list[T | None] = []
        self._map: dict[str, T] = {}

    def add(self, key: str, item: T) -> None:
        old = self._map.get(key)
        self._map[key] = item
        if old is None:
            self._items.append(item)
        elif old is not item:
            self._items[self._slot(old)] = item

    def extend(self, keys: list[str], items: list[T]) -> None:
        """Append many new keys at once (bulk loading; keys must not be present yet)."""
        self._items.extend(items)
        self._map.update(zip(keys, items, strict=True))

    def _slot(self, item: T) -> int:
        return self._items.index(item)  # identity hits first; a live key is in one slot

    def discard(self, key: str) -> T | None:
        item = self._map.pop(key, None)
        if item is not None:
            self._items[self._slot(item)] = None
        return item

    def __getitem__(self, key: str) -> T:
        return self._map[key]

    def get(self, key: str, default=None):  # type: ignore[override]
        return self._map.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def values(self) -> Iterator[T]:  # type: ignore[override]
        return iter(self._map.values())

    def scan(self, start: int) -> Iterator[tuple[int, T]]:
        """(position, item) of the live items from ``start`` on."""
        items = self._items
        for pos in range(start, len(items)):
            item = items[pos]
            if item is not None:
                yield pos, item

    @property
    def end(self) -> int:
        return len(self._items)


# Graph properties the simulator does not model come back as null/empty: class attributes
# (not slots) cost nothing per object and let one attrgetter build a whole projection.


class User:
    __slots__ = ("id", "upn", "display_name", "mail", "enabled", "user_type", "soft_deleted")
    kind: MemberKind = "user"
    null = None
    empty = ()

    def __init__(self, id: str, upn: str, display_name: str | None, mail: str | None,
                 enabled: bool, user_type: str) -> None:
        self.id = id
        self.upn = upn
        self.display_name = display_name
        self.mail = mail
        self.enabled = enabled
        self.user_type = user_type
        self.soft_deleted = False

    def __repr__(self) -> str:
        return f"User({self.id}, {self.upn!r}, enabled={self.enabled}, deleted={self.soft_deleted})"


class Group:
    __slots__ = ("id", "name", "security_enabled", "members")
    kind: MemberKind = "group"
    null = None
    empty = ()
    false = False

    def __init__(self, id: str, name: str, security_enabled: bool) -> None:
        self.id = id
        self.name = name
        self.security_enabled = security_enabled
        self.members: Ordered[str] = Ordered()  # member id -> member id

    @property
    def mail_nickname(self) -> str:
        return "".join(c for c in self.name if c.isalnum())[:64] or "group"

    def __repr__(self) -> str:
        return f"Group({self.id}, {self.name!r}, members={len(self.members)})"


class Device:
    __slots__ = ("id", "name", "device_id")
    kind: MemberKind = "device"
    null = None
    true = True

    def __init__(self, id: str, name: str, device_id: str) -> None:
        self.id = id
        self.name = name
        self.device_id = device_id


class ServicePrincipal:
    __slots__ = ("id", "name", "app_id")
    kind: MemberKind = "servicePrincipal"
    null = None
    true = True
    sp_type = "Application"

    def __init__(self, id: str, name: str, app_id: str) -> None:
        self.id = id
        self.name = name
        self.app_id = app_id


class Assignment:
    """An appRoleAssignment of a user or group to the app's service principal."""

    __slots__ = ("id", "principal_id", "principal_type", "created")
    app_role_id = DEFAULT_APP_ROLE_ID
    null = None

    def __init__(self, id: str, principal_id: str, principal_type: str, created: str) -> None:
        self.id = id
        self.principal_id = principal_id
        self.principal_type = principal_type  # "User" | "Group"
        self.created = created


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tenant:
    """One Entra tenant with one registered application (the one syncd signs in as)."""

    def __init__(self, domain: str = "contoso.onmicrosoft.com", *, seed: int | None = None,
                 app_name: str = "Split (syncd)") -> None:
        self._rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
        self.domain = domain
        self.tenant_id = self.new_guid()
        self.client_id = self.new_guid()
        self.service_principal_id = self.new_guid()
        self.app_name = app_name
        self.client_secret = self._new_secret()
        self.secret_expired = False
        self.permissions: set[str] = set(DEFAULT_PERMISSIONS)
        # SHA-1 thumbprint (hex, upper case) -> certificate registered on the app
        self.certificates: dict[str, x509.Certificate] = {}

        self.users: Ordered[User] = Ordered()
        self.groups: Ordered[Group] = Ordered()
        self.devices: dict[str, Device] = {}
        self.service_principals: dict[str, ServicePrincipal] = {}
        self.assignments: Ordered[Assignment] = Ordered()
        self.service_principals[self.service_principal_id] = ServicePrincipal(
            self.service_principal_id, app_name, self.client_id)

        # Server threads read while tests mutate: every read and write holds this lock.
        self.lock = threading.RLock()
        self.version = 0
        self.version_times: list[float] = []  # monotonic time of each version (index v - 1)
        self._logging = True
        # change logs: parallel lists, versions ascending (bisect on the version list)
        self.user_log_versions: list[int] = []
        self.user_log_ids: list[str] = []
        self.user_log_props: list[int] = []  # USER_BITS mask of each change (or ALL, REMOVED)
        self.group_log_versions: list[int] = []
        self.group_log_ids: list[str] = []
        # an int = the group itself changed (GROUP_BITS mask; ALL created, REMOVED deleted);
        # (member id, member kind, added?) = a membership change
        self.group_log_events: list[tuple[str, str, bool] | int] = []
        # delta tokens carry the epoch they were issued in; older epochs are refused
        self.delta_epoch = 0
        self.delta_expiry_style: ExpiryStyle = "gone"
        self._upn_index: dict[str, User] | None = None  # lower-case UPN -> user, built lazily
        # soft-deleted user id -> (group ids, assignment) taken away, given back on restore
        self._hidden: dict[str, tuple[tuple[str, ...], Assignment | None]] = {}
        self.demo: object | None = None  # sample.demo_tenant() attaches its handles here

    # ------------------------------------------------------------------ ids and secrets

    def new_guid(self) -> str:
        n = self._rng.getrandbits(128)
        n = (n & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
        n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def new_guids(self, count: int) -> list[str]:
        """``count`` fresh version-4 GUIDs at once (one random draw, then slicing: fast)."""
        h = self._rng.randbytes(16 * count).hex()
        variant = "89ab" * 4
        return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{variant[int(h[i + 16], 16)]}"
                f"{h[i + 17:i + 20]}-{h[i + 20:i + 32]}" for i in range(0, 32 * count, 32)]

    def _new_secret(self) -> str:
        # shaped like an Entra secret value ("xxx8Q~" + 34 chars); always truly random
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~"
        return "".join(secrets.choice(alphabet) for _ in range(3)) + "8Q~" + "".join(
            secrets.choice(alphabet) for _ in range(34))

    def rotate_secret(self) -> str:
        self.client_secret = self._new_secret()
        self.secret_expired = False
        return self.client_secret

    def _assignment_id(self) -> str:
        # Graph's appRoleAssignment ids are 43-character base64url strings, not GUIDs
        return base64.urlsafe_b64encode(self._rng.getrandbits(256).to_bytes(32, "big")).decode()[:43]

    def add_certificate(self, cert_pem: bytes) -> None:
        cert = x509.load_pem_x509_certificate(cert_pem)
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise ValueError("Entra accepts only RSA certificates for client credentials")
        with self.lock:
            self.certificates[cert.fingerprint(hashes.SHA1()).hex().upper()] = cert  # noqa: S303

    # ------------------------------------------------------------------ change log

    def _bump(self) -> int:
        self.version += 1
        self.version_times.append(time.monotonic())
        return self.version

    def version_at(self, moment: float) -> int:
        """The last version made at or before ``moment`` (a time.monotonic() value)."""
        return bisect.bisect_right(self.version_times, moment)

    def _log_user(self, uid: str, props: int = ALL) -> None:
        v = self._bump()
        if self._logging:
            self.user_log_versions.append(v)
            self.user_log_ids.append(uid)
            self.user_log_props.append(props)

    def _log_group(self, gid: str, event: tuple[str, str, bool] | int = ALL) -> None:
        v = self._bump()
        if self._logging:
            self.group_log_versions.append(v)
            self.group_log_ids.append(gid)
            self.group_log_events.append(event)

    @staticmethod
    def _since(versions: list[int], version: int, until: int) -> range:
        """Indexes of the log entries with ``version < v <= until``."""
        return range(bisect.bisect_right(versions, version), bisect.bisect_right(versions, until))

    def user_changes(self, since: int, until: int) -> list[str]:
        """Ids of the users changed after version ``since`` up to ``until``, first change first."""
        ids = self.user_log_ids
        return list(dict.fromkeys(ids[i] for i in self._since(self.user_log_versions, since, until)))

    def user_changed_props(self, since: int, until: int) -> dict[str, int]:
        """uid -> USER_BITS mask of what changed after ``since`` up to ``until`` (ALL: all of
        it, a creation or a restore), in first-change order."""
        out: dict[str, int] = {}
        ids, props = self.user_log_ids, self.user_log_props
        for i in self._since(self.user_log_versions, since, until):
            uid = ids[i]
            out[uid] = out.get(uid, 0) | props[i]
        return out

    def group_changes(self, since: int, until: int
                      ) -> dict[str, tuple[int | None, dict[str, tuple[str, bool]]]]:
        """gid -> (GROUP_BITS mask of the group's own changes, None when only its members
        changed; {member id: (kind, added?)} net of the changes)."""
        out: dict[str, tuple[int | None, dict[str, tuple[str, bool]]]] = {}
        ids, events = self.group_log_ids, self.group_log_events
        for i in self._since(self.group_log_versions, since, until):
            gid, event = ids[i], events[i]
            changed, members = out.get(gid) or (None, {})
            if isinstance(event, int):
                changed = (changed or 0) | event
            else:
                members[event[0]] = (event[1], event[2])
            out[gid] = (changed, members)
        return out

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Build a tenant without logging each object: everything is 'as of the start'.

        For generators only: no delta token may have been issued yet.
        """
        with self.lock:
            self._logging = False
            try:
                yield
            finally:
                self._logging = True
                self._bump()

    def expire_delta_tokens(self, style: ExpiryStyle = "gone") -> None:
        """Refuse every delta/skip token issued so far, answered as ``style`` (EXPIRY_STYLES):
        410 Gone + Location with an error body or with no body at all, or a 400."""
        if style not in EXPIRY_STYLES:
            raise ValueError(f"unknown expiry style {style!r}")
        with self.lock:
            self.delta_epoch += 1
            self.delta_expiry_style = style

    # ------------------------------------------------------------------ lookups

    def kind_of(self, oid: str) -> MemberKind | None:
        user = self.users.get(oid)
        if user is not None:
            return None if user.soft_deleted else "user"
        if oid in self.groups:
            return "group"
        if oid in self.devices:
            return "device"
        if oid in self.service_principals:
            return "servicePrincipal"
        return None

    def directory_object(self, oid: str) -> User | Group | Device | ServicePrincipal | None:
        user = self.users.get(oid)
        if user is not None:
            return None if user.soft_deleted else user
        return self.groups.get(oid) or self.devices.get(oid) or self.service_principals.get(oid)

    def user_by_upn(self, upn: str) -> User | None:
        if self._upn_index is None:
            # reuse the UPN string itself when it is already lower case (saves ~80 B/user)
            self._upn_index = {(u.upn if u.upn.islower() else u.upn.lower()): u
                               for u in self.users.values()}
        return self._upn_index.get(upn.lower())

    def members_of(self, gid: str) -> list[str]:
        return list(self.groups[gid].members)

    def groups_of(self, oid: str) -> list[str]:
        """Ids of the groups ``oid`` is a direct member of (scans the groups)."""
        return [g.id for g in self.groups.values() if oid in g.members]

    def assigned(self) -> dict[str, str]:
        return {a.principal_id: a.principal_type for a in self.assignments.values()}

    def _live_user(self, uid: str) -> User:
        user = self.users.get(uid)
        if user is None or user.soft_deleted:
            raise KeyError(f"no active user {uid}")
        return user

    # ------------------------------------------------------------------ users

    def add_user(self, upn: str, display_name: str | None = None, mail: str | None = None,
                 enabled: bool = True, user_type: str = "Member", id: str | None = None) -> str:
        with self.lock:
            if self.user_by_upn(upn) is not None:
                raise ValueError(f"userPrincipalName {upn!r} is already taken")
            uid = id or self.new_guid()
            if self.kind_of(uid) or uid in self.users:
                raise ValueError(f"object id {uid} is already taken")
            if display_name is None:
                display_name = upn.split("@", 1)[0]
            user = User(uid, upn, display_name, mail, enabled, user_type)
            self.users.add(uid, user)
            if self._upn_index is not None:
                self._upn_index[upn.lower()] = user
            self._log_user(uid)
            return uid

    _USER_FIELDS = {"upn": "upn", "display_name": "display_name", "mail": "mail",
                    "enabled": "enabled", "user_type": "user_type"}

    def update_user(self, uid: str, **changes: object) -> None:
        unknown = set(changes) - set(self._USER_FIELDS)
        if unknown:
            raise TypeError(f"unknown user fields: {sorted(unknown)}")
        with self.lock:
            user = self._live_user(uid)
            if "upn" in changes and changes["upn"] != user.upn:
                new_upn = str(changes["upn"])
                other = self.user_by_upn(new_upn)
                if other is not None and other.id != uid:
                    raise ValueError(f"userPrincipalName {new_upn!r} is already taken")
                if self._upn_index is not None:
                    self._upn_index.pop(user.upn.lower(), None)
                    self._upn_index[new_upn.lower()] = user
            props = 0
            for name, value in changes.items():
                attr = self._USER_FIELDS[name]
                if getattr(user, attr) != value:
                    props |= _USER_FIELD_BITS[attr]
                setattr(user, attr, value)
            self._log_user(uid, props)  # logged even when nothing changed: Graph may too

    def disable_user(self, uid: str) -> None:
        self.update_user(uid, enabled=False)

    def enable_user(self, uid: str) -> None:
        self.update_user(uid, enabled=True)

    def soft_delete_user(self, uid: str) -> None:
        """Move to 'deleted items': hidden from listings, member lists and assignments."""
        with self.lock:
            user = self._live_user(uid)
            self._hidden[uid] = (tuple(self._drop_from_groups(uid, "user")),
                                 self.assignments.discard(uid))
            user.soft_deleted = True
            self._log_user(uid, REMOVED)

    def restore_user(self, uid: str) -> None:
        with self.lock:
            user = self.users.get(uid)
            if user is None or not user.soft_deleted:
                raise KeyError(f"no soft-deleted user {uid}")
            user.soft_deleted = False
            group_ids, assignment = self._hidden.pop(uid, ((), None))
            for gid in group_ids:
                if gid in self.groups:
                    self._add_member(self.groups[gid], uid, "user")
            if assignment is not None:
                self.assignments.add(uid, assignment)
            self._log_user(uid)

    def hard_delete_user(self, uid: str) -> None:
        with self.lock:
            user = self.users.get(uid)
            if user is None:
                raise KeyError(f"no user {uid}")
            if not user.soft_deleted:
                self._drop_from_groups(uid, "user")
                self.assignments.discard(uid)
            self._hidden.pop(uid, None)
            self.users.discard(uid)
            if self._upn_index is not None:
                self._upn_index.pop(user.upn.lower(), None)
            self._log_user(uid, REMOVED)

    def _drop_from_groups(self, oid: str, kind: str) -> list[str]:
        dropped = []
        for group in self.groups.values():
            if group.members.discard(oid) is not None:
                dropped.append(group.id)
                self._log_group(group.id, (oid, kind, False))
        return dropped

    # ------------------------------------------------------------------ groups

    def add_group(self, name: str, security_enabled: bool = True, id: str | None = None) -> str:
        with self.lock:
            gid = id or self.new_guid()
            if self.kind_of(gid) or gid in self.users:
                raise ValueError(f"object id {gid} is already taken")
            self.groups.add(gid, Group(gid, name, security_enabled))
            self._log_group(gid)
            return gid

    def rename_group(self, gid: str, name: str) -> None:
        self.update_group(gid, name=name)

    def update_group(self, gid: str, name: str | None = None,
                     security_enabled: bool | None = None) -> None:
        with self.lock:
            group = self.groups[gid]
            props = 0
            if name is not None:
                if group.name != name:
                    props |= GROUP_BITS["displayName"]
                group.name = name
            if security_enabled is not None:
                if group.security_enabled != security_enabled:
                    props |= GROUP_BITS["securityEnabled"]
                group.security_enabled = security_enabled
            self._log_group(gid, props)

    def delete_group(self, gid: str) -> None:
        """Security groups are deleted for good: Graph reports them removed as 'deleted'."""
        with self.lock:
            if gid not in self.groups:
                raise KeyError(f"no group {gid}")
            self._drop_from_groups(gid, "group")
            self.assignments.discard(gid)
            self.groups.discard(gid)
            self._log_group(gid, REMOVED)

    def _add_member(self, group: Group, oid: str, kind: str) -> None:
        if oid not in group.members:
            group.members.add(oid, oid)
            self._log_group(group.id, (oid, kind, True))

    def add_member(self, gid: str, member_id: str) -> None:
        with self.lock:
            group = self.groups[gid]
            kind = self.kind_of(member_id)
            if kind is None:
                raise KeyError(f"no directory object {member_id}")
            if member_id == gid:
                raise ValueError("a group cannot be a member of itself")
            self._add_member(group, member_id, kind)

    def remove_member(self, gid: str, member_id: str) -> None:
        with self.lock:
            group = self.groups[gid]
            if group.members.discard(member_id) is None:
                raise KeyError(f"{member_id} is not a member of {gid}")
            self._log_group(gid, (member_id, self.kind_of(member_id) or "user", False))

    def add_device(self, name: str, id: str | None = None) -> str:
        with self.lock:
            did = id or self.new_guid()
            self.devices[did] = Device(did, name, self.new_guid())
            return did

    def add_service_principal(self, name: str, id: str | None = None) -> str:
        with self.lock:
            spid = id or self.new_guid()
            self.service_principals[spid] = ServicePrincipal(spid, name, self.new_guid())
            return spid

    # ------------------------------------------------------------------ assignments

    def assign(self, principal_id: str) -> None:
        """Assign a user or group to the app (appRoleAssignment, default access role)."""
        with self.lock:
            kind = self.kind_of(principal_id)
            if kind not in ("user", "group"):
                raise ValueError(f"{principal_id} is not an active user or a group")
            if principal_id not in self.assignments:
                self.assignments.add(principal_id, Assignment(
                    self._assignment_id(), principal_id, "User" if kind == "user" else "Group",
                    now_iso()))

    def _assign_unchecked(self, principal_id: str, principal_type: str, created: str) -> None:
        self.assignments.add(principal_id, Assignment(
            self._assignment_id(), principal_id, principal_type, created))

    def unassign(self, principal_id: str) -> None:
        with self.lock:
            if self.assignments.discard(principal_id) is None:
                raise KeyError(f"{principal_id} is not assigned")

    def principal_display_name(self, principal_id: str) -> str | None:
        obj = self.users.get(principal_id) or self.groups.get(principal_id)
        if isinstance(obj, User):
            return obj.display_name
        return obj.name if obj is not None else None
