"""R16 crash consistency: kill -9 at random moments of `syncd sync` over a few thousand users.

The tenant (3,000 users in 30 assigned groups, then three rounds of mass changes) is read
by two stores:

- the control store, whose cycles run to the end, never interrupted;
- the crash store, where `syncd sync` is killed with SIGKILL at a random moment, several
  times per round, then allowed to finish.

After every kill: ``PRAGMA integrity_check`` is ``ok``; ``syncd audit verify`` exits 0; the
directory is exactly as it was before the cycle or exactly as the control store has it after
the cycle, never in between; and a cycle that changed the directory left its report (after
such a kill, the store is put back as it was before the cycle, so that every kill of a round
hits the same cycle). After each round the crash store, once a cycle runs to its end, holds the same directory as the
control store; the last of these cycles runs as a plain `syncd sync` subprocess.

Most kills hit a `syncd sync` forked from this warm interpreter (the CLI's own entry point,
``syncd.cli.cli.main(["sync", ...])``), so that the moment drawn falls inside the cycle
rather than inside Python's start-up and msgraph's import (~2 s); a few per round are
plain `python -m syncd sync` subprocesses. Kill moments are drawn uniformly over the cycle's
duration measured on the control store for the same round, for half of the kills over its
transaction only (after the read).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from syncd.simulator import Simulator, Tenant
from syncd.simulator.generate import generate_tenant
from tests.conftest import run_syncd
from tests.safety.conftest import directory_view, integrity

USERS = 3000
GROUPS = 30
FORKED_KILLS_PER_ROUND = 6
CLI_KILLS_PER_ROUND = 1
ROUNDS = 4  # the initial load, then three rounds of changes


def _mutate(t: Tenant, round_no: int, rng: random.Random) -> str:
    """Mass changes for one round; returns the cycle's extra argument (or "")."""
    users = [uid for uid, u in t.users.items() if not u.soft_deleted]
    groups = list(t.groups)
    if round_no == 1:
        for uid in rng.sample(users, 300):
            t.disable_user(uid)
        for uid in rng.sample(users, 400):
            t.update_user(uid, display_name=f"Renamed {uid[:8]}")
        for gid in groups[:8]:
            t.rename_group(gid, t.groups[gid].name.replace("Group", "Team"))
        for gid in groups[-2:]:
            t.unassign(gid)
        for n in range(200):
            uid = t.add_user(f"new{round_no}-{n}@{t.domain}")
            t.add_member(groups[n % 10], uid)
        return ""
    if round_no == 2:
        for uid in [u for u in users if not t.users[u].enabled][:150]:
            t.enable_user(uid)
        t.assign(groups[-1])
        for gid in groups[10:14]:
            for uid in list(t.groups[gid].members)[:60]:
                t.remove_member(gid, uid)
        for uid in rng.sample(users, 80):
            t.soft_delete_user(uid)
        for uid in rng.sample([u for u in users if not t.users[u].soft_deleted], 80):
            t.hard_delete_user(uid)
        return ""
    # round 3: a full read that finds many small differences
    for uid in rng.sample([uid for uid, u in t.users.items() if not u.soft_deleted], 300):
        t.update_user(uid, display_name=f"Again {uid[:8]}")
    for gid in groups[20:24]:
        t.delete_group(gid)
    return "--full"


def _forked_sync(config: Path, extra: str) -> int:
    """`syncd sync` from the CLI's entry point, in a child forked from this warm process."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            from syncd.cli import cli

            cli.main(["sync", "--config", str(config), *([extra] if extra else [])], prog_name="syncd")
        except BaseException:  # noqa: BLE001, S110 - SystemExit from click included
            pass
        os._exit(0)
    return pid


def _cli_sync(config: Path, extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "sync", "--config", str(config), *([extra] if extra else [])],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )


def _cycles(store: Path) -> int:
    if not store.exists():
        return 0
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM cycles").fetchone()[0]
    except sqlite3.OperationalError:  # killed before the schema was created
        return 0
    finally:
        conn.close()


def _view(store: Path) -> dict | None:
    """The directory, or None while the store holds nothing yet (no file, no schema, no cycle)."""
    if not store.exists() or _cycles(store) == 0:
        return None
    return directory_view(store)


def _wal_size(store: Path) -> int:
    wal = Path(f"{store}-wal")
    return wal.stat().st_size if wal.exists() else 0


def _backup(store: Path) -> None:
    """Keep a copy of the store as it is before the round's cycle (checkpointed: one file)."""
    backup = store.with_suffix(".before")
    backup.unlink(missing_ok=True)
    if store.exists():
        conn = sqlite3.connect(store)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        backup.write_bytes(store.read_bytes())


