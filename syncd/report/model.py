"""A cycle's report: the SPEC §4 document built from the guarded plan."""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..compat import batched
from ..model import Change
from .chunks import CHUNK, compress, hash_lines, text_of


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


class Entries:
    """A report's entries as their canonical JSON (the text the audit chain stores), held a
    thousand to a compressed chunk, as ``report.chunks`` stores them.

    A big cycle's entries are far smaller as text than as dicts, and smaller again
    compressed (BENCHMARKS.md). A chunk is compressed as it
    fills, and the sha256 of the entries (``audit.entries_hash``) kept as it goes: saving
    the report computes only the chain hash, and writes the chunks as they are. Reading
    an entry decodes it (keys then come sorted, as they do from a stored report).
    """

    __slots__ = ("_open", "_sealed", "_counts", "_per_chunk", "_sha")

    def __init__(self, entries: Iterable[dict[str, Any]] = ()) -> None:
        self._open: list[str] = []  # entries not in a chunk yet
        self._sealed: list[bytes] = []  # full chunks, compressed
        self._counts: Counter[str] = Counter()
        self._per_chunk = CHUNK
        self._sha = hashlib.sha256()  # of the sealed chunks' entries, each followed by a newline
        for entry in entries:
            self.append(entry)

    @classmethod
    def from_raw(cls, raw: list[str]) -> Entries:
        """Entries from their canonical JSON (a stored report), held as they are."""
        entries = cls()
        entries._open = raw
        entries._counts.update(_count_key(orjson.loads(e)) for e in raw)
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        self._open.append(canonical(entry))
        self._counts[_count_key(entry)] += 1
        if len(self._open) == self._per_chunk:
            self._seal()

    def _seal(self) -> None:
        text = text_of(self._open)
        hash_lines(self._sha, (text,))
        self._sealed.append(compress(text))
        self._open = []

    def _open_chunks(self) -> Iterator[list[str]]:
        return batched(self._open, self._per_chunk)

    def sha256(self) -> str:
        """sha256 of the entries, each followed by a newline (``audit.entries_hash``)."""
        return hash_lines(self._sha.copy(), map(text_of, self._open_chunks())).hexdigest()

    def texts(self) -> Iterator[bytes]:
        """Each chunk's text (``chunks.text_of``), in order."""
        for sealed in self._sealed:
            yield zlib.decompress(sealed)
        yield from map(text_of, self._open_chunks())

    def packed(self) -> Iterator[tuple[int, bytes]]:
        """The chunks as ``chunks.pack`` stores them: (number of the first entry, bytes)."""
        per = self._per_chunk
        for i, sealed in enumerate(self._sealed):
            yield i * per, sealed
        for i, chunk in enumerate(self._open_chunks(), len(self._sealed)):
            yield i * per, compress(text_of(chunk))

    def iter_raw(self) -> Iterator[str]:
        """The canonical JSON of each entry, in order, a chunk at a time."""
        for text in self.texts():
            yield from text.decode().split("\n")

    def fork(self) -> Entries:
        """A copy to append to, this one left as it is (its chunks are shared, never changed)."""
        other = Entries()
        other._open, other._sealed = list(self._open), list(self._sealed)
        other._counts, other._sha = self._counts.copy(), self._sha.copy()
        other._per_chunk = self._per_chunk
        return other

    def counts(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    def __len__(self) -> int:
        return len(self._sealed) * self._per_chunk + len(self._open)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(orjson.loads, self.iter_raw())

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("entry index out of range")
        chunk, at = divmod(index, self._per_chunk)
        if chunk < len(self._sealed):
            return orjson.loads(zlib.decompress(self._sealed[chunk]).decode().split("\n")[at])  # type: ignore[no-any-return]
        return orjson.loads(self._open[index - len(self._sealed) * self._per_chunk])  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Entries):
            return len(self) == len(other) and all(a == b for a, b in zip(self.iter_raw(), other.iter_raw(), strict=True))
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"Entries({len(self)} entries)"



# how the guards word a hold (syncd/plan/guards.py): Administrators' last member (R12), the
# deactivation threshold or a read that suddenly finds almost nobody (R15)
_HOLDS = ("(R12)", "(R15)", "deactivation(s) staged")


def outcome_in_words(status: str, errors: list[str], cycle_id: str) -> str:
    """What a cycle did and why, for people: ``succeeded``; or, when it did not simply
    succeed, the reason (for a held cycle what held it, not whatever error came first, such
    as a group name over the length limit), with how many other errors its report has."""
    what = {"failed": "failed", "partial": "applied with errors", "held": "held changes back"}.get(status, status)
    if status == "succeeded":
        return what
    reasons = [e for e in errors if any(h in e for h in _HOLDS)] if status == "held" else []
    reasons = reasons or errors[:1]
    if not reasons:
        return f"{what}: see `syncd report {cycle_id}`"
    others = len(errors) - len(reasons)
    more = f" (and {others} other error{'s' if others != 1 else ''}: `syncd report {cycle_id}`)" if others else ""
    return f"{what}: {'; '.join(reasons)}{more}"

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
    interrupted: bool = False  # the service stopped it: recorded, but not a failure of the service
    # SPEC §7: one summary per SCIM application pushed in this cycle (name, status, requests, ...)
    apps: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.entries, Entries):
            self.entries = Entries(self.entries)

    def add_changes(self, changes: list[Change], *, release: bool = True, into: Entries | None = None) -> None:
        """Turn changes into entries; ``release``: letting go of each change as it goes (large
        plans); ``into``: a fork of the entries (``Entries.fork``) instead of the entries."""
        entries = self.entries if into is None else into
        first, append = len(entries) + 1, entries.append
        for i, change in enumerate(changes):
            append(entry_of(change, f"{self.cycle_id}:{first + i}"))
            if release:
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

    def outline(self) -> str:
        """One line for logs: what the cycle did and, when it did not simply succeed, why
        (``outcome_in_words``), naming the applications whose push failed."""
        counts = " ".join(f"{k}={v}" for k, v in self.counts.items()) or "no changes"
        line = f"{counts}; {outcome_in_words(self.status, self.errors, self.cycle_id)}"
        failing = ", ".join(f"{a['name']} ({a['status']})" for a in self.apps if a.get("status") in ("failed", "partial"))
        return f"{line}; applications failing: {failing}" if failing else line

    def header(self) -> dict[str, Any]:
        head = {
            **self.summary(),
            "graph_requests": self.graph_requests,
            "throttled": self.throttled,
            "phases": self.phases,
            "errors": self.errors,
            "notes": self.notes,
        }
        if self.apps:  # (only with [[scim]] applications: older reports' headers stay as they were)
            head["apps"] = self.apps
        return head

    def add_entry(self, entry: dict[str, Any]) -> None:
        """One more entry (a SCIM push's), numbered after the others."""
        self.entries.append({"change_id": f"{self.cycle_id}:{len(self.entries) + 1}", **entry})

    def ordered_phases(self) -> list[tuple[str, float]]:
        """The phases in the order they run (stored JSON sorts its keys)."""
        order = {"read": 0, "plan": 1, "apply": 2, "push": 3}
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
            apps=doc.get("apps", []),
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
        "target": "local",  # SPEC §7 R24: "local" or a SCIM application's name
    }
