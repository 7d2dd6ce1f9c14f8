"""The README works as written on a fresh clone.

Its blocks marked ``<!-- runs on a fresh clone: tests/test_readme.py -->`` run here, line by
line as a shell runs them, in a copy of the repository's files (what a clone has) whose
``.venv`` is this checkout's (already set up, so ./scripts/setup finds nothing to do). The
other blocks (a system install with sudo, the whole suite) cannot run here: every syncd
command they name must exist, every repository file they name must be there, and every
link of the README must point at a file of the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MARK = "<!-- runs on a fresh clone: tests/test_readme.py -->"
BLOCK = re.compile(r"(?P<mark><!-- [^\n]*-->\n)?```sh\n(?P<body>.*?)```", re.S)


def blocks(text: str = README) -> list[tuple[bool, str]]:
    return [(bool(m.group("mark")) and m.group("mark").strip() == MARK, m.group("body")) for m in BLOCK.finditer(text)]


MANUAL = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}


def clone(tmp: Path) -> Path:
    """The repository's files as a clone has them (tracked, and new files not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    copy = tmp / "syncd"
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def _set_up(root: Path) -> bool:
    """Whether ./scripts/setup would find nothing to do (its stamp: pyproject.toml's hash and
    the interpreter's version)."""
    import hashlib

    stamp = root / ".venv" / ".syncd-setup"
    if not stamp.exists():
        return False
    version = subprocess.run([root / ".venv" / "bin" / "python", "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    want = f"{hashlib.sha256((root / 'pyproject.toml').read_bytes()).hexdigest()} {version}"
    return stamp.read_text().strip() == want


def test_runnable_blocks_work_as_written_on_a_fresh_clone(tmp_path: Path) -> None:
    runnable = [body for marked, body in blocks() if marked]
    assert len(runnable) >= 3
    if not (ROOT / ".venv" / "bin" / "syncd").exists():
        pytest.skip("no .venv here: ./scripts/setup first")
    if not _set_up(ROOT):
        # the copy's ./scripts/setup would reinstall syncd into this checkout's .venv, from the copy
        pytest.skip(".venv is not as ./scripts/setup leaves it (pyproject.toml changed since): run ./scripts/setup first")
    copy = clone(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    for body in runnable:
        for line in body.splitlines():
            command = line.split("  #", 1)[0].strip()
            if not command or command.startswith("#"):
                continue
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=copy, capture_output=True, text=True,
                               env=env, timeout=300, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
            assert "Traceback" not in r.stderr, command


def syncd_commands(line: str) -> list[tuple[str, ...]]:
    """The syncd commands a shell line runs: ('users', 'list'), ('sync',), ..."""
    found = []
    for segment in line.split("  #", 1)[0].split("&&"):
        words = shlex.split(segment, comments=True)
        while words[:1] == ["sudo"]:
            words = words[3:] if words[1:2] == ["-u"] else words[1:]
        if not words or not (words[0] == "syncd" or words[0].endswith("bin/syncd")):
            continue
        args = words[1:]
        while args[:1] == ["--config"]:
            args = args[2:]
        if args and not args[0].startswith("-"):
            grouped = args[0] in ("users", "groups", "invites", "reports", "audit") and len(args) > 1 and not args[1].startswith("-")
            found.append(tuple(args[:2] if grouped else args[:1]))
    return found


def test_every_syncd_command_the_readme_and_the_manual_name_exists() -> None:
    texts = [README, *MANUAL.values()]
    named = {command for text in texts for _, body in blocks(text) for line in body.replace("\\\n", " ").splitlines() for command in syncd_commands(line)}
    assert {("check-config",), ("sync",), ("simulator",), ("users", "list"), ("reports", "export")} <= named, named
    for command in sorted(named):
        r = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "syncd", *command, "--help"], capture_output=True, text=True)
        assert r.returncode == 0, (command, r.stderr)


def test_the_files_and_links_the_readme_names_are_in_the_repository() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith(("http://", "https://")):
            continue
        assert (ROOT / target).exists(), target
    assert "../shared" not in README and "SPEC" not in README
    for _, body in blocks():
        for path in re.findall(r"(?:^|\s)((?:systemd|scripts)/[\w.@-]+|config\.example\.toml)", body):
            assert (ROOT / path).exists(), path


@pytest.mark.parametrize("page", sorted(MANUAL))
def test_the_manuals_links_point_at_its_pages(page: str) -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", MANUAL[page]):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / "docs" / target).is_file(), (page, target)
    assert "SPEC" not in MANUAL[page] and "shared/" not in MANUAL[page]
