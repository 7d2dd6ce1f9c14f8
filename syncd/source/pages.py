"""Graph pages -> syncd's model: validation (R14) and merging. Pure: no I/O, no msgraph.

Every page is checked before anything is taken from it: JSON object, a ``value`` list,
objects with a GUID id. Anything else is ``Malformed`` (a SourceError) naming the
URL path, and the whole read fails (R14): never a partial GraphRead.

Merging follows Graph's delta rules: the same object can come back several times in one
chain (replays, a big group's members spread over pages), and the last occurrence wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import Malformed, SourceError
from ..model import ABSENT, EntraGroup, EntraUser, MemberType
from ..read import GraphPage

_GUID_TEXT = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID = re.compile(_GUID_TEXT)
_GUID_LINES = re.compile(f"(?:{_GUID_TEXT}\n)*")  # (a newline is no GUID character)

_MEMBER_TYPES: dict[str, MemberType] = {
    "#microsoft.graph.user": "user",
    "#microsoft.graph.group": "group",
}


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def _all_guids(values: list[Any]) -> bool:
    """Whether every value is a GUID: one regex over them all (a users page has 999), each
    on a line of its own (37 characters with its newline)."""
    if not values:
        return True
    try:
        text = "\n".join(values) + "\n"
    except TypeError:  # one is not a string
        return False
    return len(text) == 37 * len(values) and _GUID_LINES.fullmatch(text) is not None


def malformed(where: str, problem: str) -> SourceError:
    return Malformed(f"malformed Graph answer from {where}: {problem}")


@dataclass
class RawPage:
    items: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None


def parse_page(body: bytes, where: str) -> RawPage:
    """Decode and check one collection page (``where`` = the URL path, for messages)."""
    doc = parse_object(body, where)
    items = doc.get("value")
    if not isinstance(items, list):
        raise malformed(where, "no 'value' list")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise malformed(where, f"item {index} is not an object")
    next_link = doc.get("@odata.nextLink")
    delta_link = doc.get("@odata.deltaLink")
    for name, link in (("@odata.nextLink", next_link), ("@odata.deltaLink", delta_link)):
        if link is not None and (not isinstance(link, str) or not link):
            raise malformed(where, f"{name} is not a URL")
    return RawPage(items, next_link, delta_link)


def parse_object(body: bytes, where: str) -> dict[str, Any]:
    """Decode a JSON object answer: a single object (GET /users/{id}) or a page."""
    if not body:
        raise malformed(where, "empty body")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise malformed(where, f"invalid or truncated JSON ({exc.msg} at byte {exc.pos} of {len(body)})") from None
    if not isinstance(doc, dict):
        raise malformed(where, f"expected a JSON object, got {type(doc).__name__}")
    return doc


def _id(item: dict[str, Any], where: str, key: str = "id") -> str:
    value = item.get(key)
    if not is_guid(value):
        shown = repr(value)[:60]
        raise malformed(where, f"an item has no valid object id in '{key}' (got {shown})")
    return str(value).lower()


def _ids(items: list[dict[str, Any]], where: str) -> list[str]:
    """Each item's id, lowercased; when one is not a GUID, ``_id``'s error for the first."""
    ids: list[Any] = [item.get("id") for item in items]
    if not _all_guids(ids):
        for item in items:
            _id(item, where)  # raises, saying what the id was
    return [i.lower() for i in ids]


def _member_ids(members: list[Any], gid: str, where: str) -> list[str]:
    """``_ids`` of a group's ``members@delta``, which must all be objects."""
    if all(isinstance(m, dict) for m in members):
        ids: list[Any] = [m.get("id") for m in members]
        if _all_guids(ids):
            return [i.lower() for i in ids]
    for member in members:  # raises for the first that is not as it should be
        if not isinstance(member, dict):
            raise malformed(where, f"group {gid}: a member is not an object")
        _id(member, where)
    raise AssertionError("unreachable: a member failed the check above")


# --------------------------------------------------------------------------- pages


