"""Knobs for the Graph source: timeouts, retry counts and delays, and the cycle deadline.

Production uses the defaults; tests pass a ``Tuning`` with tiny delays so that retry paths
run in milliseconds. Nothing here imports msal or msgraph.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from ..errors import SourceError


@dataclass(frozen=True)
class Tuning:
    # per HTTP request (httpx for Graph, requests for the token endpoint)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    # transient errors (500, 502, resets, timeouts, and 429/503/504 left over by the
    # RetryHandler): attempts per request, exponential backoff with full jitter
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    # 429/503/504 retried by the SDK's RetryHandler (Retry-After honoured). Kiota allows
    # at most 10; a throttled tenant can need several in a row.
    throttle_retries: int = 10
    # what the token endpoint's Retry-After may ask before we give up instead of waiting
    token_retry_after_max_s: float = 120.0
    page_size: int = 999

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for attempt 1, 2, ... (AWS architecture blog)."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class Retryable(Exception):
    """A transient failure (Graph or the token endpoint), carrying the SourceError to raise
    when retries run out and the Retry-After the server asked for, if any."""

    def __init__(self, final: SourceError, retry_after: float | None = None) -> None:
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


def tuning_from_env(value: str | None) -> Tuning:
    """``SYNCD_TUNING="backoff_initial_s=0.02,backoff_max_s=0.1"``: shorter waits for tests.

    Meant for test suites that drive the real CLI in a subprocess; operators need not set
    it. Only the fields above, as numbers; anything else is ignored.
    """
    changes: dict[str, Any] = {}
    fields = {f.name: f.type for f in dataclasses.fields(Tuning)}
    for part in (value or "").split(","):
        key, _, raw = part.partition("=")
        key = key.strip()
        if key not in fields:
            continue
        try:
            changes[key] = int(raw) if fields[key] in ("int", int) else float(raw)
        except ValueError:
            continue
    return dataclasses.replace(Tuning(), **changes)


DEFAULT_TUNING = tuning_from_env(os.environ.get("SYNCD_TUNING"))


class Deadline:
    """The cycle budget (R17), shared by every retry loop so no sleep outlives it."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float:
        if self._end is None:
            return float("inf")
        return max(0.0, self._end - time.monotonic())

    def allows(self, delay: float) -> bool:
        """Whether sleeping ``delay`` seconds still leaves the budget unspent."""
        return delay < self.remaining()

    @classmethod
    def unbounded(cls) -> Deadline:
        return cls(None)
