"""The HTTP client for one SCIM 2.0 application (RFC 7644): httpx, bounded concurrency, retries.

- One ``httpx.Client`` per application, used by ``concurrency`` worker threads (a thread
  pool bounds the requests in flight; the connection pool is sized to match). Threads over
  asyncio: the cycle is synchronous, the work is waiting on sockets, and the GIL is free
  meanwhile; one shared client keeps connections alive.
- TLS is always verified: the system CA store plus ``ca_bundle``'s extra CAs.
  ``trust_env=False``: ``HTTPS_PROXY``, ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE`` and .netrc
  cannot change where the token goes or whom it trusts.
- The bearer token is sent in ``Authorization`` and appears in no message, log or error.
- Retries (tenacity): 429 and 503 wait for ``Retry-After`` (whole or decimal seconds, or
  an HTTP date); 500/502/504, resets and timeouts back off exponentially with jitter; all
  within ``max_attempts`` and the push's time budget. A create (POST) is retried only when
  the server cannot have acted on it (429, 503, no connection): after a reset, a timeout or
  a 5xx its outcome is ``Unknown``, and the engine looks the object up before it tries
  again (R22) instead of risking a second one.
- 401/403 raise ``AuthRefused``: that application stops for the cycle.
- ``Options.cancel`` (the daemon's stop request): once set, no new request is sent and no
  retry waits any longer; ``request`` raises ``Cancelled`` instead. A request already on the
  wire finishes, so its outcome can be recorded.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_any
from tenacity.stop import stop_base

from ..config import ScimApp
from ..net import parse_retry_after
from ..tls import ssl_context

log = logging.getLogger("syncd.push")

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_JSON = "application/scim+json"

THROTTLED = frozenset({429, 503})  # the server did not act: wait as it asks
TRANSIENT = frozenset({500, 502, 504})  # it may have acted: back off (a create is looked up first)


class ScimError(Exception):
    """A request the application answered with an error, or that could not be completed."""

    def __init__(self, message: str, status: int | None = None, scim_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.scim_type = scim_type


class AuthRefused(ScimError):
    """401/403: the token is refused; the application stops for this cycle (R25)."""


class Unknown(ScimError):
    """A create whose answer was lost (reset, timeout, 5xx): it may or may not exist now."""


class Cancelled(Exception):
    """The service is stopping (``Options.cancel``): the request was not sent.

    Not a ``ScimError``: no handler of an application's errors may take a stop for one."""


