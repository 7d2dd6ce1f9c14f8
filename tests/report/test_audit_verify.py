"""Tamper evidence and retention: `syncd audit verify` after real cycles, pruning and edits."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.cycle import CycleOptions, run_cycle
from syncd.model import Change
from syncd.report.chunks import pack, unpack
from syncd.store.audit import GENESIS, prune_reports, save_report, verify_chain
from syncd.store.db import Store
from tests.report.conftest import Env, fake_reader, make_report


def cycles(env: Env, n: int) -> list[str]:
    """``n`` real cycles (run_cycle with a fake Graph read), every third a dry run."""
    cfg = env.config()
    ids = []
    for i in range(n):
        rep = run_cycle(cfg, CycleOptions(dry_run=(i % 3 == 2)), reader=fake_reader(3 + i % 4, prefix=f"p{i % 2}"))
        ids.append(rep.cycle_id)
    return ids


def verify(env: Env, expect: int = 0) -> dict:
    result = env.cli("audit", "verify", "--json")
    assert result.code == expect, result
    assert "Traceback" not in result.err
    return json.loads(result.out)


def raw(env: Env) -> sqlite3.Connection:
    """The store file opened by hand, as someone tampering with it would (no foreign keys)."""
    return sqlite3.connect(env.store_path, isolation_level=None)


def seq_of(env: Env, cycle_id: str) -> int:
    with raw(env) as c:
        return c.execute("SELECT seq FROM cycles WHERE cycle_id = ?", (cycle_id,)).fetchone()[0]


def stored(c: sqlite3.Connection, seq: int) -> list[str]:
    """A cycle's entries, read from its chunks by hand."""
    rows = c.execute("SELECT entries FROM entry_chunks WHERE cycle_seq = ? ORDER BY first_n", (seq,)).fetchall()
    return [e for (blob,) in rows for e in unpack(blob)]


def restore(c: sqlite3.Connection, seq: int, entries: list[str]) -> None:
    """Rewrite a cycle's chunks with these entries, as a tamperer who knows the format would."""
    c.execute("DELETE FROM entry_chunks WHERE cycle_seq = ?", (seq,))
    c.executemany("INSERT INTO entry_chunks VALUES (?, ?, ?)", ((seq, first, blob) for first, blob in pack(entries)))


def flip_byte(text: str, pos: int) -> str:
    ch = text[pos]
    return text[:pos] + ("b" if ch == "a" else "a") + text[pos + 1:]


@pytest.fixture
def many(env: Env) -> tuple[Env, list[str]]:
    return env, cycles(env, 12)


def test_verify_passes_after_many_cycles(many) -> None:
    env, ids = many
    doc = verify(env)
    assert doc["ok"] is True and doc["problem"] is None
    assert doc["cycles"] == 12 and doc["entries"] > 12
    text = env.cli("audit", "verify")
    assert text.code == 0 and text.out.startswith("audit trail intact: 12 cycles")
    dry = [r for r in env.json("reports", "--json") if r["dry_run"]]
    assert len(dry) == 4  # dry runs are stored and chained too


def test_one_byte_of_a_header_changed(many) -> None:
    env, ids = many
    target = ids[5]
    with raw(env) as c:
        doc = c.execute("SELECT document FROM cycles WHERE cycle_id = ?", (target,)).fetchone()[0]
        pos = doc.index('"mode":"') + len('"mode":"') + 1  # one letter inside "full"
        c.execute("UPDATE cycles SET document = ? WHERE cycle_id = ?", (flip_byte(doc, pos), target))
    doc = verify(env, 1)
    assert doc["ok"] is False
    assert doc["problem"]["cycle_id"] == target and doc["problem"]["kind"] == "header_changed"
    assert doc["cycles"] == 5
    text = env.cli("audit", "verify")
    assert text.code == 1 and f"cycle {target}" in text.err and "header changed" in text.err


