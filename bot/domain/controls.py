"""What a control is: its kinds, OpenShock's bounds for one control, and caps.

These are the only definitions of OpenShock's limits in the bot: configuration, the decision and
the slash-command options all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = [
    "MAX_DURATION_MS",
    "MAX_INTENSITY",
    "MAX_SECONDS",
    "MIN_DURATION_MS",
    "MIN_INTENSITY",
    "MIN_SECONDS",
    "NO_LIMITS",
    "STOP_DURATION_MS",
    "ControlKind",
    "Limits",
    "format_duration",
]

MIN_INTENSITY: Final = 1
MAX_INTENSITY: Final = 100
MIN_DURATION_MS: Final = 300
MAX_DURATION_MS: Final = 65535
STOP_DURATION_MS: Final = MIN_DURATION_MS
"""OpenShock requires a duration on every control; a Stop carries the shortest it accepts."""

MIN_SECONDS: Final = MIN_DURATION_MS / 1000
MAX_SECONDS: Final = MAX_DURATION_MS / 1000


class ControlKind(IntEnum):
    """What a control does, with the integers OpenShock uses. (The hub's wire models have their
    own, open ``openshock.models.ControlType``, which also accepts values this code does not
    know; a decision only ever deals with these four.)"""

    STOP = 0
    SHOCK = 1
    VIBRATE = 2
    SOUND = 3

    @property
    def verb(self) -> str:
        return _VERBS[self]


_VERBS: Final = {
    ControlKind.STOP: "stop",
    ControlKind.SHOCK: "shock",
    ControlKind.VIBRATE: "vibrate",
    ControlKind.SOUND: "sound",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps set by the guild's admins or by the operator; None means no cap."""

    max_intensity: int | None = None
    max_duration_ms: int | None = None


NO_LIMITS: Final = Limits()


def format_duration(duration_ms: int) -> str:
    """Milliseconds as the seconds a member types: 1500 → "1.5 s", 3000 → "3 s"."""
    return f"{duration_ms / 1000:.3f}".rstrip("0").rstrip(".") + " s"
