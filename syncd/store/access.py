"""Whether this process may use the store where the configuration puts it, said in words.

The store is a file plus its ``-wal``, ``-shm`` and ``.lock`` siblings, so writing needs the
file *and its directory* writable. An operator who meets a store they cannot use is told
the path, the user syncd runs as, and who owns what (one line, exit 2: a restart cannot
fix it), never a ``PermissionError``. No SQLite here: ``check-config`` uses it too.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from pathlib import Path

from ..errors import EXIT_USAGE, SyncdError

SIBLINGS = ("-wal", "-shm")
LOOSE = stat.S_IRWXG | stat.S_IRWXO


class StoreAccessError(SyncdError):
    """The store is missing, or this user may not read or write it where it is."""

    exit_code = EXIT_USAGE


def user_name(uid: int) -> str:
    with contextlib.suppress(KeyError):
        return pwd.getpwuid(uid).pw_name
    return f"uid {uid}"


def _who() -> str:
    return f"user {user_name(os.geteuid())}"


def _owned(path: Path) -> str:
    st = path.stat()
    return f"owned by {user_name(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o}"


def _can(path: Path, mode: int) -> bool:
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def write_problem(db: Path) -> str | None:
    """Why this process cannot create or write the store ``db``; None when it can."""
    who = _who()
    directory = db.parent
    if not directory.exists():
        ancestor = _existing_ancestor(directory)
        if not ancestor.is_dir():
            return f"the store's directory {directory} cannot be created: {ancestor} is not a directory"
        if not _can(ancestor, os.W_OK | os.X_OK):
            return (
                f"the store's directory {directory} cannot be created: {ancestor} is not writable by {who} "
                f"({_owned(ancestor)}): create {directory} for {who.removeprefix('user ')}, or set store.path elsewhere"
            )
        return None
    if not directory.is_dir():
        return f"the store's directory {directory} is not a directory"
    if not _can(directory, os.W_OK | os.X_OK):
        return (
            f"the store's directory {directory} is not writable by {who} ({_owned(directory)}): "
            f"chown {who.removeprefix('user ')} {directory} (or run syncd as its owner), or set store.path elsewhere"
        )
    for p in (db, *(Path(f"{db}{s}") for s in SIBLINGS)):
        if p.exists() and not _can(p, os.R_OK | os.W_OK):
            try:
                owned = _owned(p)
            except FileNotFoundError:
                continue  # gone meanwhile (the last connection of a checkpoint removes -wal/-shm): nothing to refuse
            return (
                f"the store {p} is not writable by {who} ({owned}): "
                f"chown {who.removeprefix('user ')} {p} (or run syncd as its owner)"
            )
    return None


def read_problem(db: Path, config_path: str | None = None) -> str | None:
    """Why this process cannot read the store ``db`` (missing included); None when it can."""
    if not db.exists():
        where = f" (store.path in {config_path})" if config_path else " (store.path)"
        return (
            f"no store at {db}{where}: check the path, or create the store with a first cycle "
            "(`syncd sync`, or `syncd sync --dry-run`)"
        )
    if not db.is_file():
        return f"the store {db} is not a file"
    if not _can(db, os.R_OK):
        return f"the store {db} is not readable by {_who()} ({_owned(db)}): run syncd as its owner"
    return None


def wal_read_problem(db: Path) -> str | None:
    """Why SQLite could not open the store for reading although the file is readable: reading
    a WAL store needs its -shm file, which only a user who may write the directory creates."""
    shm = Path(f"{db}-shm")
    if not shm.exists() and not _can(db.parent, os.W_OK | os.X_OK):
        return (
            f"the store {db} cannot be read by {_who()}: SQLite needs {shm} beside it, which only a user who may "
            f"write {db.parent} ({_owned(db.parent)}) can create: run syncd as the store's owner"
        )
    return None


def loose(db: Path) -> list[Path]:
    """The store's files that users other than its owner may read or write."""
    out = []
    for p in (db, *(Path(f"{db}{s}") for s in SIBLINGS)):
        with contextlib.suppress(OSError):
            if p.stat().st_mode & LOOSE:
                out.append(p)
    return out


def tighten(db: Path) -> None:
    """The store's files to 0600: they hold the directory, the mirror and the audit trail."""
    for p in loose(db):
        with contextlib.suppress(OSError):
            os.chmod(p, 0o600)


def loose_warning(paths: list[Path]) -> str:
    modes = ", ".join(f"{p} ({stat.S_IMODE(p.stat().st_mode):04o})" for p in paths)
    return f"the store is readable by other users: {modes}; the next cycle or write command makes it 0600 (or chmod 600 it)"


def give_to_directory_owner(path: Path) -> None:
    """A file root creates in a directory owned by another user (the service user's state
    directory) is given to that user, so the service can still open it afterwards.
    SQLite does the same for the -wal and -shm files it creates as root."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        st = path.parent.stat()
        if st.st_uid != 0:
            os.chown(path, st.st_uid, st.st_gid)


def describe(db: Path) -> str:
    """One line for ``check-config``: what the store path holds, for this user."""
    if db.exists():
        return f"{db} exists ({_owned(db)})"
    return f"{db} does not exist yet: the first cycle (or `syncd users add`, `groups add`, `invites add`) creates it"
