"""Per-device online state kept from the hub's ``DeviceStatus`` events."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from bot.openshock.models import DeviceOnlineState, DeviceState, DeviceStatusChanged

__all__ = ["DeviceTracker"]

_UNKNOWN = DeviceState(online=False)  # a device never seen (frozen: shared by all)


class DeviceTracker:
    """Per-device online state, following the server's reconnect rule.

    After a reconnect the server sends a snapshot of the devices online *now* and never replays
    what was missed. So on ``Welcome`` every device is marked offline, the snapshot is applied,
    and the changes reported compare with the state known before the connection was lost. It
    knows only devices seen by this process: the hub publishes ``DeviceSnapshotApplied`` after
    each snapshot for subscribers that keep state longer (the feeds, across restarts).
    """

    def __init__(self) -> None:
        self._states: dict[UUID, DeviceState] = {}
        self._before_snapshot: dict[UUID, DeviceState] | None = None

    def get(self, device_id: UUID) -> DeviceState:
        return self._states.get(device_id, _UNKNOWN)

    @property
    def awaiting_snapshot(self) -> bool:
        """A connection opened and its snapshot has not been applied yet."""
        return self._before_snapshot is not None

    def all(self) -> dict[UUID, DeviceState]:
        return dict(self._states)

    def expect_snapshot(self) -> None:
        """A new connection: mark everything offline until the snapshot says otherwise."""
        if self._before_snapshot is None:
            self._before_snapshot = dict(self._states)
        self._states = {
            device_id: state.model_copy(update={"online": False})
            for device_id, state in self._states.items()
        }

    def apply(self, reported: Sequence[DeviceOnlineState]) -> list[DeviceStatusChanged]:
        before, self._before_snapshot = self._before_snapshot, None
        if before is None:
            return [self._set(s, previous=self._states.get(s.device)) for s in reported]

        reported_ids = {s.device for s in reported}
        vanished = [
            DeviceStatusChanged(
                device_id=device_id,
                previous=state,
                current=self._states[device_id],
                from_snapshot=True,
            )
            for device_id, state in before.items()
            if state.online and device_id not in reported_ids
        ]
        return vanished + [
            self._set(s, previous=before.get(s.device), from_snapshot=True) for s in reported
        ]

    def _set(
        self, state: DeviceOnlineState, previous: DeviceState | None, from_snapshot: bool = False
    ) -> DeviceStatusChanged:
        current = DeviceState(online=state.online, firmware_version=state.firmware_version)
        self._states[state.device] = current
        return DeviceStatusChanged(
            device_id=state.device, previous=previous, current=current, from_snapshot=from_snapshot
        )
