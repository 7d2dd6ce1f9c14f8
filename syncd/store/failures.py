"""Per-object failures: a change the store refused is retried in later cycles, with back-off.

Like Entra's escrows: the first retries come at once (the next cycle), then the gaps double,
counted in cycles (2, 4, … up to MAX_SKIP cycles between tries), so one stubborn object does not
make every cycle fail the same way while everything else moves on. While it waits, each cycle
lists it as ``skipped`` with when it is tried again, so it stays visible until it succeeds.
"""

from __future__ import annotations

from ..model import Change
from .db import Store

IMMEDIATE_RETRIES = 2  # failures retried on the very next cycle
MAX_SKIP = 32  # cycles; at 40 minutes a cycle, about a day


def change_key(c: Change) -> str:
    ref = c.entra_id if c.entra_id is not None else f"local:{c.local_id}"
    member = c.user_entra_id if c.object_type == "membership" else None
    return f"{c.object_type}:{c.action}:{ref}:{member or ''}"


def _next_seq(store: Store) -> int:
    row = store.conn.execute("SELECT max(seq) FROM cycles").fetchone()
    return (row[0] or 0) + 1


def hold_back(store: Store, changes: list[Change]) -> int:
    """Mark planned changes still backing off as skipped (an error: the cycle stays partial);
    returns how many."""
    waiting = {
        key: (attempts, until, error)
        for key, attempts, until, error in store.conn.execute(
            "SELECT key, attempts, skip_until_seq, last_error FROM failures"
        )
    }
    if not waiting:
        return 0
    seq = _next_seq(store)
    held = 0
    for c in changes:
        if c.status != "success" or c.action == "skip":
            continue
        found = waiting.get(change_key(c))
        if found and found[1] >= seq:
            attempts, until, error = found
            c.status = "skipped"
            c.error = True
            c.reason = (
                f"failed {attempts} time(s), last: {error}; backing off, tried again in "
                f"{until - seq + 1} cycle(s); {c.reason}"
            )
            held += 1
    return held


def _waiting_keys(store: Store) -> set[str]:
    return {key for (key,) in store.conn.execute("SELECT key FROM failures")}


def record(store: Store, changes: list[Change], now: str) -> None:
    """After applying: count this cycle's failures, forget what succeeded."""
    waiting = _waiting_keys(store)  # usually empty: then only failures cost anything
    seq = _next_seq(store)
    c_ = store.conn
    for c in changes:
        if c.action == "skip" or (c.status != "failure" and not waiting):
            continue
        key = change_key(c)
        if c.status == "success":
            if key in waiting:
                c_.execute("DELETE FROM failures WHERE key = ?", (key,))
        elif c.status == "failure":
            row = c_.execute("SELECT attempts FROM failures WHERE key = ?", (key,)).fetchone()
            attempts = (row[0] if row else 0) + 1
            skip = 0 if attempts <= IMMEDIATE_RETRIES else min(2 ** (attempts - IMMEDIATE_RETRIES), MAX_SKIP)
            c_.execute(
                "INSERT INTO failures (key, name, attempts, skip_until_seq, last_error, first_failed_at, last_failed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET attempts = excluded.attempts,"
                " skip_until_seq = excluded.skip_until_seq, last_error = excluded.last_error,"
                " last_failed_at = excluded.last_failed_at",
                (key, c.name, attempts, seq + skip, c.failure or c.reason, now, now),
            )


class Forgetting:
    """A failed change the plan no longer wants (Entra moved on) stops waiting.

    Built before the plan is applied; ``wanted_by`` takes the plan's changes (or each
    slice's, cycle.py) and keeps only the keys of failures waiting, not one per change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.waiting = _waiting_keys(store)
        self.wanted: set[str] = set()

    def wanted_by(self, changes: list[Change]) -> None:
        if self.waiting:
            self.wanted.update(k for k in (change_key(c) for c in changes if c.action != "skip") if k in self.waiting)

    def forget(self) -> None:
        self.store.conn.executemany("DELETE FROM failures WHERE key = ?", ((key,) for key in self.waiting - self.wanted))
