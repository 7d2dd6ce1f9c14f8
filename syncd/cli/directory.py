"""Local directory commands: `users`, `groups`, `invites`."""

from __future__ import annotations

import click

from .app import _config_option, _open_store, _print_json, _show, _table, cli, json_option

USER_ARG = "USER is a local id, an Entra object id, a user_name or an email (case-insensitive)."
GROUP_ARG = "GROUP is a local id, an Entra object id or a name (case-insensitive)."

# --------------------------------------------------------------------------- users


@cli.group(short_help="The local users: list, show, add, activate, deactivate.")
def users() -> None:
    """The local directory's users: list, show, and (before sync is enabled) local changes."""


@users.command("list", short_help="Every user, its status and groups.")
@_config_option
@click.option("--status", "status_filter", type=click.Choice(["active", "deactivated"]), help="only the users with this status")
@json_option("an array of users (id, entra_id, user_name, display_name, email, status, managed, groups)")
def users_list(status_filter: str | None, as_json: bool) -> None:
    """Every local user, with its status, whether Entra ID manages it, and its groups."""
    from ..store.local import list_users

    store, _ = _open_store()
    with store:
        rows = list_users(store, status_filter)
    if as_json:
        _print_json(rows)
        return
    _table(
        [[u["id"], u["user_name"], u["display_name"], u["status"], "entra" if u["managed"] else "local", ",".join(u["groups"])] for u in rows],
        ["ID", "USER_NAME", "DISPLAY_NAME", "STATUS", "MANAGED", "GROUPS"],
    )


@users.command("show", short_help="One user.", epilog=USER_ARG)
@_config_option
@click.argument("user")
@json_option("the user")
def users_show(user: str, as_json: bool) -> None:
    """One user: its attributes, groups, and the cycle that last changed it."""
    from ..store.local import find_user, list_users

    store, _ = _open_store()
    with store:
        found = find_user(store, user)
        row = list_users(store, user_id=found["id"])[0]
        row["created_at"], row["updated_at"], row["last_cycle_id"] = found["created_at"], found["updated_at"], found["last_cycle_id"]
    _show(row, as_json)


@users.command("add", short_help="Add a local user (before sync is enabled).", epilog="Refused once sync is enabled (the first completed cycle).")
@_config_option
@click.argument("email")
@click.option("--name", default=None, metavar="NAME", help="display name (default: none)")
@json_option("the new user")
def users_add(email: str, name: str | None, as_json: bool) -> None:
    """Add a local, unmanaged user whose user_name and email are EMAIL (creates the store if needed)."""
    from ..store.local import add_user

    store, _ = _open_store(readonly=False, create=True)
    with store:
        _show(add_user(store, email, name), as_json)


@users.command("activate", epilog=f"{USER_ARG} Refused for users managed by Entra ID: change them there.")
@_config_option
@click.argument("user")
def users_activate(user: str) -> None:
    """Activate a local, unmanaged user."""
    from ..store.local import set_user_status

    store, _ = _open_store(readonly=False)
    with store:
        u = set_user_status(store, user, "active")
    click.echo(f"user {u['user_name']} is active")


@users.command("deactivate", short_help="Deactivate a local, unmanaged user.", epilog=f"{USER_ARG} Refused for users managed by Entra ID, and for the last active member of Administrators.")
@_config_option
@click.argument("user")
def users_deactivate(user: str) -> None:
    """Deactivate a local, unmanaged user (it leaves its groups; its record stays)."""
    from ..store.local import set_user_status

    store, _ = _open_store(readonly=False)
    with store:
        u = set_user_status(store, user, "deactivated")
    click.echo(f"user {u['user_name']} is deactivated")


# --------------------------------------------------------------------------- groups


@cli.group(short_help="The local groups: list, show, add, add-member, remove-member.")
def groups() -> None:
    """The local groups with their members: list, show, and local changes to unmanaged groups."""


@groups.command("list", short_help="Every group and its members.")
@_config_option
@json_option("an array of groups (id, entra_id, name, managed, members)")
def groups_list(as_json: bool) -> None:
    """Every local group, whether Entra ID manages it, and its members (the first few; --json: all)."""
    from ..store.local import list_groups

    store, _ = _open_store()
    with store:
        rows = list_groups(store)
    if as_json:
        _print_json(rows)
        return
    _table(
        [[g["id"], g["name"], "entra" if g["managed"] else "local", len(g["members"]), ", ".join(g["members"][:5]) + (" …" if len(g["members"]) > 5 else "")] for g in rows],
        ["ID", "NAME", "MANAGED", "MEMBERS", "FIRST MEMBERS"],
    )


@groups.command("show", epilog=GROUP_ARG)
@_config_option
@click.argument("group")
@json_option("the group")
def groups_show(group: str, as_json: bool) -> None:
    """One group with every member."""
    from ..store.local import find_group, list_groups

    store, _ = _open_store()
    with store:
        found = find_group(store, group)
        row = list_groups(store, group_id=found["id"])[0]
    _show(row, as_json)


@groups.command("add", short_help="Add a local group (before sync is enabled).", epilog="Refused once sync is enabled (the first completed cycle).")
@_config_option
@click.argument("name")
def groups_add(name: str) -> None:
    """Add a local, unmanaged group named NAME (creates the store if needed)."""
    from ..store.local import add_group

    store, _ = _open_store(readonly=False, create=True)
    with store:
        g = add_group(store, name)
    click.echo(f"group {g['name']} added (id {g['id']})")


@groups.command("add-member", epilog=f"{GROUP_ARG} {USER_ARG} Refused for groups managed by Entra ID.")
@_config_option
@click.argument("group")
@click.argument("user")
def groups_add_member(group: str, user: str) -> None:
    """Add an active USER to the unmanaged GROUP."""
    from ..store.local import change_member

    store, _ = _open_store(readonly=False)
    with store:
        change_member(store, group, user, add=True)
    click.echo(f"added {user} to {group}")


@groups.command("remove-member", epilog=f"{GROUP_ARG} {USER_ARG} Refused for groups managed by Entra ID, and for the last active member of Administrators.")
@_config_option
@click.argument("group")
@click.argument("user")
def groups_remove_member(group: str, user: str) -> None:
    """Remove USER from the unmanaged GROUP."""
    from ..store.local import change_member

    store, _ = _open_store(readonly=False)
    with store:
        change_member(store, group, user, add=False)
    click.echo(f"removed {user} from {group}")


# --------------------------------------------------------------------------- invites


@cli.group(short_help="Invites: list, add.")
def invites() -> None:
    """Invites to the local directory: every open one is revoked when sync is enabled."""


@invites.command("list")
@_config_option
@json_option("an array of every invite (id, email, status: open, revoked or accepted)")
def invites_list(as_json: bool) -> None:
    """Every invite, open, revoked or accepted."""
    from ..store.local import list_invites

    store, _ = _open_store()
    with store:
        rows = list_invites(store)
    if as_json:
        _print_json(rows)
        return
    _table([[i["id"], i["email"], i["status"], i["created_at"]] for i in rows], ["ID", "EMAIL", "STATUS", "CREATED"])


@invites.command("add", short_help="Invite an email (before sync is enabled).", epilog="Refused once sync is enabled (the first completed cycle).")
@_config_option
@click.argument("email")
def invites_add(email: str) -> None:
    """Invite EMAIL to the local directory (creates the store if needed)."""
    from ..store.local import add_invite

    store, _ = _open_store(readonly=False, create=True)
    with store:
        i = add_invite(store, email)
    click.echo(f"invited {i['email']} (id {i['id']})")
