"""The SQLite store: the local directory, the Entra mirror, sync state and the audit trail.

One cycle is one ``BEGIN IMMEDIATE … COMMIT``: the mirror update, the directory changes, the
new delta links and the cycle's report land together or not at all (R16). The file and its
WAL are created private to the service user (0600).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from ..errors import SyncdError
from ..model import (
    ADMIN_GROUP,
    Directory,
    EntraGroup,
    EntraUser,
    EntraView,
    GraphRead,
    LocalGroup,
    LocalUser,
    overlay_group,
    overlay_user,
    unknown_group,
    unknown_user,
)
from . import access
from .buffer import BufferedRead, Fold
from .schema import SCHEMA_VERSION, check_version, migrate, schema_version


class StoreError(SyncdError):
    pass


class ConnectionLent(RuntimeError):
    """The store's connection was used while it is lent to a helper thread (``Store.lend``):
    a bug, never to be caught."""


T = TypeVar("T")
_NO_THREAD_YET = -1  # (lent, its thread not started: every thread is refused)


def require_json(conn: sqlite3.Connection) -> None:
    """The store hands id lists to SQLite as JSON (``select_in``): refuse a SQLite without
    its JSON functions (built in since 3.38; older builds could leave them out) up front."""
    try:
        conn.execute("SELECT json_valid('[]')").fetchone()
    except sqlite3.OperationalError as exc:
        raise StoreError(
            f"the SQLite library this Python uses ({sqlite3.sqlite_version}) has no JSON functions ({exc}): "
            "run syncd with a Python whose sqlite3 module uses SQLite 3.38 or newer (Debian 12's python3.11 does)"
        ) from None


def _private_file(path: Path) -> None:
    """Create the database file (and its directory) before SQLite does, with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        try:
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except FileExistsError:
            continue
        access.give_to_directory_owner(p)


