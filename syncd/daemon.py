"""`syncd run`: the daemon systemd runs (``Type=notify``).

- APScheduler 3.11 ``BackgroundScheduler``: one job, an ``IntervalTrigger`` of
  ``sync.interval_minutes`` with ``sync.jitter_seconds`` of jitter, first run at start,
  ``coalesce=True`` and ``max_instances=1`` (a run due while a cycle is still going is skipped,
  missed runs collapse into one). The cycles take the same lock as one-shot commands (R19,
  ``wait=0``: when a manual `sync` holds it, the scheduled cycle is skipped with a log line),
  and have the trigger ``schedule``.
- The main thread only waits for signals (a self-pipe, so a signal wakes it at once) and
  pings the watchdog. SIGTERM/SIGINT: STOPPING=1, then the current cycle is cancelled: a read
  in progress is abandoned and the cycle ends ``failed`` with nothing applied; a cycle already
  inside its transaction finishes (it is one SQLite transaction, so a kill would roll it
  back anyway); a SCIM push after it sends no new request (the next cycle sends the rest). SIGHUP: the configuration is read again; a bad one is refused with a log
  line and the old one kept.
- Back-off (like Entra's quarantine): after 2 or more failed cycles in a row the next cycle
  waits ``interval × 2^(failures-1)``, at most :data:`BACKOFF_CAP` (4 hours, or the interval
  if that is longer). The store's meta ``backoff`` (``{"failures", "next_run"}``) and
  ``next_run`` tell `syncd status`; a cycle that does not fail clears the back-off, and a
  SIGHUP (reload) while backing off runs the next cycle at once.
- WATCHDOG=1 every WatchdogSec/2 while the scheduler is alive and no cycle has been running
  for longer than its own timeout plus :data:`STUCK_MARGIN`; a wedged daemon gets restarted.

For tests only, the hidden option ``syncd run --interval-seconds N`` replaces the interval
(the configuration keeps ``interval_minutes >= 1`` as SPEC §2 says).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from . import notify
from .config import Config
from .config import load as load_config
from .errors import LockHeld, SyncdError
from .logs import setup_logging

log = logging.getLogger("syncd.daemon")

JOB_ID = "cycle"
BACKOFF_CAP = timedelta(hours=4)
STUCK_MARGIN = timedelta(minutes=5)
STOP_GRACE_S = 60.0  # the units' TimeoutStopSec is 90 s


def backoff_delay(failures: int, interval: timedelta, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """The wait before the next cycle after ``failures`` failed cycles in a row."""
    if failures < 2:
        return interval
    return min(interval * (2 ** (failures - 1)), max(cap, interval))


def status_line(report) -> str:
    return f"last cycle {report.cycle_id} ({report.mode}, {report.ended_at}): {report.outline()}"[:400]


class Daemon:
    def __init__(self, config: Config, interval_seconds: float | None = None, stop_grace: float = STOP_GRACE_S):
        self.config = config
        self.interval_override = interval_seconds
        self.stop_grace = stop_grace
        self.cancel = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.cycle_started: float | None = None
        self.last_status = "started"
        self.failures = 0
        self.scheduler: Any = None  # a BackgroundScheduler once run() starts
        self._signals: list[int] = []

    # ------------------------------------------------------------------ schedule

    def interval(self, config: Config | None = None) -> timedelta:
        if self.interval_override:
            return timedelta(seconds=self.interval_override)
        return timedelta(minutes=(config or self.config).sync.interval_minutes)

    def _trigger(self, config: Config):
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(
            seconds=self.interval(config).total_seconds(),
            jitter=config.sync.jitter_seconds or None,
            timezone=UTC,
        )

    def _next_run(self) -> datetime | None:
        job = self.scheduler.get_job(JOB_ID) if self.scheduler else None
        return job.next_run_time if job else None

    # ------------------------------------------------------------------ the job

    def _job(self) -> None:
        from .cycle import CycleOptions, run_cycle
        from .store.db import checkpoints_left_to_caller

        if self.cancel.is_set():
            return
        config = self.config  # a SIGHUP during the cycle applies from the next one
        self.idle.clear()
        self.cycle_started = time.monotonic()
        notify.status(f"cycle running since {datetime.now(UTC).isoformat(timespec='seconds')}; {self.last_status}")
        report = None
        try:
            # the cycle's commit leaves the WAL: copied back here, after the cycle, before the daemon sleeps
            with checkpoints_left_to_caller():
                report = run_cycle(config, CycleOptions(trigger="schedule", wait=0, command="syncd run", cancel=self.cancel))
        except LockHeld as exc:
            log.warning("scheduled cycle skipped: %s", exc)
        except SyncdError as exc:
            log.error("scheduled cycle could not run: %s", exc)
        except Exception:
            log.exception("scheduled cycle crashed")
        finally:
            self.cycle_started = None
        try:
            if report is not None and not self.cancel.is_set():
                self._after_cycle(config, report)
        except Exception:  # noqa: BLE001 - never kill the scheduler thread
            log.exception("could not record the schedule after the cycle")
        finally:
            self.idle.set()

    def _after_cycle(self, config: Config, report) -> None:
        from .store.audit import consecutive_failures
        from .store.db import Store

        self.last_status = status_line(report)
        with Store(config.store_path) as store:
            self.failures = consecutive_failures(store)
            next_run = self._next_run()
            backoff = None
            if self.failures >= 2:
                delay = backoff_delay(self.failures, self.interval(config))
                if config.sync.jitter_seconds:
                    delay += timedelta(seconds=random.uniform(0, config.sync.jitter_seconds))
                next_run = datetime.now(UTC) + delay
                self.scheduler.modify_job(JOB_ID, next_run_time=next_run)
                backoff = {"failures": self.failures, "next_run": next_run.isoformat(timespec="seconds")}
                log.warning("%d cycles failed in a row: backing off, next cycle at %s", self.failures, backoff["next_run"])
            with store.transaction():
                store.set_meta("backoff", json.dumps(backoff) if backoff else None)
                store.set_meta("next_run", next_run.astimezone(UTC).isoformat(timespec="seconds") if next_run else None)
        nxt = f"; next {next_run.astimezone(UTC).isoformat(timespec='seconds')}" if next_run else ""
        notify.status(self.last_status + nxt + (f" (backing off after {self.failures} failures)" if backoff else ""))

    # ------------------------------------------------------------------ signals

    def _on_signal(self, signum: int, _frame) -> None:
        self._signals.append(signum)

    def reload(self) -> None:
        notify.reloading()
        path = self.config.path
        try:
            new = load_config(path)
        except SyncdError as exc:
            log.error("SIGHUP: configuration %s refused, keeping the running one: %s", path, exc)
            notify.ready(f"reload refused (bad configuration); {self.last_status}")
            return
        old = self.config
        setup_logging(new.log_level, new.log_format)
        for warning in new.warnings:
            log.warning("%s", warning)
        self.config = new
        if (self.interval(new), new.sync.jitter_seconds) != (self.interval(old), old.sync.jitter_seconds):
            self.scheduler.reschedule_job(JOB_ID, trigger=self._trigger(new))
            self._write_next_run()
        if self.failures >= 2:
            # backing off: the operator has probably just fixed the cause, so try now
            log.info("SIGHUP while backing off after %d failed cycles: next cycle now", self.failures)
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))
            self._write_next_run()
        if new.store_path != old.store_path:
            log.warning("SIGHUP: store.path changed from %s to %s: the next cycle uses the new store", old.store_path, new.store_path)
        log.info("SIGHUP: configuration %s reloaded", path)
        notify.ready(f"configuration reloaded; {self.last_status}")

    def _write_next_run(self) -> None:
        from .store.db import Store

        nxt = self._next_run()
        try:
            with Store(self.config.store_path) as store:
                store.set_meta("next_run", nxt.astimezone(UTC).isoformat(timespec="seconds") if nxt else None)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record the next run: %s", exc)

    # ------------------------------------------------------------------ main

    def healthy(self) -> bool:
        if self.scheduler is None or not self.scheduler.running:
            return False
        started = self.cycle_started
        if started is None:
            return True
        limit = timedelta(minutes=self.config.sync.cycle_timeout_minutes) + STUCK_MARGIN
        return time.monotonic() - started < limit.total_seconds()

    def run(self) -> int:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        from .store.db import Store

        # fail fast (and before READY) when the store cannot be opened
        with Store(self.config.store_path):
            pass

        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_job(
            self._job, self._trigger(self.config), id=JOB_ID, name="sync cycle", next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()
        log.info(
            "syncd daemon started (pid %d): a cycle now, then every %s%s",
            os.getpid(), self.interval(), f" + up to {self.config.sync.jitter_seconds} s jitter" if self.config.sync.jitter_seconds else "",
        )
        notify.ready("started; first cycle running")

        wd = notify.watchdog_interval()
        tick = min(1.0, wd) if wd else 1.0
        next_ping = 0.0
        code = 0
        try:
            while True:
                if wd and time.monotonic() >= next_ping:
                    if self.healthy():
                        notify.watchdog()
                    else:
                        log.error("unhealthy (scheduler stopped or a cycle stuck): not pinging the watchdog")
                    next_ping = time.monotonic() + wd
                with contextlib.suppress(InterruptedError):
                    select.select([rfd], [], [], tick)
                try:
                    while os.read(rfd, 64):
                        pass
                except BlockingIOError:
                    pass
                pending, self._signals = self._signals, []
                if any(s in (signal.SIGTERM, signal.SIGINT) for s in pending):
                    code = self.stop(signal.Signals(next(s for s in pending if s != signal.SIGHUP)).name)
                    break
                if signal.SIGHUP in pending:
                    self.reload()
        finally:
            signal.set_wakeup_fd(-1)
            os.close(rfd)
            os.close(wfd)
        return code

    def stop(self, why: str) -> int:
        running = not self.idle.is_set()
        log.info("%s: stopping%s", why, " (cancelling the running cycle)" if running else "")
        notify.stopping(f"stopping ({why}); {self.last_status}")
        self.cancel.set()
        self.scheduler.pause()
        if not self.idle.wait(self.stop_grace):
            log.error("the running cycle did not end within %g s: exiting anyway (SQLite rolls back an unfinished transaction)", self.stop_grace)
            logging.shutdown()
            os._exit(1)
        self.scheduler.shutdown(wait=True)
        try:
            from .store.db import Store

            with Store(self.config.store_path) as store, store.transaction():
                # status: not scheduled (and not backing off) while the daemon is down
                store.set_meta("next_run", None)
                store.set_meta("backoff", None)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not clear next_run: %s", exc)
        log.info("stopped")
        return 0


def run_daemon(config: Config, interval_seconds: float | None = None) -> int:
    setup_logging(config.log_level, config.log_format)
    return Daemon(config, interval_seconds).run()
