"""Data flows one way (source -> read -> plan -> guards -> apply (store) -> push -> report):
a layer never imports one beside or above it. Read from the source, so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
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
