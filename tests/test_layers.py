"""Data flows one way (source -> read -> plan -> guards -> apply (store) -> push -> report):
a layer never imports one beside or above it. Read from the source, so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SYNCD = Path(__file__).resolve().parent.parent / "syncd"
NEVER = {
    "plan": {"store", "source", "push", "cycle", "units", "cli", "daemon", "explain", "status", "metrics"},
    "store": {"plan", "source", "push", "cycle", "units", "cli", "daemon", "explain", "status", "metrics"},
    "source": {"plan", "store", "push", "cycle", "units", "cli", "daemon", "explain", "status", "metrics"},
    "push": {"plan", "source", "cycle", "units", "cli", "daemon", "explain", "status", "metrics"},
}


def imported(path: Path, package: str) -> set[str]:
    """The syncd modules (first part under syncd) a file of ``syncd/package`` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").startswith("syncd."):
                out.add(node.module.split(".")[1])
            elif node.level == 1 and path.parent.name == package:
                continue  # its own package
            elif node.level >= 2:
                parts = (node.module or "").split(".")
                out.add(parts[0] or (node.names[0].name if node.names else ""))
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("syncd.")}
    return out


@pytest.mark.parametrize("package", sorted(NEVER))
def test_a_layer_imports_no_layer_beside_or_above_it(package: str) -> None:
    found = {
        f"{path.relative_to(SYNCD)} imports syncd.{name}"
        for path in sorted((SYNCD / package).rglob("*.py"))
        for name in imported(path, package) & NEVER[package]
    }
    assert not found, sorted(found)


# --------------------------------------------------------------------------- the store owns its SQL

# the modules that ask the store, never the database: SQL text or a statement run there is a
# layer skipped (syncd writes SQL's keywords in capitals, prose does not)
NO_SQL = ["cycle.py", "status.py", "metrics.py", "explain.py", "cli"]
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM\s|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|REPLACE\s+INTO\s"
    r"|PRAGMA\s|SAVEPOINT\s|RELEASE\s+\w|ROLLBACK\b|CREATE\s+(TABLE|INDEX|VIEW|TRIGGER)\s|DROP\s+(TABLE|INDEX)\s)"
    r"|^\s*(BEGIN|COMMIT|END)(\s+(IMMEDIATE|EXCLUSIVE|DEFERRED|TRANSACTION))?\s*;?\s*$",
    re.DOTALL,
)
RUNS_SQL = {"execute", "executemany", "executescript"}


def sql_in(path: Path) -> list[str]:
    """Where ``path`` holds SQL text (a string, f-strings' parts included) or runs a statement."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"{path.relative_to(SYNCD)}:{node.lineno}: {node.value[:60]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in RUNS_SQL:
            found.append(f"{path.relative_to(SYNCD)}:{node.lineno}: .{node.attr}(")
    return found


def test_the_detector_finds_sql() -> None:
    for text in ("SELECT status, count(*) FROM users GROUP BY status", "BEGIN IMMEDIATE", "COMMIT", "PRAGMA wal_autocheckpoint = 0",
                 "INSERT OR IGNORE INTO memberships (group_id) VALUES (?)", "DELETE FROM meta WHERE key = ?"):
        assert SQL.search(text), text
    for prose in ("select the users to deactivate from the plan", "Begin a cycle", "run `syncd sync --full`", "DELETE",
                  "the cycle's commit: BEGIN … COMMIT", "Select the application"):
        assert not SQL.search(prose), prose


@pytest.mark.parametrize("where", NO_SQL)
def test_no_sql_outside_the_store(where: str) -> None:
    """Issue 17: the store owns its SQL; no hand-written BEGIN/COMMIT outside it."""
    target = SYNCD / where
    paths = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    found = [line for path in paths for line in sql_in(path)]
    assert not found, found