class Store:
    """The store at ``path``.

    ``create``: a missing store is created (a cycle, the daemon, the ``add`` commands);
    otherwise it is refused. ``readonly``: for the commands that only look (status, lists,
    reports, explain, audit verify): a missing store is refused, nothing is created,
    migrated or seeded, and a store that needs a migration is refused with what to run.
    Files readable by others are tightened to 0600 by a writer, and warned about by a
    reader (``warnings``). A store this user cannot use is one line naming the path, the
    user and the owner (``access.StoreAccessError``, exit 2).
    """

    def __init__(self, path: str, *, create: bool = True, readonly: bool = False, origin: str | None = None):
        self.path = Path(path)
        self.warnings: list[str] = []
        try:
            conn = self._open_readonly(origin) if readonly else self._open_writable(create, origin)
        except PermissionError as exc:  # (what os.access could not foresee: an immutable file, an LSM)
            raise access.StoreAccessError(
                f"the store {self.path} cannot be opened by {access.user_name(os.geteuid())}: {exc.strerror} ({exc.filename})"
            ) from None
        except sqlite3.DatabaseError as exc:
            if readonly:
                problem = access.read_problem(self.path) or access.wal_read_problem(self.path)
            else:
                problem = access.write_problem(self.path)
            if problem:
                raise access.StoreAccessError(problem) from None
            raise StoreError(f"the store {path} cannot be opened: {exc}") from None
        self._conn = conn
        self._lent_to: int | None = None  # the thread the connection is lent to (Store.lend)

    @property
    def conn(self) -> sqlite3.Connection:
        """The store's one connection; ``ConnectionLent`` from any thread but the borrower's
        while it is lent."""
        if self._lent_to is not None and self._lent_to != threading.get_ident():
            raise ConnectionLent(
                f"the store's connection is lent to a helper thread (Store.lend) and was used from {threading.current_thread().name}"
            )
        return self._conn

    @contextmanager
    def lend(self, work: Callable[[sqlite3.Connection], T]) -> Iterator[Future[T]]:
        """Run ``work(connection)`` on a helper thread while the body of the ``with`` runs.

        sqlite3 lets go of the GIL inside a statement, so the body does work of its own (work
        that needs no store) while ``work``'s statements run. The connection is ``work``'s
        meanwhile: ``store.conn`` from any other thread raises ``ConnectionLent``. Yields
        ``work``'s Future; on the way out, waits for it and raises its exception, if it
        raised one (the body's own, if it raised too, is that one's ``__context__``).
        """
        if self._lent_to is not None:
            raise ConnectionLent("the store's connection is lent already (Store.lend)")
        conn = self._conn

        def borrowed() -> T:
            self._lent_to = threading.get_ident()
            return work(conn)

        self._lent_to = _NO_THREAD_YET
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-lent")
        try:
            future = pool.submit(borrowed)
            try:
                yield future
            finally:
                wait_for([future])
                self._lent_to = None
                failed = future.exception()
                if failed is not None:
                    raise failed
        finally:
            self._lent_to = None
            pool.shutdown()

    def _open_writable(self, create: bool, origin: str | None) -> sqlite3.Connection:
        problem = access.write_problem(self.path)
        if problem:
            raise access.StoreAccessError(problem)
        if not self.path.exists():
            if not create:
                raise access.StoreAccessError(access.read_problem(self.path, origin) or f"no store at {self.path}")
            _private_file(self.path)
        access.tighten(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            require_json(conn)
            # (a new store's page size; an existing one keeps its own) a full cycle
            # writes tens of MB in one commit, one WAL frame per page: 16 KB pages
            # write a quarter of the frames
            conn.execute("PRAGMA page_size = 16384")
            conn.execute("PRAGMA journal_mode = WAL")
            # a committed cycle (and its report) must survive a crash of the host, not just the process
            conn.execute("PRAGMA synchronous = FULL")
            # a full cycle inserts ~100k rows keyed by random GUIDs into several indexes: with
            # SQLite's default 2 MB page cache most inserts evict and re-read pages
            # (BENCHMARKS.md). Pages are only allocated when used, so small stores stay small.
            conn.execute("PRAGMA cache_size = -32768")
            migrate(conn, self.path)
            self._ensure_administrators(conn)
            if _LEFT_TO_CALLER:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
                _LEFT_TO_CALLER[-1]._hold(self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_readonly(self, origin: str | None) -> sqlite3.Connection:
        problem = access.read_problem(self.path, origin)
        if problem:
            raise access.StoreAccessError(problem)
        loose = access.loose(self.path)
        if loose:
            self.warnings.append(access.loose_warning(loose))
        conn = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro", uri=True, isolation_level=None, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            require_json(conn)
            version = schema_version(conn)
            check_version(version, self.path)
            if version == 0 and not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise access.StoreAccessError(  # (as a missing store: a first cycle killed before its schema)
                    f"the store {self.path} holds nothing yet (its first cycle stopped before setting it up): "
                    "run a cycle (`syncd sync`, or `syncd sync --dry-run`)"
                )
            if version < SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} was written by an older syncd (schema {version}, this one uses "
                    f"{SCHEMA_VERSION}) and is upgraded by the first command that writes: run a cycle "
                    "(`syncd sync`, or `syncd sync --dry-run`), then this command again"
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _ensure_administrators(conn: sqlite3.Connection) -> None:
        # R12: the directory always has an Administrators group, created empty and unmanaged
        if conn.execute("SELECT 1 FROM groups WHERE name = ?", (ADMIN_GROUP,)).fetchone() is None:
            now = utcnow()
            conn.execute(
                "INSERT INTO groups (name, managed, created_at, updated_at) VALUES (?, 0, ?, ?)",
                (ADMIN_GROUP, now, now),
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, taken at once so a reader never has to upgrade. Its commit
        copies the WAL back into the database as SQLite does, or leaves that to the caller
        (``checkpoints_left_to_caller``)."""
        with write_transaction(self.conn):
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: what is read inside it is one state of the store, however
        long the reading takes (a cycle may commit meanwhile)."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # ---- R15's staged deactivations
    def staged_entra_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT entra_id FROM staged_deactivations")}

    def staged_deactivation_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM staged_deactivations").fetchone()[0])

    def has_staged_deactivations(self) -> bool:
        return self.conn.execute("SELECT 1 FROM staged_deactivations").fetchone() is not None

    def clear_staged_deactivations(self) -> None:
        """What stays staged is what this cycle's plan stages (inside the cycle's transaction)."""
        self.conn.execute("DELETE FROM staged_deactivations")

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def enabled(self) -> bool:
        return self.get_meta("enabled") == "1"

    def delta_links(self) -> dict[str, str]:
        raw = self.get_meta("delta_links")
        return json.loads(raw) if raw else {}

    # ------------------------------------------------------------------ reading

    def load_directory(self, users: dict[int, LocalUser] | None = None) -> Directory:
        """The local directory; with ``users``, only those users and their memberships."""
        if users is None:
            users = {r[0]: local_user(r) for r in self.conn.execute(LOCAL_USER_SQL)}
            member_rows: Iterable[tuple] = self.conn.execute("SELECT group_id, user_id FROM memberships")
        else:
            member_rows = select_in(self, "SELECT group_id, user_id FROM memberships WHERE user_id IN ({})", users)
        groups = {
            r[0]: LocalGroup(r[0], r[1], r[2], bool(r[3]))
            for r in self.conn.execute("SELECT id, entra_id, name, managed FROM groups")
        }
        members: dict[int, set[int]] = {}
        for gid, uid in member_rows:
            members.setdefault(gid, set()).add(uid)
        invites = dict(self.conn.execute("SELECT id, email FROM invites WHERE status = 'open'").fetchall())
        return Directory(users=users, groups=groups, members=members, enabled=self.enabled, invites=invites)

    def load_entra_view(self, users: dict[str, EntraUser] | None = None, *, within_reach: bool = False) -> EntraView:
        """The mirror of Entra; with ``users``, only those users and their memberships (and
        the groups' nesting).

        ``within_reach``: only the users a plan can touch when scope is the assignments
        (not ``scope = "all"``): those assigned, those in some group, and those linked to a
        local user. Every other Entra user is out of scope
        and unknown locally, so no rule looks at it; a tenant assigning a few groups holds
        far more of those than users in scope.
        """
        if users is None:
            sql = ENTRA_USER_SQL + (_WITHIN_REACH if within_reach else "")
            users = {r[0]: entra_user(r) for r in self.conn.execute(sql)}
            member_rows: Iterable[tuple] = self.conn.execute("SELECT group_id, member_id, member_type FROM entra_members")
        else:
            member_rows = select_in(
                self, "SELECT group_id, member_id, member_type FROM entra_members WHERE member_id IN ({})", users
            )
            # and every nesting of groups, which transitive membership follows (few rows)
            member_rows += self.conn.execute(
                "SELECT group_id, member_id, member_type FROM entra_members WHERE member_type = 'group'"
            ).fetchall()
        groups = {
            r[0]: EntraGroup(r[0], r[1], bool(r[2]))
            for r in self.conn.execute("SELECT id, display_name, security_enabled FROM entra_groups")
        }
        members: dict[str, dict] = {}
        for gid, mid, kind in member_rows:
            user = users.get(mid)
            # the user's own id string and one string per kind: SQLite hands out a new
            # string per row (400k memberships at 1M users: ~60 MB of copies)
            members.setdefault(gid, {})[user.id if user is not None else mid] = sys.intern(kind)
        return EntraView(users=users, groups=groups, members=members, assignments=self.assignments())  # type: ignore[arg-type]  # the store only writes User/Group

    def plan_universe(self, *, within_reach: bool) -> list[str]:
        """Every Entra id a full plan may act on, sorted: users of the mirror (those within
        reach, see ``load_entra_view``) and the Entra ids local users are linked to."""
        return [r[0] for r in self.conn.execute(_UNIVERSE_SQL.format(_WITHIN_REACH if within_reach else ""))]

    def plan_universe_bound(self) -> int:
        """At least as many as ``plan_universe`` holds, and cheap: whether to look closer."""
        row = self.conn.execute(
            "SELECT (SELECT count(*) FROM entra_users) + (SELECT count(*) FROM users WHERE entra_id IS NOT NULL)"
        ).fetchone()
        return int(row[0])

    def linked_entra_ids(self) -> set[str]:
        """The Entra ids local users are linked to."""
        return {r[0] for r in self.conn.execute("SELECT entra_id FROM users WHERE entra_id IS NOT NULL")}

    def administrators(self) -> dict[int, LocalUser]:
        """The members of Administrators (the guards' R12 looks at them)."""
        sql = LOCAL_USER_SQL + " WHERE id IN (SELECT m.user_id FROM memberships m JOIN groups g ON g.id = m.group_id WHERE g.name = ?)"
        return {r[0]: local_user(r) for r in self.conn.execute(sql, (ADMIN_GROUP,))}

    # ------------------------------------------------------------------ the mirror

    def buffered_read(self, *, full: bool) -> BufferedRead:
        """A sink for the read's pages: a full read's users are written to a temp table."""
        return BufferedRead(self.conn, full=full)

    def _lay_over_mirror(self, read: GraphRead) -> None:
        """Each partial user and group of ``read`` laid over the mirror's copy (or over
        nothing known): a property a read leaves out is unchanged, never empty (R14a)."""
        users = [u.id for u in read.users.values() if u.partial]
        if users:
            known = {r[0]: entra_user(r) for r in select_in(self, ENTRA_USER_SQL + " WHERE id IN ({})", users)}
            for uid in users:
                read.users[uid] = overlay_user(known.get(uid) or unknown_user(uid), read.users[uid])
        groups = [g.id for g in read.groups.values() if g.partial]
        if groups:
            rows = select_in(self, "SELECT id, display_name, security_enabled FROM entra_groups WHERE id IN ({})", groups)
            known_groups = {r[0]: EntraGroup(r[0], r[1], bool(r[2])) for r in rows}
            for gid in groups:
                read.groups[gid] = overlay_group(known_groups.get(gid) or unknown_group(gid), read.groups[gid])

    def assignments(self) -> dict[str, str]:
        """The mirror's assignments: principal id -> "User" | "Group"."""
        return dict(self.conn.execute("SELECT principal_id, principal_type FROM entra_assignments").fetchall())

    def apply_read(
        self, read: GraphRead, *, on_demand: bool = False, stored_assignments: dict[str, str] | None = None,
    ) -> Fold | None:
        """Fold one Graph read into the mirror (inside the cycle's transaction).

        A partial user or group changes only the properties it carries (R14a). ``on_demand``
        reads refresh only the objects they carry: a group read whole replaces its member
        list, a user read whole its list of groups, and nothing else is dropped.

        A read with buffered users leaves them (and its removals) out, and returns the
        ``Fold`` that puts them in (``IncomingRead`` runs it): until it is done, ``entra_users`` is
        missing them (``Fold.take_view`` has the read's view of Entra instead).
        """
        c = self.conn
        self._lay_over_mirror(read)  # (before a full read empties it)
        if read.full and not on_demand:
            for table in ("entra_users", "entra_groups", "entra_members"):
                c.execute(f"DELETE FROM {table}")
        c.executemany(
            "INSERT OR REPLACE INTO entra_users (id, upn, display_name, mail, enabled, user_type) VALUES (?, ?, ?, ?, ?, ?)",
            read.users.values(),  # EntraUser is a named tuple in the column order
        )
        fold = Fold(read) if read.users_buffered else None
        if fold is None:
            c.executemany("DELETE FROM entra_users WHERE id = ?", ((i,) for i in read.removed_users))
        c.executemany(
            "INSERT OR REPLACE INTO entra_groups (id, display_name, security_enabled) VALUES (?, ?, ?)",
            ((g.id, g.display_name, int(g.security_enabled)) for g in read.groups.values()),
        )
        for gid in read.removed_groups:
            c.execute("DELETE FROM entra_groups WHERE id = ?", (gid,))
            c.execute("DELETE FROM entra_members WHERE group_id = ?", (gid,))
        if on_demand:
            c.executemany("DELETE FROM entra_members WHERE group_id = ?", ((gid,) for gid in read.groups_read))
            c.executemany("DELETE FROM entra_members WHERE member_id = ?", ((uid,) for uid in read.users_read))
        if fold is None:  # (else the fold writes them, with the users)
            c.executemany(
                "INSERT OR REPLACE INTO entra_members (group_id, member_id, member_type) VALUES (?, ?, ?)",
                ((gid, mid, kind) for gid, ms in read.members_added.items() for mid, kind in ms.items()),
            )
            c.executemany(
                "DELETE FROM entra_members WHERE group_id = ? AND member_id = ?",
                ((gid, mid) for gid, ms in read.members_removed.items() for mid in ms),
            )
        # assignments come whole every cycle and rarely change: write only the difference
        stored = self.assignments() if stored_assignments is None else stored_assignments
        c.executemany(
            "DELETE FROM entra_assignments WHERE principal_id = ?", ((p,) for p in stored if p not in read.assignments)
        )
        c.executemany(
            "INSERT OR REPLACE INTO entra_assignments (principal_id, principal_type) VALUES (?, ?)",
            ((p, kind) for p, kind in read.assignments.items() if stored.get(p) != kind),
        )
        return fold


class LeftCheckpoints:
    """The WAL of the stores opened for writing inside ``checkpoints_left_to_caller``, to be
    copied back into their databases by the caller: ``behind`` (on a helper thread), or now,
    at the end of the ``with``."""

    def __init__(self) -> None:
        self._holders: dict[Path, sqlite3.Connection] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._behind: Future[None] | None = None

    def _hold(self, path: Path) -> None:
        """Keep a connection of its own open on ``path``, having read it: SQLite copies the
        WAL back when the last connection that read the database closes, so the store's own
        close leaves it to this one."""
        if path not in self._holders:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("SELECT 1 FROM sqlite_master").fetchall()
            self._holders[path] = conn

    def behind(self) -> Future[None]:
        """Copy the WAL back on a helper thread: sqlite3 lets go of the GIL meanwhile, so the
        caller prints its report while it runs. The end of the ``with`` waits for it."""
        if self._behind is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-checkpoint")
            self._behind = self._pool.submit(self._copy_back)
        return self._behind

    def _copy_back(self) -> None:
        while self._holders:
            _, conn = self._holders.popitem()
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # (busy: the next writer's commit or close copies what is left)
            finally:
                conn.close()

    def _finish(self) -> None:
        if self._behind is None:
            self._copy_back()
            return
        assert self._pool is not None
        self._behind.result()
        self._pool.shutdown()


_LEFT_TO_CALLER: list[LeftCheckpoints] = []


@contextmanager
def checkpoints_left_to_caller() -> Iterator[LeftCheckpoints]:
    """While it lasts, a store opened for writing never copies its WAL back into the database
    itself (SQLite's autocheckpoint is off, and its close leaves the WAL): the caller does,
    with the ``LeftCheckpoints`` it gets, ``behind`` a cycle's report or at the end of the
    ``with``, after the store has closed.

    Copying a full cycle's commit back (and syncing the file) costs about what the commit
    does (BENCHMARKS.md): the CLI's ``sync`` does it while it prints, the daemon before it
    sleeps.
    """
    left = LeftCheckpoints()
    _LEFT_TO_CALLER.append(left)
    try:
        yield left
    finally:
        _LEFT_TO_CALLER.remove(left)
        left._finish()


ENTRA_USER_SQL = "SELECT id, upn, display_name, mail, enabled, user_type FROM entra_users"
_WITHIN_REACH = (
    " WHERE id IN (SELECT principal_id FROM entra_assignments) OR id IN (SELECT member_id FROM entra_members)"
    " OR id IN (SELECT entra_id FROM users WHERE entra_id IS NOT NULL)"
)
LOCAL_USER_SQL = "SELECT id, entra_id, user_name, display_name, email, status, managed FROM users"
_UNIVERSE_SQL = "SELECT id FROM entra_users{} UNION SELECT entra_id FROM users WHERE entra_id IS NOT NULL ORDER BY 1"


def entra_user(r: tuple) -> EntraUser:
    # enabled is NULL when Graph never said; "Member" held once, not per row
    return EntraUser(r[0], r[1], r[2], r[3], None if r[4] is None else bool(r[4]), sys.intern(r[5]) if r[5] else r[5])


def local_user(r: tuple) -> LocalUser:
    return LocalUser(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))


def select_in(store: Store, sql: str, ids: Iterable[object]) -> list[tuple]:
    """``sql`` with ``{}`` standing for an IN list (once or more), run over ``ids``.

    The ids go as one JSON array that ``json_each`` turns back into a list: one query
    whatever their number (SQLite caps parameters at 999, and a query per 400 ids may scan
    a table each time: a slice of 100k users made 250 scans of entra_members).
    """
    ids = list(ids)
    if not ids:
        return []
    uses = sql.count("{}")
    return store.conn.execute(sql.format(*["SELECT value FROM json_each(?)"] * uses), [json.dumps(ids)] * uses).fetchall()


@contextmanager
def write_transaction(conn: sqlite3.Connection, *, join: bool = False) -> Iterator[None]:
    """One write transaction on ``conn``, taken at once (BEGIN IMMEDIATE) so a reader never
    has to upgrade; ``join``: inside the caller's own transaction, that one (it commits)."""
    if join and conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def utcnow() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")
