"""A control channel for a simulator running in another process (benchmarks, the demo).

``POST /_simulator/call`` with ``{"method": name, "args": [...], "kwargs": {...}}`` calls
one whitelisted Tenant/Simulator method and answers ``{"result": ...}``;
``GET /_simulator/stats`` answers counters. Every call needs the header
``X-Simulator-Control: <token>`` (the token is in a 0600 file, never printed).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from .faults import Fault
from .generate import churn

if TYPE_CHECKING:
    from .server import Simulator

PREFIX = "/_simulator/"
TENANT_METHODS = frozenset({
    "add_user", "update_user", "disable_user", "enable_user", "soft_delete_user",
    "restore_user", "hard_delete_user", "add_group", "rename_group", "delete_group",
    "add_member", "remove_member", "add_device", "add_service_principal", "assign",
    "unassign", "expire_delta_tokens",
})


def handle(sim: Simulator, method: str, path: str, token: str | None,
           body: Any) -> tuple[int, dict[str, Any]]:
    if not sim.control_token or not token or not hmac.compare_digest(token, sim.control_token):
        return 403, {"error": "control token missing or wrong"}
    if method == "GET" and path == PREFIX + "stats":
        t = sim.tenant
        return 200, {"graph_requests": sim.graph_request_count(),
                     "token_requests": sim.token_request_count(), "users": len(t.users),
                     "groups": len(t.groups), "assignments": len(t.assignments),
                     "version": t.version, "fault_hits": dict(sim.faults.hits)}
    if method != "POST" or path != PREFIX + "call" or not isinstance(body, dict):
        return 404, {"error": f"no control endpoint {method} {path}"}
    name = body.get("method")
    args = body.get("args") or []
    kwargs = body.get("kwargs") or {}
    try:
        if name in TENANT_METHODS:
            result = getattr(sim.tenant, name)(*args, **kwargs)
        elif name == "churn":
            result = churn(sim.tenant, *args, **kwargs)
        elif name == "add_fault":
            sim.faults.add(Fault(*args, **kwargs))
            result = None
        elif name in ("clear_faults", "revoke_tokens", "reset_log"):
            result = {"clear_faults": sim.faults.clear, "revoke_tokens": sim.revoke_tokens,
                      "reset_log": sim.reset_log}[name]()
        else:
            return 400, {"error": f"method {name!r} is not callable through the control channel"}
    except (KeyError, ValueError, TypeError) as exc:
        return 400, {"error": f"{type(exc).__name__}: {exc}"}
    return 200, {"result": result}
