"""One sync cycle: read (Graph) -> plan (pure) -> guards -> apply (store) -> push (SCIM) -> report.

The read happens outside any database transaction (``store.incoming.IncomingRead`` holds
it); everything after it, the mirror update, the directory changes, the delta links and the
report, commits as one transaction (R16). A read that fails in any way applies nothing and
leaves a ``failed`` report (R14). Then each SCIM application is brought in step with the
committed directory (R24), and its entries complete the report.

In reading order: ``run_cycle`` -> ``_run_locked`` (the steps) -> ``_settle`` (plan, guard
and apply, unit by unit: ``units.plan_units``) -> ``_carry_out`` (one unit's apply and
entries) -> ``_push_apps``.
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from .config import Config
from .errors import EXIT_FAILED, EXIT_HELD, EXIT_OK, EXIT_PARTIAL, ReadCancelled, SourceError
from .lock import cycle_lock
from .model import Change, GraphRead, Plan
from .plan.guards import JOINING, apply_guards
from .plan.rules import plan
from .plan.settings import PlanSettings
from .read import OnPage
from .report.model import CycleReport
from .store import failures, scoped
from .store.apply import Applier
from .store.audit import prune_reports, resave_report, save_report
from .store.db import Store
from .store.incoming import IncomingRead
from .units import plan_units

log = logging.getLogger("syncd.cycle")

EXIT_BY_STATUS = {"succeeded": EXIT_OK, "partial": EXIT_PARTIAL, "held": EXIT_HELD, "failed": EXIT_FAILED}


@dataclass
class CycleOptions:
    dry_run: bool = False
    full: bool = False
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    approve_deactivations: bool = False
    trigger: str = "manual"  # manual | schedule
    wait: float = 0
    command: str = "syncd sync"
    # set by the daemon on SIGTERM: a read in progress is abandoned and the cycle ends
    # `failed` with nothing applied; once the transaction has begun, it commits; a push
    # then sends nothing more (what an application confirmed is kept) and ends `partial`
    cancel: threading.Event | None = None
    # the cycle's id, when the caller must find its report even if interrupted (the CLI)
    cycle_id: str | None = None


# (config, delta links or None, progress, on_page) -> GraphRead; (config, users, groups) -> GraphRead
Reader = Callable[..., GraphRead]
Progress = Callable[[str, int], None] | None


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_cycle_id() -> str:
    # sortable by time; 32 random bits keep ids unique when several cycles start in one second
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


def default_reader(config: Config, delta_links: dict[str, str] | None, progress: Progress = None, on_page: OnPage | None = None) -> GraphRead:
    from .source.graph import read_graph  # msgraph is heavy: only cycles import it

    return read_graph(config.entra, delta_links, timeout_s=config.sync.cycle_timeout_minutes * 60, progress=progress, on_page=on_page)


def default_on_demand_reader(config: Config, users: list[str], groups: list[str]) -> GraphRead:
    from .source.graph import read_on_demand_graph

    return read_on_demand_graph(config.entra, users, groups, timeout_s=config.sync.cycle_timeout_minutes * 60)


def run_cycle(
    config: Config,
    options: CycleOptions,
    *,
    reader: Reader = default_reader,
    on_demand_reader: Reader = default_on_demand_reader,
    progress: Progress = None,
) -> CycleReport:
    with cycle_lock(config.store_path, wait=options.wait, command=options.command), _gc_thresholds(*FEWER_GC_PASSES):
        store = Store(config.store_path)
        try:
            report = _run_locked(store, config, options, reader, on_demand_reader, progress)
            if config.metrics_textfile:
                from .metrics import write_after_cycle

                write_after_cycle(config.metrics_textfile, store, report)
            return report
        finally:
            store.close()


@contextmanager
def _gc_thresholds(*thresholds: int) -> Iterator[None]:
    """The cyclic GC's thresholds for a stretch of work, restored after it.

    A cycle runs with ``FEWER_GC_PASSES``: it allocates 10^5-10^6 objects that nearly all
    live until its end, and the default thresholds rescan them hundreds of times
    (BENCHMARKS.md); reference counting still frees everything else at once. A push runs
    with ``USUAL_GC_PASSES``: its thousands of requests leave short-lived cycles (httpx,
    threads) that only the collector frees.
    """
    before = gc.get_threshold()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*before)


FEWER_GC_PASSES = (200_000, 50, 1000)
USUAL_GC_PASSES = (700, 10, 10)  # (the interpreter's own)


def _mode(store: Store, config: Config, options: CycleOptions) -> tuple[str, dict[str, str]]:
    """The cycle's mode, and the delta links it reads from (none: a full read, R18)."""
    if options.users or options.groups:
        return "on_demand", {}
    links = store.delta_links()
    last_full = store.get_meta("last_full_at")
    due = last_full is None or datetime.now(UTC) - datetime.fromisoformat(last_full) >= timedelta(hours=config.sync.full_sync_every_hours)
    if options.full or not links or due:
        return "full", {}
    return "incremental", links


