"""Every format of `syncd report`, through the real CLI, with hostile names."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import datetime
from html.parser import HTMLParser

import pytest

from tests.report.conftest import HOSTILE, Env, make_report

ACTIONS = {"create", "update", "adopt", "deactivate", "reactivate", "delete", "add_member", "remove_member", "revoke", "skip"}
TOP = {"cycle_id", "status", "mode", "dry_run", "trigger", "started_at", "ended_at", "counts", "graph_requests", "entries", "errors"}
ENTRY = {"action", "object_type", "entra_id", "name", "status", "reason", "modified"}
PROPS = {"user_name", "display_name", "email", "status", "name"}


def _iso_tz(value: str) -> None:
    assert datetime.fromisoformat(value).tzinfo is not None, value


def check_spec_document(doc: dict) -> None:
    """SPEC §4 `report --format json`: every field, with its type and allowed values."""
    assert set(doc) >= TOP, TOP - set(doc)
    assert isinstance(doc["cycle_id"], str) and doc["cycle_id"]
    assert doc["status"] in {"succeeded", "failed", "held", "partial"}
    assert doc["mode"] in {"full", "incremental", "on_demand"}
    assert isinstance(doc["dry_run"], bool)
    assert doc["trigger"] in {"schedule", "manual"}
    _iso_tz(doc["started_at"])
    _iso_tz(doc["ended_at"])
    assert isinstance(doc["counts"], dict)
    assert all(isinstance(k, str) and type(v) is int for k, v in doc["counts"].items())
    assert type(doc["graph_requests"]) is int
    assert isinstance(doc["errors"], list) and all(isinstance(e, str) for e in doc["errors"])
    assert isinstance(doc["entries"], list)
    for e in doc["entries"]:
        assert set(e) >= ENTRY, ENTRY - set(e)
        assert e["action"] in ACTIONS
        assert e["object_type"] in {"user", "group", "membership", "invite"}
        assert e["status"] in {"success", "failure", "skipped", "staged"}
        assert e["entra_id"] is None or isinstance(e["entra_id"], str)
        assert isinstance(e["name"], str) and isinstance(e["reason"], str)
        assert isinstance(e["modified"], dict)
        for prop, v in e["modified"].items():
            assert prop in PROPS
            assert set(v) == {"old", "new"}


def test_json_matches_spec_and_roundtrips_hostile_names(env: Env) -> None:
    rep = make_report("c1", status="partial")
    env.save(rep)
    doc = env.json("report", "latest", "--format", "json")
    check_spec_document(doc)
    assert doc == env.json("report", "c1", "--json")
    assert doc["cycle_id"] == "c1" and doc["status"] == "partial" and doc["dry_run"] is False
    assert doc["graph_requests"] == 12 and doc["throttled"] == 2
    assert doc["phases"] == {"read": 1.25, "plan": 0.5, "apply": 0.25}
    # every entry exactly as built, hostile names byte for byte
    assert doc["entries"] == json.loads(json.dumps(list(rep.entries)))
    assert [e["name"] for e in doc["entries"][: len(HOSTILE)]] == HOSTILE
    first = doc["entries"][0]
    assert first["change_id"] == "c1:1" and first["local_id"] == 100
    assert first["modified"]["display_name"] == {"old": None, "new": HOSTILE[0]}
    assert doc["counts"] == {"add_member": 1, "create": len(HOSTILE), "failure": 1, "revoke": 1, "skip": 1, "staged": 1, "update": 1}


def test_dry_run_is_stored_and_marked(env: Env) -> None:
    env.save(make_report("dry", dry_run=True))
    doc = env.json("report", "--format", "json")
    assert doc["dry_run"] is True
    text = env.cli("report")
    assert "dry run" in text.out.splitlines()[0]
    assert env.json("reports", "--json")[0]["dry_run"] is True


def test_text_is_a_summary_and_one_table_row_per_entry(env: Env) -> None:
    rep = make_report("c1", status="partial")
    env.save(rep)
    result = env.cli("report")
    assert result.code == 0, result
    out = result.out
    # no raw control characters reach the terminal (ESC would start an escape sequence)
    assert "\x1b" not in out and "\r" not in out
    assert "\\x1b[31m" in out
    lines = out.splitlines()
    assert lines[0] == "cycle c1: partial"
    assert "12 Graph requests (2 throttled)" in out
    assert "phases:" not in out  # the timings are for those who ask (--verbose)
    assert "phases: read 1.25 s, plan 0.50 s, apply 0.25 s" in env.cli("report", "--verbose").out
    header = next(i for i, line in enumerate(lines) if line.startswith("ACTION"))
    table = lines[header + 1:]
    assert len(table) == len(rep.entries)
    assert "line one line two line three" in out
    assert table[-1].split()[:3] == ["create", "group", "failure"]


def test_csv_one_row_per_entry_and_property_formula_safe(env: Env) -> None:
    rep = make_report("c1")
    env.save(rep)
    result = env.cli("report", "--format", "csv")
    assert result.code == 0, result
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == sum(max(1, len(e["modified"])) for e in rep.entries)
    danger = ("=", "+", "-", "@", "\t", "\r")
    for row in rows:
        for cell in row.values():
            assert cell.lstrip(" ")[:1] not in danger, repr(cell)  # no cell is a formula
    names = {r["name"] for r in rows}
    for name in (n.replace("\r\n", "\n") for n in HOSTILE):
        plain = name if name.lstrip(" ")[:1] not in danger else "'" + name
        assert plain in names, name
    assert "'=cmd|' /C calc'!A0" in names
    # newlines kept inside the quoted cell (the subprocess pipe reads \r\n as \n)
    assert "line one\nline two\nline three" in names
    by_prop = [(r["change_id"], r["property"], r["old"], r["new"]) for r in rows if r["change_id"] == "c1:1"]
    assert sorted(by_prop) == [("c1:1", "display_name", "", HOSTILE[0]), ("c1:1", "email", "", "u0@example.com"), ("c1:1", "user_name", "", HOSTILE[0])]
    staged = next(r for r in rows if r["status"] == "staged")
    assert (staged["action"], staged["property"], staged["old"], staged["new"], staged["local_id"]) == ("deactivate", "status", "active", "deactivated", "9")


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[tuple[str, dict]] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_html_is_self_contained_and_escapes_every_name(env: Env) -> None:
    rep = make_report("c1", status="partial")
    env.save(rep)
    result = env.cli("report", "--format", "html")
    assert result.code == 0, result
    page = result.out
    parser = _Cells()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    # exactly our own elements: one inline script, one style, no img/link/iframe from names
    assert tags.count("script") == 1 and tags.count("style") == 1
    assert not {"img", "link", "iframe", "object", "embed", "b"} & set(tags)
    for _, attrs in parser.tags:
        assert "src" not in attrs and "href" not in attrs and not any(k.startswith("on") for k in attrs)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "http://" not in page.replace("http://evil", "") and "https://" not in page
    assert len(parser.rows) == len(rep.entries)
    # the name column, as text (HTML reads CRLF as LF)
    assert [r[3] for r in parser.rows[: len(HOSTILE)]] == [n.replace("\r\n", "\n") for n in HOSTILE]
    assert parser.rows[0][0] == "1" and parser.rows[0][5] == "100"  # the cycle id is in the title, once
    assert "&lt;script&gt;" in page


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "html"])
def test_output_file_is_private(env: Env, fmt: str) -> None:
    env.save(make_report("c1"))
    out = env.tmp / f"report.{fmt}"
    out.write_text("old")
    out.chmod(0o644)
    result = env.cli("report", "--format", fmt, "-o", str(out))
    assert result.code == 0, result
    assert result.out == ""
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert "c1" in out.read_text()
    assert out.read_text() != "old"


def test_unknown_cycle_and_empty_store(env: Env) -> None:
    env.store().close()  # an empty store (a missing one is refused: tests/cli/test_operator.py)
    result = env.cli("report")
    assert result.code == 1 and "no cycle has run yet" in result.err
    env.save(make_report("c1"))
    result = env.cli("report", "nope")
    assert result.code == 1 and "'nope'" in result.err and "Traceback" not in result.err
    result = env.cli("report", "--format", "pdf")
    assert result.code == 2
