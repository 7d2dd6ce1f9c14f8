"""A -wal file that goes away while the store's access is checked (another process's last
connection closing) is no problem with the store: found by tests/perf/test_view_within_reach.py."""

from __future__ import annotations

from pathlib import Path

from syncd.store import access


def test_a_wal_vanishing_during_the_check_is_no_problem(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "syncd.db"
    db.write_bytes(b"")
    wal = Path(f"{db}-wal")
    wal.write_bytes(b"")
    can = access._can

    def vanishing(path: Path, mode: int) -> bool:
        if path == wal and wal.exists():
            wal.unlink()  # as it is checked
            return False
        return can(path, mode)

    monkeypatch.setattr(access, "_can", vanishing)
    assert access.write_problem(db) is None
