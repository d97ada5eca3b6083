"""Pydantic models for what the OpenShock server sends and receives.

Hub payloads use integer enums, REST payloads use strings (see shared/openshock.md). Incoming
integer enums are "open": a value this code does not know yet (a newer server) becomes an
``UNKNOWN_<n>`` member instead of failing validation, so nothing downstream crashes on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import IntEnum
from functools import cached_property
from typing import Any, Self, TypeAlias
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _OpenIntEnum(IntEnum):
    """An IntEnum that accepts any int: unknown values become pseudo-members named UNKNOWN_<n>."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


class ControlType(_OpenIntEnum):
    STOP = 0
    SHOCK = 1
    VIBRATE = 2
    SOUND = 3


class DeviceUpdateType(_OpenIntEnum):
    CREATED = 0
    UPDATED = 1
    SHOCKER_UPDATED = 2
    DELETED = 3
    PAIRED = 4


class OtaUpdateTask(_OpenIntEnum):
    FETCHING_METADATA = 0
    PREPARING_FOR_UPDATE = 1
    FLASHING_FILESYSTEM = 2
    VERIFYING_FILESYSTEM = 3
    FLASHING_APPLICATION = 4
    MARKING_APPLICATION_BOOTABLE = 5
    REBOOTING = 6


class OpenShockModel(BaseModel):
    """Base for wire models: camelCase on the wire, snake_case in Python, extra fields ignored.

    Validation errors leave the input out (``hide_input_in_errors``): they are logged, and a
    payload such as ``/1/users/self`` holds the account's email address.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )


# --- What the client sends -------------------------------------------------------------------


class Control(OpenShockModel):
    """One entry of a ``ControlV2`` batch. The server clamps values to share limits silently."""

    id: UUID
    type: ControlType
    intensity: int = Field(ge=0, le=100)
    duration: int = Field(ge=300, le=65535, description="milliseconds")
    exclusive: bool = False

    def wire(self) -> dict[str, Any]:
        """As ``model_dump(mode="json", by_alias=True)`` gives it, built directly (every
        control is sent this way)."""
        return {
            "id": str(self.id),
            "type": int(self.type),
            "intensity": self.intensity,
            "duration": self.duration,
            "exclusive": self.exclusive,
        }


# --- Hub events ----------------------------------------------------------------------------------


class Welcome(OpenShockModel):
    connection_id: str


class DeviceOnlineState(OpenShockModel):
    """One element of a raw ``DeviceStatus`` event."""

    device: UUID
    online: bool
    firmware_version: str | None = None


class DeviceState(OpenShockModel):
    online: bool
    firmware_version: str | None = None


class DeviceStatusChanged(OpenShockModel):
    """A device's status as reported by the hub, with what was known before.

    ``from_snapshot`` marks the status list the server sends right after (re)connecting; for
    those, ``previous`` is the state known before the connection was lost. ``previous`` is None
    for a device never seen before.
    """

    device_id: UUID
    previous: DeviceState | None
    current: DeviceState
    from_snapshot: bool = False

    @property
    def is_change(self) -> bool:
        """A real change worth announcing, as opposed to a snapshot repeating the known state.

        A device first seen in a snapshot is not a change (the bot just started); outside
        snapshots the server only reports changes, and an unknown device counts as offline.
        """
        previous = self.previous
        if previous is None:
            if self.from_snapshot:
                return False
            previous = DeviceState(online=False)
        if previous.online != self.current.online:
            return True
        return self.current.online and previous.firmware_version != self.current.firmware_version


class ControlLogSender(OpenShockModel):
    id: UUID
    name: str
    image: str | None = None
    custom_name: str | None = None
    connection_id: str | None = None
    additional_items: dict[str, Any] = Field(default_factory=dict)


class ControlLogShocker(OpenShockModel):
    id: UUID
    name: str


class ControlLog(OpenShockModel):
    """One executed control, with the values after the server clamped them."""

    shocker: ControlLogShocker
    type: ControlType
    intensity: int
    duration: int
    executed_at: datetime


class ControlLogEvent(OpenShockModel):
    """The ``Log`` event: a batch of controls the server accepted (sent to the owner only)."""

    sender: ControlLogSender
    logs: list[ControlLog]


class DeviceUpdate(OpenShockModel):
    device_id: UUID
    type: DeviceUpdateType


class OtaInstallStarted(OpenShockModel):
    device_id: UUID
    update_id: int
    version: str


class OtaInstallProgress(OpenShockModel):
    device_id: UUID
    update_id: int
    task: OtaUpdateTask
    progress: float

    @property
    def percent(self) -> float:
        """Progress in 0–100, whether the firmware reported a fraction or a percentage."""
        value = self.progress * 100 if self.progress <= 1 else self.progress
        return max(0.0, min(100.0, value))


class OtaInstallFailed(OpenShockModel):
    device_id: UUID
    update_id: int
    fatal: bool
    message: str


class OtaRollback(OpenShockModel):
    device_id: UUID
    update_id: int


class OtaInstallSucceeded(OpenShockModel):
    device_id: UUID
    update_id: int


# --- Connection lifecycle events (produced by the client, not the server) ------------------------


class HubConnected(OpenShockModel):
    connection_id: str


class HubDisconnected(OpenShockModel):
    reason: str


class DeviceSnapshotApplied(OpenShockModel):
    """A connection's status snapshot has been applied; published after its
    ``DeviceStatusChanged`` events.

    The snapshot lists the devices online now and nothing else: every device not in ``online``
    is offline, including devices this process never saw online (state kept elsewhere, e.g. from
    before a restart, can only be corrected with this).
    """

    online: frozenset[UUID]


class ShockersRefreshed(OpenShockModel):
    shockers: ShockerDirectory


HubEvent: TypeAlias = (
    Welcome
    | DeviceStatusChanged
    | ControlLogEvent
    | DeviceUpdate
    | OtaInstallStarted
    | OtaInstallProgress
    | OtaInstallFailed
    | OtaRollback
    | OtaInstallSucceeded
    | HubConnected
    | HubDisconnected
    | DeviceSnapshotApplied
    | ShockersRefreshed
)


# --- REST ------------------------------------------------------------------------------------


class SelfUser(OpenShockModel):
    id: UUID
    name: str
    email: str | None = None
    image: str | None = None
    roles: list[str] = Field(default_factory=list)
    rank: str | None = None


class ControlLimitSettings(OpenShockModel):
    """One value's scope on an API token (`IntensityLimitSettings`, `DurationLimitSettings`).
    ``mode`` is ``Clamp`` or ``Lerp`` (a string on REST; an integer is accepted too)."""

    min: int
    max: int
    mode: str | int = "Clamp"


class ShockerControlSettings(OpenShockModel):
    """An API token's own control scope (``GET /2/tokens/self``, ``shockerControl``). Early
    servers said ``enabled`` (false: the token may not control) where later ones say
    ``paused``."""

    paused: bool = False
    enabled: bool = True
    intensity: ControlLimitSettings | None = None
    duration: ControlLimitSettings | None = None


class TokenInfo(OpenShockModel):
    """``GET /2/tokens/self`` (newer servers, with ``shockerControl``) or ``/1/tokens/self``."""

    id: UUID
    name: str
    created_on: datetime | None = None
    valid_until: datetime | None = None
    last_used: datetime | None = None
    permissions: list[str] = Field(default_factory=list)
    shocker_control: ShockerControlSettings | None = None


class OwnShocker(OpenShockModel):
    id: UUID
    name: str
    rf_id: int | None = None
    model: str | None = None
    is_paused: bool = False
    created_on: datetime | None = None


class OwnDevice(OpenShockModel):
    id: UUID
    name: str
    created_on: datetime | None = None
    shockers: list[OwnShocker] = Field(default_factory=list)


class SharePermissions(OpenShockModel):
    shock: bool = False
    vibrate: bool = False
    sound: bool = False
    live: bool = False

    def allows(self, control_type: ControlType) -> bool:
        """Mirror of the server's rule: Stop is allowed when any other type is."""
        if control_type is ControlType.STOP:
            return self.shock or self.vibrate or self.sound
        return {
            ControlType.SHOCK: self.shock,
            ControlType.VIBRATE: self.vibrate,
            ControlType.SOUND: self.sound,
        }.get(control_type, False)


