"""Guards between the plan and the store: changes that are held back or staged.

Pure like the planner. They only change the ``status`` of planned changes:
- R12: the Administrators group never loses its last active member;
- R15: deactivations over the threshold are staged, not applied;
- a suspicious read (suddenly almost nobody in scope) stages every deactivation, even under
  the threshold, so a broken or empty answer from Graph never empties the directory. A
  threshold of 0 turns both off (R15: "0 turns it off").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import ADMIN_GROUP, Change, Directory, Plan
from .settings import PlanSettings

# A read is suspicious when the directory has at least this many active managed users (small
# directories are left to R15: unassigning a team of twelve is an ordinary change)...
SUSPICIOUS_MIN_ACTIVE = 100
# ...and the read keeps fewer than this share of them in scope.
SUSPICIOUS_SHARE = 0.1


@dataclass
class Guarded:
    plan: Plan
    held: bool = False
    errors: list[str] = field(default_factory=list)


def apply_guards(
    plan: Plan,
    directory: Directory,
    settings: PlanSettings,
    approved: set[str] | None = None,
    *,
    joining: int | None = None,
) -> Guarded:
    """``approved``: Entra ids of staged deactivations the operator approved (R15).

    ``plan``: the whole plan, or (``joining`` given) only the changes the guards judge,
    deactivations and Administrators' memberships, when the rest went ahead (cycle.py);
    ``joining`` then counts the users the rest made active.
    """
    result = Guarded(plan=plan)
    staying = users_staying(plan, directory, joining)  # (before R12 holds anything back)
    r12_keep_an_administrator(plan, directory, result)
    r15_stage_deactivations(plan, directory, settings, approved or set(), result, staying)
    plan.errors.extend(result.errors)
    return result


def users_staying(plan: Plan, directory: Directory, joining: int | None = None) -> int:
    """How many users the read keeps in scope, as the suspicious-read guard counts them:
    the directory's active managed users, less those the plan deactivates, plus those it
    creates, adopts or reactivates (``joining``, when counted elsewhere)."""
    leaving = joins = 0
    for c in plan.changes:
        if c.object_type == "user" and c.status == "success":
            if c.action == "deactivate":
                leaving += 1
            elif c.action in JOINING:
                joins += 1
    return directory.count_active_managed() - leaving + (joins if joining is None else joining)


JOINING = frozenset({"create", "adopt", "reactivate"})


def r12_keep_an_administrator(plan: Plan, directory: Directory, result: Guarded) -> None:
    admin = directory.admin_group()
    if admin is None:
        return
    active = {uid for uid in directory.members.get(admin.id, ()) if directory.users[uid].status == "active"}
    if not active:
        return  # R12 starts once Administrators has an active member
    losing: list[Change] = []
    remaining = set(active)
    gains = 0
    for c in plan.changes:
        if c.status != "success":
            continue
        if c.action == "remove_member" and c.group_ref == ("local", admin.id) and c.user_ref:
            if c.user_ref[1] in remaining:
                losing.append(c)
                remaining.discard(c.user_ref[1])  # type: ignore[arg-type]
        elif c.action == "deactivate" and c.local_id in remaining:
            losing.append(c)
            remaining.discard(c.local_id)
        elif c.action == "add_member" and c.group_ref == ("local", admin.id):
            # Administrators always exists locally, so its memberships name it by local id; an
            # ("entra", id) ref is a group created by this plan (maybe with the Entra id that
            # Administrators is being released from, R8), never Administrators
            gains += 1
    if remaining or gains or not losing:
        return
    message = (
        f"{ADMIN_GROUP} would be left with no active member: {len(losing)} change(s) held back "
        "(add another member to its Entra group first) (R12)"
    )
    for c in losing:
        c.status = "skipped"
        c.reason = f"held back: {ADMIN_GROUP} must keep at least one active member (R12); {c.reason}"
    result.errors.append(message)
    result.held = True


def r15_stage_deactivations(
    plan: Plan, directory: Directory, settings: PlanSettings, approved: set[str], result: Guarded, staying: int
) -> None:
    due = [c for c in plan.changes if c.action == "deactivate" and c.status == "success"]
    if not due:
        return
    pending = [c for c in due if c.entra_id not in approved]
    if not pending:
        return  # every one of them was approved: nothing to stage, nothing held
    threshold = settings.deactivation_threshold
    active_managed = directory.count_active_managed()
    if not threshold:
        return  # R15: 0 turns accidental-deletion prevention off, the suspicious-read guard too
    suspicious = (
        active_managed >= SUSPICIOUS_MIN_ACTIVE and staying < active_managed * SUSPICIOUS_SHARE
    )
    if suspicious:
        why = (
            f"the read from Graph puts only {staying} user(s) in scope where the directory has "
            f"{active_managed} active: {len(pending)} deactivation(s) staged; check the application's "
            "assignments, then run `syncd sync --approve-deactivations`"
        )
    elif len(pending) > threshold:
        why = (
            f"{len(pending)} deactivations exceed sync.deactivation_threshold ({threshold}): staged, not applied; "
            "review them (syncd report latest) and run `syncd sync --approve-deactivations` (R15)"
        )
    else:
        return
    for c in pending:
        c.status = "staged"
        c.reason = f"staged: {c.reason}"
    result.errors.append(why)
    result.held = True
