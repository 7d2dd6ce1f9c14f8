"""Where syncd's manual is: installed with the package (``share/doc/syncd`` under the
installation's prefix, pyproject's data-files), or ``docs/`` of a source checkout."""

from __future__ import annotations

import site
import sys
from pathlib import Path

INDEX = "README.md"


def candidates() -> list[Path]:
    return [
        Path(sys.prefix) / "share" / "doc" / "syncd",
        Path(site.getuserbase()) / "share" / "doc" / "syncd",
        Path(__file__).resolve().parent.parent / "docs",
    ]


def find_manual() -> Path | None:
    for where in candidates():
        if (where / INDEX).is_file():
            return where
    return None


def pages(where: Path) -> list[tuple[str, str]]:
    """(name, title) of each page: its file name without .md, its first heading."""
    out = []
    for path in sorted(where.glob("*.md")):
        title = next((line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")), "")
        out.append((path.stem, title))
    return out
