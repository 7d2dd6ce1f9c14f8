"""A fault-injecting HTTP/1.1 proxy: a real socket server in front of a SCIM server.

Each request is matched against the rules in order; a matching rule with ``times`` left
answers for the server (429 with Retry-After, 500, 409, 401 ...), resets the connection,
stalls past the client's timeout, forwards the request and then drops the answer (a
create that happened, whose answer was lost), or forwards it after a delay (latency).
Everything else is forwarded as is.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Fault:
    method: str  # "POST", "GET", ... or "*"
    path: str  # a regex searched in the request's path
    kind: str  # status | reset | stall | lose_answer | delay
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    times: int = 1  # -1: always
    stall_s: float = 5.0
    delay_s: float = 0.1  # "delay": the latency added before forwarding
    hits: int = 0  # requests it matched, counted as they arrive

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path, path) is not None and self.times != 0


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int | str]] = []  # (method, path, what happened)
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                # (the client went away, or a fault closed the connection)
                with contextlib.suppress(OSError):
                    proxy._serve(self.connection, self.rfile)

            def finish(self) -> None:
                with contextlib.suppress(OSError):
                    super().finish()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.times > 0:
                        fault.times -= 1
                    fault.hits += 1
                    return fault
        return None

    def _serve(self, conn: socket.socket, rfile) -> None:
        while True:
            line = rfile.readline(65537)
            if not line or not line.strip():
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers: list[tuple[str, str]] = []
            while True:
                h = rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                headers.append((name.strip(), value.strip()))
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            body = rfile.read(length) if length else b""
            path = target.split("?", 1)[0]
            fault = self._take(method, path)
            if fault is not None and fault.kind == "reset":
                self._record(method, target, "reset")
                _reset(conn)
                return
            if fault is not None and fault.kind == "stall":
                self._record(method, target, "stall")
                time.sleep(fault.stall_s)
                _reset(conn)
                return
            if fault is not None and fault.kind == "status":
                self._record(method, target, fault.status)
                self._reply(conn, fault.status, list(fault.headers.items()), fault.body)
                continue
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.delay_s)
            status, rheaders, rbody = self._forward(method, target, headers, body)
            if fault is not None and fault.kind == "lose_answer":
                self._record(method, target, f"lost {status}")
                _reset(conn)
                return
            self._record(method, target, status)
            self._reply(conn, status, rheaders, rbody)

    def _record(self, method: str, target: str, what: int | str) -> None:
        with self._lock:
            self.log.append((method, target, what))

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                if k.lower() not in ("connection", "keep-alive"):
                    upstream.putheader(k, v)
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            data = response.read()
            rheaders = [(k, v) for k, v in response.getheaders()
                        if k.lower() not in ("connection", "content-length", "transfer-encoding", "keep-alive")]
            return response.status, rheaders, data
        finally:
            upstream.close()

    @staticmethod
    def _reply(conn: socket.socket, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        reason = http.client.responses.get(status, "Status")
        head = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers),
                f"Content-Length: {len(body)}", "Connection: keep-alive", "", ""]
        conn.sendall("\r\n".join(head).encode("latin-1") + body)


def _reset(conn: socket.socket) -> None:
    # SO_LINGER 0: close sends a TCP RST (a "connection reset by peer" on the client)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
