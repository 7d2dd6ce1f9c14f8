"""The shipped units: `systemd-analyze security --offline=true` rates each ≤ 1.5 and
`systemd-analyze verify` finds nothing to say (skipped where systemd-analyze is absent)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
ANALYZE = shutil.which("systemd-analyze") or ("/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None)
NO_ANALYZE = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")
SERVICES = ["syncd.service", "syncd@.service", "syncd-sync.service"]


def _staged(tmp_path: Path, executable: str) -> Path:
    """The units with ExecStart pointing at an executable that exists on this machine.

    The shipped units run /usr/local/bin/syncd (README: install step); `verify` checks that
    the command exists, so the test substitutes the syncd it was installed with.
    """
    for unit in UNITS.iterdir():
        if unit.suffix in (".service", ".timer"):
            (tmp_path / unit.name).write_text(unit.read_text().replace("/usr/local/bin/syncd", executable))
    shutil.copy(tmp_path / "syncd@.service", tmp_path / "syncd@contoso.service")
    return tmp_path


@NO_ANALYZE
@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure_at_most_1_5(unit, tmp_path):
    path = UNITS / unit
    if unit.endswith("@.service"):
        path = tmp_path / "syncd@contoso.service"
        shutil.copy(UNITS / unit, path)
    r = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(path)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 1.5, r.stdout


@NO_ANALYZE
def test_verify_is_clean(tmp_path):
    syncd = shutil.which("syncd") or str(Path(__import__("sys").executable).with_name("syncd"))
    assert Path(syncd).exists(), "the syncd entry point is not installed"
    d = _staged(tmp_path, syncd)
    units = ["syncd.service", "syncd@contoso.service", "syncd-sync.service", "syncd-sync.timer"]
    r = subprocess.run([ANALYZE, "verify", "--man=no", *units], capture_output=True, text=True, cwd=d, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_units_agree_with_the_example_config():
    example = (UNITS.parent / "config.example.toml").read_text()
    service = (UNITS / "syncd.service").read_text()
    timer_service = (UNITS / "syncd-sync.service").read_text()
    # one configuration for the daemon, the timer's unit and hand-run commands: the secret is
    # named relatively (the credential inside a unit, /etc/syncd/client-secret outside one)
    assert 'client_secret_file = "client-secret"' in example
    assert "LoadCredential=client-secret:/etc/syncd/client-secret" in service
    assert "LoadCredential=client-secret:/etc/syncd/client-secret" in timer_service
    assert "Type=notify" in service and "WatchdogSec=" in service and "StateDirectory=syncd" in service
    assert "ExecStart=/usr/local/bin/syncd run --config /etc/syncd/config.toml" in service
    template = (UNITS / "syncd@.service").read_text()
    assert "/etc/syncd/%i.toml" in template and "StateDirectory=syncd/%i" in template
    assert "LoadCredential=%i.secret:/etc/syncd/%i.secret" in template


@NO_ANALYZE
def test_the_exposure_figure_in_the_units_and_the_readme_is_what_systemd_analyze_says(tmp_path):
    figures = set()
    for unit in SERVICES:
        path = UNITS / unit
        if unit.endswith("@.service"):
            path = tmp_path / "syncd@contoso.service"
            shutil.copy(UNITS / unit, path)
        r = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(path)], capture_output=True, text=True, timeout=60)
        measured = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
        assert measured, r.stdout + r.stderr
        said = re.findall(r"rates this unit (\d+\.\d+)", (UNITS / unit).read_text())
        assert said == [measured.group(1)], (unit, said, measured.group(1))
        figures.add(measured.group(1))
    readme = (UNITS.parent / "README.md").read_text() + (UNITS.parent / "docs" / "service.md").read_text()
    said = set(re.findall(r"rates the units (\d+\.\d+)", readme))
    assert said == figures, (said, figures)


def test_documentation_points_at_syncds_own_manual_as_installed():
    """Documentation= names pages of the manual pyproject installs as share/doc/syncd under
    the README's /opt/syncd, and each page exists in docs/."""
    import tomllib

    pyproject = tomllib.loads((UNITS.parent / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["data-files"]["share/doc/syncd"] == ["docs/*.md"]
    for unit in (*SERVICES, "syncd-sync.timer"):
        docs = [line.split("=", 1)[1].split() for line in (UNITS / unit).read_text().splitlines() if line.startswith("Documentation=")]
        assert docs, unit
        for url in docs[0]:
            assert url.startswith("file:/opt/syncd/share/doc/syncd/"), url
            assert (UNITS.parent / "docs" / url.rsplit("/", 1)[1]).is_file(), url
