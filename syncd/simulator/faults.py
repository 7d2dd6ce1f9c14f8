"""Fault injection: make chosen requests fail the ways real networks and Graph do.

A :class:`Fault` matches requests by a regex on the path and query; the first active fault
that matches a request is applied to it (one fault per request). ``after`` skips the first
N matching requests; ``times`` bounds how often it fires (-1 = always).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

KINDS = frozenset({
    "status",  # answer `status` with an error body (+ Retry-After when given)
    "reset",  # close the TCP connection without answering
    "slow",  # sleep `delay` seconds, then answer normally
    "truncated",  # full Content-Length, half the body, close
    "invalid_json",  # a 200 whose body is not JSON
    "drop_nextlink",  # a page with neither nextLink nor deltaLink
    "loop_nextlink",  # a page whose nextLink points at itself
    "malformed_item",  # one item with a non-GUID id (variant="missing_id": no id at all)
    "duplicate_items",  # the page also replays the previous page's items
})
RETRY_AFTER_FORMATS = ("seconds", "decimal", "date")
PAGE_KINDS = frozenset({"drop_nextlink", "loop_nextlink", "malformed_item", "duplicate_items"})


@dataclass(eq=False)
class Fault:
    path: str
    kind: str
    times: int = 1
    status: int | None = None
    retry_after: float | None = None  # None: 1 s for 429/503, none for others; < 0: never
    # how Retry-After is written: "seconds" (2, or 2.128 when given so), "decimal" (always
    # 2.000-style), "date" (an HTTP date retry_after seconds ahead)
    retry_after_format: str = "seconds"
    delay: float | None = None
    after: int = 0
    variant: str | None = None  # malformed_item: "bad_id" (default) | "missing_id"
    method: str | None = None  # only requests with this method (None = any)
    hits: int = field(default=0, init=False)  # times applied
    seen: int = field(default=0, init=False)  # matching requests, applied or not

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")
        if self.kind == "status" and self.status is None:
            raise ValueError("a 'status' fault needs status=")
        if self.kind == "slow" and self.delay is None:
            raise ValueError("a 'slow' fault needs delay=")
        if self.retry_after_format not in RETRY_AFTER_FORMATS:
            raise ValueError(f"retry_after_format must be one of {RETRY_AFTER_FORMATS}")
        self._regex = re.compile(self.path)

    @property
    def exhausted(self) -> bool:
        return self.times != -1 and self.hits >= self.times


class FaultSet:
    """The simulator's active faults (``sim.faults``); thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.hits: Counter[str] = Counter()  # kind -> times applied

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.hits.clear()

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    def __iter__(self):
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        return len(self._faults)

    def pick(self, method: str, target: str) -> Fault | None:
        """The fault to apply to this request, counted as applied; None for a clean answer."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or (fault.method and fault.method != method):
                    continue
                if not fault._regex.search(target):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                fault.hits += 1
                self.hits[fault.kind] += 1
                return fault
        return None