class ShareLimits(OpenShockModel):
    """``None`` means no limit beyond the hard ones (100 intensity, 65535 ms)."""

    intensity: int | None = None
    duration: int | None = None


class SharedShocker(OpenShockModel):
    id: UUID
    name: str
    is_paused: bool = False
    permissions: SharePermissions = Field(default_factory=SharePermissions)
    limits: ShareLimits = Field(default_factory=ShareLimits)


class SharedDevice(OpenShockModel):
    id: UUID
    name: str
    shockers: list[SharedShocker] = Field(default_factory=list)


class SharedOwner(OpenShockModel):
    """An account that shared shockers with this one, with those shockers grouped by device."""

    id: UUID
    name: str
    image: str | None = None
    devices: list[SharedDevice] = Field(default_factory=list)


class KnownShocker(OpenShockModel):
    """A shocker this account can address, flattened from the own and shared lists.

    ``share`` and ``limits`` are set for shockers shared with this account and ``None`` for its
    own shockers (which the account controls without restriction).
    """

    id: UUID
    name: str
    device_id: UUID
    device_name: str
    is_paused: bool
    owner_id: UUID | None = None
    owner_name: str | None = None
    share: SharePermissions | None = None
    limits: ShareLimits | None = None

    @property
    def is_own(self) -> bool:
        return self.share is None


