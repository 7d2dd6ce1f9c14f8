"""Errors that end a command with a clear message and a SPEC §5 exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_HELD = 4
EXIT_LOCKED = 5


class SyncdError(Exception):
    """An expected failure: printed as one line, no traceback."""

    exit_code = EXIT_FAILED


class ConfigError(SyncdError):
    """One or more problems in the configuration, each naming its key (``lines``)."""

    exit_code = EXIT_USAGE

    def __init__(self, *lines: str):
        super().__init__("; ".join(lines))
        self.lines = list(lines)


class UsageError(SyncdError):
    exit_code = EXIT_USAGE


class LocalActionRefused(SyncdError):
    """A local command refused by R13 (managed object, sync enabled) or a missing object."""

    exit_code = EXIT_FAILED


class LockHeld(SyncdError):
    exit_code = EXIT_LOCKED


class SourceError(SyncdError):
    """Reading from Graph (or getting a token) failed after retries: the cycle fails (R14).

    ``kind`` is one of: auth, permission, not_found, tls, network, throttled, timeout,
    malformed, server.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str, kind: str = "server", fix: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.fix = fix
        # what the read had sent before it failed (for the failed cycle's report)
        self.graph_requests = 0
        self.throttled = 0

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}; {self.fix}" if self.fix else base


class DeltaExpired(SourceError):
    """A stored delta link was refused (410 Gone, syncStateNotFound): read fully instead (R18)."""

    def __init__(self, message: str = "delta token expired"):
        super().__init__(message, kind="delta_expired")
