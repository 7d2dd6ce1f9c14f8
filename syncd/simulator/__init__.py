"""A simulated Entra ID tenant: the v2.0 token endpoint and the Microsoft Graph v1.0 subset
syncd uses, over HTTPS on 127.0.0.1, backed by an in-memory tenant that code changes
between cycles.

    from syncd.simulator import Tenant, Simulator, Fault
    t = Tenant(domain="contoso.onmicrosoft.com")
    uid = t.add_user("ada@contoso.onmicrosoft.com"); t.assign(uid)
    with Simulator(t) as sim:
        sim.url, sim.ca_path, sim.config_toml("/tmp/syncd.db")
        sim.faults.add(Fault(r"/users/delta", "status", status=429, retry_after=1))
        sim.exchanges  # every answer, with its server-side times and headers

Modules: ``tenant`` (the model and its change log), ``delta`` (users/groups delta),
``graph`` (the other Graph routes), ``auth`` (discovery, token endpoint, client assertions),
``faults``, ``server`` (HTTPS, :class:`Simulator`), ``generate`` (big tenants, ``churn``),
``sample`` (the demo tenant), ``control`` (opt-in remote control for ``python -m
syncd.simulator --control``).

Used by ``syncd demo``, the tests (real msal and msgraph-sdk against it) and the benchmarks.
"""

from .faults import Fault, FaultSet
from .server import Exchange, Simulator
from .tenant import Tenant

__all__ = ["Exchange", "Fault", "FaultSet", "Simulator", "Tenant"]
