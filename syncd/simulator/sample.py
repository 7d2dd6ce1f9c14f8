"""The demo tenant behind ``syncd demo``: about 50 people at Contoso, and a scripted change.

``demo_tenant()`` returns a Tenant whose ``t.demo`` is a :class:`DemoHandles` naming the
objects the demo talks about; ``apply_demo_changes(t)`` makes the between-cycles changes
(and returns one line per change for the demo to print).

Scope with the default config (assigned, direct members):
- assigned groups: Split_Administrators (maps to Administrators), Engineering, Sales,
  Support, and Marketing-Communications-EMEA (27 characters: skipped as too long, its
  members still provisioned); Contractors is nested in Engineering (not in scope itself
  unless group_members = "transitive");
- Finance is not assigned: its members are out of scope unless assigned another way;
- three users are assigned directly; one guest (B2B) and one disabled user sit in groups.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tenant import Tenant

DOMAIN = "contoso.onmicrosoft.com"

_PEOPLE = [
    "Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
    "Donald Knuth", "Margaret Hamilton", "Ken Thompson", "Dennis Ritchie", "Frances Allen",
    "John Backus", "Radia Perlman", "Leslie Lamport", "Adele Goldberg", "Niklaus Wirth",
    "Shafi Goldwasser", "Tony Hoare", "Jean Sammet", "Butler Lampson", "Karen Jones",
    "Whitfield Diffie", "Hedy Lamarr", "Vint Cerf", "Anita Borg", "Bob Kahn",
    "Sophie Wilson", "Guido Rossum", "Lynn Conway", "Bjarne Stroustrup", "Mary Keller",
    "Robin Milner", "Ellen Spertus", "Alan Kay", "Carol Shaw", "Fran Bilas",
    "Ivan Sutherland", "Betty Holberton", "Charles Bachman", "Kay McNulty", "Jim Gray",
    "Marlyn Meltzer", "Fernando Corbato", "Ruth Teitelbaum", "Peter Naur", "Joan Clarke",
    "Dana Scott", "Hal Abelson", "Gerald Sussman",
]


@dataclass(frozen=True)
class DemoHandles:
    """Object ids the demo refers to (all GUIDs)."""

    admins_group: str  # Split_Administrators, assigned
    engineering: str  # assigned
    sales: str  # assigned
    support: str  # assigned; renamed by apply_demo_changes
    long_name_group: str  # Marketing-Communications-EMEA (27 chars), assigned
    nested_group: str  # Contractors, member of Engineering, not assigned itself
    finance: str  # not assigned
    guest: str  # B2B guest in Sales
    disabled: str  # disabled user in Engineering
    direct_users: tuple[str, ...]  # assigned directly, in no assigned group
    to_unassign: str  # one of direct_users: unassigned by apply_demo_changes
    to_disable: str  # a Sales member: disabled by apply_demo_changes
    new_member: str  # a Finance-only user: added to Engineering by apply_demo_changes
    renamed_to: str  # the new name of Support


def _upn(name: str) -> str:
    first, last = name.lower().split(" ", 1)
    return f"{first}.{last.replace(' ', '')}@{DOMAIN}"


def demo_tenant(seed: int = 7) -> Tenant:
    t = Tenant(domain=DOMAIN, seed=seed, app_name="Split")
    people = [t.add_user(_upn(n), n, mail=_upn(n)) for n in _PEOPLE]

    admins = t.add_group("Split_Administrators")
    engineering = t.add_group("Engineering")
    sales = t.add_group("Sales")
    support = t.add_group("Support")
    long_name = t.add_group("Marketing-Communications-EMEA")
    contractors = t.add_group("Contractors")
    finance = t.add_group("Finance")

    def members(gid: str, ids: list[str]) -> None:
        for uid in ids:
            t.add_member(gid, uid)

    members(admins, people[0:2])
    members(engineering, people[0:14])
    members(sales, people[14:22])
    members(support, people[22:28])
    members(long_name, people[28:33])
    members(contractors, people[33:37])
    members(finance, people[37:41])
    t.add_member(engineering, contractors)  # nesting: a group in an assigned group
    t.add_member(engineering, t.add_device("BUILD-AGENT-01"))  # non-user members are ignored
    t.add_member(support, t.add_service_principal("Helpdesk Bot"))

    guest = t.add_user(f"jane.doe_fabrikam.com#EXT#@{DOMAIN}", "Jane Doe (Fabrikam)",
                       mail="jane.doe@fabrikam.com", user_type="Guest")
    t.add_member(sales, guest)
    disabled = t.add_user(f"former.employee@{DOMAIN}", "Former Employee", enabled=False)
    t.add_member(engineering, disabled)
    direct = tuple(people[41:44])
    # people[44:] belong to nothing assigned: they stay out of scope

    for gid in (admins, engineering, sales, support, long_name):
        t.assign(gid)
    for uid in direct:
        t.assign(uid)

    t.demo = DemoHandles(
        admins_group=admins, engineering=engineering, sales=sales, support=support,
        long_name_group=long_name, nested_group=contractors, finance=finance, guest=guest,
        disabled=disabled, direct_users=direct, to_unassign=direct[0], to_disable=people[15],
        new_member=people[38], renamed_to="Customer Success")
    return t


def apply_demo_changes(t: Tenant) -> list[str]:
    """The changes the demo makes between its first and second cycle."""
    demo = t.demo
    if not isinstance(demo, DemoHandles):
        raise ValueError("not a demo tenant")
    t.unassign(demo.to_unassign)
    t.disable_user(demo.to_disable)
    t.rename_group(demo.support, demo.renamed_to)
    t.add_member(demo.engineering, demo.new_member)
    name = t.users
    return [
        f"unassigned {name[demo.to_unassign].upn} from the application",
        f"disabled {name[demo.to_disable].upn}",
        f"renamed group Support to {demo.renamed_to}",
        f"added {name[demo.new_member].upn} to Engineering",
    ]
