"""The install the manual describes puts the manual where the units' Documentation= and
`syncd manual` look: share/doc/syncd under the environment's prefix (/opt/syncd there)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.test_readme import clone

ROOT = Path(__file__).resolve().parents[2]


def test_a_built_and_installed_syncd_carries_its_manual(tmp_path: Path) -> None:
    source = clone(tmp_path)
    (source / ".venv").unlink()
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next(wheels.glob("syncd-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert {"rules.md", "service.md", "README.md"} <= set(pages)
    for page in pages:
        assert any(n.endswith(f".data/data/share/doc/syncd/{page}") for n in names), page
    prefix = tmp_path / "opt-syncd"  # as /opt/syncd, without its dependencies: the manual is all we look at
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=120)
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install", "-q", "--no-deps", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (prefix / "share" / "doc" / "syncd").glob("*.md")) == pages
    found = subprocess.run([str(prefix / "bin" / "python"), "-c", "from syncd.manual import find_manual; print(find_manual())"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert found == str(prefix / "share" / "doc" / "syncd")
