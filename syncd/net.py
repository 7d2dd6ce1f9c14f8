"""What the Graph source and the SCIM push share about HTTP (neither imports the other)."""

from __future__ import annotations

import math
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:,.*)?")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when there is none or it is
    unreadable.

    Whole seconds (RFC 9110), decimal seconds (Graph's throttling page shows ``2.128``) or
    an HTTP date (seconds from ``now`` until then, 0 once past). A repeated header joined
    by a comma (``2, 2``) counts once.
    """
    if value is None:
        return None
    text = str(value).strip()
    m = _SECONDS.fullmatch(text)
    if m:
        seconds = float(m.group(1))
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Check:
    """One line of `syncd test-connection`: Graph's or an application's."""

    name: str
    ok: bool | None  # None: skipped
    detail: str
    fix: str | None = None


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1, for a local server (the demo's, the tests')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen, timeout_s: float) -> bool:
    """Whether ``process`` listens on ``port`` at 127.0.0.1 within ``timeout_s``; False as
    soon as it exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