def _remember(store: Store, report: CycleReport, read: GraphRead, fingerprint: str, *, on_demand: bool) -> None:
    """What the next cycle starts from: the delta links, the last full read, whether it
    may skip planning, and R13's switch."""
    if not on_demand:
        store.set_meta("delta_links", json.dumps(read.delta_links))
        if read.full:
            store.set_meta("last_full_at", report.started_at)
        # the next cycle may skip planning when nothing changes: this one left nothing pending
        clean = report.status == "succeeded" and not store.has_staged_deactivations()
        store.set_meta("plan_clean", fingerprint if clean else None)
    else:
        # on demand, the mirror (assignments included) was refreshed but only a few
        # objects were settled: the next cycle must plan, even if its delta is empty
        store.set_meta("plan_clean", None)
    if not store.enabled:
        # R13: the first completed cycle that is not a dry run enables sync
        store.set_meta("enabled", "1")
        store.set_meta("enabled_at", report.ended_at)


def _run_locked(store: Store, config: Config, options: CycleOptions, reader: Reader, on_demand_reader: Reader, progress: Progress) -> CycleReport:
    on_demand = bool(options.users or options.groups)
    mode, links = _mode(store, config, options)
    report = CycleReport(cycle_id=options.cycle_id or new_cycle_id(), mode=mode, dry_run=options.dry_run, trigger=options.trigger, started_at=now_iso())
    log.info("cycle %s started (%s%s)", report.cycle_id, mode, ", dry run" if options.dry_run else "")

    def fetch(on_page: OnPage) -> GraphRead:
        if on_demand:
            return on_demand_reader(config, list(options.users), list(options.groups))
        return reader(config, links or None, progress, on_page)

    t0 = time.monotonic()
    try:
        # pages are taken as they arrive; a full read's users go straight to the store
        incoming = IncomingRead(store, full=mode == "full")
        read = incoming.receive(lambda on_page: _cancellable(options, partial(fetch, on_page)))
    except SourceError as exc:
        report.graph_requests, report.throttled = exc.graph_requests, exc.throttled
        report.interrupted = isinstance(exc, ReadCancelled)
        return _failed(store, report, str(exc), t0)
    except Exception as exc:  # noqa: BLE001 - R14: a read that fails in any way applies nothing
        log.debug("read failed", exc_info=True)
        return _failed(store, report, f"reading from Graph failed unexpectedly: {type(exc).__name__}: {exc}", t0)
    report.phases["read"] = round(time.monotonic() - t0, 3)
    report.graph_requests, report.throttled = read.graph_requests, read.throttled
    if mode == "incremental" and read.full:
        report.mode = mode = "full"
        report.notes.append("the stored delta token was refused (expired): read everything instead (R18)")

    if options.cancel is not None and options.cancel.is_set():
        report.interrupted = True
        return _failed(store, report, "the service is stopping: the cycle was interrupted after the read", t0)
    settings = PlanSettings.from_config(config)
    fingerprint = json.dumps(asdict(settings))
    try:
        # every change of the cycle commits at once (R16); copying the WAL back is the caller's (db.checkpoints_left_to_caller)
        with store.transaction():
            stored_assignments = store.assignments()  # read once: three steps compare against it
            nothing_new = not on_demand and _nothing_new(store, read, fingerprint, stored_assignments)
            touched = None
            if not nothing_new and not on_demand and store.get_meta("plan_clean") == fingerprint:
                touched = scoped.touched_before(
                    store, read, stored_assignments, transitive=settings.group_members == "transitive", scope_all=settings.scope == "all"
                )
            incoming.into_mirror(read, on_demand=on_demand, stored_assignments=stored_assignments)
            if on_demand:
                _missing_on_demand(options, read, report)
            held = False
            if not nothing_new:
                held = _settle(store, settings, incoming, read, touched, report, options, on_demand=on_demand)
            else:
                report.notes.append("nothing changed in Entra ID since the last cycle, which applied everything")
            incoming.written()  # (by now on every path that plans)
            report.status = _status(report, held)
            report.ended_at = now_iso()
            if options.dry_run:
                # the applications' previews see the directory as this cycle would leave it
                _push_apps(store, config, report, options, held)
                raise _DryRun
            _remember(store, report, read, fingerprint, on_demand=on_demand)
            save_report(store, report)
            prune_reports(store, config.retention_days)
        # R24: each application is brought in step once the local directory has committed;
        # the report (stored with the local changes) is completed with the push's entries
        if _push_apps(store, config, report, options, held):
            resave_report(store, report)
    except _DryRun:
        with store.transaction():
            save_report(store, report)
            prune_reports(store, config.retention_days)
    log.info("cycle %s: %s", report.cycle_id, report.outline())
    return report


