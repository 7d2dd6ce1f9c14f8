"""The SQLite schema and its migrations.

``MIGRATIONS[n]`` takes a store from version n to n+1; ``PRAGMA user_version`` records where a
store is. A store made by a newer syncd is refused rather than guessed at.

A step is a script of statements, or a function given the connection. Every pending step
runs in one transaction with foreign keys off (SQLite's procedure for changing a schema:
the keys are checked before the commit), so a step may rebuild a table the way ALTER TABLE
cannot: ``database(conn)[table].transform(types=..., rename=..., drop=..., not_null=...)``
(sqlite-utils, over the same connection and inside the same transaction). sqlite-utils is
imported only when a store has a step pending, never by a cycle or a read-only command.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from ..errors import SyncdError
from ..report.chunks import pack

V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);

-- the local directory
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    entra_id TEXT UNIQUE,
    user_name TEXT NOT NULL,
    display_name TEXT,
    email TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    managed INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_cycle_id TEXT
);
CREATE INDEX users_user_name ON users (user_name COLLATE NOCASE);
CREATE INDEX users_email ON users (email COLLATE NOCASE);
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    entra_id TEXT UNIQUE,
    name TEXT NOT NULL,
    managed INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX groups_name ON groups (name COLLATE NOCASE);
CREATE TABLE memberships (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships (user_id);
CREATE TABLE invites (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'revoked', 'accepted')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- the mirror of Entra, kept current by delta reads
CREATE TABLE entra_users (
    id TEXT PRIMARY KEY,
    upn TEXT,
    display_name TEXT,
    mail TEXT,
    enabled INTEGER NOT NULL,
    user_type TEXT
) WITHOUT ROWID;
CREATE TABLE entra_groups (
    id TEXT PRIMARY KEY,
    display_name TEXT,
    security_enabled INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE entra_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    member_type TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE TABLE entra_assignments (
    principal_id TEXT PRIMARY KEY,
    principal_type TEXT NOT NULL
) WITHOUT ROWID;

-- deactivations held back by R15, waiting for --approve-deactivations
CREATE TABLE staged_deactivations (
    entra_id TEXT PRIMARY KEY,
    user_id INTEGER,
    cycle_id TEXT NOT NULL,
    reason TEXT
);

-- audit: one row per cycle, one per entry
CREATE TABLE cycles (
    seq INTEGER PRIMARY KEY,
    cycle_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    mode TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    document TEXT NOT NULL,      -- the canonical JSON of the report (SPEC §4) without entries
    entry_count INTEGER NOT NULL,
    hash TEXT NOT NULL,          -- sha256 over document, entries and prev_hash
    prev_hash TEXT NOT NULL
);
CREATE INDEX cycles_started ON cycles (started_at);
CREATE TABLE entries (
    cycle_seq INTEGER NOT NULL REFERENCES cycles (seq) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    entry TEXT NOT NULL,         -- canonical JSON of one entry
    PRIMARY KEY (cycle_seq, n)
) WITHOUT ROWID;
"""

# V2: changes the store refused, retried in later cycles with back-off (Entra's "escrows")
V2 = """
CREATE TABLE failures (
    key TEXT PRIMARY KEY,        -- which change: object type, action, Entra ids
    name TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    skip_until_seq INTEGER NOT NULL,  -- cycles up to this sequence number do not retry it
    last_error TEXT,
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL
) WITHOUT ROWID;
"""

# V3: report entries a thousand to a row, compressed (chunks.py): the old rows move over
V3_TABLE = """
CREATE TABLE entry_chunks (
    cycle_seq INTEGER NOT NULL REFERENCES cycles (seq) ON DELETE CASCADE,
    first_n INTEGER NOT NULL,    -- number of the chunk's first entry: 0, 1000, ...
    entries BLOB NOT NULL,       -- chunks.pack: canonical JSON entries, one per line, zlib
    PRIMARY KEY (cycle_seq, first_n)
) WITHOUT ROWID;
"""


def insert_chunks(conn: sqlite3.Connection, cycle_seq: int, packed: Iterable[tuple[int, bytes]]) -> None:
    """Store one cycle's entries: (first entry's number, stored bytes) per chunk (``report.chunks``)."""
    conn.executemany(
        "INSERT INTO entry_chunks (cycle_seq, first_n, entries) VALUES (?, ?, ?)",
        ((cycle_seq, first, stored) for first, stored in packed),
    )


def v3_chunk_entries(conn: sqlite3.Connection) -> None:
    for statement in _statements(V3_TABLE):
        conn.execute(statement)
    seqs = [r[0] for r in conn.execute("SELECT DISTINCT cycle_seq FROM entries ORDER BY cycle_seq")]
    for seq in seqs:
        rows = conn.execute("SELECT entry FROM entries WHERE cycle_seq = ? ORDER BY n", (seq,))
        insert_chunks(conn, seq, pack(r[0] for r in rows))
    conn.execute("DROP TABLE entries")