def test_one_byte_of_an_entry_changed(many) -> None:
    env, ids = many
    target = ids[7]
    with raw(env) as c:
        seq = seq_of(env, target)
        entries = stored(c, seq)
        pos = entries[1].index("@contoso.com") + 1  # a letter of the user's name
        entries[1] = flip_byte(entries[1], pos)
        restore(c, seq, entries)
    doc = verify(env, 1)
    assert (doc["problem"]["cycle_id"], doc["problem"]["kind"]) == (target, "entry_changed")
    text = env.cli("audit", "verify")
    assert f"cycle {target}" in text.err and "entry changed" in text.err


def test_the_first_bad_cycle_is_named(many) -> None:
    env, ids = many
    with raw(env) as c:
        for target in (ids[9], ids[3]):
            seq = seq_of(env, target)
            restore(c, seq, [e.replace('"create"', '"adopt"') for e in stored(c, seq)])
    assert verify(env, 1)["problem"]["cycle_id"] == ids[3]


def test_an_entry_deleted(many) -> None:
    env, ids = many
    seq = seq_of(env, ids[4])
    with raw(env) as c:
        restore(c, seq, stored(c, seq)[1:])
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == (ids[4], "entry_missing")


def test_an_entry_deleted_and_the_count_fixed_up(many) -> None:
    env, ids = many
    seq = seq_of(env, ids[4])
    with raw(env) as c:
        restore(c, seq, stored(c, seq)[:-1])
        c.execute("UPDATE cycles SET entry_count = entry_count - 1 WHERE seq = ?", (seq,))
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == (ids[4], "entry_changed")


def test_an_entry_added(many) -> None:
    env, ids = many
    seq = seq_of(env, ids[2])
    with raw(env) as c:
        entries = stored(c, seq)
        restore(c, seq, [*entries, entries[0]])
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == (ids[2], "entry_added")


def test_a_chunk_of_entries_altered_so_that_it_no_longer_decodes(many) -> None:
    env, ids = many
    seq = seq_of(env, ids[8])
    with raw(env) as c:
        blob = c.execute("SELECT entries FROM entry_chunks WHERE cycle_seq = ?", (seq,)).fetchone()[0]
        c.execute("UPDATE entry_chunks SET entries = ? WHERE cycle_seq = ?", (blob[:-4] + b"\0\0\0\0", seq))
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == (ids[8], "entry_changed")
    assert "from entry 1 on" in problem["detail"]
    shown = env.cli("report", ids[8])  # the report itself says what is wrong, no traceback
    assert shown.code != 0 and "damaged" in shown.err and "audit verify" in shown.err
    assert "Traceback" not in shown.err


def test_a_chunk_removed_from_a_long_report(env: Env) -> None:
    env.save(make_report("long", changes=[Change("create", "user", f"e{i}", f"u{i}@contoso.com") for i in range(2500)]))
    with raw(env) as c:
        seq = seq_of(env, "long")
        assert c.execute("SELECT first_n FROM entry_chunks WHERE cycle_seq = ? ORDER BY first_n", (seq,)).fetchall() == [(0,), (1000,), (2000,)]
        c.execute("DELETE FROM entry_chunks WHERE cycle_seq = ? AND first_n = 1000", (seq,))
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == ("long", "entry_missing")
    assert "entries 1001–2000" in problem["detail"]


def test_a_cycle_removed_from_the_middle(many) -> None:
    env, ids = many
    with raw(env) as c:
        c.execute("DELETE FROM cycles WHERE cycle_id = ?", (ids[6],))  # its entries stay behind (no FK here)
    doc = verify(env, 1)
    assert (doc["problem"]["cycle_id"], doc["problem"]["kind"]) == (ids[7], "chain_broken")
    assert ids[5] in doc["problem"]["detail"]
    text = env.cli("audit", "verify")
    assert f"cycle {ids[7]}" in text.err and "chain broken" in text.err