def _push_apps(store: Store, config: Config, report: CycleReport, options: CycleOptions, held: bool) -> bool:
    """Push to each enabled ``[[scim]]`` application, in the configuration's order (R20-R25).

    Called after the local transaction committed (a dry run: inside it, before its rollback,
    with ``dry_run``: reads only). Each application's entries (``"target"``: its name) join
    the report, its errors too (prefixed with its name), and a summary goes to
    ``report.apps``; the report's status and end take the pushes in (``held``: the local
    plan's). One application's failure (a refused token included) stops only it. On
    demand, the whole application is brought in step: the engine has no narrower push.
    False when no application is enabled.
    """
    enabled = [a for a in config.scim if a.enabled]
    if not enabled:
        return False
    # httpx and the engine: only cycles that push import them
    from .push.engine import push_application
    from .push.scim import Options

    t = time.monotonic()
    directory = store.load_directory()
    push_options = Options(budget_s=config.sync.cycle_timeout_minutes * 60, cancel=options.cancel)
    for app in enabled:
        summary: dict[str, object] = {"name": app.name}
        if options.cancel is not None and options.cancel.is_set():
            # a stop of the service: later applications wait for the next cycle (the store knows what they lack)
            report.interrupted = True
            report.errors.append(f"{app.name}: the service is stopping: the push was not started")
            summary.update(status="failed", requests=0, throttled=0, counts={}, interrupted=True)
            report.apps.append(summary)
            continue
        try:
            with _gc_thresholds(*USUAL_GC_PASSES):
                out = push_application(
                    app, store.conn, directory, cycle_id=report.cycle_id, dry_run=options.dry_run,
                    full_reconcile=report.mode == "full", approve_deactivations=options.approve_deactivations,
                    options=push_options,
                )
        except Exception as exc:  # noqa: BLE001 - one application's failure never stops the others (R25)
            log.debug("push to %s failed", app.name, exc_info=True)
            report.errors.append(f"{app.name}: the push failed unexpectedly: {type(exc).__name__}: {exc}")
            summary.update(status="failed", requests=0, throttled=0, counts={})
            report.apps.append(summary)
            continue
        for entry in out.entries:
            report.add_entry(entry)
        report.errors.extend(out.errors)  # (each names its application)
        summary.update(status=out.status, requests=out.requests, throttled=out.throttled, counts=out.counts)
        if out.held:
            summary["held"] = True
        if out.interrupted:
            report.interrupted = summary["interrupted"] = True
        if out.unmanaged:
            summary["unmanaged"] = out.unmanaged
        if options.dry_run:
            summary["planned"] = out.planned
        report.apps.append(summary)
        if out.status in ("failed", "partial"):
            first = out.errors[0] if out.errors else "see the cycle's report"
            log.warning("push to %s %s: %s, %d request(s): %s", app.name, out.status, out.counts, out.requests, first)
        else:
            log.info("push to %s %s: %s, %d request(s)", app.name, out.status, out.counts, out.requests)
    report.phases["push"] = round(time.monotonic() - t, 3)
    report.status = _status(report, held)
    report.ended_at = now_iso()
    return True