class _Retry(Exception):
    def __init__(self, message: str, after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.after = after
        self.status = status


@dataclass(frozen=True)
class Options:
    """Timeouts and retry budget (tests make them short)."""

    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    budget_s: float = 1800.0  # the whole push gives up after this (as sync.cycle_timeout_minutes)
    page_size: int = 500  # a listing's count per page (bounded by filter.maxResults)
    retry_after_max_s: float = 300.0  # a longer wait is refused: the push fails now, retried next cycle
    cancel: threading.Event | None = None  # set when the service stops: no new request after it

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


@dataclass(frozen=True)
class Capabilities:
    """What ServiceProviderConfig announces."""

    patch: bool = True
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    filter: bool = True
    filter_max_results: int | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Capabilities:
        def supported(name: str) -> bool:
            part = doc.get(name)
            return bool(isinstance(part, dict) and part.get("supported"))

        bulk: dict[str, Any] = doc["bulk"] if isinstance(doc.get("bulk"), dict) else {}
        flt: dict[str, Any] = doc["filter"] if isinstance(doc.get("filter"), dict) else {}
        return cls(
            patch=supported("patch"),
            bulk=supported("bulk") and int(bulk.get("maxOperations") or 0) > 0,
            bulk_max_operations=int(bulk.get("maxOperations") or 0),
            bulk_max_payload=int(bulk.get("maxPayloadSize") or 0),
            filter=supported("filter"),
            filter_max_results=int(flt["maxResults"]) if flt.get("maxResults") else None,
        )


class _Stop(stop_base):
    """A tenacity stop condition from a function of the retry state."""

    def __init__(self, check: Callable[[RetryCallState], bool]) -> None:
        self._check = check

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._check(retry_state)


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    """A SCIM error's detail and scimType, short, from the body only (never the headers)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200].strip() or response.reason_phrase, None
    if not isinstance(body, dict):
        return str(body)[:200], None
    return str(body.get("detail") or response.reason_phrase)[:300], body.get("scimType")


class ScimClient:
    """Requests to one application; thread-safe (``map`` runs them ``concurrency`` at a time)."""

    def __init__(
        self, app: ScimApp, token: str, options: Options | None = None, *,
        transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.app = app
        self.options = options = options or Options()
        self.requests = 0  # requests put on the wire, retries included
        self.throttled = 0
        self._lock = threading.Lock()
        self._sleep = sleep if options.cancel is None else self._wait_unless_cancelled
        self._deadline = time.monotonic() + options.budget_s
        limits = httpx.Limits(max_connections=app.concurrency, max_keepalive_connections=app.concurrency)
        self._http = httpx.Client(
            base_url=app.base_url + "/",
            headers={"Authorization": f"Bearer {token}", "Accept": SCIM_JSON, "User-Agent": "syncd"},
            verify=ssl_context(app.ca_bundle, key=f"scim.{app.name}.ca_bundle") if app.base_url.startswith("https:") else True,
            trust_env=False,
            timeout=httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s),
            limits=limits,
            transport=transport,
            follow_redirects=False,  # a redirect could carry the token elsewhere
        )
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def __enter__(self) -> ScimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ one request

    def request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, create: bool = False,
    ) -> httpx.Response:
        """Send one request with retries; a 2xx answer, or an exception (see the module docstring)."""
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": SCIM_JSON} if content is not None else None
        what = f"{method} {path}"

        def attempt() -> httpx.Response:
            if self.options.cancelled:
                raise Cancelled(f"{what}: not sent, the service is stopping")
            try:
                response = self._http.request(method, path.lstrip("/"), content=content, params=params, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                self._count(None)
                raise _Retry(f"{what}: cannot connect to {self.app.name} ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                self._count(None)
                message = f"{what}: no answer from {self.app.name} ({type(exc).__name__}: {exc})"
                if create:
                    raise Unknown(message) from None
                raise _Retry(message) from None
            status = response.status_code
            self._count(status)
            if status < 300:
                return response
            detail, scim_type = _detail(response)
            message = f"{what}: {status} {detail}"
            if status in (401, 403):
                raise AuthRefused(
                    f"{self.app.name}: the application refused the token ({status} {detail}): put a new token in "
                    f"{self.app.token_file} (scim.{self.app.name}.token_file)", status,
                )
            if status in THROTTLED:
                raise _Retry(message, parse_retry_after(response.headers.get("Retry-After")), status)
            if status in TRANSIENT:
                if create:
                    raise Unknown(message, status)
                raise _Retry(message, None, status)
            raise ScimError(message, status, scim_type)

        retrying = Retrying(
            stop=stop_any(stop_after_attempt(self.options.max_attempts), _Stop(self._out_of_time)),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Retry)),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retry as exc:
            raise ScimError(f"{exc} (gave up after retries)", exc.status) from None

    def _wait_unless_cancelled(self, seconds: float) -> None:
        # a back-off or Retry-After wait ends as soon as the service stops (the next attempt is not sent)
        assert self.options.cancel is not None
        self.options.cancel.wait(seconds)

    def _count(self, status: int | None) -> None:
        with self._lock:
            self.requests += 1
            if status in THROTTLED:
                self.throttled += 1

    def _out_of_time(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        wait = exc.after if isinstance(exc, _Retry) and exc.after is not None else 0.0
        if wait > self.options.retry_after_max_s:
            return True
        return time.monotonic() + wait >= self._deadline

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.after is not None:
            return exc.after
        n = state.attempt_number
        return min(self.options.backoff_max_s, self.options.backoff_base_s * 2 ** (n - 1)) * random.uniform(0.5, 1.5)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ScimError(f"{method} {path}: the answer is not JSON") from None

    # ------------------------------------------------------------------ reading

    def capabilities(self) -> Capabilities:
        doc = self.json("GET", "ServiceProviderConfig")
        if not isinstance(doc, dict):
            raise ScimError("GET ServiceProviderConfig: not a JSON object")
        return Capabilities.of(doc)

    def schema_attributes(self, schema: str) -> frozenset[str] | None:
        """The attribute names (lower-cased) that ``GET /Schemas`` declares for ``schema``
        (RFC 7644 §4, RFC 7643 §7), or None when the application does not say: no /Schemas,
        an error answer, or that schema not listed. Common attributes (``id``, ``externalId``,
        ``meta``, RFC 7643 §3.1) need not be listed there: their absence says nothing."""
        try:
            doc = self.json("GET", "Schemas")
        except AuthRefused:
            raise
        except ScimError:
            return None
        resources = doc.get("Resources") if isinstance(doc, dict) else doc
        for r in resources if isinstance(resources, list) else ():
            if isinstance(r, dict) and r.get("id") == schema and isinstance(r.get("attributes"), list):
                return frozenset(str(a["name"]).lower() for a in r["attributes"] if isinstance(a, dict) and a.get("name"))
        return None

    def listing(self, resource: str, *, caps: Capabilities, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every resource of a type, page by page (1-based startIndex/count, RFC 7644 §3.4.2.4)."""
        count = self.options.page_size
        if caps.filter_max_results:
            count = min(count, caps.filter_max_results)
        start = 1
        while True:
            page = self.json("GET", resource, params={**(params or {}), "startIndex": start, "count": count})
            if not isinstance(page, dict):
                raise ScimError(f"GET {resource}: not a ListResponse")
            items = page.get("Resources") or []
            total = page.get("totalResults")
            yield from items
            if not items:
                if isinstance(total, int) and start <= total:
                    raise ScimError(f"GET {resource}: the listing stopped at {start - 1} of {total}")
                return
            start += len(items)
            if isinstance(total, int) and start > total:
                return

    def find(self, resource: str, attribute: str, value: str, *, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Resources whose ``attribute`` equals ``value`` (a filter: userName compares ignoring case)."""
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        page = self.json("GET", resource, params={**(params or {}), "filter": f'{attribute} eq "{quoted}"'})
        return list(page.get("Resources") or []) if isinstance(page, dict) else []

    # ------------------------------------------------------------------ concurrency

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Future[Any]]]:
        """Run ``fn`` over ``items``, ``concurrency`` at a time; (item, finished future) in completion order."""
        items = list(items)
        if self.app.concurrency == 1 or len(items) <= 1:
            for item in items:
                future: Future[Any] = Future()
                try:
                    future.set_result(fn(item))
                except BaseException as exc:  # (handed back like the pool's futures)
                    future.set_exception(exc)
                yield item, future
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.app.concurrency, thread_name_prefix=f"scim-{self.app.name}")
        futures = {self._pool.submit(fn, item): item for item in items}
        for done in as_completed(futures):
            yield futures[done], done


def app_id_of(response: httpx.Response, location: str | None = None) -> str | None:
    """The id of a created resource: its body's ``id``, else the last segment of its location."""
    if response.content:
        try:
            body = orjson.loads(response.content)
            if isinstance(body, dict) and body.get("id"):
                return str(body["id"])
        except orjson.JSONDecodeError:
            pass
    location = location or response.headers.get("Location")
    return location.rstrip("/").rsplit("/", 1)[-1] if location else None
