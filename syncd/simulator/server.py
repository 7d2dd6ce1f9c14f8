"""The HTTPS server: Entra's token endpoint and Graph v1.0 on 127.0.0.1 with trustme TLS.

stdlib ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive), TLS handshakes done in the
connection's own thread so a slow client never stalls the accept loop, and every response
written with one ``sendall`` (no Nagle/delayed-ACK stalls on keep-alive connections).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme

from . import control
from .auth import AccessTokens, TokenError, openid_configuration, resolve_tenant, token_request
from .delta import DeltaService, DeltaSettings
from .faults import Fault, FaultSet
from .graph import GraphApi
from .odata import (
    GraphError,
    Page,
    dumps,
    loads,
    new_request_id,
    preferred_page_size,
    prefers_minimal,
)
from .quirks import Quirks
from .tenant import Tenant
from .tomlwriter import merge, to_toml

GRAPH_CONTENT_TYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;"
                      "IEEE754Compatible=false;charset=utf-8")
TOKEN_CONTENT_TYPE = "application/json; charset=utf-8"

_DISCOVERY = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")

GRAPH_ERROR_CODES = {
    400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound", 409: "Conflict", 429: "TooManyRequests",
    500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
TOKEN_ERRORS = {429: ("temporarily_unavailable", 50196), 500: ("server_error", 50000),
                503: ("temporarily_unavailable", 50196), 504: ("temporarily_unavailable", 50196)}


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def retry_after_header(seconds: float, form: str) -> str:
    """A Retry-After value: "seconds" (whole, or decimal when given so, as Graph's
    throttling page shows ``2.128``), "decimal" (always three decimals) or "date" (an
    HTTP date that many seconds from now, whole seconds as HTTP dates are)."""
    if form == "date":
        return formatdate(time.time() + seconds, usegmt=True)
    if form == "decimal":
        return f"{seconds:.3f}"
    return _format_seconds(seconds)


class Exchange(NamedTuple):
    """One request the simulator answered (``sim.exchanges``), with server-side times."""

    method: str
    target: str  # path?query as sent
    status: int  # 0: the connection was reset instead
    received: float  # time.time() when the request had arrived
    sent: float  # time.time() just before the answer went out
    headers: dict[str, str]  # the answer's headers (Date and Content-Length aside)
    graph: bool  # Graph (True) or the identity endpoints (False)


class _Response:
    __slots__ = ("status", "headers", "body", "page")

    def __init__(self, status: int, headers: dict[str, str], body: Any = None,
                 page: Page | None = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body  # a JSON-able object, or bytes already encoded
        self.page = page


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, sim: Simulator, ssl_context: ssl.SSLContext) -> None:
        self.sim = sim
        self.ssl_context = ssl_context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((sim.host, sim.port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # the handshake happens in the handler thread (do_handshake_on_connect=False)
        tls = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.connections.add(tls)
        return tls, addr

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up, failed handshakes: not the simulator's business

    def drop_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "syncd-simulator"
    timeout = 120  # idle keep-alive connections end after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.request.settimeout(self.timeout)
        self.request.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines carry paging/delta tokens, and test output stays clean

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self) -> None:
        sim = self.server.sim
        target = self.path
        split = urlsplit(target)
        path = unquote(split.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        is_graph = path.startswith("/v1.0/")
        received = time.time()
        request_id = new_request_id()
        client_request_id = self.headers.get("client-request-id") or request_id

        if path.startswith(control.PREFIX):
            self._control(path, raw_body)
            return
        if sim.latency:
            time.sleep(sim.latency)
        fault = sim.faults.pick(self.command, target)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay or 0)
        if fault is not None and fault.kind == "reset":
            sim._log(is_graph, self.command, target, 0, received, {})
            self._reset()
            return
        if fault is not None and fault.kind == "status":
            response = self._fault_status(fault, is_graph, request_id, client_request_id)
        elif is_graph:
            response = self._graph(path, split.query, raw_body, request_id, client_request_id)
        else:
            response = self._identity(path, raw_body)
        if response.page is not None:
            self._bend_page(response.page, fault, path, target)
            response.body = response.page.body()
            response.headers.update(response.page.extra_headers)
        elif (fault is not None and fault.kind == "malformed_item" and response.status == 200
              and isinstance(response.body, dict)):
            response.body = {**response.body, "id": "not-a-guid"}
        if is_graph and sim.quirks.usage_headers:
            response.headers["x-ms-resource-unit"] = "1"
            if sim.quirks.throttle_limit_percentage is not None:
                response.headers["x-ms-throttle-limit-percentage"] = f"{sim.quirks.throttle_limit_percentage:g}"
        body = response.body if isinstance(response.body, bytes) else dumps(response.body)
        if fault is not None and fault.kind == "invalid_json":
            body = b'{"@odata.context":"' + sim.url.encode() + b'/v1.0/$metadata","value":[{"id":<html>'
        sim._log(is_graph, self.command, target, response.status, received, response.headers)
        truncated = fault is not None and fault.kind == "truncated"
        self._send(response.status, response.headers, body, truncated=truncated)

    def _control(self, path: str, raw_body: bytes) -> None:
        try:
            body = loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        status, answer = control.handle(self.server.sim, self.command, path,
                                        self.headers.get("X-Simulator-Control"), body)
        self._send(status, {"Content-Type": "application/json"}, dumps(answer))

    def _graph(self, path: str, query: str, raw_body: bytes, request_id: str,
               client_request_id: str) -> _Response:
        sim = self.server.sim
        headers = {"Content-Type": GRAPH_CONTENT_TYPE, "request-id": request_id,
                   "client-request-id": client_request_id, "OData-Version": "4.0",
                   "Strict-Transport-Security": "max-age=31536000"}
        try:
            auth = self.headers.get("Authorization") or ""
            if not auth.lower().startswith("bearer ") or not auth[7:].strip():
                raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
            problem = sim.tokens.check(auth[7:].strip())
            if problem:
                raise GraphError(401, "InvalidAuthenticationToken", problem)
            params = dict(parse_qsl(query, keep_blank_values=True))
            body = None
            if raw_body:
                try:
                    body = loads(raw_body)
                except ValueError:
                    raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
            prefer = ", ".join(self.headers.get_all("Prefer") or ())
            preferred = preferred_page_size(prefer)
            result = sim.graph.handle(self.command, path, params, body, sim.url, preferred,
                                      minimal=prefers_minimal(prefer))
        except GraphError as err:
            headers.update(err.headers)
            if not err.body:  # headers only, as Graph sends some 410 Gone answers
                del headers["Content-Type"]
                return _Response(err.status, headers, b"")
            if err.status == 401:
                headers["WWW-Authenticate"] = (
                    f'Bearer realm="", authorization_uri="{sim.url}/common/oauth2/authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"')
            return _Response(err.status, headers,
                             self._graph_error_body(err.code, err.message, request_id,
                                                    client_request_id))
        if isinstance(result, Page):
            if preferred is not None and "delta" in path:
                headers["Preference-Applied"] = (
                    f"odata.maxpagesize={min(preferred, sim.page_size_cap)}")
            return _Response(200, headers, page=result)
        return _Response(200, headers, result)

    def _identity(self, path: str, raw_body: bytes) -> _Response:
        sim = self.server.sim
        headers = {"Content-Type": TOKEN_CONTENT_TYPE, "Cache-Control": "no-store, no-cache",
                   "x-ms-request-id": new_request_id()}
        m = _DISCOVERY.match(path)
        if m and self.command == "GET":
            if not resolve_tenant(sim.tenant, m.group(1)):
                err = TokenError(400, "invalid_tenant", 90002,
                                 f"Tenant '{m.group(1)}' not found. Check to make sure you have "
                                 "the correct tenant ID and are signing into the correct cloud.")
                return _Response(400, headers, err.body())
            headers["Cache-Control"] = "max-age=86400, private"
            return _Response(200, headers, openid_configuration(sim.url, sim.tenant))
        m = _TOKEN.match(path)
        if m and self.command == "POST":
            form = dict(parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True))
            try:
                with sim.tenant.lock:
                    body = token_request(sim.tenant, sim.tokens, m.group(1), form, sim.url)
            except TokenError as err:
                return _Response(err.status, headers, err.body())
            return _Response(200, headers, body)
        return _Response(404, headers, {"error": "not_found",
                                        "error_description": f"No endpoint at {path}."})

    @staticmethod
    def _graph_error_body(code: str, message: str, request_id: str,
                          client_request_id: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message, "innerError": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id, "client-request-id": client_request_id}}}

    def _fault_status(self, fault: Fault, is_graph: bool, request_id: str,
                      client_request_id: str) -> _Response:
        status = fault.status or 500
        retry_after = fault.retry_after
        if retry_after is None and status in (429, 503):
            retry_after = 1  # Graph nearly always says when to come back on these
        headers: dict[str, str] = {}
        if retry_after is not None and retry_after >= 0:  # negative: no header at all
            headers["Retry-After"] = retry_after_header(retry_after, fault.retry_after_format)
        if is_graph:
            headers.update({"Content-Type": GRAPH_CONTENT_TYPE, "request-id": request_id,
                            "client-request-id": client_request_id})
            code = GRAPH_ERROR_CODES.get(status, "UnknownError")
            if status == 429:
                # Graph's throttling page: this body, and the identity service's headers
                t = self.server.sim.tenant
                headers["x-ms-throttle-scope"] = f"Tenant_Application/ReadWrite/{t.client_id}/{t.tenant_id}"
                headers["x-ms-throttle-information"] = "ResourceUnitLimitExceeded"
                body = self._graph_error_body(code, "Please retry again later.", request_id,
                                              client_request_id)
                body["error"]["innerError"].update(
                    {"code": "429", "message": "Please retry after", "status": "429"})
                return _Response(status, headers, body)
            message = f"Simulated failure ({status})."
            return _Response(status, headers,
                             self._graph_error_body(code, message, request_id, client_request_id))
        headers["Content-Type"] = TOKEN_CONTENT_TYPE
        error, code_number = TOKEN_ERRORS.get(status, ("invalid_request", 90000))
        err = TokenError(status, error, code_number, f"Simulated failure ({status}).")
        return _Response(status, headers, err.body())

    # ------------------------------------------------------------------ faults on pages

    def _bend_page(self, page: Page, fault: Fault | None, path: str, target: str) -> None:
        sim = self.server.sim
        original = page.items
        if fault is not None:
            if fault.kind == "drop_nextlink":
                page.next_link = page.delta_link = None
            elif fault.kind == "loop_nextlink":
                page.next_link, page.delta_link = sim.url + target, None
            elif fault.kind == "malformed_item":
                bad = dict(page.items[0]) if page.items else {"displayName": "malformed"}
                if fault.variant == "missing_id":
                    bad.pop("id", None)
                else:
                    bad["id"] = "not-a-guid"
                page.items = [bad, *page.items[1:]]
            elif fault.kind == "duplicate_items":
                previous = sim._last_page.get(path)
                page.items = [*(previous if previous else original), *original]
        sim._last_page[path] = original

    # ------------------------------------------------------------------ wire

    def _send(self, status: int, headers: dict[str, str], body: bytes,
              truncated: bool = False) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {formatdate(usegmt=True)}",
                 f"Content-Length: {len(body)}"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if truncated:
            self.wfile.write(head + body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(head + body)

    def _reset(self) -> None:
        """Abort the TCP connection (RST) without a word."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            socket.socket.close(self.request)  # skip TLS close_notify: a plain abort


