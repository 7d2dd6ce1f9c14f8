"""A report's entries are held as canonical JSON: what is read back, counted and printed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.model import Change
from syncd.report import model as report_model
from syncd.report.chunks import unpack
from syncd.report.model import CycleReport, Entries, canonical, entry_of
from syncd.report.render import json_chunks, render_json
from syncd.store.audit import entries_hash

text = st.text(max_size=12)
entry = st.fixed_dictionaries(
    {
        "change_id": text,
        "action": st.sampled_from(["create", "update", "deactivate", "add_member", "skip"]),
        "object_type": st.sampled_from(["user", "group", "membership"]),
        "entra_id": st.none() | text,
        "name": text,
        "local_id": st.none() | st.integers(0, 10**6),
        "status": st.sampled_from(["success", "failure", "skipped", "staged"]),
        "reason": text,
        "modified": st.dictionaries(text, st.fixed_dictionaries({"old": st.none() | text, "new": st.none() | text}), max_size=3),
    }
)


def _counts_the_old_way(entries: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in entries:
        key = {"success": e["action"], "skipped": "skip", "staged": "staged"}.get(e["status"], "failure")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _held(entries: list[dict], per_chunk: int) -> Entries:
    old, report_model.CHUNK = report_model.CHUNK, per_chunk  # 3 and 7: most are in compressed chunks
    try:
        return Entries(entries)
    finally:
        report_model.CHUNK = old


@given(st.lists(entry, max_size=30), st.sampled_from([3, 7, 100_000]))
def test_entries_read_back_count_and_store_as_canonical_json(entries: list[dict], per_chunk: int) -> None:
    held = _held(entries, per_chunk)
    assert len(held) == len(entries)
    assert list(held) == entries and held == entries
    assert all(held[i] == e for i, e in enumerate(entries))
    assert all(held[-i] == entries[-i] for i in range(1, len(entries) + 1))
    with pytest.raises(IndexError):
        held[len(entries)]
    texts = [json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for e in entries]
    assert list(held.iter_raw()) == texts
    assert held.counts() == _counts_the_old_way(entries)
    # what the audit chain is computed over, and what is stored, as if made from the texts at once
    assert held.sha256() == entries_hash(texts)
    assert b"\n".join(held.texts()) == "\n".join(texts).encode()
    packed = list(held.packed())
    assert [first for first, _ in packed] == list(range(0, len(entries), per_chunk))
    assert [e for _, stored in packed for e in unpack(stored)] == texts
    assert held.sha256() == entries_hash(texts)  # asked twice, the same
    again = Entries.from_raw(list(held.iter_raw()))
    assert again == held and again.counts() == held.counts() and again.sha256() == held.sha256()


@given(st.lists(entry, max_size=25), st.sampled_from([1, 2, 3, 100_000]))
def test_json_in_chunks_is_one_document_whatever_the_chunk_size(entries: list[dict], held_per_chunk: int) -> None:
    report = CycleReport(cycle_id="c1", mode="full", dry_run=False, trigger="manual", started_at="2026-01-01T00:00:00+00:00",
                         entries=_held(entries, held_per_chunk))
    pieces = list(json_chunks(report))
    assert len(pieces) == 2 + -(-len(entries) // held_per_chunk) if entries else len(pieces) == 1  # a piece per chunk
    whole = "".join(pieces)
    assert whole == render_json(report)
    doc = json.loads(whole)
    # one entry per line, as the audit trail stores it
    assert [line.strip().rstrip(",") for line in whole.split("\n")[-2 - len(entries) : -2]] == [canonical(e) for e in entries]
    assert doc["entries"] == entries
    assert doc["counts"] == _counts_the_old_way(entries)


def test_a_created_user_reports_every_value_it_gets_as_modified() -> None:
    created = Change("create", "user", "e1", "ann@contoso.com",
                     values={"user_name": "ann@contoso.com", "display_name": "Ann", "email": None, "status": "active"})
    assert created.modified == {}
    assert entry_of(created, "c:1")["modified"] == {
        "user_name": {"old": None, "new": "ann@contoso.com"},
        "display_name": {"old": None, "new": "Ann"},
        "status": {"old": None, "new": "active"},
    }
    updated = Change("update", "user", "e1", "ann@contoso.com", modified={"display_name": ("Ann", "Anne")},
                     values={"display_name": "Anne"})
    assert entry_of(updated, "c:2")["modified"] == {"display_name": {"old": "Ann", "new": "Anne"}}


def test_canonical_is_sorted_compact_and_keeps_unicode() -> None:
    assert canonical({"b": "é\u202e", "a": [1, None, True]}) == '{"a":[1,null,true],"b":"é\u202e"}'


@given(st.lists(entry, max_size=20), st.lists(entry, max_size=8), st.sampled_from([3, 100_000]))
def test_a_fork_goes_on_from_the_entries_and_leaves_them_as_they_were(entries: list[dict], more: list[dict], per_chunk: int) -> None:
    held = _held(entries, per_chunk)  # 3: the fork may start inside a compressed chunk
    fork = held.fork()
    for e in more:
        fork.append(e)
    assert list(held) == entries and held.counts() == _counts_the_old_way(entries)
    assert held.sha256() == entries_hash([canonical(e) for e in entries])
    kept = entries + more
    assert list(fork) == kept and fork.counts() == _counts_the_old_way(kept)
    assert fork.sha256() == entries_hash([canonical(e) for e in kept])
    assert [first for first, _ in fork.packed()] == list(range(0, len(kept), per_chunk))
