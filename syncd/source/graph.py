"""GraphSource: one cycle's read of Microsoft Graph -> GraphRead.

Cost model (requests per cycle; A = assignments, U = users, G = groups in the tenant)
----------------------------------------------------------------------------------------
Three independent chains run concurrently; nothing is fetched per user (no N+1):

* assignments  ``GET /servicePrincipals/{id}/appRoleAssignedTo?$top=999``: ceil(A/999)
  requests every cycle (Graph has no delta for assignments).
* users        ``GET /users/delta?$select=...`` + ``Prefer: odata.maxpagesize=999``
* groups       ``GET /groups/delta?$select=id,displayName,securityEnabled,members``

A full read costs ceil(A/999) + ceil(U/999) + (group pages) requests. An incremental
read with nothing changed costs ceil(A/999) + 2: each delta link answers one empty page
carrying the next deltaLink. Budget for the target: ceil(A/999) + 4.

Why tenant-wide delta, not the alternatives:

* ``users/delta?$filter=id eq 'a' or id eq 'b' ...`` takes at most 50 ids per chain, so
  tracking N assigned users costs ceil(N/50) chains (and ceil(N/50) requests per cycle
  even when nothing changed) and the id set must be re-planned whenever assignments or
  group members change. Rejected: 20x the requests of one tenant-wide chain at N=1,000.
* ``POST /directoryObjects/getByIds`` (1,000 ids per call) reads current state only: no
  change tracking, no deletions, every cycle pays ceil(N/1000) + member reads per group
  (``/groups/{id}/members``, 3 throttling units each). Rejected for cycles; it would be a
  fit for huge tenants with few assigned users (not needed for the target).
* Tenant-wide delta reads every user once on the first (full) cycle - the price Entra's own
  provisioning pays too - and afterwards costs 1 request per chain when quiet. Members
  come from ``groups/delta`` (``members@delta``), because membership changes never show
  in ``users/delta``.

Parsing: pages are fetched as raw bytes through the SDK (``send_primitive_async(...,
"bytes")``: its auth + middleware, no Kiota models) and parsed with orjson: Kiota's
models cost seconds per 999-user page where orjson costs milliseconds (BENCHMARKS.md,
"Design decisions").

Delta links: a stored link Graph refuses (410 Gone, 400 syncStateNotFound/resyncRequired)
makes the whole read fall back to a full read by itself (R18); both delta chains restart so
``full=True`` really is complete. Links must stay on the configured Graph host; a stored
link for another host (entra.graph_endpoint changed) also means a full read.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ..config import EntraConfig
from ..errors import DeltaExpired, NotFound, ServerFailed, SourceError, TimedOut
from ..model import EntraGroup, GraphRead
from ..read import GraphPage, OnPage, ReadAccumulator
from .auth import TokenSource, shared_token_source
from .pages import (
    RawPage,
    assignments_page,
    group_from_item,
    groups_page,
    has_properties,
    is_guid,
    malformed,
    members_page,
    parse_object,
    parse_page,
    user_from_item,
    users_page,
)
from .tuning import DEFAULT_TUNING, Deadline, Tuning

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation

    from .client import GraphClient, PageRequest

log = logging.getLogger("syncd.source")

USER_SELECT = ["id", "userPrincipalName", "displayName", "mail", "accountEnabled", "userType"]
GROUP_SELECT = ["id", "displayName", "securityEnabled", "members"]
GROUP_PROPS = ["id", "displayName", "securityEnabled"]
ASSIGNMENT_SELECT = ["id", "principalId", "principalType"]

PERM_APPS = "Application.Read.All"
PERM_USERS = "User.Read.All"
PERM_GROUPS = "GroupMember.Read.All"

Progress = Callable[[str, int], None]


def sp_not_found(entra: EntraConfig) -> tuple[str, str]:
    return (
        f"entra.service_principal_id {entra.service_principal_id}: no such service principal "
        f"in tenant {entra.tenant_id}",
        "set entra.service_principal_id to the Object ID shown on the Enterprise application's "
        "Overview page (not the app registration's object id, not the client id)",
    )


class GraphSource:
    """Reads users, groups, memberships and assignments from Graph for one application.

    ``progress(kind, n)``: called as pages arrive, ``n`` = objects on that page (kinds
    "users", "groups", "assignments"). ``timeout_s``: the cycle budget (R17) for each read;
    past it, ``TimedOut``. ``tuning``: retry/timeout knobs (tests use
    tiny delays). ``tokens``: a TokenSource to use (and leave open), e.g. the process's
    shared one; without it the source fetches its own.
    """

    def __init__(
        self,
        entra: EntraConfig,
        *,
        progress: Progress | None = None,
        timeout_s: float | None = None,
        tuning: Tuning = DEFAULT_TUNING,
        tokens: TokenSource | None = None,
    ) -> None:
        self.entra = entra
        self.timeout_s = timeout_s
        self.tuning = tuning
        self._progress = progress
        self._deadline = Deadline.unbounded()
        # a private one unless given (a connection check must fetch its own token)
        self._own_tokens = tokens is None
        self.tokens = TokenSource(entra, tuning) if tokens is None else tokens
        self._client: GraphClient | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> GraphClient:
        if self._client is None:
            from .client import GraphClient  # msgraph/kiota: only when talking to Graph

            self._client = GraphClient(self.entra, self.tokens, self.tuning, lambda: self._deadline)
        return self._client

    async def _bounded(self, work: Callable[[], Awaitable[GraphRead]]) -> GraphRead:
        self._deadline = Deadline(self.timeout_s)
        self.tokens.deadline = self._deadline

        waiting_for_token = True

        async def token_then_work() -> GraphRead:
            nonlocal waiting_for_token
            # one token before the chains start: a refused credential fails once, here,
            # instead of once per concurrent chain. msal fetches it in a thread while this
            # one imports msgraph and builds the client, so its round trips overlap that
            token = asyncio.ensure_future(asyncio.to_thread(self.tokens.acquire))
            await asyncio.sleep(0)  # let the thread start before the import holds this one
            try:
                client = self.client  # the import and build happen here
                client.counter.reset()
            finally:
                await token
            waiting_for_token = False
            return await work()

        try:
            if self.timeout_s is None:
                result = await token_then_work()
            else:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        result = await token_then_work()
                except TimeoutError:
                    if self._deadline.remaining() > 0:
                        raise  # not our budget: a bug, let it show
                    if waiting_for_token:
                        # the token's retries stop short of the budget, but their last request
                        # (or a sleep `sync`'s prefetch chose before the budget was set) can outlast it
                        raise TimedOut(
                            f"no access token from the token endpoint ({self.entra.authority_host}) "
                            f"within the cycle budget of {self.timeout_s:g} s",
                            fix="the log shows what the token endpoint answered; the next cycle tries again "
                            "(or raise sync.cycle_timeout_minutes)",
                        ) from None
                    raise TimedOut(
                        f"the read from Graph did not finish within the cycle budget of {self.timeout_s:g} s",
                        fix="raise sync.cycle_timeout_minutes, or check Graph throttling in the logs",
                    ) from None
        except SourceError as exc:
            # a failed cycle's report still says how hard it tried
            exc.graph_requests = self.client.counter.graph_requests
            exc.throttled = self.client.counter.throttled
            raise
        result.graph_requests = self.client.counter.graph_requests
        result.throttled = self.client.counter.throttled
        return result

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._own_tokens:
            await asyncio.to_thread(self.tokens.close)

    async def __aenter__(self) -> GraphSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _deliver(self, page: GraphPage, acc: ReadAccumulator, on_page: OnPage | None) -> None:
        if self._progress and page.kind != "reset":
            self._progress(page.kind, page.size)
        if on_page is None:
            acc.add(page)
            return
        outcome = on_page(page)
        if inspect.isawaitable(outcome):
            await outcome

    def _request(self, build: Callable[[], RequestInformation], what: str, permission: str, **extra: Any) -> PageRequest:
        from .client import PageRequest

        return PageRequest(build=build, what=what, permission=permission, **extra)

    # ------------------------------------------------------------------ the cycle read

    async def read(self, delta_links: dict[str, str] | None, *, on_page: OnPage | None = None) -> GraphRead:
        """One cycle's read. With both delta links: incremental (``full=False``), else full.

        With ``on_page``, pages go to it (streaming) and the GraphRead carries only
        ``full``, ``delta_links`` and the counters; a ``GraphPage(kind="reset")`` tells it
        to drop what it received when an expired link forced a full read. If ``read``
        raises, everything ``on_page`` received must be discarded too (R14).
        """
        return await self._bounded(lambda: self._read(delta_links, on_page))

    async def _read(self, delta_links: dict[str, str] | None, on_page: OnPage | None) -> GraphRead:
        links = self._usable_links(delta_links)
        if links is not None:
            acc = ReadAccumulator(full=False)
            try:
                new_links = await self._chains(acc, links, on_page)
            except DeltaExpired as exc:
                log.warning("%s: reading everything again (full read)", exc)
                if on_page is not None:
                    await self._deliver(GraphPage("reset"), acc, on_page)
            else:
                return self._finish(acc, new_links)
        acc = ReadAccumulator(full=True)
        try:
            new_links = await self._chains(acc, None, on_page)
        except DeltaExpired as exc:  # a fresh chain refused: not a stale link, a Graph fault
            raise ServerFailed(f"{exc}: Graph refused a fresh delta chain") from None
        return self._finish(acc, new_links)

    def _finish(self, acc: ReadAccumulator, links: dict[str, str]) -> GraphRead:
        read = acc.finish()
        read.delta_links = links
        return read

    def _usable_links(self, delta_links: dict[str, str] | None) -> dict[str, str] | None:
        """Both links, on our Graph host; anything less means a full read (consistency)."""
        if not delta_links:
            return None
        base = urlparse(self.entra.graph_endpoint)
        for key in ("users", "groups"):
            link = delta_links.get(key)
            parsed = urlparse(link or "")
            if not link or parsed.scheme != "https" or parsed.netloc.lower() != base.netloc.lower():
                log.warning("stored delta link for %s is missing or not on %s: full read", key, base.netloc)
                return None
        return {"users": delta_links["users"], "groups": delta_links["groups"]}

    async def _chains(self, acc: ReadAccumulator, links: dict[str, str] | None, on_page: OnPage | None) -> dict[str, str]:
        """Assignments, users and groups concurrently; the first failure cancels the rest."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._assignments(acc, on_page))
                users = tg.create_task(self._delta_chain("users", links, acc, on_page))
                groups = tg.create_task(self._delta_chain("groups", links, acc, on_page))
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        return {"users": users.result(), "groups": groups.result()}

    # ------------------------------------------------------------------ chains

    async def _follow(
        self,
        first: PageRequest,
        next_request: Callable[[str], PageRequest],
        on_raw: Callable[[RawPage, str], Awaitable[None]],
        *,
        delta: bool,
    ) -> str | None:
        """Fetch ``first`` and its nextLinks; return the deltaLink (delta chains).

        The next page's request is on the wire before this one is handed to ``on_raw``: its
        round trip overlaps the processing (with 100 ms per request, a 21-page chain
        otherwise waits out every page's parsing too; with none, Graph prepares the next page
        while this one is parsed).
        """
        request = first
        fetch = await self.client.prefetch(request)
        seen: set[str] = set()
        try:
            while True:
                body = await fetch
                info = request.build()
                where = self.client.path_of(info)
                seen.add(unquote(info.url))
                raw = parse_page(body, where)
                if raw.next_link:
                    if unquote(raw.next_link) in seen:
                        raise malformed(where, "@odata.nextLink repeats an earlier page (loop)")
                    request = next_request(self.client.check_link(raw.next_link, request.what))
                    fetch = await self.client.prefetch(request)
                    await on_raw(raw, where)
                    continue
                await on_raw(raw, where)
                if not delta:
                    return None
                if raw.delta_link:
                    return self.client.check_link(raw.delta_link, request.what)
                raise malformed(where, "the delta chain ended with neither @odata.nextLink nor @odata.deltaLink (page missing)")
        finally:
            if not fetch.done():
                fetch.cancel()  # a page failed or the read was cancelled: drop the prefetch
            elif not fetch.cancelled():
                fetch.exception()  # its failure, if any, is moot now: mark it seen

    async def _assignments(self, acc: ReadAccumulator, on_page: OnPage | None) -> None:
        entra = self.entra
        message, fix = sp_not_found(entra)
        if not is_guid(entra.service_principal_id):
            raise NotFound(message + " (not a GUID)", fix=fix)

        def first() -> RequestInformation:
            from msgraph.generated.service_principals.item.app_role_assigned_to.app_role_assigned_to_request_builder import (
                AppRoleAssignedToRequestBuilder,
            )

            builder = AppRoleAssignedToRequestBuilder(self.client.adapter, {"servicePrincipal%2Did": entra.service_principal_id})
            return _with_query(builder.to_get_request_information(), select=ASSIGNMENT_SELECT, top=self.tuning.page_size)

        def request(build: Callable[[], RequestInformation]) -> PageRequest:
            return self._request(build, "assignments", PERM_APPS, not_found=message, not_found_fix=fix)

        async def on_raw(raw: RawPage, where: str) -> None:
            await self._deliver(assignments_page(raw, where), acc, on_page)

        await self._follow(request(first), lambda link: request(lambda: _raw_get(self.client.adapter, link)), on_raw, delta=False)

    async def _delta_chain(self, kind: str, links: dict[str, str] | None, acc: ReadAccumulator, on_page: OnPage | None) -> str:
        permission = PERM_USERS if kind == "users" else PERM_GROUPS
        prefer = self.tuning.page_size

        def first() -> RequestInformation:
            from msgraph.generated.groups.delta.delta_request_builder import (
                DeltaRequestBuilder as GroupsDelta,
            )
            from msgraph.generated.users.delta.delta_request_builder import (
                DeltaRequestBuilder as UsersDelta,
            )

            builder = UsersDelta if kind == "users" else GroupsDelta
            info = builder(self.client.adapter, {}).to_get_request_information()
            return _with_query(info, select=USER_SELECT if kind == "users" else GROUP_SELECT, prefer=prefer)

        def request(build: Callable[[], RequestInformation]) -> PageRequest:
            return self._request(build, f"{kind} delta", permission, delta=True)

        def follow(link: str) -> PageRequest:
            return request(lambda: _raw_get(self.client.adapter, link, prefer=prefer))

        parse = users_page if kind == "users" else groups_page

        async def on_raw(raw: RawPage, where: str) -> None:
            await self._deliver(parse(raw, where), acc, on_page)

        start = follow(links[kind]) if links else request(first)
        delta_link = await self._follow(start, follow, on_raw, delta=True)
        assert delta_link is not None
        return delta_link

    # ------------------------------------------------------------------ on demand

    async def read_on_demand(self, users: list[str], groups: list[str]) -> GraphRead:
        """Provision on demand: the named users (id or UPN) and groups (id or displayName).

        ``full=False``. Carries those objects, every assignment, each user's groups
        (``groups_of[user]``, complete: ``memberOf``), and each group's members
        (``members_added[g]``, complete, member users included in ``users``); the ids read
        whole are ``users_read`` and ``groups_read``. An id Graph does not know (404) lands
        in ``removed_users`` / ``removed_groups``; a UPN or group name it does not know is
        ``NotFound``.
        """
        return await self._bounded(lambda: self._read_on_demand(users, groups))

    async def _read_on_demand(self, users: list[str], groups: list[str]) -> GraphRead:
        acc = ReadAccumulator(full=False)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._assignments(acc, None))
                for ref in dict.fromkeys(users):
                    tg.create_task(self._one_user(ref, acc))
                for ref in dict.fromkeys(groups):
                    tg.create_task(self._one_group(ref, acc))
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        return self._finish(acc, {})

    async def _get_object(self, request: PageRequest) -> dict[str, Any] | None:
        """One object, or None for a 404."""
        try:
            body = await self.client.get_page(request)
        except SourceError as exc:
            if isinstance(exc, NotFound):
                return None
            raise
        return parse_object(body, self.client.path_of(request.build()))

    async def _one_user(self, ref: str, acc: ReadAccumulator) -> None:
        from msgraph.generated.users.item.member_of.member_of_request_builder import (
            MemberOfRequestBuilder,
        )
        from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

        adapter = self.client.adapter

        def get_user() -> RequestInformation:
            info = UserItemRequestBuilder(adapter, {"user%2Did": ref}).to_get_request_information()
            return _with_query(info, select=USER_SELECT)

        item = await self._get_object(self._request(get_user, f"user {ref}", PERM_USERS))
        if item is None:
            if is_guid(ref):
                acc.add(GraphPage("users", removed_users=[ref.lower()]))
                acc.read.users_read.add(ref.lower())
                return
            raise NotFound(f"no user {ref!r} in Entra ID (by id or userPrincipalName)", fix="check the --user value")
        where = f"/users/{ref}"
        user = user_from_item(item, where)
        acc.add(GraphPage("users", users=[user]))
        acc.read.users_read.add(user.id)
        groups_of = acc.read.groups_of.setdefault(user.id, set())

        def member_of() -> RequestInformation:
            info = MemberOfRequestBuilder(adapter, {"user%2Did": user.id}).to_get_request_information()
            return _with_query(info, select=GROUP_PROPS, top=self.tuning.page_size)

        async def on_raw(raw: RawPage, where: str) -> None:
            page = GraphPage("groups")
            for entry in raw.items:
                if entry.get("@odata.type") not in (None, "#microsoft.graph.group"):
                    continue  # directory roles, administrative units
                group = group_from_item(entry, where)
                page.group_ids.append(group.id)
                if has_properties(entry):
                    page.groups.append(group)
                page.members_added[group.id] = {user.id: "user"}
                groups_of.add(group.id)
            acc.add(page)

        request = self._request(member_of, f"memberOf of user {user.id}", PERM_GROUPS)
        await self._follow(request, lambda link: self._request(lambda: _raw_get(adapter, link), request.what, PERM_GROUPS), on_raw, delta=False)

    async def _one_group(self, ref: str, acc: ReadAccumulator) -> None:
        from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
        from msgraph.generated.groups.item.group_item_request_builder import GroupItemRequestBuilder

        adapter = self.client.adapter
        found: list[EntraGroup] = []
        if is_guid(ref):

            def get_group() -> RequestInformation:
                info = GroupItemRequestBuilder(adapter, {"group%2Did": ref}).to_get_request_information()
                return _with_query(info, select=GROUP_PROPS)

            item = await self._get_object(self._request(get_group, f"group {ref}", PERM_GROUPS))
            if item is None:
                acc.add(GraphPage("groups", removed_groups=[ref.lower()]))
                acc.read.groups_read.add(ref.lower())
                return
            found.append(group_from_item(item, f"/groups/{ref}"))
        else:
            escaped = ref.replace("'", "''")

            def by_name() -> RequestInformation:
                info = GroupsRequestBuilder(adapter, {}).to_get_request_information()
                return _with_query(info, select=GROUP_PROPS, filter=f"displayName eq '{escaped}'")

            body = await self.client.get_page(self._request(by_name, f"group named {ref!r}", PERM_GROUPS))
            raw = parse_page(body, "/groups")
            found = [group_from_item(item, "/groups") for item in raw.items]
            if not found:
                raise NotFound(f"no group named {ref!r} in Entra ID", fix="check the --group value (the group's displayName or object id)")
        for group in found:
            acc.add(GraphPage("groups", groups=[group], group_ids=[group.id]))
            acc.read.groups_read.add(group.id)
            await self._group_members(group.id, acc)

    async def _group_members(self, gid: str, acc: ReadAccumulator) -> None:
        from msgraph.generated.groups.item.members.members_request_builder import (
            MembersRequestBuilder,
        )

        adapter = self.client.adapter

        def members() -> RequestInformation:
            info = MembersRequestBuilder(adapter, {"group%2Did": gid}).to_get_request_information()
            return _with_query(info, select=USER_SELECT, top=self.tuning.page_size)

        complete: dict[str, Any] = {}
        pending_users: list[str] = []

        async def on_raw(raw: RawPage, where: str) -> None:
            page = members_page(raw, where, gid)
            complete.update(page.members_added[gid])
            have = {u.id for u in page.users}
            pending_users.extend(m for m, t in page.members_added[gid].items() if t == "user" and m not in have)
            acc.add(page)

        request = self._request(members, f"members of group {gid}", PERM_GROUPS)
        await self._follow(request, lambda link: self._request(lambda: _raw_get(adapter, link), request.what, PERM_GROUPS), on_raw, delta=False)
        acc.add(GraphPage("groups", group_ids=[gid], members_added={gid: dict(complete)}))
        # Graph leaves user properties out of /members only when $select is not honoured
        for uid in pending_users:
            await self._member_user(uid, acc)

    async def _member_user(self, uid: str, acc: ReadAccumulator) -> None:
        from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

        def get_user() -> RequestInformation:
            info = UserItemRequestBuilder(self.client.adapter, {"user%2Did": uid}).to_get_request_information()
            return _with_query(info, select=USER_SELECT)

        item = await self._get_object(self._request(get_user, f"user {uid}", PERM_USERS))
        if item is not None:
            acc.add(GraphPage("users", users=[user_from_item(item, f"/users/{uid}")]))