class ShockerDirectory(OpenShockModel):
    """The account's shockers as last read over REST: its own and those shared with it."""

    own: list[OwnDevice] = Field(default_factory=list)
    shared: list[SharedOwner] = Field(default_factory=list)
    # The API token's scopes and control limits, read with the lists (None: not described).
    token: TokenInfo | None = None

    def all(self) -> list[KnownShocker]:
        return [_known(*where) for where in self._where()]

    def get(self, shocker_id: UUID) -> KnownShocker | None:
        """As the first of `all()` with that id."""
        return self._by_id.get(str(shocker_id))

    def find(self, shocker_id: str) -> KnownShocker | None:
        """As `get`, by an id's text as stored (any spelling `UUID()` reads; a control looks
        its shocker up by a share's id twice)."""
        known = self._by_id.get(shocker_id)
        if known is not None:
            return known
        try:
            return self._by_id.get(str(UUID(shocker_id)))
        except ValueError:
            return None

    @cached_property
    def _by_id(self) -> dict[str, KnownShocker]:
        """Each shocker by its id's text, the first of `all()` with that id: built at the first
        lookup. A directory is read-only and replaced whole when the lists are read again
        (never `model_copy(update=…)`: the copy would keep this index)."""
        index: dict[str, KnownShocker] = {}
        for where in self._where():
            index.setdefault(str(where[1].id), _known(*where))
        return index

    def _where(self) -> Iterator[_Where]:
        """Each shocker with its device, and the owner who shared it (None: this account's)."""
        for device in self.own:
            for shocker in device.shockers:
                yield device, shocker, None
        for owner in self.shared:
            for shared_device in owner.devices:
                for shared in shared_device.shockers:
                    yield shared_device, shared, owner

    def device_ids(self) -> set[UUID]:
        own = {device.id for device in self.own}
        return own | {device.id for owner in self.shared for device in owner.devices}


ShockersRefreshed.model_rebuild()


_Where = tuple[OwnDevice | SharedDevice, OwnShocker | SharedShocker, SharedOwner | None]


def _known(
    device: OwnDevice | SharedDevice,
    shocker: OwnShocker | SharedShocker,
    owner: SharedOwner | None,
) -> KnownShocker:
    shared: dict[str, Any] = {}
    if owner is not None and isinstance(shocker, SharedShocker):
        shared = {
            "owner_id": owner.id,
            "owner_name": owner.name,
            "share": shocker.permissions,
            "limits": shocker.limits,
        }
    return KnownShocker(
        id=shocker.id,
        name=shocker.name,
        device_id=device.id,
        device_name=device.name,
        is_paused=shocker.is_paused,
        **shared,
    )
