"""What a hub connection reports about itself: its state and since when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

__all__ = ["HubState", "HubStatus"]


class HubState(Enum):
    STOPPED = "stopped"  # not started yet, or stopped
    CONNECTING = "connecting"  # connecting, or waiting to retry
    CONNECTED = "connected"
    INVALID = "invalid"  # the server rejected the token; no more attempts


@dataclass(frozen=True)
class HubStatus:
    state: HubState
    since: datetime  # when the current state began
    connection_id: str | None
    last_error: str | None

    @property
    def connected(self) -> bool:
        return self.state is HubState.CONNECTED
