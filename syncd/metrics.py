"""Prometheus metrics as a textfile for node_exporter's textfile collector (``metrics.textfile``).

Written after every cycle that is not a dry run, by the daemon and by one-shot commands
alike (the cycle runner calls :func:`write_after_cycle` while it still holds the cycle lock).
The file is written whole to a temporary name in the same directory, then renamed over the
old one, so the collector never reads half a file. Values that span cycles (last success,
consecutive failures, totals) come from the store, so they survive restarts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from datetime import datetime
from typing import TYPE_CHECKING

from .store.audit import consecutive_failures, cycle_totals, last_success_at
from .store.local import user_counts

if TYPE_CHECKING:
    from .report.model import CycleReport
    from .store.db import Store

log = logging.getLogger("syncd.metrics")

ACTIONS = ("create", "update", "adopt", "deactivate", "reactivate", "delete", "add_member", "remove_member", "revoke", "skip")
STATUSES = ("succeeded", "partial", "held", "failed")


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(store: Store, report: CycleReport) -> str:
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float | int | None]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{lab}}} {value:g}" if lab else f"{name} {value:g}")

    duration = sum(report.phases.values())
    counts = report.counts
    last_success = last_success_at(store)
    totals, req_total, thr_total = cycle_totals(store)
    users = user_counts(store)
    staged = store.staged_deactivation_count()

    metric("syncd_cycle_duration_seconds", "gauge", "Duration of the last cycle (read, plan, apply).",
           [({"mode": report.mode, "trigger": report.trigger}, round(duration, 3))])
    metric("syncd_cycle_phase_seconds", "gauge", "Duration of each phase of the last cycle.",
           [({"phase": p}, v) for p, v in sorted(report.phases.items())])
    metric("syncd_cycle_status", "gauge", "Status of the last cycle (1 for the current one).",
           [({"status": s}, int(report.status == s)) for s in STATUSES])
    metric("syncd_cycle_actions", "gauge", "Changes applied by the last cycle, per action.",
           [({"action": a}, counts.get(a, 0)) for a in ACTIONS])
    metric("syncd_cycle_entries_failed", "gauge", "Entries of the last cycle that failed or were staged.",
           [({"status": "failure"}, counts.get("failure", 0)), ({"status": "staged"}, counts.get("staged", 0))])
    metric("syncd_last_cycle_timestamp_seconds", "gauge", "When the last cycle ended (Unix time).",
           [({}, _ts(report.ended_at))])
    metric("syncd_last_success_timestamp_seconds", "gauge", "When the last cycle that was not failed ended (Unix time).",
           [({}, _ts(last_success) if last_success else 0)])
    metric("syncd_consecutive_failures", "gauge", "Failed cycles in a row (0 after a success).",
           [({}, consecutive_failures(store))])
    metric("syncd_cycle_graph_requests", "gauge", "Graph requests made by the last cycle.", [({}, report.graph_requests)])
    metric("syncd_cycle_throttled_responses", "gauge", "Throttled (429/503/504) answers in the last cycle.", [({}, report.throttled)])
    metric("syncd_cycles_total", "counter", "Cycles kept in the audit trail, per status.",
           [({"status": s}, totals.get(s, 0)) for s in STATUSES])
    metric("syncd_graph_requests_total", "counter", "Graph requests over the cycles kept in the audit trail.", [({}, req_total)])
    metric("syncd_throttled_responses_total", "counter", "Throttled answers over the cycles kept in the audit trail.", [({}, thr_total)])
    metric("syncd_users", "gauge", "Local users per status.",
           [({"status": s}, users.get(s, 0)) for s in ("active", "deactivated")])
    metric("syncd_staged_deactivations", "gauge", "Deactivations staged by the threshold, waiting for approval.", [({}, staged)])
    _app_metrics(store, report, metric)
    return "\n".join(out) + "\n"


APP_STATUSES = ("succeeded", "partial", "held", "failed")


def _app_metrics(store: Store, report: CycleReport, metric) -> None:
    """SPEC §7: per SCIM application (label ``app``), its last push and what waits for a retry."""
    from .store import apps

    names = [str(a["name"]) for a in report.apps]
    names += [name for name in apps.pushed_apps(store.conn) if name not in names]
    if not names:
        return
    pushes = {name: apps.last_push(store.conn, name) for name in names}
    this = {str(a["name"]): a for a in report.apps}
    metric("syncd_app_push_status", "gauge", "Status of each application's last push (1 for the current one).",
           [({"app": n, "status": s}, int(p is not None and p["status"] == s)) for n, p in pushes.items() for s in APP_STATUSES])
    metric("syncd_app_last_push_timestamp_seconds", "gauge", "When each application's last push ended (Unix time).",
           [({"app": n}, _ts(str(p["ended_at"])) if p else None) for n, p in pushes.items()])
    metric("syncd_app_cycle_requests", "gauge", "SCIM requests sent to each application in the last cycle.",
           [({"app": n}, int(this[n].get("requests", 0)) if n in this else 0) for n in names])
    metric("syncd_app_cycle_throttled_responses", "gauge", "Throttled (429/503) answers from each application in the last cycle.",
           [({"app": n}, int(this[n].get("throttled", 0)) if n in this else 0) for n in names])
    metric("syncd_app_cycle_entries_failed", "gauge", "Entries of each application's push in the last cycle that failed.",
           [({"app": n}, int(this[n].get("counts", {}).get("failure", 0)) if n in this else 0) for n in names])
    metric("syncd_app_pending", "gauge", "Objects waiting for a push to each application that failed.",
           [({"app": n}, apps.pending(store.conn, n)) for n in names])


def write_textfile(path: str, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (temporary file + fsync + rename)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".syncd-metrics.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter runs as another user; metrics are not secret
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_after_cycle(path: str, store: Store, report: CycleReport) -> None:
    """Never fails a cycle: a metrics problem is a warning in the log."""
    if report.dry_run:
        return
    try:
        write_textfile(path, render(store, report))
    except Exception as exc:  # noqa: BLE001
        log.warning("could not write metrics to %s: %s", path, exc)
