"""R22/R24 crash safety: a push killed with SIGKILL at random moments, then a fresh push,
leaves no duplicate and nothing missing in the application, which then equals the directory."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncd.store.db import Store
from tests.push.conftest import TOKEN, AppView, ScimServer, assert_in_step, start_server
from tests.push.killpush import world


def _count(view: AppView) -> int:
    return int(view.http.get("Users", params={"count": 0}).json()["totalResults"])


def _push(store: Path, url: str, version: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.push.killpush", str(store), url, str(version)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2],
                            env={**os.environ, "SYNCD_TEST_SCIM_TOKEN": TOKEN})


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["bulk50", "patch"])
def test_kill_9_at_random_moments_then_a_fresh_push_converges(servers: dict[str, ScimServer], tmp_path: Path,
                                                              flavour: str) -> None:
    # Bulk of 50 operations at most: a push is many bulks, and a kill falls between or inside them
    own = flavour not in servers
    server = start_server(flavour, tmp_path) if own else servers[flavour]
    try:
        _kill_and_converge(server, tmp_path, flavour)
    finally:
        if own:
            server.process.kill()
            server.process.wait()


def _kill_and_converge(server: ScimServer, tmp_path: Path, flavour: str) -> None:
    url = server.tenant()
    store = tmp_path / "syncd.db"
    rng = random.Random(f"{flavour}-kill")
    view = AppView(url)
    killed = 0
    midway = set()  # what the application held when a push was killed: some, not all
    for version in (0, 1):
        for _ in range(6):
            proc = _push(store, url, version)
            assert proc.stdout is not None and proc.stdout.readline() == b"pushing\n"
            if version == 0:
                # the first push: wait until the creates have begun, so kills fall among them
                deadline = time.monotonic() + 20
                while proc.poll() is None and time.monotonic() < deadline and not _count(view):
                    time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait(timeout=60)
            # between kills: never a duplicate (AppView.state asserts it)
            users, groups = view.state()
            if version == 0:
                midway.add(len(users) + len(groups) + sum(map(len, groups.values())))
        proc = _push(store, url, version)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        out = out.removeprefix(b"pushing\n")
        assert out.split()[0] == b"succeeded", (out, err)
        assert_in_step(world(version), view)
        again = _push(store, url, version)
        out, _ = again.communicate(timeout=120)
        out = out.removeprefix(b"pushing\n")
        assert out.split()[:2] == [b"succeeded", b"0"], out  # in step: nothing more to send
    assert killed >= 3, "the pushes ended before the kills: make the directory bigger"
    want_users, want_groups = world(0).expected()
    full = len(want_users) + len(want_groups) + sum(map(len, want_groups.values()))
    if flavour == "patch":  # (many bulks can end before any kill lands: there only convergence is checked)
        assert any(0 < n < full for n in midway), (midway, full)  # at least one kill fell in the middle of a push
    with Store(str(store)) as s:
        assert s.conn.execute("SELECT count(*) FROM app_users").fetchone()[0] == 300
