"""What a stored hub event holds (`hub_events.payload`), as versioned models.

These models are a storage format, not the renderer's inputs: an event may wait in the database
across a restart and an upgrade, so its payload must stay readable after the bot's code changes.
Each kind has its models by version (`v`); the renderer's inputs are made from them when a post
is built (`to_render`). To change what is stored, add a `…V2` model with ``v: Literal[2]``, make
the kind's reader accept both, and keep `…V1` (and its `to_render`) for the events already
stored. Never rename or retype a field of a stored version.

Version 1 is what the bot stored before payloads had a version: the same fields, without ``v``.
Those payloads are read as version 1.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter

from bot.domain.feed_render import ControlsEntry, DeviceChange, LoggedControl, OtaEvent, OtaPhase

__all__ = [
    "StoredControlV1",
    "StoredControlsV1",
    "StoredControlsV2",
    "StoredDeviceChangeV1",
    "StoredEventKind",
    "StoredOtaPhase",
    "StoredOtaV1",
    "StoredPayload",
    "UnreadablePayload",
    "read_payload",
]


class StoredEventKind(StrEnum):
    """`hub_events.kind`: which family of payload models the row holds."""

    CONTROLS = "controls"
    DEVICE = "device"
    OTA = "ota"


class UnreadablePayload(ValueError):
    """A stored payload no model of its kind accepts."""


class _StoredV1(BaseModel):
    # Fields a later version may add are ignored by this one; nothing here may be renamed.
    model_config = ConfigDict(frozen=True, extra="ignore")

    v: Literal[1] = 1


# --- controls ------------------------------------------------------------------------------------


class StoredControlV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    shocker_id: str
    shocker_name: str
    type: int  # 0 Stop, 1 Shock, 2 Vibrate, 3 Sound
    intensity: int
    duration_ms: int
    executed_at: float  # unix seconds


class StoredControlsV1(_StoredV1):
    """One ``Log`` event: who sent it, the controls, and which guild may see which shocker
    (the shares when it arrived)."""

    sender_name: str
    custom_name: str | None
    from_bot: bool
    wearer_id: int | None
    controls: list[StoredControlV1]
    shockers_by_guild: dict[int, list[str]]

    def to_render(self) -> ControlsEntry:
        return ControlsEntry(
            sender_name=self.sender_name,
            custom_name=self.custom_name,
            from_bot=self.from_bot,
            wearer_id=self.wearer_id,
            controls=[
                LoggedControl(
                    shocker_id=control.shocker_id,
                    shocker_name=control.shocker_name,
                    type=control.type,
                    intensity=control.intensity,
                    duration_ms=control.duration_ms,
                    executed_at=control.executed_at,
                )
                for control in self.controls
            ],
            shockers_by_guild=self.shockers_by_guild,
        )


class StoredControlsV2(StoredControlsV1):
    """Version 2 adds who sent it in Discord terms: ``sender_discord_id`` is the Discord user
    who linked the OpenShock account that sent it (None: not linked here). Public posts name
    the sender by that, never by the OpenShock account name."""

    v: Literal[2] = 2  # type: ignore[assignment]
    sender_discord_id: int | None = None

    def to_render(self) -> ControlsEntry:
        return super().to_render().model_copy(update={"sender_discord_id": self.sender_discord_id})


# --- devices -------------------------------------------------------------------------------------


class StoredDeviceChangeV1(_StoredV1):
    device_id: str
    device_name: str | None
    online_before: bool | None
    online: bool
    firmware_before: str | None
    firmware: str | None
    at: float

    def to_render(self) -> DeviceChange:
        return DeviceChange(
            device_id=self.device_id,
            device_name=self.device_name,
            online_before=self.online_before,
            online=self.online,
            firmware_before=self.firmware_before,
            firmware=self.firmware,
            at=self.at,
        )


# --- firmware updates ----------------------------------------------------------------------------


StoredOtaPhase: TypeAlias = Literal["started", "progress", "failed", "rollback", "succeeded"]


class StoredOtaV1(_StoredV1):
    """One OTA hub event (the fields its phase has; the others stay empty). `device_id` and
    `update_id` are also read by SQL (`EventRepository.ota_history`)."""

    phase: StoredOtaPhase
    device_id: str
    device_name: str | None = None
    update_id: int
    version: str | None = None
    task: int | None = None
    percent: float | None = None
    fatal: bool | None = None
    message: str | None = None
    at: float

    def to_render(self) -> OtaEvent:
        return OtaEvent(
            phase=OtaPhase(self.phase),
            device_id=self.device_id,
            device_name=self.device_name,
            update_id=self.update_id,
            version=self.version,
            task=self.task,
            percent=self.percent,
            fatal=self.fatal,
            message=self.message,
            at=self.at,
        )


# --- reading -------------------------------------------------------------------------------------

# Each kind's versions; a V2 joins its kind here as ``StoredXV1 | StoredXV2`` (told apart by `v`).
StoredControls: TypeAlias = StoredControlsV1 | StoredControlsV2
StoredDeviceChange: TypeAlias = StoredDeviceChangeV1
StoredOta: TypeAlias = StoredOtaV1
StoredPayload: TypeAlias = StoredControls | StoredDeviceChange | StoredOta


def _version(data: Any) -> int:
    """A payload's ``v``; the payloads stored before versions existed have none: version 1."""
    value = data.get("v", 1) if isinstance(data, dict) else getattr(data, "v", 1)
    return value if isinstance(value, int) else 1


_ControlsByVersion = Annotated[
    Annotated[StoredControlsV1, Tag("1")] | Annotated[StoredControlsV2, Tag("2")],
    Discriminator(lambda data: str(_version(data))),
]

_READERS: dict[StoredEventKind, Callable[[str], StoredPayload]] = {
    StoredEventKind.CONTROLS: TypeAdapter(_ControlsByVersion).validate_json,
    StoredEventKind.DEVICE: TypeAdapter(StoredDeviceChange).validate_json,
    StoredEventKind.OTA: TypeAdapter(StoredOta).validate_json,
}


def read_payload(kind: str, payload: str) -> StoredPayload:
    """The stored payload of a `kind` row, in whichever version it was written."""
    try:
        reader = _READERS[StoredEventKind(kind)]
    except ValueError:
        raise UnreadablePayload(f"unknown stored event kind {kind!r}") from None
    try:
        return reader(payload)
    except ValueError as error:
        raise UnreadablePayload(str(error)) from error
