"""R19: never two cycles at once, across the daemon and one-shot commands.

An ``flock`` on ``<store>.lock``; the holder writes its pid, command and start time into the
file so a waiting command can say who holds it. The kernel drops the lock when the holder
dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .errors import LockHeld


def _holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode()
        info = json.loads(raw)
        return f"pid {info['pid']} ({info['command']}), started {info['started_at']}"
    except (OSError, ValueError, KeyError):
        return "another syncd process"


def _open(path: str) -> int:
    """The lock file, created 0600 (for the store directory's owner when root creates it)."""
    from .store import access

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        created = not os.path.exists(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError as exc:
        problem = access.write_problem(Path(path[: -len(".lock")]))
        raise access.StoreAccessError(problem or f"the lock file {path} cannot be opened: {exc.strerror}") from None
    if created:
        access.give_to_directory_owner(Path(path))
    return fd


@contextmanager
def cycle_lock(store_path: str, *, wait: float = 0, command: str = "syncd sync") -> Iterator[None]:
    path = f"{store_path}.lock"
    fd = _open(path)
    try:
        deadline = time.monotonic() + max(wait, 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(
                        f"another cycle is running: {_holder(fd)}; "
                        f"waited {wait:g} s (use --wait SECONDS to wait longer)"
                    ) from None
                time.sleep(0.1)
        info = {"pid": os.getpid(), "command": command, "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
