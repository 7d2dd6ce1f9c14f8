"""`syncd explain USER`: why a user is or is not provisioned, in the steps Entra's
provision-on-demand shows (import → scope → match → action), ending in one sentence.

It works from the store's mirror of Entra, the state the last completed cycle read and
planned from, not from a live Graph call:
- it answers the question operators actually ask ("why did the last cycle do that?") with
  the very data and rules the cycle used: what the next cycle would do is the planner's
  own answer, over the same scoped view a cycle plans this user with;
- it needs no credential, no network and no Graph permission, so it works offline, as root
  or as the service user, and while Graph is down (which is often when the question comes);
- it says as of which cycle the mirror is, and `syncd sync --user USER` refreshes one user
  on demand when a fresher answer is needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from .config import Config
from .model import Change, EntraUser, EntraView
from .plan.rules import guest_upn, names_claimed, plan, r1_scope, r5_map_attributes
from .plan.settings import PlanSettings
from .store.audit import last_mirroring_cycle, last_user_entry
from .store.db import Store
from .store.local import group_names_of, match_user, staged_deactivation
from .store.scoped import scoped_views


@dataclass
class Step:
    name: str
    result: str  # "yes" | "no" | "info" | "warning"
    detail: str


@dataclass
class Explanation:
    query: str
    mirror_as_of: dict[str, Any] | None
    entra_id: str | None
    local_id: int | None
    provisioned: bool
    steps: list[Step] = field(default_factory=list)
    conclusion: str = ""
    apps: dict[str, Any] = field(default_factory=dict)  # SPEC §7: the user's state in each SCIM application

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": [asdict(s) for s in self.steps]}


def _find_entra(view: EntraView, ref: str) -> EntraUser | None:
    key = ref.strip().casefold()
    if ref in view.users:
        return view.users[ref]
    for u in view.users.values():
        if u.id.casefold() == key:
            return u
    for attr in ("upn", "guest", "mail"):
        for u in view.users.values():
            upn = u.user_principal_name or ""
            value = {"upn": upn, "guest": guest_upn(upn) if upn else "", "mail": u.mail or ""}[attr]
            if value and value.casefold() == key:
                return u
    return None


def _nested_paths(view: EntraView, uid: str, assigned_groups: set[str]) -> list[list[str]]:
    """Paths assigned group → nested group(s) → … that reach the user only through nesting."""
    paths: list[list[str]] = []
    for root in sorted(assigned_groups):
        todo = [[root]]
        seen = {root}
        while todo:
            path = todo.pop(0)
            for mid, kind in view.members.get(path[-1], {}).items():
                if kind == "group" and mid not in seen:
                    seen.add(mid)
                    if view.members.get(mid, {}).get(uid) == "user":
                        paths.append([*path, mid])
                    todo.append([*path, mid])
    return paths


def _group_name(view: EntraView, gid: str) -> str:
    g = view.groups.get(gid)
    return f"{g.display_name!r}" if g and g.display_name else gid


def explain(store: Store, config: Config, ref: str) -> Explanation:
    settings = PlanSettings.from_config(config)
    as_of = last_mirroring_cycle(store)
    view = store.load_entra_view()
    user = _find_entra(view, ref)
    local = match_user(store, ref, user.id if user else None)
    ex = Explanation(query=ref, mirror_as_of=as_of, entra_id=user.id if user else (local or {}).get("entra_id"),
                     local_id=local["id"] if local else None, provisioned=False)
    step = ex.steps.append

    if as_of:
        step(Step("Entra data", "info", f"the store's mirror of Entra ID as of cycle {as_of['cycle_id']} ({as_of['mode']}, ended {as_of['ended_at']}); `syncd sync --user {ref}` refreshes this user now"))
    else:
        step(Step("Entra data", "warning", "no cycle has completed yet, so the store knows nothing of Entra ID: run `syncd sync` first"))

    # 1. import: found in Entra?
    if user is None:
        step(Step("Found in Entra ID", "no", f"no user with the object id, userPrincipalName or mail {ref!r} in the mirror"))
    else:
        step(Step("Found in Entra ID", "yes", f"{user.user_principal_name} (object id {user.id}, {user.display_name or 'no display name'}{', guest' if (user.user_type or '').lower() == 'guest' else ''})"))
        step(Step("Enabled in Entra ID", "yes" if user.account_enabled else "no",
                  "accountEnabled is true" if user.account_enabled else "accountEnabled is false: a disabled user is never created, and an existing one is deactivated (R2)"))

    # 2. scope: assigned directly, through which groups, or only through a nested group?
    scope = r1_scope(view, settings)
    in_scope = bool(user and user.id in scope.users)
    nested: list[list[str]] = []
    if user is not None:
        assigned_groups = {pid for pid, kind in view.assignments.items() if kind == "Group"}
        direct = view.assignments.get(user.id) == "User"
        via = sorted(g for g in assigned_groups if view.members.get(g, {}).get(user.id) == "user")
        nested = _nested_paths(view, user.id, assigned_groups)
        parts = []
        if settings.scope == "all":
            parts.append("sync.scope = \"all\": every user of the tenant is in scope")
        if direct:
            parts.append("assigned to the application directly")
        if via:
            parts.append("member of the assigned group(s) " + ", ".join(_group_name(view, g) for g in via))
        only_nested = not direct and not via and bool(nested)
        if nested and (only_nested or settings.group_members == "transitive"):
            parts.append("member through nested groups: " + "; ".join(" → ".join(_group_name(view, g) for g in p) for p in nested)
                         + (" (counted: sync.group_members = \"transitive\")" if settings.group_members == "transitive"
                            else " (not counted: like Entra, sync.group_members = \"direct\" takes direct members only)"))
        if not parts:
            parts.append("not assigned to the application, directly or through any group")
        step(Step("Assigned to the application", "yes" if in_scope else "no", "; ".join(parts)))
        step(Step("In scope", "yes" if in_scope else "no", scope.users.get(user.id, "not in scope")))
        mapped = r5_map_attributes(user, settings)
        if isinstance(mapped, str):
            step(Step("Attribute mapping", "no", mapped))
        else:
            step(Step("Attribute mapping", "yes", f"user_name {mapped.user_name}, email {mapped.email} (mapping.email = {settings.email})"))
    else:
        mapped = None

    # 3. match: in the local directory?
    groups: list[str] = []
    if local is not None:
        groups = group_names_of(store, local["id"])
        step(Step("In the local directory", "yes",
                  f"local user {local['id']} {local['user_name']}, {local['status']}, "
                  f"{'managed by Entra ID' if local['managed'] else 'unmanaged (local)'}"
                  f"{', groups: ' + ', '.join(groups) if groups else ', in no group'}"))
    else:
        step(Step("In the local directory", "no", "no local user matches"))

    # 4. action: the last one, in which cycle; anything staged?
    last_entry = last_user_entry(store, ex.entra_id, local["id"] if local else None)
    if last_entry:
        step(Step("Last action", "info",
                  f"{last_entry['action']} ({last_entry['status']}) in cycle {last_entry['cycle_id']} "
                  f"({last_entry['trigger']}, {last_entry['ended_at']}): {last_entry['reason']}"))
    else:
        step(Step("Last action", "info", "no cycle has changed this user"))
    staged = staged_deactivation(store, ex.entra_id) if ex.entra_id else None
    if staged:
        step(Step("Staged", "warning", f"a deactivation staged by the threshold in cycle {staged[0]} waits for `syncd sync --approve-deactivations` ({staged[1]})"))

    # 5. what the next cycle would do: the planner's answer, not a restatement of the rules
    planned = _planned(store, settings, ex.entra_id) if as_of else []
    if staged:
        planned = []  # (held by R15 until approved: the step above says so)
    step(Step("Next cycle", "info" if planned else "yes",
              "; ".join(f"{c.action}{' ' + c.name if c.object_type == 'membership' else ''}: {c.reason}" for c in planned)
              or ("its deactivation waits for approval" if staged else "nothing to change")))
    if config.scim and local is not None:
        from .store import apps

        ex.apps = apps.user_state(store.conn, local["id"])
    for app in config.scim:
        step(_app_step(app.name, app.enabled, local, ex.apps))

    ex.provisioned = bool(local and local["managed"] and local["status"] == "active")
    ex.conclusion = _conclusion(ref, user, local, in_scope, nested, settings, last_entry, view, planned, staged)
    return ex


def _app_step(name: str, enabled: bool, local: dict[str, Any] | None, states: dict[str, Any]) -> Step:
    """The user in one SCIM application, as the store recorded its pushes (``store.apps``)."""
    label = f"In application {name}"
    if local is None:
        return Step(label, "no", "no local user, so nothing to push")
    state = states.get(name) or {}
    failure = state.get("failure")
    if "app_id" in state:
        detail = (f"{'active' if state['active'] else 'deactivated'} there as {state['user_name']} "
                  f"(the application's id {state['app_id']}), as of the last push")
    elif not local["managed"]:
        return Step(label, "info", "an unmanaged local user: never pushed to applications (R20)")
    elif local["status"] != "active":
        detail = "not there: a deactivated user is never created in an application"
    else:
        detail = "not there yet: the next push creates it (or links one with the same userName, R22)"
    if not enabled:
        detail += f"; scim.{name}.enabled = false: not pushed"
    if failure:
        return Step(label, "warning", f"{detail}; the last push of a change failed {failure['attempts']} time(s): "
                                      f"{failure['error']} (retried in later cycles)")
    return Step(label, "yes" if state.get("active") else "no" if "app_id" in state else "info", detail)


def _planned(store: Store, settings: PlanSettings, entra_id: str | None) -> list[Change]:
    """The user's own changes in the plan a cycle would make now, from the mirror: planned
    over the scoped view a cycle plans a touched user with."""
    if not entra_id:
        return []
    entra, directory = scoped_views(store, ({entra_id}, set()), partial(names_claimed, settings=settings))
    own = plan(entra, directory, settings).changes
    user = [c for c in own if c.object_type == "user" and c.entra_id == entra_id]
    return user + [c for c in own if c.object_type == "membership" and c.user_entra_id == entra_id]


_NEXT = {"create": "creates", "adopt": "adopts", "update": "updates", "reactivate": "reactivates", "deactivate": "deactivates"}


def _conclusion(ref, user, local, in_scope, nested, settings, last_entry, view, planned: list[Change], staged) -> str:
    who = user.user_principal_name if user else ref
    change = next((c for c in planned if c.object_type == "user"), None)
    if change is not None and change.action == "skip":
        next_cycle = f"it cannot be provisioned: {change.reason}"
    elif change is not None:
        next_cycle = f"the next cycle {_NEXT.get(change.action, change.action)} {'it' if change.local_id is None else 'local user ' + str(change.local_id)}: {change.reason}"
    elif staged:
        next_cycle = "its deactivation is staged (R15), waiting for `syncd sync --approve-deactivations`"
    elif planned:
        next_cycle = "the next cycle changes its groups: " + "; ".join(f"{c.action} {c.name}" for c in planned)
    else:
        next_cycle = ""
    if user is None:
        if local is None:
            return (f"{who} was not found in Entra ID as of the last cycle nor in the local directory: check the name, "
                    "or run `syncd sync` if the user was created since.")
        if not local["managed"]:
            return f"{who} is an unmanaged local user: Entra ID does not know it, so syncd leaves it under local control."
        return f"{who} is no longer in Entra ID (deleted)" + (f": {next_cycle}." if next_cycle else "; the local user is deactivated and keeps its record.")
    if user.account_enabled is False:
        return f"{who} is disabled in Entra ID" + (f": {next_cycle}." if next_cycle else "; syncd does not provision them.")
    if not in_scope:
        if nested and settings.group_members == "direct":
            path = " → ".join(_group_name(view, g) for g in nested[0])
            base = (f"{who} is only a member of a nested group ({path}): like Entra ID, syncd provisions only direct members "
                    f"of assigned groups; assign {_group_name(view, nested[0][-1])} to the application, or set sync.group_members = \"transitive\"")
        else:
            base = (f"{who} is not assigned to the application, directly or through a group (what Entra reports as AADSTS50105 at "
                    "sign-in): syncd does not provision them; assign the user, or a group they are a direct member of, "
                    "to the enterprise application in Entra ID")
        return base + (f"; {next_cycle}." if next_cycle else ".")
    if next_cycle:
        return f"{who} is in scope: {next_cycle}."
    if local is not None and local["managed"] and local["status"] == "active":
        when = f" (last {last_entry['action']} in cycle {last_entry['cycle_id']})" if last_entry else ""
        return f"{who} is provisioned: local user {local['id']} ({local['user_name']}) is active and managed by Entra ID{when}."
    return f"{who} is in scope; the next cycle changes nothing for it."


def render(ex: Explanation) -> str:
    mark = {"yes": "✓", "no": "✗", "info": "·", "warning": "!"}
    lines = [f"explain {ex.query}"]
    for n, s in enumerate(ex.steps, 1):
        lines.append(f"{n:>2}. {mark.get(s.result, '·')} {s.name}: {s.detail}")
    lines.append("")
    lines.append(ex.conclusion)
    return "\n".join(lines)
