"""The HTML report rendered by a real browser: Debian's headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.report.conftest import HOSTILE, Env, make_report

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium): apt-get install -y chromium"
)


def dump_dom(tmp: Path, page: Path, fragment: str = "") -> str:
    profile = tmp / f"chromium-profile-{abs(hash(fragment))}"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri() + fragment],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<table" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class _Rows(HTMLParser):
    """The entries table's rows as the browser left them: cell texts and whether hidden."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[list[str], bool]] = []
        self.title = ""
        self.body_attrs: dict[str, str | None] = {}
        self._cell: list[str] | None = None
        self._tbody = False
        self._title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body_attrs = a
        elif tag == "title":
            self._title = True
        elif tag == "tbody":
            self._tbody = True
        elif tag == "tr" and self._tbody:
            self.rows.append(([], "hidden" in a))
        elif tag == "td" and self._tbody:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1][0].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._tbody = False
        elif tag == "title":
            self._title = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._title:
            self.title += data


def parse(dom: str) -> _Rows:
    p = _Rows()
    p.feed(dom)
    return p


@pytest.fixture
def page(env: Env) -> tuple[Env, Path, int]:
    rep = make_report("c1", status="partial")
    env.save(rep)
    out = env.tmp / "report.html"
    result = env.cli("report", "--format", "html", "-o", str(out))
    assert result.code == 0, result
    return env, out, len(rep.entries)


def test_chromium_renders_every_entry_and_runs_no_injected_script(page) -> None:
    env, out, n = page
    dom = parse(dump_dom(env.tmp, out))
    assert len(dom.rows) == n
    assert not any(hidden for _, hidden in dom.rows)
    names = [cells[3] for cells, _ in dom.rows]
    for name in HOSTILE:
        assert name.replace("\r\n", "\n") in names, name
    # the hostile names stayed text: no injected script ran, no handler fired
    assert dom.title == "syncd cycle c1"
    assert "data-pwned" not in dom.body_attrs


def test_chromium_filter_and_status_select(page) -> None:
    env, out, n = page
    dom = parse(dump_dom(env.tmp, out, "#q=calc"))
    visible = [cells for cells, hidden in dom.rows if not hidden]
    # the user named after the formula, and the update whose new display name is it
    assert [(c[1], c[3]) for c in visible] == [("create", HOSTILE[3]), ("update", HOSTILE[2])]
    assert len(dom.rows) == n  # filtered rows are hidden, not removed

    dom = parse(dump_dom(env.tmp, out, "#status=staged"))
    visible = [cells for cells, hidden in dom.rows if not hidden]
    assert [(c[1], c[6]) for c in visible] == [("deactivate", "staged")]

    raw = dump_dom(env.tmp, out, "#q=nothing-matches-this")
    assert not [cells for cells, hidden in parse(raw).rows if not hidden]
    assert re.search(r'<span id="shown">0</span>', raw)