def _settle(
    store: Store, settings: PlanSettings, incoming: IncomingRead, read: GraphRead, touched: scoped.Touched | None,
    report: CycleReport, options: CycleOptions, *, on_demand: bool,
) -> bool:
    """Plan, guard, apply and report, unit by unit (``units.plan_units``). True when held.

    Each unit's changes go ahead as soon as it is planned, but for those the guards judge
    (deactivations and Administrators' memberships), which wait until every unit is
    planned and are judged once, against the directory as it was before the cycle (R12,
    R15). A dry run applies too, inside the transaction it rolls back: a later unit, and
    each application's preview, see what an earlier change would do.
    """
    approved = store.staged_entra_ids() if options.approve_deactivations else None
    guard_directory = scoped.guards_view(store)  # (as it is before the cycle)
    admin = guard_directory.admin_group()
    admin_ref = ("local", admin.id) if admin is not None else None
    forgetting = None
    if not on_demand:  # on demand, a few objects are settled: the rest waits as it was
        # R15: what stays staged is what this plan stages; a staged user back in scope
        # (or deactivated meanwhile) no longer waits for approval
        store.clear_staged_deactivations()
        forgetting = failures.Forgetting(store)
    judged: dict[str, Change] = {}  # (keyed: a first slice may plan a later one's for context)
    joining = waiting = 0
    units = plan_units(store, incoming, read, settings, touched, on_demand=on_demand)
    while True:
        t = time.monotonic()  # (the plan phase counts loading the unit's views too)
        unit = next(units, None)
        if unit is None:
            break
        entra, directory = unit.take()
        with unit.alongside():  # the planner does no I/O: the connection may be lent meanwhile
            the_plan = plan(entra, directory, settings)
        del entra, directory  # (peak memory: the apply and the report's entries come next)
        now = []
        for c in unit.keep(the_plan):
            if c.error:
                report.errors.append(c.reason)
            if c.action == "deactivate" or (c.object_type == "membership" and c.group_ref == admin_ref):
                judged.setdefault(failures.change_key(c), c)
                continue
            if c.object_type == "user" and c.action in JOINING and c.status == "success":
                joining += 1
            now.append(c)
        del the_plan
        report.notes.extend(unit.notes)
        report.phases["plan"] = round(report.phases.get("plan", 0) + time.monotonic() - t, 3)
        waiting += _carry_out(store, now, report, forgetting, back_off=not on_demand)
    t = time.monotonic()
    last = Plan(changes=list(judged.values()))
    held = apply_guards(last, guard_directory, settings, approved, joining=joining).held
    report.phases["plan"] = round(report.phases.get("plan", 0) + time.monotonic() - t, 3)
    report.errors.extend(last.errors)
    waiting += _carry_out(store, last.changes, report, forgetting, back_off=not on_demand)
    if waiting:
        report.errors.append(f"{waiting} change(s) that failed before are backing off (listed as skipped)")
    if forgetting is not None:
        forgetting.forget()
    return held


