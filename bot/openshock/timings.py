"""Every delay a hub connection uses, in one place so tests can shrink them."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["HubTimings"]


@dataclass(frozen=True)
class HubTimings:
    """Every delay the connection uses, so tests can shrink them."""

    backoff_initial: float = 1.0
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    # A connection that lasted this long resets the backoff; a server that accepts and then
    # drops us at once keeps backing off instead of being hammered.
    stable_after: float = 30.0
    ping_interval: float = 15.0  # the server drops clients it has not heard from for 30 s
    server_timeout: float = 30.0  # silence from the server (it pings every 15 s) means dead
    connect_timeout: float = 10.0
    invoke_timeout: float = 10.0
    # A subscriber that falls behind is reported at most once per this many seconds.
    backlog_report_interval: float = 60.0

    def backoff(self, failures: int) -> float:
        """Delay before the next attempt: exponential, capped, with "equal jitter"."""
        ceiling = min(self.backoff_max, self.backoff_initial * self.backoff_factor**failures)
        return ceiling / 2 + random.uniform(0, ceiling / 2)
