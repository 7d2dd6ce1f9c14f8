"""A simulated Entra ID tenant: the v2.0 token endpoint and the Microsoft Graph v1.0 subset
syncd uses, over HTTPS on 127.0.0.1, backed by an in-memory tenant that code changes
between cycles.

    from syncd.simulator import Tenant, Simulator, Fault, Quirks
    t = Tenant(domain="contoso.onmicrosoft.com")
    uid = t.add_user("ada@contoso.onmicrosoft.com"); t.assign(uid)
    with Simulator(t) as sim:
        sim.url, sim.ca_path, sim.config_toml("/tmp/syncd.db")
        sim.faults.add(Fault(r"/users/delta", "status", status=429, retry_after=1))
        sim.quirks.properties = "changed"   # documented Graph behaviours, off by default

Modules: ``tenant`` (the model and its change log), ``delta`` (users/groups delta),
``graph`` (the other Graph routes), ``auth`` (discovery, token endpoint, client assertions),
``faults``, ``quirks``, ``server`` (HTTPS, :class:`Simulator`), ``generate`` (big tenants,
``churn``), ``sample`` (the demo tenant), ``control`` (opt-in remote control for ``python -m
syncd.simulator --control``).

Used by ``syncd demo``, the tests (real msal and msgraph-sdk against it) and the benchmarks.

Documented Graph behaviours it can answer with
-----------------------------------------------
Each is off by default (the plain answer: full objects, each once, no empty pages), and
can be switched at any time, between cycles or even between pages. ``sim.quirks`` is a
:class:`Quirks`; ``sim.quirks.set(...)`` changes several, ``sim.quirks.reset()`` all.
Sources: learn.microsoft.com/graph/ delta-query-overview, delta-query-users,
delta-query-groups, api/user-delta, api/group-delta, throttling, throttling-limits, errors.

Delta rounds (``/users/delta``, ``/groups/delta``)
- Updated objects carry "at least the properties that have been updated" (overview):
  ``sim.quirks.properties = "full"`` (default: every selected property), ``"some"`` (the
  changed ones plus a deterministic-random part of the others, by ``quirks.seed``) or
  ``"changed"`` (only the changed ones). Tracked per change in the tenant's log:
  displayName, userPrincipalName, mail, accountEnabled, userType (users); displayName,
  securityEnabled (groups, ``t.update_group``). A change that set a property to null sends
  the null. With "changed", a group whose members alone changed carries only its id and
  ``members@delta``; an update that changed nothing, only its id.
- ``Prefer: return=minimal`` on a request of an incremental round: only the changed
  properties (plus id), whatever ``quirks.properties`` says (user-delta, group-delta).
  Initial rounds always carry every selected property.
- "If a change occurs to a property that is not selected, the resource for which that
  property changed does not appear" (overview): ``sim.quirks.hide_unselected = True``
  (deletions and restores always appear; by default any change shows the object).
- Created and restored objects carry every selected property; "When the user is created,
  or restored from the deleted items container, there's no annotation" (delta-query-users).
  Soft-deleted users: ``@removed {"reason": "changed"}``; hard-deleted users, deleted
  groups and removed members: ``"deleted"``. Always on.
- ``@removed`` in an initial round (delta-query-users' example): soft-deleted users are
  listed as removed: ``sim.quirks.removed_in_initial = True``.
- Properties "never set" are not included at all (user-delta, group-delta):
  ``sim.quirks.omit_null = True`` drops nulls the change did not set.
- A group without members has no ``members@delta`` in the initial round
  (delta-query-groups): ``sim.quirks.omit_empty_members = True``.
- ``members@delta`` of a big group spans pages (always: ``Simulator(members_per_page=N)``);
  the continuation entries carry only the id, or, as delta-query-groups shows, "the same
  property values": ``sim.quirks.continuation_props = True``.
- Empty pages that still carry an ``@odata.nextLink`` ("even if the current response
  contains an empty result", overview): ``sim.quirks.empty_pages = N`` puts N before every
  page of data, the first one included, and ends the round on an empty deltaLink page.
- The same object more than once in a round ("a single entity will be contained multiple
  times", overview; "the same group could show up anywhere in the nextLink sequence"):
  ``sim.quirks.repeat = N`` starts each page with the last N objects of the page before.
  Repeated groups come without ``members@delta``.
- Replays ("the same change appears in subsequent responses", overview): calling a
  deltaLink again always replays its changes; ``sim.quirks.replay = True`` makes each
  deltaLink issued go back to the start of its own round.
- Processing delays (overview): ``sim.quirks.lag = seconds`` leaves changes younger than
  that out of incremental rounds; they come in a later round.
- Expired or reset delta tokens: ``t.expire_delta_tokens(style)``, style "gone" (410 +
  ``Location`` + error body), "gone_bare" (410 with only the ``Location`` header, no body),
  "syncStateNotFound" or "resyncRequired" (400 with that code; errors page). The Location
  is the initial query with an empty ``$deltatoken``, which starts a new round.
- ``$deltatoken=latest``, ``$filter=id eq`` (up to 50), ``$select``, ``Prefer:
  odata.maxpagesize`` (capped at 999, ``Preference-Applied``): always on.

Faults (``sim.faults.add(Fault(path_regex, kind, ...))``, see ``faults``)
- 429/503 with ``Retry-After`` as whole seconds (``retry_after=2``), decimal seconds
  (``retry_after=2.128``, or ``retry_after_format="decimal"`` for ``2.000``), an HTTP date
  (``retry_after_format="date"``: that many seconds ahead) or none (``retry_after=-1``).
  A Graph 429 has the throttling page's body (``innerError`` code and status "429") and
  the identity service's ``x-ms-throttle-scope`` / ``x-ms-throttle-information`` headers.
- ``x-ms-resource-unit`` on every Graph answer, and ``x-ms-throttle-limit-percentage``
  (throttling-limits): ``sim.quirks.usage_headers = True``,
  ``sim.quirks.throttle_limit_percentage = 0.9``.
- Resets, slow answers, truncated bodies, invalid JSON, lost or looping nextLinks,
  malformed items, a page replaying the previous one: the other fault kinds.

What a test observes: ``sim.requests`` / ``sim.token_requests`` ((method, target, status)),
and ``sim.exchanges`` (:class:`Exchange`: also server-side arrival and answer times and the
answer's headers, e.g. to check that a retry came no earlier than its Retry-After).

Not simulated: ``$expand=members`` (syncd selects ``members``), group soft delete and
restore (Microsoft 365 groups only; syncd provisions security groups), hard-deleted users
as ``@removed`` in an initial round, nested ``innerError`` codes beyond the throttling body,
and throttling computed from resource units (faults stand in for it).
"""

from .faults import Fault, FaultSet
from .quirks import Quirks
from .server import Exchange, Simulator
from .tenant import Tenant

__all__ = ["Exchange", "Fault", "FaultSet", "Quirks", "Simulator", "Tenant"]
