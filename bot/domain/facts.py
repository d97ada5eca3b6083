"""The facts a control decision reads: what was asked, the share in the guild, how the wearer's
OpenShock account reaches the shocker, and the state of the moment. Plain data, gathered by the
control service and judged by `decision.decide_control`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bot.domain.controls import NO_LIMITS, STOP_DURATION_MS, ControlKind, Limits
from bot.domain.grants import GrantIndex
from bot.domain.token_limits import TokenLimits

__all__ = [
    "OWN_SHOCKER",
    "ControlFacts",
    "ControlRequest",
    "GuildShare",
    "OpenShockAccess",
    "OpenShockShare",
]


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """What a member asked for. Intensity in percent, duration in milliseconds, as requested."""

    member_id: int
    member_role_ids: frozenset[int]
    guild_id: int
    type: ControlKind
    intensity: int = 0
    duration_ms: int = STOP_DURATION_MS


@dataclass(frozen=True, slots=True)
class GuildShare:
    """A wearer's shocker made usable in one guild, with the wearer's caps and types there."""

    shocker_id: str
    wearer_id: int
    max_intensity: int
    max_duration_ms: int
    allow_shock: bool = True
    allow_vibrate: bool = True
    allow_sound: bool = True
    paused: bool = False
    paused_by_owner: bool = False  # the shocker's owner paused it (then `paused` is set too)


@dataclass(frozen=True, slots=True)
class OpenShockShare:
    """The OpenShock user-share through which the wearer's account reaches a shocker it does not
    own. OpenShock enforces it: a type it does not permit, or a pause, drops the whole batch
    silently; values above its limits are clamped (None = no limit)."""

    allow_shock: bool = True
    allow_vibrate: bool = True
    allow_sound: bool = True
    max_intensity: int | None = None
    max_duration_ms: int | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class OpenShockAccess:
    """How the wearer's OpenShock account reaches the shocker: as its owner (``share`` None) or
    through a user-share. ``shocker_paused`` is the shocker's own ``isPaused`` on OpenShock."""

    shocker_paused: bool = False
    share: OpenShockShare | None = None

    @property
    def is_own(self) -> bool:
        return self.share is None


OWN_SHOCKER: Final = OpenShockAccess()


@dataclass(frozen=True, slots=True)
class ControlFacts:
    """Everything known about one shocker in one guild, for one member, at one moment.

    ``share`` is the shocker's share in the guild (None: not shared here). ``blocked`` says the
    wearer blocked this member in the guild. ``last_control_at`` is when this member last
    controlled this shocker (anything but Stop), and ``now`` the current time, both in seconds
    since the epoch. ``device_online`` None means the device's state is not known.

    ``token`` is the control scope of the wearer's API token (None: the server knows none, or the
    token has none); OpenShock does not apply it over the hub, so the decision does.
    ``wearer_is_member`` says whether the wearer is still a member of the guild (None: it could
    not be checked just now).
    """

    share: GuildShare | None
    grants: GrantIndex
    operator_limits: Limits
    guild_limits: Limits = NO_LIMITS
    wearer_paused: bool = False
    blocked: bool = False
    openshock: OpenShockAccess = OWN_SHOCKER
    device_online: bool | None = None
    last_control_at: float | None = None
    now: float = 0.0
    token: TokenLimits | None = None
    wearer_is_member: bool | None = True
