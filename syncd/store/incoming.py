"""One cycle's read on its way into the mirror: the one object a cycle holds for its read.

The cycle ``receive``s the read (its pages go through ``add``), then, inside its
transaction, writes it ``into_mirror`` and asks for ``whole_view``: the read's own view
of Entra when a whole plan can take it, the rest of the mirror being written
``alongside`` the planning; else the mirror is complete and the plan reads it back. How
the read got here (users buffered in a temp table and held or not, pages accumulated,
an on-demand answer) stays in here: ``buffer.BufferedRead`` and ``buffer.Fold``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from ..model import EntraView, GraphRead
from ..read import OnPage
from .buffer import Fold
from .db import Store


class IncomingRead:
    def __init__(self, store: Store, *, full: bool) -> None:
        """``full``: whether the read starts as a full one (no delta links)."""
        self._store = store
        self._full = full
        self._fold: Fold | None = None

    def receive(self, fetch: Callable[[OnPage], GraphRead]) -> GraphRead:
        """The whole read: ``fetch`` hands each page to the given sink as it arrives (or
        returns everything at once). A read that fails, or that the caller stops waiting
        for, touches the store no more (``BufferedRead.abandon``); the sink is not kept
        (peak memory: its accumulator holds the read's groups)."""
        buffer = self._store.buffered_read(full=self._full)
        try:
            return buffer.finish(fetch(buffer.add))
        finally:
            buffer.abandon()

    def into_mirror(self, read: GraphRead, *, on_demand: bool, stored_assignments: dict[str, str]) -> None:
        """Write the read into the mirror (inside the cycle's transaction), but for the
        buffered users, which ``whole_view`` or ``written`` fold in.

        A cycle that is not on demand lets go of the read's objects: they are in the
        mirror, or in the fold's view (peak memory, BENCHMARKS.md). On demand, the cycle
        still reads which users and groups it found.
        """
        self._fold = self._store.apply_read(read, on_demand=on_demand, stored_assignments=stored_assignments)
        if not on_demand:
            read.users, read.groups, read.members_added, read.members_removed = {}, {}, {}, {}
            read.removed_users, read.removed_groups = set(), set()
        read.buffered_held = None  # (the fold has them)

    def whole_view(self, *, within_reach: bool, max_users: int) -> EntraView | None:
        """The read's own view of Entra for a whole plan, within reach (see
        ``Store.load_entra_view``) when asked; None when the read did not hold its users or
        a whole plan would act on more than ``max_users`` users. With a view, the mirror is
        completed ``alongside`` the planning; without one, it is complete on return."""
        fold = self._fold
        if fold is not None and fold.has_view:
            linked = self._store.linked_entra_ids()
            if fold.universe_bound(linked) <= max_users:
                view = fold.take_view()
                assert view is not None  # (has_view)
                return view.within_reach(linked) if within_reach else view
        self.written()
        return None

    def alongside(self) -> AbstractContextManager[object]:
        """While the caller plans (no I/O): the rest of the mirror is written on a helper
        thread, which is lent the store's connection for the length of the block."""
        if self._fold is None or self._fold.ran:
            return nullcontext()
        return self._store.lend(self._fold.run)

    def written(self) -> None:
        """The mirror is complete."""
        if self._fold is not None:
            self._fold.run(self._store.conn)
