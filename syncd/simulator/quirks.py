"""Graph behaviours Microsoft documents beyond the plain answer, each off by default.

One :class:`Quirks` object per simulator (``sim.quirks``), read on every request: a test
turns a behaviour on before a cycle and off again after it, at run time::

    sim.quirks.properties = "changed"      # or Simulator(t, quirks=Quirks(properties="changed"))
    sim.quirks.set(empty_pages=2, repeat=1)
    sim.quirks.reset()                      # everything off again

The package docstring (``syncd.simulator``) lists each behaviour with the Microsoft page
that documents it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Properties = Literal["full", "some", "changed"]


@dataclass
class Quirks:
    # what an updated object carries in an incremental delta round: "full" (every selected
    # property), "some" (the changed ones plus a deterministic-random subset of the others),
    # "changed" (only the changed ones, as with Prefer: return=minimal, which always wins)
    properties: Properties = "full"
    seed: int = 0  # drives "some"
    # empty pages, each with an @odata.nextLink, before every page of data (the first one
    # included); a round then also ends on an empty page carrying the @odata.deltaLink
    empty_pages: int = 0
    # each page of a round starts with the last `repeat` objects of the page before it again
    repeat: int = 0
    # a deltaLink issued while on goes back to the start of its own round: the next round
    # re-delivers this round's changes too (replays); left on, links never move forward
    replay: bool = False
    # an object whose changes touched no selected property stays out of incremental rounds
    # ("If a change occurs to a property that is not selected, the resource ... does not
    # appear"); deletions and restores always show
    hide_unselected: bool = False
    # an incremental round leaves out the changes made in its last `lag` seconds
    # (processing delays): they arrive in a later round
    lag: float = 0.0
    # an initial round lists soft-deleted users as {"id", "@removed": {"reason": "changed"}}
    removed_in_initial: bool = False
    # properties without a value ("never set") are left out instead of sent as null
    omit_null: bool = False
    # an initial groups round leaves members@delta out of a group with no members
    omit_empty_members: bool = False
    # a big group continued on the next page repeats its properties ("the same property
    # values will be returned"), instead of carrying only its id and more members@delta
    continuation_props: bool = False
    # every Graph answer carries x-ms-resource-unit, and x-ms-throttle-limit-percentage
    # with this value when set (the identity service sends it above 0.8 of the budget)
    usage_headers: bool = False
    throttle_limit_percentage: float | None = None

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.properties not in ("full", "some", "changed"):
            raise ValueError(f"properties must be full, some or changed, not {self.properties!r}")
        for name in ("empty_pages", "repeat", "lag"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")

    def set(self, **changes: Any) -> Quirks:
        """Change some behaviours at once (unknown names are an error); returns self."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown quirks: {sorted(unknown)}")
        old = dataclasses.asdict(self)
        for name, value in changes.items():
            setattr(self, name, value)
        try:
            self._check()
        except ValueError:
            for name, value in old.items():
                setattr(self, name, value)
            raise
        return self

    def reset(self) -> Quirks:
        """Every behaviour off again (Graph's plain answer)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, f.default)
        return self
