"""`syncd reports` (list, the default) and `syncd reports export` through the real CLI."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

from tests.report.conftest import Env, make_report

SUMMARY = {"cycle_id", "status", "mode", "dry_run", "trigger", "started_at", "ended_at", "counts"}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def seed(env: Env) -> None:
    statuses = ["succeeded", "partial", "held", "failed", "succeeded", "succeeded"]
    env.save(*(make_report(f"c{i}", started=T0 + timedelta(days=i), status=s, dry_run=(i == 4),
                           trigger="schedule" if i % 2 else "manual") for i, s in enumerate(statuses)))


def test_list_json_newest_first_with_spec_fields(env: Env) -> None:
    seed(env)
    rows = env.json("reports", "--json")
    assert [r["cycle_id"] for r in rows] == ["c5", "c4", "c3", "c2", "c1", "c0"]
    for r in rows:
        assert set(r) == SUMMARY
    assert rows[1]["dry_run"] is True and rows[0]["trigger"] == "schedule"
    assert env.json("reports", "list", "--json") == rows  # the explicit subcommand too


def test_list_filters(env: Env) -> None:
    seed(env)
    ids = lambda *a: [r["cycle_id"] for r in env.json("reports", "--json", *a)]  # noqa: E731
    assert ids("--limit", "2") == ["c5", "c4"]
    assert ids("--since", "2026-01-04") == ["c5", "c4", "c3"]
    assert ids("--since", "2026-01-04T12:00:01+00:00") == ["c5", "c4"]
    assert ids("--since", "2026-01-04T13:00:00+01:00") == ["c5", "c4", "c3"]
    assert ids("--status", "succeeded") == ["c5", "c4", "c0"]
    assert ids("--status", "succeeded", "--limit", "1") == ["c5"]
    assert ids("--status", "failed", "--since", "2026-01-02") == ["c3"]
    assert ids("--since", "2030-01-01") == []


def test_list_text_and_usage_errors(env: Env) -> None:
    seed(env)
    result = env.cli("reports", "--limit", "3")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split()[:3] == ["CYCLE", "STATUS", "MODE"]
    assert len(lines) == 4 and "full (dry run)" in lines[2]
    for bad in (["--since", "yesterday"], ["--status", "ok"], ["--limit", "0"], ["nonsense"]):
        result = env.cli("reports", *bad)
        assert result.code == 2, (bad, result)
        assert "Traceback" not in result.err
    assert "export" in env.cli("reports", "--help").out


def test_export_json_lines_whole_documents(env: Env) -> None:
    seed(env)
    result = env.cli("reports", "export", "--since", "2026-01-03")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert len(lines) == 4  # one line per cycle: embedded newlines are escaped
    docs = [json.loads(line) for line in lines]
    assert [d["cycle_id"] for d in docs] == ["c2", "c3", "c4", "c5"]  # oldest first, as a SIEM ingests
    full = env.json("report", "c2", "--format", "json")
    assert {k: v for k, v in docs[0].items() if k != "chain"} == full
    assert len(docs[0]["entries"]) == len(full["entries"]) > 0
    assert docs[1]["chain"]["prev_hash"] == docs[0]["chain"]["hash"]


def test_export_to_a_private_file_with_status(env: Env) -> None:
    seed(env)
    out = env.tmp / "siem.jsonl"
    result = env.cli("reports", "export", "--status", "succeeded", "-o", str(out))
    assert result.code == 0, result
    assert result.out == "" and "wrote 3 cycles" in result.err
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert [json.loads(x)["cycle_id"] for x in out.read_text().splitlines()] == ["c0", "c4", "c5"]


def test_config_before_the_subcommand(env: Env) -> None:
    seed(env)
    from tests.conftest import run_syncd

    result = run_syncd("reports", "--config", str(env.config_path), "export", "--since", "2026-01-06")
    assert result.code == 0, result
    assert [json.loads(x)["cycle_id"] for x in result.out.splitlines()] == ["c5"]
    result = run_syncd("--config", str(env.config_path), "reports", "--json", "--limit", "1")
    assert result.code == 0 and json.loads(result.out)[0]["cycle_id"] == "c5"
