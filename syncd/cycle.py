"""One sync cycle: read (Graph) -> plan (pure) -> guards -> apply (store) -> report.

The read happens outside any database transaction; everything after it, the mirror update,
the directory changes, the delta links and the report, commits as one transaction (R16). A
read that fails in any way applies nothing and leaves a ``failed`` report (R14).
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from .config import Config
from .errors import EXIT_FAILED, EXIT_HELD, EXIT_OK, EXIT_PARTIAL, ReadCancelled, SourceError
from .lock import cycle_lock
from .model import Change, Directory, EntraView, GraphRead, Plan
from .plan.guards import apply_guards
from .plan.rules import names_claimed, plan, restrict
from .plan.settings import PlanSettings
from .read import OnPage
from .report.model import CycleReport
from .store import failures, scoped
from .store.apply import Applier
from .store.audit import prune_reports, resave_report, save_report
from .store.buffer import Fold
from .store.db import Store

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
    # `failed` with nothing applied; once the transaction has begun, the cycle finishes
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


def _due_full(store: Store, config: Config) -> bool:
    last = store.get_meta("last_full_at")
    if last is None:
        return True
    age = datetime.now(UTC) - datetime.fromisoformat(last)
    return age >= timedelta(hours=config.sync.full_sync_every_hours)


def _run_locked(store: Store, config: Config, options: CycleOptions, reader: Reader, on_demand_reader: Reader, progress: Progress) -> CycleReport:
    on_demand = bool(options.users or options.groups)
    links = store.delta_links()
    if on_demand:
        mode = "on_demand"
    elif options.full or not links or _due_full(store, config):
        mode, links = "full", {}
    else:
        mode = "incremental"
    report = CycleReport(cycle_id=options.cycle_id or new_cycle_id(), mode=mode, dry_run=options.dry_run, trigger=options.trigger, started_at=now_iso())
    log.info("cycle %s started (%s%s)", report.cycle_id, mode, ", dry run" if options.dry_run else "")

    t0 = time.monotonic()
    try:
        if on_demand:
            read = _cancellable(options, lambda: on_demand_reader(config, list(options.users), list(options.groups)))
        else:
            # pages are taken as they arrive; a full read's users go straight to the store
            sink = store.buffered_read(full=not links)
            try:
                read = sink.finish(_cancellable(options, lambda: reader(config, links or None, progress, sink.add)))
            finally:
                sink.abandon()  # a read the daemon gave up on must not touch the store again
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
        # the commit writes every change of the cycle at once: the WAL is copied back behind it
        with store.transaction(checkpoint_behind=True):
            stored_assignments = store.assignments()  # read once: three steps compare against it
            nothing_new = not on_demand and _nothing_new(store, read, fingerprint, stored_assignments)
            touched = None
            if not nothing_new and not on_demand and store.get_meta("plan_clean") == fingerprint:
                touched = scoped.touched_before(
                    store, read, stored_assignments, transitive=settings.group_members == "transitive", scope_all=settings.scope == "all"
                )
            fold = store.apply_read(read, on_demand=on_demand, stored_assignments=stored_assignments, fold_later=True)
            if on_demand:
                _missing_on_demand(options, read, report)
            if not on_demand:
                _drop_bulk(read)  # in the mirror now (or in the fold's view); the planner reads it from there
            held = False
            if not nothing_new:
                # a dry run that previews SCIM applications applies locally too, inside the
                # transaction it rolls back: the applications' previews diff against that
                preview = options.dry_run and any(a.enabled for a in config.scim)
                held = _settle(store, settings, touched, report, options, on_demand, read, fold, apply_dry=preview)
            else:
                report.notes.append("nothing changed in Entra ID since the last cycle, which applied everything")
            if fold is not None:
                fold.done()  # (done by now on every path that plans)
            report.status = _status(report, held)
            report.ended_at = now_iso()
            if options.dry_run:
                # the applications' previews see the directory as this cycle would leave it
                _push_apps(store, config, report, options, held)
                raise _DryRun
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
    store: Store, settings: PlanSettings, touched: scoped.Touched | None, report: CycleReport,
    options: CycleOptions, on_demand: bool, read: GraphRead, fold: Fold | None, *, apply_dry: bool = False,
) -> bool:
    """Plan, guard, apply and report (the plan's entries join ``report``). True when held.

    ``fold``: the read's buffered users, not in the mirror yet. A whole plan over a tenant
    that needs no slices takes the read's view of Entra (``_view_of_read``) and folds
    them while it plans; every other plan reads the mirror.
    """
    approved = store.staged_entra_ids() if options.approve_deactivations else None
    t1 = time.monotonic()  # (the plan phase: taking the read's view of Entra is part of it)
    read_view = _view_of_read(store, fold, settings) if fold is not None and touched is None and not on_demand else None
    if fold is not None and read_view is None:
        fold.done()
        fold = None
    if read_view is None and touched is None and not on_demand and store.plan_universe_bound() > SLICE_USERS:
        universe = store.plan_universe(within_reach=settings.scope != "all")
        if len(universe) > SLICE_USERS:
            return _settle_in_slices(store, settings, universe, report, options, approved)
        del universe
    the_plan, directory = _plan(store, settings, touched, report, read_view, fold)
    del read_view  # (peak memory: the apply and the report entries come next)
    if on_demand:
        members = {uid: u.account_enabled for uid, u in read.users.items() if uid not in read.users_read}
        the_plan = restrict(the_plan, users_read=read.users_read, groups_read=read.groups_read, members=members)
    held = apply_guards(the_plan, directory, settings, approved).held
    del directory
    report.phases["plan"] = round(time.monotonic() - t1, 3)
    forgetting = None
    if not options.dry_run and not on_demand:  # what the directory waits on is settled here
        # R15: what stays staged is what this plan stages; a staged user back in scope
        # (or deactivated meanwhile) no longer waits for approval
        store.clear_staged_deactivations()
        forgetting = failures.Forgetting(store)
        forgetting.wanted_by(the_plan.changes)
    apply = not options.dry_run or apply_dry
    _backing_off(report, _carry_out(store, the_plan.changes, report, apply=apply, back_off=not on_demand))
    report.errors.extend(the_plan.errors)
    if forgetting is not None:
        forgetting.forget()
    return held


def _carry_out(store: Store, changes: list[Change], report: CycleReport, *, apply: bool, back_off: bool) -> int:
    """Hold back what is backing off, apply, count failures, and turn the changes into
    entries. Returns how many changes are backing off."""
    t = time.monotonic()
    waiting = 0
    if back_off:  # on demand, the operator asks for a try now
        failures.hold_back(store, changes)
        waiting = sum(1 for c in changes if c.status == "skipped" and "backing off" in c.reason)
    entries = len(report.entries)
    built = False
    if apply:
        # the entries are built while the apply's last big batches are written (Applier.apply)
        built = Applier(store, report.cycle_id, now_iso()).apply(changes, meanwhile=lambda: report.add_changes(changes, release=False))
        if not built:
            report.entries.truncate(entries)  # (built as if a batch the database refused went in)
        failures.record(store, changes, now_iso())
    report.phases["apply"] = round(report.phases.get("apply", 0) + time.monotonic() - t, 3)
    if built:
        changes.clear()
    else:
        report.add_changes(changes)  # lets go of each change (peak RSS on large plans)
    return waiting


def _backing_off(report: CycleReport, waiting: int) -> None:
    if waiting:
        report.errors.append(f"{waiting} change(s) that failed before are backing off (listed as skipped)")


# A full plan over more users than this goes in slices (a 1M-user plan at once overflows the
# memory target: BENCHMARKS.md). Tests lower it to exercise slicing on small tenants.
SLICE_USERS = 100_000


def _settle_in_slices(
    store: Store, settings: PlanSettings, universe: list[str], report: CycleReport, options: CycleOptions,
    approved: set[str] | None,
) -> bool:
    """A full plan over a large tenant, ``SLICE_USERS`` Entra users at a time.

    Each slice is planned like a scoped plan over its users (``scoped.scoped_views``: they,
    the local users holding the names they map to, unmanaged users, Administrators'
    members), keeps the changes that are its own (``_own``; the first slice also keeps
    every group change) and is applied before the next slice is planned, so the next one
    sees its groups, names and adoptions. Slices go in Entra id order, the order in which
    the whole plan settles name clashes. Users and memberships applied are not planned
    again: the planner has nothing to do for a user already as Entra says.

    What the guards judge (deactivations, Administrators' memberships) waits until every
    slice is planned, then is judged once against the directory as it was before the
    cycle (R12, R15). A dry run applies the slices too, inside the transaction it rolls
    back: a later slice must see what an earlier one would do.
    """
    active = scoped.active_managed_users(store)
    guard_directory = store.load_directory(store.administrators())
    guard_directory.active_managed = active
    admin = guard_directory.admin_group()
    admin_ref = ("local", admin.id) if admin is not None else None
    store.clear_staged_deactivations()  # R15, as in _settle
    forgetting = failures.Forgetting(store)
    judged_later: list[Change] = []
    judged_keys: set[str] = set()
    in_scope = waiting = 0
    starts = range(0, len(universe), SLICE_USERS)
    for start in starts:
        t1 = time.monotonic()
        own = set(universe[start : start + SLICE_USERS])
        entra, directory = scoped.scoped_views(store, (own, set()), partial(names_claimed, settings=settings))
        slice_plan = plan(entra, directory, settings, own_users=own)
        del entra, directory
        in_scope += slice_plan.in_scope_users
        now = []
        for c in slice_plan.changes:
            if not _own(c, own, first=start == 0):
                continue
            if c.error:
                report.errors.append(c.reason)
            if c.action == "deactivate" or (c.object_type == "membership" and c.group_ref == admin_ref):
                key = failures.change_key(c)  # the first slice may have planned it for context
                if key not in judged_keys:
                    judged_keys.add(key)
                    judged_later.append(c)
            else:
                now.append(c)
        report.phases["plan"] = round(report.phases.get("plan", 0) + time.monotonic() - t1, 3)
        forgetting.wanted_by(now)
        del slice_plan
        waiting += _carry_out(store, now, report, apply=True, back_off=True)
    last = Plan(changes=judged_later, in_scope_users=in_scope)
    held = apply_guards(last, guard_directory, settings, approved).held
    forgetting.wanted_by(last.changes)
    waiting += _carry_out(store, last.changes, report, apply=True, back_off=True)
    _backing_off(report, waiting)
    forgetting.forget()
    report.errors.extend(last.errors)
    report.notes.append(f"planned in {len(starts)} slices of up to {SLICE_USERS:,} users (a large tenant: memory)")
    return held


def _own(c: Change, users: set[str], *, first: bool) -> bool:
    """Whether a slice's change is its own to apply: its users' changes and memberships;
    the first slice also takes every group, invite and other membership change (a later
    slice finds those done, or plans them again only for context)."""
    if c.object_type == "user":
        return c.entra_id in users
    if c.object_type == "membership":
        return first or c.user_entra_id in users
    return first


def _drop_bulk(read: GraphRead) -> None:
    """Free a read's objects once they are in the mirror (peak memory: BENCHMARKS.md)."""
    read.users, read.groups, read.members_added, read.members_removed = {}, {}, {}, {}
    read.removed_users, read.removed_groups = set(), set()
    read.buffered_held = None  # (the Fold has them)


def _cancellable(options: CycleOptions, read: Callable[[], GraphRead]) -> GraphRead:
    """Run the read; with ``options.cancel``, in a helper thread the cycle stops waiting for.

    The read touches no database, so an abandoned one (left to finish or die with the
    process) cannot leave anything half-applied.
    """
    if options.cancel is None:
        return read()
    box: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["read"] = read()
        except BaseException as exc:  # noqa: BLE001 - handed over to the cycle's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="syncd-read", daemon=True).start()
    while not done.wait(0.1):
        if options.cancel.is_set():
            raise ReadCancelled("the service is stopping: the read from Graph was abandoned")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["read"]  # type: ignore[return-value]


def _view_of_read(store: Store, fold: Fold, settings: PlanSettings) -> EntraView | None:
    """The read's own view of Entra for a whole plan (``Fold.take_view``), within reach
    unless scope is "all"; None when the read did not hold its users, or when the plan
    would act on more users than one plan takes (``SLICE_USERS``)."""
    if not fold.has_view:
        return None
    linked = store.linked_entra_ids()
    if fold.universe_bound(linked) > SLICE_USERS:
        return None
    view = fold.take_view()
    assert view is not None  # (has_view)
    return view if settings.scope == "all" else view.within_reach(linked)  # "all": every user is in scope


def _plan(
    store: Store, settings: PlanSettings, touched: scoped.Touched | None, report: CycleReport,
    read_view: EntraView | None, fold: Fold | None,
) -> tuple[Plan, Directory]:
    """The plan over what the read touched when that is enough, else over everything:
    over ``read_view`` when given, folding the buffered users into the mirror meanwhile
    (``fold``, which comes with it)."""
    if touched is not None:
        entra, directory = scoped.scoped_views(store, touched, partial(names_claimed, settings=settings))
        the_plan = plan(entra, directory, settings)
        active = scoped.active_managed_users(store)
        directory.active_managed = active  # the guards judge the whole directory's numbers
        leaving = sum(1 for c in the_plan.changes if c.action == "deactivate")
        if not leaving * 2 >= active > 0:
            # the guards see the whole directory's numbers, not the slice's
            joining = sum(1 for c in the_plan.changes if c.object_type == "user" and c.action in ("create", "adopt", "reactivate"))
            the_plan.in_scope_users = active - leaving + joining
            report.notes.append(f"planned over the {len(entra.users)} users this read touched")
            return the_plan, directory
        # half the directory leaving: let the guards judge it on the whole picture
    directory = store.load_directory()
    if read_view is None:
        entra = store.load_entra_view(within_reach=settings.scope != "all")  # "all": every user is in scope
        return plan(entra, directory, settings), directory
    assert fold is not None  # a read's view comes with its fold (_settle)
    with fold.alongside():  # the planner does no I/O: the connection is the fold's meanwhile
        return plan(read_view, directory, settings), directory


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
