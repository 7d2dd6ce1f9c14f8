"""Schema migrations: all pending steps in one transaction with foreign keys off, so a step can
rebuild a table with sqlite-utils' Table.transform() without firing ON DELETE actions; a step
that fails leaves the store as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncd.store import local, schema
from syncd.store.db import Store


def _store_with_members(path: Path) -> None:
    with Store(str(path)) as store:
        local.add_user(store, "ada@example.com", "Ada")
        local.add_group(store, "Sales")
        local.change_member(store, "Sales", "ada@example.com", add=True)
        local.change_member(store, "Administrators", "ada@example.com", add=True)


def _rebuild_groups(conn: sqlite3.Connection) -> None:
    # what ALTER TABLE cannot do: a column's type, a new NOT NULL, the column order
    schema.database(conn)["groups"].transform(types={"managed": int}, not_null={"managed"}, column_order=["id", "name"])


def test_a_step_that_rebuilds_a_referenced_table_keeps_every_reference(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "syncd.db"
    _store_with_members(path)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, _rebuild_groups])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    from syncd.store import db as db_mod

    monkeypatch.setattr(db_mod, "SCHEMA_VERSION", schema.SCHEMA_VERSION)
    with Store(str(path)) as store:
        c = store.conn
        assert c.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert [r[1] for r in c.execute("PRAGMA table_info(groups)")][:2] == ["id", "name"]
        # memberships reference groups ON DELETE CASCADE: a rebuild with keys on would have emptied them
        assert c.execute("SELECT count(*) FROM memberships").fetchone()[0] == 2
        assert c.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert {g["name"]: g["members"] for g in local.list_groups(store)} == {"Administrators": ["ada@example.com"], "Sales": ["ada@example.com"]}


def test_a_failing_step_leaves_the_store_as_it_was(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "syncd.db"
    _store_with_members(path)
    version = schema.SCHEMA_VERSION

    def breaks(conn: sqlite3.Connection) -> None:
        _rebuild_groups(conn)
        conn.execute("DELETE FROM users")  # leaves memberships pointing nowhere: refused before the commit

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, breaks])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", version + 1)
    from syncd.store import db as db_mod

    monkeypatch.setattr(db_mod, "SCHEMA_VERSION", version + 1)
    with pytest.raises(Exception, match="would break 2 reference"):
        Store(str(path))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
    assert [r[1] for r in conn.execute("PRAGMA table_info(groups)")][:2] == ["id", "entra_id"]
    conn.close()
