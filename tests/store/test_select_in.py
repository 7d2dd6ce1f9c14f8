"""``select_in``: the ids go as one JSON array; the rows are those an IN list would find."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.store.db import Store, select_in

NAMES = [f"User{i}@Contoso.com" for i in range(60)]


@settings(max_examples=40, deadline=None)
@given(picked=st.lists(st.sampled_from(NAMES + ["nobody@contoso.com"]), max_size=80))
def test_few_or_many_ids_find_the_same_rows(tmp_path_factory, picked):
    with Store(str(tmp_path_factory.mktemp("q") / "s.db")) as store:
        with store.transaction():
            store.conn.executemany(
                "INSERT INTO users (entra_id, user_name, display_name, email, status, managed, created_at, updated_at)"
                " VALUES (?, ?, NULL, ?, 'active', 1, 'now', 'now')",
                [(f"e{i}", name, name.lower().replace("user", "mail")) for i, name in enumerate(NAMES)],
            )
        keys = [n.casefold() for n in picked]
        found = select_in(store, "SELECT entra_id FROM users WHERE user_name COLLATE NOCASE IN ({}) OR email COLLATE NOCASE IN ({})", keys)
        assert {r[0] for r in found} == {f"e{i}" for i, n in enumerate(NAMES) if n.casefold() in keys}
        ids = [f"e{NAMES.index(n)}" for n in picked if n in NAMES]
        found = select_in(store, "SELECT entra_id FROM users WHERE entra_id IN ({})", ids)
        assert sorted(r[0] for r in found) == sorted(set(ids))


def test_a_sqlite_without_json_functions_is_refused_with_the_fix():
    import sqlite3

    from syncd.store.db import StoreError, require_json

    class NoJson:
        def execute(self, sql: str):
            raise sqlite3.OperationalError("no such function: json_valid")

    require_json(sqlite3.connect(":memory:"))  # this machine's SQLite has them
    with pytest.raises(StoreError) as err:
        require_json(NoJson())  # type: ignore[arg-type]
    assert "no JSON functions" in str(err.value) and "SQLite 3.38 or newer" in str(err.value)
    assert sqlite3.sqlite_version in str(err.value)