# V4: the mirror's accountEnabled may be unknown (NULL): a user Graph sent without it, and
# never whole, is neither enabled nor disabled (R14a)
V4 = """
CREATE TABLE entra_users_v4 (
    id TEXT PRIMARY KEY,
    upn TEXT,
    display_name TEXT,
    mail TEXT,
    enabled INTEGER,
    user_type TEXT
) WITHOUT ROWID;
INSERT INTO entra_users_v4 SELECT id, upn, display_name, mail, enabled, user_type FROM entra_users;
DROP TABLE entra_users;
ALTER TABLE entra_users_v4 RENAME TO entra_users;
"""

# V5: SCIM applications (SPEC §7, store/apps.py): each one's ids for local objects, what was
# last pushed there, the pushes that failed (retried with back-off) and each one's last push
# (IF NOT EXISTS: a store rolled back to an older user_version by hand keeps migrating)
V5_APPS = """
CREATE TABLE IF NOT EXISTS app_users (
    app TEXT NOT NULL,           -- the [[scim]] name
    user_id INTEGER NOT NULL,    -- local users.id (users are never deleted)
    app_id TEXT NOT NULL,        -- the application's id for the user
    user_name TEXT NOT NULL,     -- what the application holds, as last pushed or read
    display_name TEXT,
    email TEXT,
    active INTEGER NOT NULL,
    external_id TEXT,
    PRIMARY KEY (app, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS app_users_app_id ON app_users (app, app_id);
CREATE TABLE IF NOT EXISTS app_groups (
    app TEXT NOT NULL,
    group_id INTEGER NOT NULL,   -- local groups.id; the row outlives the local group until its DELETE is pushed
    app_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    external_id TEXT,
    created INTEGER NOT NULL,    -- 1: syncd created it, 0: syncd linked an existing one (R22)
    PRIMARY KEY (app, group_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS app_members (
    app TEXT NOT NULL,
    group_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    PRIMARY KEY (app, group_id, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS app_failures (
    app TEXT NOT NULL,
    key TEXT NOT NULL,           -- which object: user:ID, group:ID
    name TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    skip_until INTEGER NOT NULL, -- pushes up to this number do not retry it (full reconciles do)
    last_error TEXT,
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL,
    PRIMARY KEY (app, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS app_pushes (
    app TEXT PRIMARY KEY,
    pushes INTEGER NOT NULL,     -- pushes sent so far (not dry runs): the clock of the back-off
    cycle_id TEXT,
    status TEXT,
    ended_at TEXT,
    requests INTEGER,
    errors TEXT                  -- JSON list of the last push's errors
);
"""

# V6: a cycle the service stopped (SIGTERM) is recorded, but is no failure of the service:
# it neither counts towards the daemon's back-off nor breaks a run of failures
def v6_interrupted(conn: sqlite3.Connection) -> None:
    if "interrupted" not in {r[1] for r in conn.execute("PRAGMA table_info(cycles)")}:  # (a store set back by hand has it)
        conn.execute("ALTER TABLE cycles ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0")


# a script of statements, or a function given the connection (inside the migration's transaction)
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [V1, V2, v3_chunk_entries, V4, V5_APPS, v6_interrupted]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(version: int, path: object) -> None:
    if version > SCHEMA_VERSION:
        raise SyncdError(
            f"the store {path} was written by a newer syncd (schema {version}, this one knows {SCHEMA_VERSION}): "
            "upgrade syncd"
        )


def database(conn: sqlite3.Connection):  # -> sqlite_utils.Database
    """sqlite-utils over ``conn`` (for migration steps: ``Table.transform()`` and friends)."""
    import sqlite_utils

    return sqlite_utils.Database(conn, execute_plugins=False, recursive_triggers=False)


def migrate(conn: sqlite3.Connection, path: object = "") -> int:
    """Bring the store to ``SCHEMA_VERSION``; returns how many steps ran (0: nothing pending)."""
    version = schema_version(conn)
    check_version(version, path)
    if version == SCHEMA_VERSION:
        return 0
    db = database(conn)  # (imported here: only a store with a step pending pays for it)
    conn.execute("PRAGMA foreign_keys = OFF")  # (a no-op inside a transaction: set before it)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)  # (another process may have migrated meanwhile)
            for n in range(version, SCHEMA_VERSION):
                step = MIGRATIONS[n]
                if callable(step):
                    step(conn)
                else:
                    for statement in _statements(step):
                        db.execute(statement)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise SyncdError(f"migrating the store {path} would break {len(broken)} reference(s) (first: {broken[0]}): nothing changed")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return SCHEMA_VERSION - version


def _statements(script: str) -> list[str]:
    out, buf = [], []
    for line in script.splitlines():
        stripped = line.split("--", 1)[0].rstrip()
        if not stripped:
            continue
        buf.append(stripped)
        if stripped.endswith(";") and sqlite3.complete_statement("\n".join(buf)):
            out.append("\n".join(buf))
            buf = []
    return out
