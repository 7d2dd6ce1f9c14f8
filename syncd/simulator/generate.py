"""Big synthetic tenants for benchmarks, deterministic by seed.

Built inside ``Tenant.bulk_load`` (no change log) with the tenant's unchecked fast paths, so
a 1M-user tenant takes seconds, and each user costs one slotted object plus its strings.

Layout (documented because benchmarks assert on it):
- users ``user0000000@domain`` ... (display name ``User N``, mail = UPN); the first
  ``guests`` of them are B2B guests ``guestN_partnerK.example#EXT#@domain`` (mail
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

from .tenant import Group, Tenant, now_iso


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
    disabled_every = users // disabled if disabled else 0
    user_ids: list[str] = []
    with t.bulk_load():
        for n in range(users):
            uid = t.new_guid()
            if n < guests:
                partner = f"partner{n % 50}.example"
                upn = f"guest{n}_{partner}#EXT#@{domain}"
                mail: str | None = f"guest{n}@{partner}"
                user_type = "Guest"
            else:
                upn = f"user{n:07d}@{domain}"
                mail = upn  # the same string object: no extra memory
                user_type = "Member"
            enabled = not (disabled_every and n % disabled_every == disabled_every - 1
                           and n // disabled_every < disabled)
            t._add_user_unchecked(uid, upn, f"User {n}", mail, enabled, user_type)
            user_ids.append(uid)

        cursor = 0

        def fill(gid: str) -> None:
            nonlocal cursor
            members = t.groups[gid].members
            for _ in range(min(members_per_group, users)):
                uid = user_ids[cursor % users]
                members.add(uid, uid)
                cursor += 1

        top_level = []
        for g in range(groups):
            gid = t.new_guid()
            t.groups.add(gid, Group(gid, f"Group {g:05d}", True))
            top_level.append(gid)
            if users:
                fill(gid)
        for k in range(nested_groups if groups else 0):
            gid = t.new_guid()
            t.groups.add(gid, Group(gid, f"Nested {k:05d}", True))
            if users:
                fill(gid)
            parent = t.groups[top_level[k % groups]]
            parent.members.add(gid, gid)

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

