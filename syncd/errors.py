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

    Each kind of failure is a subclass below; ``kind`` names it in reports and tests.
    """

    exit_code = EXIT_FAILED
    kind = "server"

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix
        # what the read had sent before it failed (for the failed cycle's report)
        self.graph_requests = 0
        self.throttled = 0

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}; {self.fix}" if self.fix else base


class AuthRefused(SourceError):
    """No token: the credential, the tenant or the app registration was refused."""

    kind = "auth"


class PermissionMissing(SourceError):
    """Graph answered 403: a permission or its admin consent is missing."""

    kind = "permission"


class NotFound(SourceError):
    """What was asked for does not exist in Entra ID (a --user, --group, the application)."""

    kind = "not_found"


class TlsFailed(SourceError):
    """The TLS handshake failed, or the certificate is not trusted."""

    kind = "tls"


class NetworkFailed(SourceError):
    """The host could not be reached (DNS, connection, proxy, a timeout per request)."""

    kind = "network"


class Throttled(SourceError):
    """Still throttled (429) after the retries the cycle's budget allowed."""

    kind = "throttled"


class TimedOut(SourceError):
    """The cycle's time budget ran out (sync.cycle_timeout_minutes)."""

    kind = "timeout"


class Malformed(SourceError):
    """An answer Graph's documentation does not allow (R14)."""

    kind = "malformed"


class ServerFailed(SourceError):
    """Graph (or the token endpoint) kept failing, or answered what syncd cannot use."""

    kind = "server"


class ReadCancelled(SourceError):
    """The service is stopping: the read was abandoned."""

    kind = "cancelled"


class DeltaExpired(SourceError):
    """A stored delta link was refused (410 Gone, syncStateNotFound): read fully instead (R18)."""

    kind = "delta_expired"

    def __init__(self, message: str = "delta token expired"):
        super().__init__(message)