def test_a_cycle_and_its_entries_removed_cleanly(many) -> None:
    env, ids = many
    seq = seq_of(env, ids[6])
    with raw(env) as c:
        c.execute("DELETE FROM entry_chunks WHERE cycle_seq = ?", (seq,))
        c.execute("DELETE FROM cycles WHERE seq = ?", (seq,))
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == (ids[7], "chain_broken")


def test_the_newest_cycle_removed(many) -> None:
    env, ids = many
    seq = seq_of(env, ids[-1])
    with raw(env) as c:
        c.execute("DELETE FROM entry_chunks WHERE cycle_seq = ?", (seq,))
        c.execute("DELETE FROM cycles WHERE seq = ?", (seq,))
    problem = verify(env, 1)["problem"]
    assert problem["kind"] == "head_missing" and problem["cycle_id"] == ids[-2]


def test_a_listing_column_changed(many) -> None:
    env, ids = many
    with raw(env) as c:
        c.execute("UPDATE cycles SET status = 'failed' WHERE cycle_id = ?", (ids[1],))
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == (ids[1], "header_changed")
    assert "status" in problem["detail"]


def test_the_oldest_cycle_removed_without_moving_the_anchor(many) -> None:
    env, ids = many
    seq = seq_of(env, ids[0])
    with raw(env) as c:
        c.execute("DELETE FROM entry_chunks WHERE cycle_seq = ?", (seq,))
        c.execute("DELETE FROM cycles WHERE seq = ?", (seq,))
    problem = verify(env, 1)["problem"]
    assert (problem["cycle_id"], problem["kind"]) == (ids[1], "chain_broken")


# --------------------------------------------------------------------------- retention


def test_a_cycle_prunes_reports_older_than_retention_and_verify_still_passes(env: Env) -> None:
    env.configure(retention_days=30)
    now = datetime.now(UTC)
    old = [make_report(f"old{i}", started=now - timedelta(days=90 - i)) for i in range(5)]
    recent = [make_report(f"recent{i}", started=now - timedelta(days=10 - i)) for i in range(3)]
    env.save(*old, *recent)
    assert verify(env)["cycles"] == 8
    with raw(env) as c:
        last_old_hash = c.execute("SELECT hash FROM cycles WHERE cycle_id = 'old4'").fetchone()[0]
    ids = cycles(env, 2)  # the end of each cycle prunes
    listed = [r["cycle_id"] for r in env.json("reports", "--json")]
    assert listed == [*reversed(ids), "recent2", "recent1", "recent0"]
    doc = verify(env)
    assert doc["ok"] and doc["cycles"] == 5
    assert doc["anchor"] == last_old_hash and doc["anchor_cycle"] == "old4"
    assert env.cli("audit", "verify").out.startswith("audit trail intact: 5 cycles, ")
    with raw(env) as c:
        assert c.execute("SELECT count(*) FROM entry_chunks WHERE cycle_seq NOT IN (SELECT seq FROM cycles)").fetchone()[0] == 0
    # and tampering after pruning is still found
    with raw(env) as c:
        seq = c.execute("SELECT seq FROM cycles WHERE cycle_id = 'recent1'").fetchone()[0]
        restore(c, seq, [e.replace("Robert", "Rupert") for e in stored(c, seq)])
    assert verify(env, 1)["problem"]["cycle_id"] == "recent1"