def _restore(store: Path) -> None:
    """Put the store back as it was before the round's cycle (no process has it open)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    backup = store.with_suffix(".before")
    if backup.exists():
        store.write_bytes(backup.read_bytes())
    else:
        store.unlink(missing_ok=True)


def _audit_verify(config: Path, store: Path) -> None:
    result = run_syncd("audit", "verify", "--config", str(config))
    if _schema_version(store) == 0:  # killed before the first cycle set the store up: as if missing
        assert result.code != 0 and "holds nothing yet" in result.err and "Traceback" not in result.err, result
        return
    assert result.code == 0, f"syncd audit verify failed after a kill: {result}"


def _schema_version(store: Path) -> int:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_kill_9_at_random_moments_never_breaks_the_store(tmp_path: Path) -> None:
    from syncd.config import load
    from syncd.cycle import CycleOptions, run_cycle

    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    tenant = generate_tenant(USERS, GROUPS, USERS // GROUPS, seed=seed % 1000)
    crash_store, control_store = tmp_path / "crash" / "syncd.db", tmp_path / "control" / "syncd.db"
    stats = {"kills": 0, "rolled_back": 0, "rolled_back_mid_write": 0, "committed": 0, "cli_kills": 0}
    t_start = time.monotonic()
    with Simulator(tenant) as sim:
        crash_cfg, control_cfg = tmp_path / "crash.toml", tmp_path / "control.toml"
        settings = {"sync": {"deactivation_threshold": 0}}  # mass changes are the point here
        crash_cfg.write_text(sim.config_toml(str(crash_store), **settings))
        control_cfg.write_text(sim.config_toml(str(control_store), **settings))
        control = load(str(control_cfg))
        crash = load(str(crash_cfg))
        run_cycle(control, CycleOptions(dry_run=True))  # warm: msgraph imported, caches built
        before = None  # the directory before the round's cycle (None: a new, empty store)
        for round_no in range(ROUNDS):
            extra = _mutate(tenant, round_no, rng) if round_no else ""
            t0 = time.monotonic()
            report = run_cycle(control, CycleOptions(full=extra == "--full"))
            window = time.monotonic() - t0
            read_s = report.phases.get("read", 0.0)
            assert report.status == "succeeded", (round_no, report.errors)
            after = directory_view(control_store)
            assert after != before, "every round must change the directory"
            current = before
            _backup(crash_store)
            kills = ["fork"] * FORKED_KILLS_PER_ROUND + ["cli"] * CLI_KILLS_PER_ROUND
            rng.shuffle(kills)
            for kind in kills:
                cycles_before = _cycles(crash_store)
                wal_before = _wal_size(crash_store)
                if kind == "fork":
                    # half over the whole cycle, half over its transaction (plan, apply, commit)
                    delay = rng.uniform(0, window * 1.1) if rng.random() < 0.5 else rng.uniform(read_s, window * 1.1)
                    pid = _forked_sync(crash_cfg, extra)
                    time.sleep(delay)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                else:
                    delay = rng.uniform(1.0, 2.5 + window)  # start-up and import come first
                    proc = _cli_sync(crash_cfg, extra)
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    stats["cli_kills"] += 1
                stats["kills"] += 1
                wal_grew = _wal_size(crash_store) > wal_before
                where = f"seed {seed}, round {round_no}, {kind} kill after {delay:.2f}s"
                if crash_store.exists():
                    assert integrity(crash_store) == "ok", where
                    _audit_verify(crash_cfg, crash_store)
                now = _view(crash_store)
                cycles_now = _cycles(crash_store)
                if now == after:
                    stats["committed"] += 1
                    assert cycles_now == cycles_before + 1, f"{where}: a committed cycle's report is missing"
                    _restore(crash_store)  # back to before the cycle, to kill it again
                    assert _view(crash_store) == current
                elif now == current:
                    stats["rolled_back"] += 1
                    # frames written to the WAL, but no commit: killed inside the transaction
                    stats["rolled_back_mid_write"] += wal_grew
                    assert cycles_now == cycles_before, f"{where}: a report without its changes"
                else:
                    raise AssertionError(f"{where}: the directory is neither as before the cycle nor as after it")
            # then the crash store's next cycle runs to its end and converges
            if round_no == ROUNDS - 1:
                result = run_syncd("sync", "--config", str(crash_cfg), *([extra] if extra else []))
                assert result.code == 0, result
            else:
                assert run_cycle(crash, CycleOptions(full=extra == "--full")).status == "succeeded"
            assert directory_view(crash_store) == after, f"seed {seed}, round {round_no}: no convergence"
            assert integrity(crash_store) == "ok"
            before = after
        _audit_verify(crash_cfg, crash_store)
    elapsed = time.monotonic() - t_start
    print(f"crash test: {stats} in {elapsed:.1f}s (seed {seed})")
    assert stats["kills"] >= 20, stats
    assert stats["rolled_back"] >= 1, f"no kill landed before a commit: {stats}"


def test_a_cli_cycle_exits_with_its_commit_in_the_database_file(tmp_path: Path) -> None:
    """The CLI copies the cycle's WAL back behind its printing (db.checkpoints_left_to_caller)
    and waits for that before it exits, so no cycle leaves its changes only in the WAL."""
    store = tmp_path / "syncd.db"
    with Simulator(generate_tenant(300, 6, 40, seed=3)) as sim:
        config = tmp_path / "syncd.toml"
        config.write_text(sim.config_toml(str(store)))
        result = run_syncd("sync", "--config", str(config))
        assert result.code == 0, result
    copy = tmp_path / "copy.db"  # the database file alone, without its WAL
    copy.write_bytes(store.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("SELECT count(*) FROM cycles").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM users WHERE managed = 1").fetchone()[0] > 100
    finally:
        conn.close()