# --------------------------------------------------------------------------- helpers


def _with_query(info: RequestInformation, *, select: list[str] | None = None, top: int | None = None, filter: str | None = None, prefer: int | None = None) -> RequestInformation:
    """Set OData options on an SDK-built RequestInformation (names as the SDK encodes them)."""
    if select:
        info.query_parameters["%24select"] = select
    if top:
        info.query_parameters["%24top"] = top
    if filter:
        info.query_parameters["%24filter"] = filter
    if prefer:
        info.headers.try_add("Prefer", f"odata.maxpagesize={prefer}")
    return info


def _raw_get(adapter: Any, url: str, *, prefer: int | None = None) -> RequestInformation:
    """A GET of a link Graph gave us (nextLink/deltaLink), through the same adapter."""
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation

    info = RequestInformation(Method.GET)
    info.url = url
    info.headers.try_add("Accept", "application/json")
    if prefer:
        info.headers.try_add("Prefer", f"odata.maxpagesize={prefer}")
    return info


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error that matters out of a TaskGroup failure: an expired delta link first."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, DeltaExpired):
            return exc
    for exc in leaves:
        if isinstance(exc, SourceError):
            return exc
    return leaves[0]



def read_graph(
    entra: EntraConfig,
    delta_links: dict[str, str] | None,
    timeout_s: float | None,
    *,
    progress: Progress | None = None,
    on_page: OnPage | None = None,
    tuning: Tuning = DEFAULT_TUNING,
) -> GraphRead:
    """Synchronous wrapper for one cycle's read (not for use inside a running event loop).

    ``timeout_s`` is the cycle budget (R17): past it, ``TimedOut``.
    """

    async def run() -> GraphRead:
        tokens = shared_token_source(entra, tuning)
        async with GraphSource(entra, progress=progress, timeout_s=timeout_s, tuning=tuning, tokens=tokens) as source:
            return await source.read(delta_links, on_page=on_page)

    return asyncio.run(run())


def read_on_demand_graph(
    entra: EntraConfig,
    users: list[str],
    groups: list[str],
    timeout_s: float | None,
    *,
    tuning: Tuning = DEFAULT_TUNING,
) -> GraphRead:
    """Synchronous wrapper for ``GraphSource.read_on_demand``."""

    async def run() -> GraphRead:
        async with GraphSource(entra, timeout_s=timeout_s, tuning=tuning, tokens=shared_token_source(entra, tuning)) as source:
            return await source.read_on_demand(users, groups)

    return asyncio.run(run())