def test_dry_runs_prune_too_and_the_newest_is_always_kept(env: Env) -> None:
    env.configure(retention_days=1)
    now = datetime.now(UTC)
    env.save(*(make_report(f"old{i}", started=now - timedelta(days=5)) for i in range(3)))
    run_cycle(env.config(), CycleOptions(dry_run=True), reader=fake_reader())
    assert len(env.json("reports", "--json")) == 1
    assert verify(env)["cycles"] == 1
    with Store(str(env.store_path)) as store, store.transaction():
        # the newest cycle is never pruned, however old
        assert prune_reports(store, 1, now=now + timedelta(days=100)) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ages=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=12),
    prunes=st.lists(st.tuples(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=11)), max_size=4),
)
def test_any_saves_and_prunes_keep_the_chain_whole(tmp_path_factory, ages: list[int], prunes: list[tuple[int, int]]) -> None:
    """Interleave saves (of any age, in any order) and prunes: verification always passes,
    and what a prune removes is a prefix of the chain, every removed cycle older than the cut."""
    path = tmp_path_factory.mktemp("chain") / "syncd.db"
    now = datetime.now(UTC).replace(microsecond=0)  # stored times are whole seconds
    saved: list[tuple[str, int]] = []
    with Store(str(path)) as store:
        for i, age in enumerate(ages):
            with store.transaction():
                save_report(store, make_report(f"c{i}", started=now - timedelta(days=age), changes=[]))
            saved.append((f"c{i}", age))
            for days, after in prunes:
                if after == i:
                    before = [r[0] for r in store.conn.execute("SELECT cycle_id FROM cycles ORDER BY seq")]
                    with store.transaction():
                        n = prune_reports(store, days, now=now)
                    kept = [r[0] for r in store.conn.execute("SELECT cycle_id FROM cycles ORDER BY seq")]
                    assert before[n:] == kept and kept  # a prefix went, never everything
                    age = dict(saved)
                    assert all(age[cid] > days for cid in before[:n])
            result = verify_chain(store)
            assert result.ok, result.problem
        assert store.get_meta("chain_head") is not None
        assert (store.get_meta("chain_anchor") is None) == (store.get_meta("chain_anchor_cycle") is None)
        assert verify_chain(store).anchor in {GENESIS, store.get_meta("chain_anchor")}


def test_a_report_held_in_compressed_chunks_stores_and_verifies_the_same(env: Env, monkeypatch):
    from syncd.report import model as report_model
    from syncd.store.audit import load_report

    monkeypatch.setattr(report_model, "CHUNK", 4)  # most of the cycle's entries are compressed as it goes
    report = run_cycle(env.config(), CycleOptions(), reader=fake_reader(9))
    assert len(report.entries) > 8 and report.entries._sealed  # the path under test ran
    monkeypatch.setattr(report_model, "CHUNK", 1000)
    with Store(env.store_path) as store:
        stored = load_report(store, report.cycle_id)
        firsts = [r[0] for r in store.conn.execute("SELECT first_n FROM entry_chunks e JOIN cycles c ON c.seq = e.cycle_seq"
                                                   " WHERE c.cycle_id = ? ORDER BY first_n", (report.cycle_id,))]
    assert firsts == list(range(0, len(report.entries), 4))  # stored as they were held
    assert list(stored.entries) == list(report.entries) and stored.counts == report.counts
    assert verify(env)["ok"] is True


def test_entries_built_while_the_last_batches_are_written_are_the_entries(tmp_path, monkeypatch):
    from syncd.report import model as report_model
    from syncd.store import apply as apply_mod
    from syncd.store.audit import load_report

    monkeypatch.setattr(report_model, "CHUNK", 7)  # and most of them in compressed chunks
    started = []
    start = apply_mod._Behind.start.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(apply_mod._Behind, "start", classmethod(lambda cls, *a: started.append(1) or start(cls, *a)))
    got = {}
    for behind_at in (2, 10**9):
        monkeypatch.setattr(apply_mod, "BEHIND_AT", behind_at)
        env = Env(tmp_path / str(behind_at))
        env.tmp.mkdir()
        env.configure()
        report = run_cycle(env.config(), CycleOptions(), reader=fake_reader(30))
        assert report.status == "succeeded"
        with Store(str(env.store_path)) as store:
            entries = list(load_report(store, report.cycle_id).entries)
        got[behind_at] = ([{k: v for k, v in e.items() if k != "change_id"} for e in entries], report.counts)
        assert verify(env)["ok"] is True
    assert started  # the first cycle's users and memberships were written behind
    assert got[2] == got[10**9] and len(got[2][0]) > 30
