"""The Graph HTTP client: msgraph-sdk's request adapter and middleware, raw pages out.

Layers, outside in, for one page:

1. ``GraphClient.get_page`` - tenacity: 500/502, resets, timeouts (and any 429/503/504
   the RetryHandler gave back) with exponential backoff + jitter; one forced token
   refresh on a 401; errors classified into ``SourceError`` kinds. Bounded by the cycle
   ``Deadline``.
2. ``GraphRequestAdapter.send_primitive_async(info, "bytes", ...)`` - the SDK adds the
   bearer token (``MsalTokenProvider``, Graph host only) and returns the raw body: we
   skip Kiota model building, thousands of times slower than orjson (BENCHMARKS.md).
3. The SDK's middleware (redirect, retry, parameter decoding, user agent, telemetry) with
   ``DeadlineRetryHandler`` in place of the stock RetryHandler: 429/503/504 honour
   Retry-After (whole or decimal seconds, or an HTTP date: ``parse_retry_after``), up to
   10 retries, never sleeping past the cycle budget.
4. ``CountingTransport`` under everything: counts each request put on the wire (retries
   included) and each 429/503/504 answer.

Imported lazily (it pulls in msgraph/kiota): ``import syncd.source`` stays cheap.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
from kiota_abstractions.api_client_builder import register_default_deserializer
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.request_information import RequestInformation
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from kiota_http.middleware.options import RetryHandlerOption
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph import GraphRequestAdapter
from msgraph.graph_request_adapter import options as SDK_MIDDLEWARE_OPTIONS
from msgraph_core import GraphClientFactory
from msgraph_core.middleware import GraphTelemetryHandler
from msgraph_core.middleware.options import GraphTelemetryHandlerOption
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ..config import EntraConfig
from ..errors import (
    AuthRefused,
    DeltaExpired,
    Malformed,
    NetworkFailed,
    NotFound,
    PermissionMissing,
    ServerFailed,
    SourceError,
    Throttled,
)
from ..net import parse_retry_after
from ..tls import CA_BUNDLE_FIX, is_certificate_failure, proxy_for, ssl_context, tls_error
from .auth import TokenSource, redact
from .tuning import Deadline, Retryable, Tuning

log = logging.getLogger("syncd.source.graph")

THROTTLE_STATUS = frozenset({429, 503, 504})
TRANSIENT_STATUS = frozenset({500, 502}) | THROTTLE_STATUS
DELTA_EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})


class RequestCounter:
    def __init__(self) -> None:
        self.graph_requests = 0
        self.throttled = 0

    def reset(self) -> None:
        self.graph_requests = 0
        self.throttled = 0


# set in a prefetch's task (GraphClient.prefetch): set once its request is on the wire
_ON_WIRE: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar("syncd_on_wire", default=None)


async def _trace(event: str, info: dict[str, Any]) -> None:
    # httpx's "trace" request extension: httpcore reports each step of the exchange
    if event.endswith(".send_request_body.complete") and (on_wire := _ON_WIRE.get()) is not None:
        on_wire.set()


class CountingTransport(httpx.AsyncBaseTransport):
    """Innermost transport: sees every request the middleware puts on the wire."""

    def __init__(self, inner: httpx.AsyncBaseTransport, counter: RequestCounter) -> None:
        self._inner = inner
        self._counter = counter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._counter.graph_requests += 1
        if _ON_WIRE.get() is not None:
            request.extensions["trace"] = _trace
        response = await self._inner.handle_async_request(request)
        if response.status_code in THROTTLE_STATUS:
            self._counter.throttled += 1
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class DeadlineRetryHandler(RetryHandler):
    """The SDK's RetryHandler, with our Retry-After parsing, our backoff and the cycle deadline.

    Retry-After is used as given (Graph's throttling guidance), read by
    ``parse_retry_after``: the stock parser takes only whole seconds or a date and drops
    Graph's decimal ``2.128``. Without it, our jittered exponential backoff. A delay the
    cycle budget cannot afford is refused (the stock handler refuses >= 180 s the same
    way) so the read fails now with "throttled" rather than sleeping into the timeout.
    """

    def __init__(self, options: RetryHandlerOption, tuning: Tuning, deadline: Callable[[], Deadline]) -> None:
        super().__init__(options)
        self._tuning = tuning
        self._deadline = deadline

    def get_delay_time(self, retry_count: int, response: httpx.Response | None = None, delay: float = 0.0) -> float:
        retry_after = parse_retry_after(response.headers.get("retry-after")) if response is not None else None
        wait = retry_after if retry_after else self._tuning.backoff(retry_count + 1)
        if not self._deadline().allows(wait):
            return RetryHandlerOption.MAX_DELAY  # = "do not retry" for RetryHandler.send
        return wait


class MsalTokenProvider(AccessTokenProvider):
    """Kiota's token hook: asks msal (its cache avoids re-fetching) for Graph URLs only."""

    def __init__(self, tokens: TokenSource, graph_host: str) -> None:
        self._tokens = tokens
        self._validator = AllowedHostsValidator([graph_host])
        self._lock: asyncio.Lock | None = None

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator

    async def get_authorization_token(self, uri: str, additional_authentication_context: dict[str, Any] = {}) -> str:  # noqa: B006 (kiota's signature)
        if not uri or urlparse(uri).scheme != "https" or not self._validator.is_url_host_valid(uri):
            return ""  # no token for any other host or plain http
        claims = additional_authentication_context.get("claims")
        challenge = base64.b64decode(claims + "==").decode() if claims else None
        if challenge is None and (token := self._tokens.current()):
            return token
        if self._lock is None:
            self._lock = asyncio.Lock()
        # one thread hop at a time: concurrent chains share one token fetch via msal's cache
        async with self._lock:
            return await asyncio.to_thread(self._tokens.acquire, challenge)

    async def refresh(self, rejected_token: str) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await asyncio.to_thread(self._tokens.refresh, rejected_token)


@dataclass(frozen=True)
class PageRequest:
    """What is being fetched, for messages and error fixes."""

    build: Callable[[], RequestInformation]
    what: str  # e.g. "users delta"
    permission: str  # the Graph permission this read needs
    delta: bool = False  # a 410 / syncStateNotFound means "delta link expired"
    not_found: str | None = None  # message when 404 (None: a plain not_found error)
    not_found_fix: str | None = None


class GraphClient:
    """One httpx client + GraphRequestAdapter for one GraphSource."""

    def __init__(self, entra: EntraConfig, tokens: TokenSource, tuning: Tuning, deadline: Callable[[], Deadline]) -> None:
        self.entra = entra
        self.tuning = tuning
        self.deadline = deadline
        self.counter = RequestCounter()
        self.graph_host = urlparse(entra.graph_endpoint).hostname or ""
        self.base_url = entra.graph_endpoint.rstrip("/") + "/v1.0"
        self._secrets = [entra.credential.secret or ""]
        self.tokens = tokens
        self.token_provider = MsalTokenProvider(tokens, self.graph_host)
        inner = httpx.AsyncHTTPTransport(
            verify=ssl_context(entra.ca_bundle),
            proxy=proxy_for(entra.graph_endpoint),
            retries=0,  # connection retries are ours (tenacity), and counted
        )
        http = httpx.AsyncClient(
            transport=CountingTransport(inner, self.counter),
            trust_env=False,  # no env CA/proxy overrides; proxies resolved explicitly
            timeout=httpx.Timeout(tuning.read_timeout_s, connect=tuning.connect_timeout_s),
        )
        http = self._with_middleware(http)
        # error bodies (ODataError) are parsed by Kiota: register its JSON parser, as
        # GraphServiceClient does (the registry is a process-wide singleton)
        register_default_deserializer(JsonParseNodeFactory)
        self.adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(self.token_provider), client=http)
        self.adapter.base_url = self.base_url
        self._http = http

    def _with_middleware(self, http: httpx.AsyncClient) -> httpx.AsyncClient:
        """GraphClientFactory's default pipeline, with DeadlineRetryHandler for RetryHandler.

        (``create_with_default_middleware`` builds the stock RetryHandler itself; we need
        our delay policy, so we assemble the same list and use the custom entry point.)
        """
        option = RetryHandlerOption(delay=0.0, max_retries=self.tuning.throttle_retries)
        # the SDK's own options (its telemetry header carries the msgraph-sdk version)
        options = {**SDK_MIDDLEWARE_OPTIONS, RetryHandlerOption.get_key(): option}
        middleware = KiotaClientFactory.get_default_middleware(options)
        middleware = [
            DeadlineRetryHandler(option, self.tuning, self.deadline) if isinstance(m, RetryHandler) else m
            for m in middleware
        ]
        middleware.append(GraphTelemetryHandler(options=options[GraphTelemetryHandlerOption.get_key()]))
        return GraphClientFactory.create_with_custom_middleware(middleware, client=http)

    # ------------------------------------------------------------------ links

    def check_link(self, link: str, what: str) -> str:
        return check_link(self.base_url, link, what)

    def path_of(self, info: RequestInformation) -> str:
        """The URL path of a request, for messages (no query: links carry opaque state)."""
        self.adapter.set_base_url_for_request_information(info)
        try:
            return urlparse(info.url).path
        except Exception:  # a template that cannot expand: name the template
            return str(info.url_template)

    # ------------------------------------------------------------------ fetching

    async def get_page(self, request: PageRequest) -> bytes:
        """The raw body of one GET, after retries; any failure is a SourceError."""
        state = {"refreshed": False}

        def wait(retry_state: RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, Retryable) and exc.retry_after:
                return exc.retry_after
            return self.tuning.backoff(retry_state.attempt_number)

        def stop(retry_state: RetryCallState) -> bool:
            return retry_state.attempt_number >= self.tuning.max_attempts or not self.deadline().allows(
                retry_state.upcoming_sleep
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, Retryable)),
            wait=wait,
            stop=stop,
            reraise=True,
            before_sleep=lambda rs: log.info(
                "%s: %s (attempt %d); retrying in %.2fs",
                request.what, rs.outcome.exception() if rs.outcome else "?", rs.attempt_number, rs.upcoming_sleep,
            ),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(request, state)
        except Retryable as exc:
            raise exc.final from None
        raise AssertionError("unreachable")

    async def prefetch(self, request: PageRequest) -> asyncio.Task[bytes]:
        """``get_page(request)`` as a task, returned once its request is on the wire.

        A task alone only starts when its creator next waits: a chain that parses a page
        before it waits would send the next request only then, and its round trip would
        add to the parsing instead of overlapping it.
        """
        on_wire = asyncio.Event()
        context = contextvars.copy_context()
        context.run(_ON_WIRE.set, on_wire)
        task = asyncio.get_running_loop().create_task(self.get_page(request), context=context)
        sent = asyncio.ensure_future(on_wire.wait())
        try:
            await asyncio.wait((task, sent), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            sent.cancel()
        return task

    async def _attempt(self, request: PageRequest, state: dict[str, bool]) -> bytes:
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        info = request.build()
        path = self.path_of(info)
        try:
            body = await self.adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        except APIError as exc:
            status = exc.response_status_code or 0
            if status == 401 and not state["refreshed"]:
                # expired/revoked token: exactly one fresh token, then one more try
                state["refreshed"] = True
                log.info("%s: Graph answered 401; fetching a fresh token", request.what)
                await self.token_provider.refresh(_bearer(info))
                return await self._attempt(request, state)
            raise self._classify(exc, status, request, path) from None
        except httpx.TransportError as exc:
            if is_certificate_failure(exc):
                raise tls_error(self.graph_host, exc) from None
            raise Retryable(self._network_error(exc, request, path)) from None
        return body or b""

    def _classify(self, exc: APIError, status: int, request: PageRequest, path: str) -> Exception:
        code, message = _odata_error(exc)
        detail = redact(f"{code}: {message}" if code else message, self._secrets)[:300]
        where = f"{request.what} ({path})"
        if request.delta and (status == 410 or (status == 400 and code.lower() in DELTA_EXPIRED_CODES)):
            return DeltaExpired(f"{where}: delta link refused ({status} {code or 'Gone'})")
        if status in TRANSIENT_STATUS:
            final = (Throttled if status in THROTTLE_STATUS else ServerFailed)(
                f"{where}: Graph answered {status} after retries{': ' + detail if detail else ''}",
                fix="Graph is throttling or unavailable: the next cycle retries",
            )
            return Retryable(final, retry_after=_retry_after(exc))
        if status == 401:
            return AuthRefused(
                f"{where}: Graph refused a freshly issued token (401{' ' + code if code else ''})",
                fix="check that entra.graph_endpoint belongs to the same cloud as entra.authority_host",
            )
        if status == 403:
            return PermissionMissing(
                f"{where}: permission denied (403{' ' + code if code else ''})",
                fix=f"grant the application the Microsoft Graph application permission {request.permission} and admin consent",
            )
        if status == 404:
            return NotFound(
                request.not_found or f"{where}: not found (404)",
                fix=request.not_found_fix,
            )
        return ServerFailed(f"{where}: Graph answered {status}{': ' + detail if detail else ''}")

    def _network_error(self, exc: httpx.TransportError, request: PageRequest, path: str) -> SourceError:
        if isinstance(exc, httpx.TimeoutException):
            reason = "timed out"
        elif isinstance(exc, httpx.ConnectError):
            reason = "cannot connect (DNS or connection refused)"
        elif isinstance(exc, httpx.RemoteProtocolError) and "complete message body" in str(exc):
            # Content-Length promised more than arrived: retried, and if it persists R14 says
            # a page is missing, so it fails as malformed data
            return Malformed(f"{request.what} ({path}): truncated body ({exc})")
        elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            reason = "connection reset"
        else:
            reason = type(exc).__name__
        fix = "check DNS, the network path and any proxy to entra.graph_endpoint"
        if "SSL" in type(exc).__name__ or "ssl" in str(exc).lower():
            fix = CA_BUNDLE_FIX
        return NetworkFailed(f"{request.what} ({path}): {reason} talking to {self.graph_host}", fix=fix)

    async def aclose(self) -> None:
        await self._http.aclose()


def check_link(base_url: str, link: str, what: str) -> str:
    """A next/delta link must stay on the Graph endpoint (tokens go nowhere else)."""
    parsed = urlparse(link)
    base = urlparse(base_url)
    if parsed.scheme != "https" or parsed.netloc.lower() != base.netloc.lower():
        raise Malformed(
            f"{what}: Graph returned a link to another host ({parsed.scheme}://{parsed.hostname}{parsed.path})",
        )
    return link


def _bearer(info: RequestInformation) -> str:
    values = info.headers.get("Authorization") or set()
    for value in values:
        if value.startswith("Bearer "):
            return value[len("Bearer ") :]
    return ""


def _odata_error(exc: APIError) -> tuple[str, str]:
    main = getattr(exc, "error", None)
    code = str(getattr(main, "code", "") or "")
    message = str(getattr(main, "message", "") or "")
    return code, message


def _retry_after(exc: APIError) -> float | None:
    headers = exc.response_headers or {}
    value = None
    for key, val in dict(headers).items():
        if str(key).lower() == "retry-after":
            value = val
    if isinstance(value, list | tuple | set):
        value = next(iter(value), None)
    return parse_retry_after(value)
