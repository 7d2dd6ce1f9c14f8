"""sd_notify(3) without a dependency: one datagram to ``$NOTIFY_SOCKET``.

Under systemd (``Type=notify``) the daemon sends READY=1 once it is scheduled, STATUS=… after
every cycle, WATCHDOG=1 while it is healthy and STOPPING=1 when it shuts down. Outside systemd
(no ``$NOTIFY_SOCKET``) every call is a no-op that returns False.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("syncd.notify")


def _address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    if addr[0] == "@":  # abstract namespace
        return "\0" + addr[1:]
    if addr[0] != "/":
        return None  # vsock and friends: not supported
    return addr


def notify(*fields: str) -> bool:
    """Send ``KEY=value`` fields in one datagram; True when it was sent."""
    addr = _address()
    if addr is None:
        return False
    message = "\n".join(f.replace("\n", " ") for f in fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # a manager that does not read (a full queue) must not hang the daemon
            sock.settimeout(1.0)
            sock.connect(addr)
            sock.sendall(message)
        return True
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", addr, exc)
        return False


def ready(status: str | None = None) -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def reloading() -> bool:
    # systemd >= 253 (Type=notify-reload) wants MONOTONIC_USEC with RELOADING=1
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when not asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process (e.g. our parent)
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
