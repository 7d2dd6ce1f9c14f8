"""``syncd test-connection`` (SPEC §3): token, service principal, each permission, with fixes.

Each check is one small Graph read that needs exactly one of the permissions syncd uses,
so a failure names the permission to grant. Checks after a failed token are skipped
(``ok=None``): without a token they can tell nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import EntraConfig
from ..errors import SourceError
from ..net import Check
from .graph import PERM_APPS, PERM_GROUPS, PERM_USERS, GraphSource, _with_query, sp_not_found
from .pages import is_guid, parse_object, parse_page
from .tuning import DEFAULT_TUNING, Tuning

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation


async def check_connection(entra: EntraConfig, *, timeout_s: float = 60.0, tuning: Tuning = DEFAULT_TUNING) -> list[Check]:
    source = GraphSource(entra, timeout_s=timeout_s, tuning=tuning)
    try:
        return await _checks(source)
    finally:
        await source.aclose()


async def _checks(source: GraphSource) -> list[Check]:
    entra = source.entra
    checks: list[Check] = []
    try:
        await asyncio.wait_for(asyncio.to_thread(source.tokens.acquire), source.timeout_s)
    except SourceError as exc:
        checks.append(Check("token", False, str(exc).split("; ")[0], exc.fix))
    except TimeoutError:
        checks.append(Check("token", False, f"no answer from {entra.authority_host} in {source.timeout_s:g} s", "check the network path to entra.authority_host"))
    else:
        checks.append(Check("token", True, f"client credentials token for {source.tokens.scope} from {entra.authority_host}/{entra.tenant_id}"))
    names = ["service principal", PERM_APPS, PERM_USERS, PERM_GROUPS]
    if not checks[0].ok:
        return checks + [Check(n, None, "skipped: no token") for n in names]

    client = source.client
    adapter = client.adapter

    async def probe(name: str, permission: str, build: Callable[[], RequestInformation], describe: Callable[[bytes], str], **extra: str) -> Check:
        request = source._request(build, name, permission, **extra)
        try:
            body = await asyncio.wait_for(client.get_page(request), source.timeout_s)
        except SourceError as exc:
            return Check(name, False, str(exc).split("; ")[0], exc.fix)
        except TimeoutError:
            return Check(name, False, f"no answer from Graph in {source.timeout_s:g} s", "check the network path to entra.graph_endpoint")
        try:
            return Check(name, True, describe(body))
        except SourceError as exc:
            return Check(name, False, str(exc), exc.fix)

    sp_message, sp_fix = sp_not_found(entra)
    spid = entra.service_principal_id
    if not is_guid(spid):
        checks.append(Check("service principal", False, sp_message + " (not a GUID)", sp_fix))
        checks.append(Check(PERM_APPS, None, "skipped: no valid service principal id"))
    else:
        from msgraph.generated.service_principals.item.app_role_assigned_to.app_role_assigned_to_request_builder import (
            AppRoleAssignedToRequestBuilder,
        )
        from msgraph.generated.service_principals.item.service_principal_item_request_builder import (
            ServicePrincipalItemRequestBuilder,
        )

        def sp() -> RequestInformation:
            info = ServicePrincipalItemRequestBuilder(adapter, {"servicePrincipal%2Did": spid}).to_get_request_information()
            return _with_query(info, select=["id", "appId", "displayName"])

        def describe_sp(body: bytes) -> str:
            doc = parse_object(body, f"/servicePrincipals/{spid}")
            app_id = str(doc.get("appId") or "")
            note = "" if not app_id or app_id.lower() == entra.client_id.lower() else (
                f" - note: it belongs to application {app_id}, not to entra.client_id {entra.client_id}"
            )
            return f"enterprise application {doc.get('displayName')!r} ({spid}){note}"

        def assignments() -> RequestInformation:
            info = AppRoleAssignedToRequestBuilder(adapter, {"servicePrincipal%2Did": spid}).to_get_request_information()
            return _with_query(info, select=["id", "principalId", "principalType"], top=1)

        checks.append(await probe("service principal", PERM_APPS, sp, describe_sp, not_found=sp_message, not_found_fix=sp_fix))
        checks.append(await probe(PERM_APPS, PERM_APPS, assignments, lambda b: _count(b, "assignments can be read"), not_found=sp_message, not_found_fix=sp_fix))

    from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

    def users() -> RequestInformation:
        info = UsersRequestBuilder(adapter, {}).to_get_request_information()
        return _with_query(info, select=["id", "accountEnabled"], top=1)

    def groups() -> RequestInformation:
        info = GroupsRequestBuilder(adapter, {}).to_get_request_information()
        return _with_query(info, select=["id"], top=1)

    first_group: list[str] = []

    def describe_groups(body: bytes) -> str:
        items = parse_page(body, "/groups").items
        first_group.extend(str(i["id"]) for i in items[:1] if is_guid(i.get("id")))
        return "groups can be read" + ("" if first_group else " (no group to read members of)")

    checks.append(await probe(PERM_USERS, PERM_USERS, users, lambda b: _count(b, "users can be read")))
    group_check = await probe(PERM_GROUPS, PERM_GROUPS, groups, describe_groups)
    if group_check.ok and first_group:
        # reading groups is not enough: their members need GroupMember.Read.All too
        from msgraph.generated.groups.item.members.members_request_builder import (
            MembersRequestBuilder,
        )

        def members() -> RequestInformation:
            info = MembersRequestBuilder(adapter, {"group%2Did": first_group[0]}).to_get_request_information()
            return _with_query(info, select=["id"], top=1)

        group_check = await probe(PERM_GROUPS, PERM_GROUPS, members, lambda b: _count(b, "groups and their members can be read"))
    checks.append(group_check)
    return checks


def _count(body: bytes, what: str) -> str:
    parse_page(body, "probe")  # validates the shape too
    return what