def _enabled(value: Any) -> bool | None:
    """accountEnabled: True or False as said; ABSENT when left out; None (not known) for null."""
    return value if value is True or value is False or value is ABSENT else None


def user_from_item(item: dict[str, Any], where: str) -> EntraUser:
    """A user with the properties the item carries; those it leaves out are ABSENT (R14a)."""
    get = item.get
    return EntraUser(
        id=_id(item, where),
        user_principal_name=get("userPrincipalName", ABSENT),
        display_name=get("displayName", ABSENT),
        mail=get("mail", ABSENT),
        account_enabled=_enabled(get("accountEnabled", ABSENT)),
        user_type=get("userType", ABSENT),
    )


def group_from_item(item: dict[str, Any], where: str) -> EntraGroup:
    """As ``user_from_item``, for groups (a null securityEnabled reads as enabled)."""
    security = item.get("securityEnabled", ABSENT)
    return EntraGroup(
        id=_id(item, where),
        display_name=item.get("displayName", ABSENT),
        security_enabled=security if security is ABSENT else security is not False,
    )


def has_properties(item: dict[str, Any]) -> bool:
    """Whether a group item says anything of the group itself (a big group's later slices
    carry only its id and members@delta)."""
    return "displayName" in item or "securityEnabled" in item


def member_type(item: dict[str, Any]) -> MemberType:
    return _MEMBER_TYPES.get(str(item.get("@odata.type", "")), "other")


def users_page(raw: RawPage, where: str) -> GraphPage:
    # a full read runs this once per user of the tenant: user_from_item inlined and the ids
    # checked at once; test_pages holds it to user_from_item
    page = GraphPage("users")
    users, removed = page.users, page.removed_users
    new = tuple.__new__  # (what EntraUser._make calls)
    for item, uid in zip(raw.items, _ids(raw.items, where), strict=True):
        if "@removed" in item:
            removed.append(uid)
            continue
        get = item.get
        enabled = get("accountEnabled", ABSENT)
        users.append(new(EntraUser, (uid, get("userPrincipalName", ABSENT), get("displayName", ABSENT), get("mail", ABSENT),
                                     enabled if enabled is True or enabled is False or enabled is ABSENT else None,
                                     get("userType", ABSENT))))
    return page


def groups_page(raw: RawPage, where: str) -> GraphPage:
    page = GraphPage("groups")
    for item in raw.items:
        gid = _id(item, where)
        if "@removed" in item:
            page.removed_groups.append(gid)
            continue
        page.group_ids.append(gid)
        if has_properties(item):
            page.groups.append(group_from_item(item, where))
        members = item.get("members@delta")
        if members is None:
            continue
        if not isinstance(members, list):
            raise malformed(where, f"group {gid}: members@delta is not a list")
        added = page.members_added.setdefault(gid, {})
        removed = page.members_removed.setdefault(gid, set())
        for member, mid in zip(members, _member_ids(members, gid, where), strict=True):
            if "@removed" in member:
                added.pop(mid, None)
                removed.add(mid)
            else:
                removed.discard(mid)
                added[mid] = member_type(member)
    return page


def assignments_page(raw: RawPage, where: str) -> GraphPage:
    page = GraphPage("assignments")
    for item in raw.items:
        # appRoleAssignment ids are not GUIDs (base64 strings); the principal's id is the key
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise malformed(where, "an assignment has no 'id'")
        pid = _id(item, where, key="principalId")
        kind = item.get("principalType")
        if kind in ("User", "Group"):
            page.assignments[pid] = kind
    return page


def members_page(raw: RawPage, where: str, group_id: str) -> GraphPage:
    """``GET /groups/{id}/members`` (on-demand reads): members as a groups page."""
    page = GraphPage("groups", group_ids=[group_id], members_added={group_id: {}})
    for item in raw.items:
        page.members_added[group_id][_id(item, where)] = member_type(item)
        if member_type(item) == "user" and "userPrincipalName" in item:
            page.users.append(user_from_item(item, where))  # (a user left out stays as the mirror has it)
    return page


# --------------------------------------------------------------------------- merging