class Simulator:
    """Serves a :class:`Tenant` over HTTPS on 127.0.0.1 (see the package docstring)."""

    def __init__(self, tenant: Tenant, latency: float = 0.0, page_size_cap: int = 999, *,
                 token_lifetime: int = 3600, members_per_page: int = 500,
                 users_page_size: int = 200, groups_page_size: int = 100,
                 host: str = "127.0.0.1", port: int = 0, control: bool = False,
                 quirks: Quirks | None = None) -> None:
        self.tenant = tenant
        # documented Graph behaviours, all off by default; change them at any time
        self.quirks = quirks if quirks is not None else Quirks()
        self.latency = latency
        self.page_size_cap = page_size_cap
        self.host = host
        self.port = port
        self.faults = FaultSet()
        self.tokens = AccessTokens(token_lifetime)
        self.delta = DeltaService(tenant, DeltaSettings(
            users_page_size=users_page_size, groups_page_size=groups_page_size,
            members_per_page=members_per_page, page_size_cap=page_size_cap), self.quirks)
        self.graph = GraphApi(tenant, self.delta, page_size_cap)
        self.requests: list[tuple[str, str, int]] = []  # Graph: (method, path?query, status)
        self.token_requests: list[tuple[str, str, int]] = []  # everything else (identity)
        self.exchanges: list[Exchange] = []  # both, with times and the answers' headers
        self._log_lock = threading.Lock()
        self._last_page: dict[str, list[dict[str, Any]]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self.ca_path = ""
        self.url = ""
        # the control channel (control.py) is off unless asked for; its token sits in a
        # 0600 file, control_token_path, once started
        self.control_token = secrets.token_urlsafe(24) if control else None
        self.control_token_path: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._tmpdir = tempfile.mkdtemp(prefix="syncd-sim-")
        ca = trustme.CA(organization_name="syncd simulator CA")
        ca_file = Path(self._tmpdir, "ca.pem")
        ca.cert_pem.write_to_path(str(ca_file))
        self.ca_path = str(ca_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        context.set_alpn_protocols(["http/1.1"])
        if self.control_token:
            self.control_token_path = self._write_private("control-token", self.control_token)
        self._server = _Server(self, context)
        self.port = self._server.server_address[1]
        self.url = f"https://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="syncd-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ observing

    def _log(self, is_graph: bool, method: str, target: str, status: int, received: float,
             headers: dict[str, str]) -> None:
        exchange = Exchange(method, target, status, received, time.time(), dict(headers), is_graph)
        with self._log_lock:
            (self.requests if is_graph else self.token_requests).append((method, target, status))
            self.exchanges.append(exchange)

    def graph_request_count(self) -> int:
        return len(self.requests)

    def token_request_count(self) -> int:
        """POSTs to the token endpoint (discovery requests are logged but not counted)."""
        return sum(1 for m, target, _ in self.token_requests
                   if m == "POST" and "/oauth2/v2.0/token" in target)

    def reset_log(self) -> None:
        with self._log_lock:
            self.requests.clear()
            self.token_requests.clear()
            self.exchanges.clear()

    def revoke_tokens(self) -> None:
        """Every access token issued so far is refused by Graph (401) from now on."""
        self.tokens.revoke_all()

    # ------------------------------------------------------------------ configuration

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant.tenant_id}"

    @property
    def scope(self) -> str:
        return f"{self.url}/.default"

    def write_secret_file(self, directory: str | None = None) -> str:
        """The client secret in a 0600 file (no trailing newline); returns its path."""
        return self._write_private("client-secret", self.tenant.client_secret, directory)

    def _write_private(self, name: str, content: str, directory: str | None = None) -> str:
        if self._tmpdir is None and directory is None:
            raise RuntimeError("start the simulator first")
        path = Path(directory or self._tmpdir or ".", name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(path, 0o600)
        return str(path)

    def config_dict(self, store_path: str, **overrides: dict[str, Any]) -> dict[str, Any]:
        t = self.tenant
        config: dict[str, Any] = {
            "entra": {
                "tenant_id": t.tenant_id, "client_id": t.client_id,
                "service_principal_id": t.service_principal_id,
                "client_secret_file": self.write_secret_file(),
                "authority_host": self.url, "graph_endpoint": self.url,
                "ca_bundle": self.ca_path,
            },
            "store": {"path": str(store_path)},
        }
        return merge(config, overrides)

    def config_toml(self, store_path: str, **overrides: dict[str, Any]) -> str:
        """A ready syncd config (SPEC §2) for this simulator; a None override drops a key."""
        return to_toml(self.config_dict(store_path, **overrides))