def _carry_out(
    store: Store, changes: list[Change], report: CycleReport, forgetting: failures.Forgetting | None, *, back_off: bool,
) -> int:
    """Hold back what is backing off, apply, count failures, and turn the changes into
    entries. Returns how many changes are backing off."""
    t = time.monotonic()
    if forgetting is not None:
        forgetting.wanted_by(changes)
    waiting = failures.hold_back(store, changes) if back_off else 0  # on demand, the operator asks for a try now
    # the entries are built while the apply's last big batches are written (Applier.apply),
    # on a fork of them: kept only if the changes ended as they were seen
    ahead = report.entries.fork()
    built = Applier(store, report.cycle_id, now_iso()).apply(changes, meanwhile=lambda: report.add_changes(changes, release=False, into=ahead))
    failures.record(store, changes, now_iso())
    report.phases["apply"] = round(report.phases.get("apply", 0) + time.monotonic() - t, 3)
    if built:
        report.entries = ahead
        changes.clear()
    else:
        report.add_changes(changes)  # lets go of each change (peak RSS on large plans)
    return waiting


def _cancellable(options: CycleOptions, read: Callable[[], GraphRead]) -> GraphRead:
    """Run the read; with ``options.cancel``, on a helper thread the cycle stops waiting for.

    The read touches no database, so an abandoned one cannot leave anything half-applied.
    A daemon thread, not an executor's: an abandoned read must not hold the process's exit.
    """
    if options.cancel is None:
        return read()
    result: Future[GraphRead] = Future()

    def run() -> None:
        try:
            result.set_result(read())
        except BaseException as exc:  # noqa: BLE001 - handed over to the cycle's thread
            result.set_exception(exc)

    threading.Thread(target=run, name="syncd-read", daemon=True).start()
    while True:
        try:
            return result.result(timeout=0.1)
        except FutureTimeout:
            if options.cancel.is_set():
                raise ReadCancelled("the service is stopping: the read from Graph was abandoned") from None


def _nothing_new(store: Store, read: GraphRead, fingerprint: str, stored_assignments: dict[str, str]) -> bool:
    """An incremental read with no change, after a cycle that left nothing pending, needs no plan.

    This keeps a no-change cycle over a large tenant nearly free. Anything that could change
    the plan (a change in Entra, an assignment, the settings, a local command, a held or
    failed change) makes the next cycle plan in full.
    """
    if read.full or read.users or read.removed_users or read.groups or read.removed_groups:
        return False
    if any(read.members_added.values()) or any(read.members_removed.values()):
        return False
    if store.get_meta("plan_clean") != fingerprint:
        return False
    return stored_assignments == read.assignments


def _failed(store: Store, report: CycleReport, message: str, t0: float) -> CycleReport:
    report.phases["read"] = round(time.monotonic() - t0, 3)
    report.status = "failed"
    report.errors.append(f"nothing applied: {message}")
    report.ended_at = now_iso()
    log.error("cycle %s failed: %s", report.cycle_id, message)
    with store.transaction():
        save_report(store, report)
    return report


def _status(report: CycleReport, held: bool) -> str:
    """R24: an application's push that held something back holds the cycle; one that failed
    makes it partial (``failed`` stays for a failed Graph read)."""
    if held or any(a.get("held") for a in report.apps):
        return "held"
    if report.counts.get("failure") or report.errors or any(a.get("status") in ("failed", "partial") for a in report.apps):
        return "partial"
    return "succeeded"


def _missing_on_demand(options: CycleOptions, read: GraphRead, report: CycleReport) -> None:
    found_users = {u.id.casefold() for u in read.users.values()} | {
        (u.user_principal_name or "").casefold() for u in read.users.values()
    }
    found_groups = {g.id.casefold() for g in read.groups.values()} | {
        (g.display_name or "").casefold() for g in read.groups.values()
    }
    for ref in options.users:
        if ref.casefold() not in found_users:
            report.errors.append(f"user {ref!r} was not found in Entra ID")
    for ref in options.groups:
        if ref.casefold() not in found_groups:
            report.errors.append(f"group {ref!r} was not found in Entra ID")
