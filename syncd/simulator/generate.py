"""Big synthetic tenants for benchmarks, deterministic by seed.

Built inside ``Tenant.bulk_load`` (no change log) with the tenant's unchecked fast paths, so
a 1M-user tenant takes seconds, and each user costs one slotted object plus its strings.

Layout (documented because benchmarks assert on it):
- users ``user0000000@domain`` ... (display name ``User N``, mail = UPN); the first
  ``guests`` of them are B2B guests ``guestN_partnerK.example#EXT#@domain`` (``Guest N``, mail
  ``guestN@partnerK.example``); ``disabled`` users spread evenly have accountEnabled false;
- ``groups`` groups ``Group 00000`` ...; group g holds ``members_per_group`` consecutive users
  starting at user ``g * members_per_group`` (wrapping), so memberships overlap only when
  groups * members_per_group > users;
- ``nested_groups`` extra groups ``Nested 00000`` ... with the next users in the same
  rotation, nested k is a member of group ``k % groups``;
- assign="groups": every top-level group is assigned; "users": every user directly;
  "both": the groups, plus every 10th user directly.
"""

from __future__ import annotations

from typing import Literal

from .tenant import Group, Tenant, User, now_iso


def generate_tenant(users: int, groups: int, members_per_group: int, nested_groups: int = 0,
                    guests: int = 0, disabled: int = 0,
                    assign: Literal["groups", "users", "both"] = "groups", seed: int = 0,
                    domain: str = "contoso.onmicrosoft.com") -> Tenant:
    if assign not in ("groups", "users", "both"):
        raise ValueError(f"assign must be groups, users or both, not {assign!r}")
    if users < 0 or groups < 0 or members_per_group < 0 or guests > users or disabled > users:
        raise ValueError("counts must be non-negative, guests and disabled at most users")
    t = Tenant(domain=domain, seed=seed)
    created = now_iso()
    with t.bulk_load():
        user_ids = t.new_guids(users)
        t.users.extend(user_ids, _users(user_ids, guests, disabled, domain))

        # group k takes the next members_per_group users, round the user list
        per_group = min(members_per_group, users)
        ring = user_ids * (1 + (groups + nested_groups) * per_group // max(users, 1))
        names = [f"Group {g:05d}" for g in range(groups)]
        names += [f"Nested {k:05d}" for k in range(nested_groups if groups else 0)]
        group_ids = t.new_guids(len(names))
        cursor = 0
        for gid, name in zip(group_ids, names, strict=True):
            group = Group(gid, name, True)
            members = ring[cursor:cursor + per_group]
            cursor += per_group
            group.members.extend(members, members)
            t.groups.add(gid, group)
        del ring
        top_level = group_ids[:groups]
        for k, gid in enumerate(group_ids[groups:]):
            t.groups[top_level[k % groups]].members.add(gid, gid)

        if assign in ("groups", "both"):
            for gid in top_level:
                t._assign_unchecked(gid, "Group", created)
        if assign == "users":
            for uid in user_ids:
                t._assign_unchecked(uid, "User", created)
        elif assign == "both":
            for uid in user_ids[::10]:
                t._assign_unchecked(uid, "User", created)
    return t


def _users(ids: list[str], guests: int, disabled: int, domain: str) -> list[User]:
    disabled_every = len(ids) // disabled if disabled else 0
    out = []
    for n, uid in enumerate(ids):
        if n < guests:
            partner = f"partner{n % 50}.example"
            out.append(User(uid, f"guest{n}_{partner}#EXT#@{domain}", f"Guest {n}",
                            f"guest{n}@{partner}", True, "Guest"))
            continue
        upn = f"user{n:07d}@{domain}"
        out.append(User(uid, upn, f"User {n}", upn, True, "Member"))  # mail: the same string
    if disabled_every:
        for k in range(disabled):
            out[k * disabled_every + disabled_every - 1].enabled = False
    return out


def churn(t: Tenant, changed: int = 0, disabled: int = 0, added: int = 0,
          soft_deleted: int = 0, member_moves: int = 0, seed: int = 0) -> dict[str, int]:
    """Between-cycle changes for incremental benchmarks, deterministic by seed.

    ``changed`` users get a new display name, ``disabled`` are disabled, ``added`` new users
    join the first group, ``soft_deleted`` are soft-deleted, ``member_moves`` users leave one
    group for another. Returns the counts actually applied.
    """
    import random

    rng = random.Random(seed)
    with t.lock:
        live = [u for u in t.users.values() if not u.soft_deleted]
        picked = rng.sample(live, min(len(live), changed + disabled + soft_deleted))
        for user in picked[:changed]:
            t.update_user(user.id, display_name=f"{user.display_name} (renamed {seed})")
        for user in picked[changed:changed + disabled]:
            t.update_user(user.id, enabled=False)
        for user in picked[changed + disabled:]:
            t.soft_delete_user(user.id)
        groups = list(t.groups.values())
        first = groups[0].id if groups else None
        for k in range(added):
            uid = t.add_user(f"churn{seed}-{k}@{t.domain}", f"Churn {seed}-{k}")
            if first:
                t.add_member(first, uid)
        moves = 0
        if len(groups) >= 2:
            for _ in range(member_moves):
                source, target = rng.sample(groups, 2)
                member = next(iter(source.members), None)
                if member is None or member in target.members:
                    continue
                t.remove_member(source.id, member)
                t.add_member(target.id, member)
                moves += 1
    return {"changed": min(changed, len(picked)),
            "disabled": max(0, min(disabled, len(picked) - changed)),
            "soft_deleted": max(0, len(picked) - changed - disabled), "added": added,
            "member_moves": moves}
