"""Local directory commands: `users`, `groups`, `invites`."""

from __future__ import annotations

import click

from .app import _config_option, _open_store, _print_json, _show, _table, cli

# --------------------------------------------------------------------------- users


@cli.group()
def users() -> None:
    """The local directory's users."""


@users.command("list")
@_config_option
@click.option("--status", "status_filter", type=click.Choice(["active", "deactivated"]))
@click.option("--json", "as_json", is_flag=True)
def users_list(status_filter: str | None, as_json: bool) -> None:
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


@users.command("show")
@_config_option
@click.argument("user")
@click.option("--json", "as_json", is_flag=True)
def users_show(user: str, as_json: bool) -> None:
    from ..store.local import find_user, list_users

    store, _ = _open_store()
    with store:
        found = find_user(store, user)
        row = list_users(store, user_id=found["id"])[0]
        row["created_at"], row["updated_at"], row["last_cycle_id"] = found["created_at"], found["updated_at"], found["last_cycle_id"]
    _show(row, as_json)


@users.command("add")
@_config_option
@click.argument("email")
@click.option("--name", default=None, help="display name")
@click.option("--json", "as_json", is_flag=True)
def users_add(email: str, name: str | None, as_json: bool) -> None:
    """Add a local, unmanaged user (refused once sync is enabled)."""
    from ..store.local import add_user

    store, _ = _open_store()
    with store:
        _show(add_user(store, email, name), as_json)


@users.command("activate")
@_config_option
@click.argument("user")
def users_activate(user: str) -> None:
    from ..store.local import set_user_status

    store, _ = _open_store()
    with store:
        u = set_user_status(store, user, "active")
    click.echo(f"user {u['user_name']} is active")


@users.command("deactivate")
@_config_option
@click.argument("user")
def users_deactivate(user: str) -> None:
    from ..store.local import set_user_status

    store, _ = _open_store()
    with store:
        u = set_user_status(store, user, "deactivated")
    click.echo(f"user {u['user_name']} is deactivated")


# --------------------------------------------------------------------------- groups


@cli.group()
def groups() -> None:
    """The local groups with their members."""


@groups.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True)
def groups_list(as_json: bool) -> None:
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


@groups.command("show")
@_config_option
@click.argument("group")
@click.option("--json", "as_json", is_flag=True)
def groups_show(group: str, as_json: bool) -> None:
    from ..store.local import find_group, list_groups

    store, _ = _open_store()
    with store:
        found = find_group(store, group)
        row = list_groups(store, group_id=found["id"])[0]
    _show(row, as_json)


@groups.command("add")
@_config_option
@click.argument("name")
def groups_add(name: str) -> None:
    """Add a local, unmanaged group (refused once sync is enabled)."""
    from ..store.local import add_group

    store, _ = _open_store()
    with store:
        g = add_group(store, name)
    click.echo(f"group {g['name']} added (id {g['id']})")


@groups.command("add-member")
@_config_option
@click.argument("group")
@click.argument("user")
def groups_add_member(group: str, user: str) -> None:
    from ..store.local import change_member

    store, _ = _open_store()
    with store:
        change_member(store, group, user, add=True)
    click.echo(f"added {user} to {group}")


@groups.command("remove-member")
@_config_option
@click.argument("group")
@click.argument("user")
def groups_remove_member(group: str, user: str) -> None:
    from ..store.local import change_member

    store, _ = _open_store()
    with store:
        change_member(store, group, user, add=False)
    click.echo(f"removed {user} from {group}")


# --------------------------------------------------------------------------- invites


@cli.group()
def invites() -> None:
    """Open invites."""


@invites.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True)
def invites_list(as_json: bool) -> None:
    from ..store.local import list_invites

    store, _ = _open_store()
    with store:
        rows = list_invites(store)
    if as_json:
        _print_json(rows)
        return
    _table([[i["id"], i["email"], i["status"], i["created_at"]] for i in rows], ["ID", "EMAIL", "STATUS", "CREATED"])


@invites.command("add")
@_config_option
@click.argument("email")
def invites_add(email: str) -> None:
    from ..store.local import add_invite

    store, _ = _open_store()
    with store:
        i = add_invite(store, email)
    click.echo(f"invited {i['email']} (id {i['id']})")


