"""A cycle's report: the SPEC §4 document built from the guarded plan."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..model import Change


def canonical(doc: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the bytes the audit hash chain is computed over.

    orjson writes exactly what ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes for the strings, integers, booleans and nulls a report holds,
    about ten times faster (a 100k-entry report is 100k documents).
    """
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _count_key(entry: dict[str, Any]) -> str:
    status = entry["status"]
    if status == "success":
        return str(entry["action"])
    return {"skipped": "skip", "staged": "staged"}.get(status, "failure")


# entries held as text before they go to a temporary file: a full cycle over 1M users makes
# 800k entries, ~250 MB as text, which would be the largest thing the process holds
SPILL_AT = 100_000


class Entries:
    """A report's entries, held as their canonical JSON: the text the audit chain stores.

    A full cycle over 100k users has 140k entries. As dicts (with their ``modified`` dicts)
    they took about 1 KB each, and storing the report made a canonical copy of each on top;
    as canonical text they take a third of that and are stored as they are. Reading an entry
    decodes it (keys then come sorted, as they do from a stored report).

    Past ``SPILL_AT`` entries, those held go to a private temporary SQLite file (deleted
    when this object goes); ``iter_raw`` reads them back in order.
    """

    __slots__ = ("_raw", "_counts", "_disk", "_spilled")

    def __init__(self, entries: Iterable[dict[str, Any]] = ()) -> None:
        self._raw: list[str] = []
        self._counts: Counter[str] = Counter()
        self._disk: sqlite3.Connection | None = None
        self._spilled = 0
        for entry in entries:
            self.append(entry)

    @classmethod
    def from_raw(cls, raw: list[str]) -> Entries:
        """Entries from their canonical JSON (a stored report)."""
        entries = cls()
        entries._raw = raw
        entries._counts.update(_count_key(orjson.loads(e)) for e in raw)
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        self._raw.append(canonical(entry))
        self._counts[_count_key(entry)] += 1
        if len(self._raw) >= SPILL_AT:
            self._spill()

    def _spill(self) -> None:
        if self._disk is None:
            # "" is a private temporary database on disk; nothing in it needs a journal
            self._disk = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            self._disk.execute("PRAGMA journal_mode = OFF")
            self._disk.execute("CREATE TABLE entries (entry TEXT NOT NULL)")  # rowid: the order
        self._disk.executemany("INSERT INTO entries (entry) VALUES (?)", ((e,) for e in self._raw))
        self._spilled += len(self._raw)
        self._raw = []

    def iter_raw(self) -> Iterator[str]:
        """The canonical JSON of each entry, in order, without holding them all."""
        if self._disk is not None:
            for (entry,) in self._disk.execute("SELECT entry FROM entries ORDER BY rowid"):
                yield entry
        yield from self._raw

    def counts(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    def __len__(self) -> int:
        return self._spilled + len(self._raw)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(orjson.loads, self.iter_raw())

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        if 0 <= index < self._spilled:
            assert self._disk is not None  # entries were spilled to it
            (entry,) = self._disk.execute("SELECT entry FROM entries WHERE rowid = ?", (index + 1,)).fetchone()
            return orjson.loads(entry)  # type: ignore[no-any-return]
        return orjson.loads(self._raw[index - self._spilled])  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Entries):
            return len(self) == len(other) and all(a == b for a, b in zip(self.iter_raw(), other.iter_raw(), strict=True))
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"Entries({len(self)} entries)"


@dataclass
class CycleReport:
    cycle_id: str
    mode: str  # full | incremental | on_demand
    dry_run: bool
    trigger: str  # schedule | manual
    started_at: str
    ended_at: str = ""
    status: str = "succeeded"  # succeeded | failed | held | partial
    graph_requests: int = 0
    throttled: int = 0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase: read, plan, apply
    entries: Entries = field(default_factory=Entries)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.entries, Entries):
            self.entries = Entries(self.entries)

    def add_changes(self, changes: list[Change]) -> None:
        """Turn changes into entries, letting go of each change as it goes (large plans)."""
        first, append = len(self.entries) + 1, self.entries.append
        for i, change in enumerate(changes):
            append(entry_of(change, f"{self.cycle_id}:{first + i}"))
            changes[i] = None  # type: ignore[call-overload]

    @property
    def counts(self) -> dict[str, int]:
        """Applied (or, in a dry run, planned) changes per action, plus skipped/staged/failed."""
        return self.entries.counts()

    def summary(self) -> dict[str, Any]:
        """The SPEC §4 fields without the entries (what `reports` lists)."""
        return {
            "cycle_id": self.cycle_id,
            "status": self.status,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "trigger": self.trigger,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "counts": self.counts,
        }

    def header(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "graph_requests": self.graph_requests,
            "throttled": self.throttled,
            "phases": self.phases,
            "errors": self.errors,
            "notes": self.notes,
        }

    def ordered_phases(self) -> list[tuple[str, float]]:
        """The phases in the order they run (stored JSON sorts its keys)."""
        order = {"read": 0, "plan": 1, "apply": 2}
        return sorted(self.phases.items(), key=lambda kv: (order.get(kv[0], 3), kv[0]))

    def document(self) -> dict[str, Any]:
        return {**self.header(), "entries": list(self.entries)}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> CycleReport:
        return cls(
            cycle_id=doc["cycle_id"],
            mode=doc["mode"],
            dry_run=doc["dry_run"],
            trigger=doc["trigger"],
            started_at=doc["started_at"],
            ended_at=doc["ended_at"],
            status=doc["status"],
            graph_requests=doc.get("graph_requests", 0),
            throttled=doc.get("throttled", 0),
            phases=doc.get("phases", {}),
            entries=doc.get("entries", []),
            errors=doc.get("errors", []),
            notes=doc.get("notes", []),
        )


def entry_of(change: Change, change_id: str) -> dict[str, Any]:
    return {
        "change_id": change_id,
        "action": change.action,
        "object_type": change.object_type,
        "entra_id": change.entra_id,
        "name": change.name,
        "local_id": change.local_id,
        "status": change.status,
        "reason": change.reason,
        "modified": {k: {"old": old, "new": new} for k, (old, new) in change.modifications().items()},
    }
