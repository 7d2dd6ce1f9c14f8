"""SQLite's own work on a helper thread while the cycle's thread runs pure Python.

sqlite3 lets go of the GIL while a statement runs, so one long statement (an
``INSERT … SELECT``, a ``CREATE INDEX``) costs no wall time beside Python that does not
touch the database. Many short statements would not do: each binds its parameters
holding the GIL, and hands it back and forth with the other thread (BENCHMARKS.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def alongside(work: Callable[[], None], name: str) -> Iterator[None]:
    """Run ``work`` on a helper thread for the length of a ``with`` block.

    Inside the block nothing may use the connection ``work`` uses (sqlite3 does not
    serialize one connection's statements across threads). The helper is joined when the
    block ends, also when the block failed (the transaction rolls back after it); then a
    failure of ``work`` is raised.
    """
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            failed.append(exc)

    helper = threading.Thread(target=run, name=name, daemon=True)
    helper.start()
    try:
        yield
    finally:
        helper.join()
    if failed:
        raise failed[0]
