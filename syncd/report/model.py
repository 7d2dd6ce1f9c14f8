"""A cycle's report: the SPEC §4 document built from the guarded plan."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..model import Change


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
    entries: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_changes(self, changes: list[Change]) -> None:
        """Turn changes into entries, letting go of each change as it goes (large plans)."""
        for i, change in enumerate(changes):
            self.entries.append(entry_of(change, f"{self.cycle_id}:{len(self.entries) + 1}"))
            changes[i] = None  # type: ignore[call-overload]

    @property
    def counts(self) -> dict[str, int]:
        """Applied (or, in a dry run, planned) changes per action, plus skipped/staged/failed."""
        counts: Counter[str] = Counter()
        for e in self.entries:
            if e["status"] == "success":
                counts[e["action"]] += 1
            elif e["status"] == "skipped":
                counts["skip"] += 1
            elif e["status"] == "staged":
                counts["staged"] += 1
            else:
                counts["failure"] += 1
        return dict(sorted(counts.items()))

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
        return {**self.header(), "entries": self.entries}

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
        "modified": {k: {"old": old, "new": new} for k, (old, new) in change.modified.items()},
    }
