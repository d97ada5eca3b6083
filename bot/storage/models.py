"""Rows of the bot's database, as the rest of the bot sees them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from bot.domain.grants import GrantTarget


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_row(cls, row: Any) -> Self:
        return cls.model_validate(dict(row))


class AccountState(StrEnum):
    ACTIVE = "active"
    INVALID = "invalid"


class Account(Row):
    """A linked OpenShock account. The token stays encrypted here; `Storage` decrypts on demand."""

    id: int
    discord_user_id: int
    openshock_user_id: str
    openshock_name: str
    api_url: str
    token_encrypted: bytes
    is_operator: bool
    state: AccountState
    state_reason: str | None
    linked_at: float
    updated_at: float

    def __repr__(self) -> str:  # keep the encrypted blob out of logs and tracebacks too
        return (
            f"Account(id={self.id}, discord_user_id={self.discord_user_id}, "
            f"openshock_name={self.openshock_name!r}, state={self.state.value})"
        )

    __str__ = __repr__


class Share(Row):
    """A wearer's shocker usable in one guild, with the wearer's caps there."""

    id: int
    guild_id: int
    account_id: int
    wearer_id: int
    shocker_id: str
    shocker_name: str
    max_intensity: int
    max_duration_ms: int
    allow_shock: bool
    allow_vibrate: bool
    allow_sound: bool
    paused: bool
    created_at: float
    approval: bool = False  # each control by someone else waits for the wearer's approval
    owner_openshock_id: str | None = None  # who owns the shocker on OpenShock, if recorded


class Grant(Row):
    """An admin's grant as stored (the decision reads it as a `domain.grants.GrantRule`)."""

    id: int
    guild_id: int
    target_kind: GrantTarget
    target_id: int
    shocker_id: str | None
    max_intensity: int | None
    max_duration_ms: int | None
    cooldown_ms: int | None
    allow_shock: bool
    allow_vibrate: bool
    allow_sound: bool
    created_by: int
    created_at: float
    expires_at: float | None = None  # stops counting then (None: never)


class ControlContext(Share):
    """A share with everything else a control decision reads from storage."""

    wearer_paused: bool
    blocked: bool
    owner_paused: bool = False  # the shocker's OpenShock owner paused it (folded into `paused`)
    guild_max_intensity: int | None
    guild_max_duration_ms: int | None
    last_control_at: float | None


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    ENDED = "ended"  # a Stop, pause, /panic, unshare or unlink ended it


class ApprovalRequest(Row):
    """A control waiting for the wearer's approval (approval mode), as stored."""

    id: int
    guild_id: int
    channel_id: int
    message_id: int | None
    shocker_id: str
    wearer_id: int
    requester_id: int
    requester_roles: str  # JSON list of role ids
    requester_name: str
    control_type: int
    intensity: int
    duration_ms: int
    origin: str
    summary: str
    state: ApprovalState
    reply_application_id: int | None
    reply_token: str | None
    created_at: float
    expires_at: float

    def __repr__(self) -> str:  # keep the interaction token out of logs and tracebacks
        return (
            f"ApprovalRequest(id={self.id}, guild_id={self.guild_id}, "
            f"shocker_id={self.shocker_id!r}, state={self.state.value})"
        )

    __str__ = __repr__

    @property
    def role_ids(self) -> frozenset[int]:
        return frozenset(int(role) for role in json.loads(self.requester_roles))


class NewApprovalRequest(BaseModel):
    """What the control pipeline stores for a request; the id, state and times come from storage."""

    model_config = ConfigDict(frozen=True)

    guild_id: int
    channel_id: int
    shocker_id: str
    wearer_id: int
    requester_id: int
    requester_roles: frozenset[int]
    requester_name: str
    control_type: int
    intensity: int
    duration_ms: int
    origin: str
    summary: str


class OpenShockPause(Row):
    """A pause /panic set on OpenShock itself, which `/shockers resume` lifts again."""

    api_url: str
    shocker_id: str
    owner_openshock_id: str
    shocker_name: str
    paused_at: float


class GuildSettings(Row):
    guild_id: int
    max_intensity: int | None = None
    max_duration_ms: int | None = None


class FeedKind(StrEnum):
    CONTROLS = "controls"
    DEVICES = "devices"
    UPDATES = "updates"


class Feed(Row):
    guild_id: int
    kind: FeedKind
    channel_id: int
    enabled: bool
    disabled_reason: str | None
    created_at: float


class AuditOutcome(StrEnum):
    SENT = "sent"
    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"
    REFUSED = "refused"
    FAILED = "failed"


class AuditEntry(Row):
    id: int
    created_at: float
    guild_id: int | None
    member_id: int
    wearer_id: int | None
    account_id: int | None
    shocker_id: str | None
    shocker_name: str | None
    control_type: int
    requested_intensity: int | None
    requested_duration_ms: int | None
    effective_intensity: int | None
    effective_duration_ms: int | None
    outcome: AuditOutcome
    reason: str | None
    origin: str = "command"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAuditEntry:
    """What a caller records; the id and time are given by storage. A plain dataclass, built
    by our own code on every control's path and never read from outside; what an attempt
    adds to it (outcome, reason, values sent) goes in as `AuditRepository.record`'s changes."""

    guild_id: int | None
    member_id: int
    wearer_id: int | None = None
    account_id: int | None = None
    shocker_id: str | None = None
    shocker_name: str | None = None
    control_type: int
    requested_intensity: int | None = None
    requested_duration_ms: int | None = None
    effective_intensity: int | None = None
    effective_duration_ms: int | None = None
    outcome: AuditOutcome
    reason: str | None = None
    origin: str = "command"  # services.control.Origin: which way the control came in


class StoredHubEvent(Row):
    """A hub event as stored for the feeds; `payload` is read with `bot.storage.feed_payloads`."""

    id: int
    account_id: int
    kind: str
    payload: str
    received_at: float


class DeliveryState(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    DROPPED = "dropped"


class FeedDelivery(Row):
    id: int
    event_id: int
    guild_id: int
    kind: FeedKind
    channel_id: int
    state: DeliveryState
    nonce: str | None
    message_id: int | None
    created_at: float
    posted_at: float | None


class FeedSet(BaseModel):
    """What `/feed set` changed: the feed, the channel it moved from, and how many pending
    deliveries came along."""

    model_config = ConfigDict(frozen=True)

    feed: Feed
    previous_channel_id: int | None
    carried: int

    @property
    def moved(self) -> bool:
        return self.previous_channel_id is not None and self.previous_channel_id != (
            self.feed.channel_id
        )


class DeviceState(Row):
    account_id: int
    device_id: str
    device_name: str | None
    online: bool
    firmware_version: str | None
    updated_at: float
