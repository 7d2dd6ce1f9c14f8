"""Plan units: the parts a cycle plans in, one after the other (``cycle._settle``).

A unit hands the pure planner its two views (what Entra says, what the directory holds)
and keeps, of the plan over them, the changes that are its own to apply. Which units a
cycle plans is decided here and nowhere else:

- ``touched``: the users an incremental read touched, when the last cycle left nothing
  pending (``store.scoped``): a delta can only change what it names;
- the read's own view of Entra, for a full read the cycle holds in memory (the mirror is
  written alongside the planning: ``IncomingRead.whole_view``);
- the mirror, for every other plan that fits one plan's memory; on demand, only the
  changes the read is evidence for are kept (R14a: ``plan.rules.restrict``);
- slices of ``SLICE_USERS`` users of the mirror, for a tenant too large for one plan.

What a unit's views must hold besides its own users, for the rules that look at other
objects, is written next to the rules: ``plan.rules.plan``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial

from .model import Change, Directory, EntraView, GraphRead, Plan
from .plan.rules import names_claimed, restrict
from .plan.settings import PlanSettings
from .store import scoped
from .store.db import Store
from .store.incoming import IncomingRead

# A full plan over more users than this goes in slices (a 1M-user plan at once overflows the
# memory target: BENCHMARKS.md). Tests lower it to exercise slicing on small tenants.
SLICE_USERS = 100_000


def _every_change(p: Plan) -> list[Change]:
    return p.changes


@dataclass
class Unit:
    """One plan's inputs; ``take`` hands them over once (peak memory: the plan's caller
    lets go of them before applying)."""

    _views: tuple[EntraView, Directory] | None
    keep: Callable[[Plan], list[Change]] = _every_change
    alongside: Callable[[], AbstractContextManager[object]] = nullcontext
    notes: list[str] = field(default_factory=list)

    def take(self) -> tuple[EntraView, Directory]:
        views, self._views = self._views, None
        assert views is not None, "a unit's views are taken once"
        return views


def plan_units(
    store: Store, incoming: IncomingRead, read: GraphRead, settings: PlanSettings, touched: scoped.Touched | None,
    *, on_demand: bool,
) -> Iterator[Unit]:
    """The units of this cycle's plan, in order; each is planned and applied before the
    next one is loaded (a later slice sees what an earlier one did)."""
    claimed = partial(names_claimed, settings=settings)
    within_reach = settings.scope != "all"  # "all": every user is in scope
    if touched is not None:
        incoming.written()
        entra, directory = scoped.scoped_views(store, touched, claimed)
        unit = Unit((entra, directory), notes=[f"planned over the {len(entra.users)} users this read touched"])
        del entra, directory
        yield unit
        return
    if on_demand:
        incoming.written()
        evidence = partial(
            restrict, users_read=read.users_read, groups_read=read.groups_read,
            members={uid: u.account_enabled for uid, u in read.users.items() if uid not in read.users_read},
        )
        yield Unit((store.load_entra_view(within_reach=within_reach), store.load_directory()), keep=lambda p: evidence(p).changes)
        return
    view = incoming.whole_view(within_reach=within_reach, max_users=SLICE_USERS)
    if view is not None:
        unit = Unit((view, store.load_directory()), alongside=incoming.alongside)
        del view
        yield unit
        return
    universe = store.plan_universe(within_reach=within_reach) if store.plan_universe_bound() > SLICE_USERS else []
    if len(universe) <= SLICE_USERS:
        del universe
        yield Unit((store.load_entra_view(within_reach=within_reach), store.load_directory()))
        return
    yield from _slices(store, universe, claimed)


def _slices(store: Store, universe: list[str], claimed: Callable) -> Iterator[Unit]:
    """A large tenant, ``SLICE_USERS`` Entra users at a time, in Entra id order (the order
    in which a whole plan settles name clashes). Each slice is planned like the users a
    read touched (``scoped.scoped_views``) and keeps its own changes (``_own``). Users and
    memberships applied are not planned again: the planner has nothing to do for a user
    already as Entra says."""
    starts = range(0, len(universe), SLICE_USERS)
    for start in starts:
        own = set(universe[start : start + SLICE_USERS])
        unit = Unit(scoped.scoped_views(store, (own, set()), claimed), keep=partial(_own, users=own, first=start == 0))
        if start == 0:
            unit.notes.append(f"planned in {len(starts)} slices of up to {SLICE_USERS:,} users (a large tenant: memory)")
        yield unit


def _own(p: Plan, *, users: set[str], first: bool) -> list[Change]:
    """A slice's own changes: its users' changes and memberships; the first slice also
    takes every group, invite and other membership change (a later slice finds those
    done, or plans them again only for context)."""

    def own(c: Change) -> bool:
        if c.object_type == "user":
            return c.entra_id in users
        if c.object_type == "membership":
            return first or c.user_entra_id in users
        return first

    return [c for c in p.changes if own(c)]
