"""The OpenShock client: REST (``rest``), the supervised user-hub connection (``hub``), one
connection per linked account (``manager``), and the wire models (``models``).

``hub`` builds on one module per concern: ``transport`` (pysignalr, one WebSocket per attempt),
``event_parsing`` (hub invocations → models), ``device_state`` (online state across
reconnects), ``shocker_cache`` (the REST shocker lists and their refresh), ``event_bus``
(waiters and subscribers, with a bound on what may queue up), ``status`` (the connection's
state) and ``timings`` (every delay it uses)."""

from bot.openshock.errors import (
    HubConnectionLost,
    HubInvocationFailed,
    HubInvocationTimeout,
    HubNotConnected,
    OpenShockApiError,
    OpenShockError,
    OpenShockUnreachable,
    RateLimited,
    TokenRejected,
)
from bot.openshock.hub import HubConnection, HubState, HubStatus, HubTimings
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.rest import USER_AGENT, OpenShockRest

__all__ = [
    "USER_AGENT",
    "HubAccount",
    "HubConnection",
    "HubConnectionLost",
    "HubInvocationFailed",
    "HubInvocationTimeout",
    "HubManager",
    "HubNotConnected",
    "HubState",
    "HubStatus",
    "HubTimings",
    "OpenShockApiError",
    "OpenShockError",
    "OpenShockRest",
    "OpenShockUnreachable",
    "RateLimited",
    "TokenRejected",
]
