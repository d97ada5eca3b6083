"""The wire models and the device tracker, without sockets."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from bot.openshock.device_state import DeviceTracker
from bot.openshock.hub import HubTimings
from bot.openshock.models import (
    Control,
    ControlType,
    DeviceOnlineState,
    DeviceState,
    DeviceStatusChanged,
    OtaInstallProgress,
    SharePermissions,
    ShockerDirectory,
)

A, B = UUID(int=1), UUID(int=2)
ONLINE = DeviceState(online=True, firmware_version="1.4.0")
OFFLINE = DeviceState(online=False, firmware_version="1.4.0")


def status(device: UUID, online: bool = True, firmware: str = "1.4.0") -> DeviceOnlineState:
    return DeviceOnlineState(device=device, online=online, firmware_version=firmware)


def test_unknown_enum_values_are_kept() -> None:
    unknown = ControlType(9)
    assert unknown == 9 and unknown.name == "UNKNOWN_9"
    assert ControlType(1) is ControlType.SHOCK
    with pytest.raises(ValueError):
        ControlType(-1.5)  # type: ignore[arg-type]  # only ints are let in


def test_control_is_bounded_like_the_server() -> None:
    with pytest.raises(ValidationError):
        Control(id=uuid4(), type=ControlType.SHOCK, intensity=101, duration=300)
    with pytest.raises(ValidationError):
        Control(id=uuid4(), type=ControlType.SHOCK, intensity=1, duration=299)


@pytest.mark.parametrize("kind", list(ControlType))
def test_a_controls_wire_form_is_its_json_dump(kind: ControlType) -> None:
    control = Control(id=uuid4(), type=kind, intensity=42, duration=1234, exclusive=True)
    assert control.wire() == control.model_dump(mode="json", by_alias=True)
    assert json.dumps(control.wire())  # plain JSON values only


@pytest.mark.parametrize(
    ("previous", "current", "from_snapshot", "is_change"),
    [
        (None, ONLINE, True, False),  # first sight at start-up
        (None, ONLINE, False, True),  # a device coming online
        (None, OFFLINE, False, False),
        (ONLINE, ONLINE, True, False),  # a reconnect repeating the known state
        (ONLINE, OFFLINE, True, True),
        (ONLINE, DeviceState(online=True, firmware_version="1.5.0"), False, True),
        (OFFLINE, DeviceState(online=False, firmware_version="1.5.0"), False, False),
    ],
)
def test_is_change(
    previous: DeviceState | None, current: DeviceState, from_snapshot: bool, is_change: bool
) -> None:
    event = DeviceStatusChanged(
        device_id=A, previous=previous, current=current, from_snapshot=from_snapshot
    )
    assert event.is_change is is_change


def test_tracker_marks_devices_missing_from_a_snapshot_offline() -> None:
    tracker = DeviceTracker()
    tracker.expect_snapshot()
    tracker.apply([status(A), status(B)])
    tracker.expect_snapshot()
    assert not tracker.get(A).online  # offline until the snapshot says otherwise
    changes = tracker.apply([status(A)])
    assert {c.device_id: (c.is_change, c.current.online) for c in changes} == {
        A: (False, True),
        B: (True, False),
    }
    assert tracker.get(A).online and not tracker.get(B).online


def test_tracker_compares_with_the_state_before_the_first_of_several_reconnects() -> None:
    tracker = DeviceTracker()
    tracker.apply([status(A)])
    tracker.expect_snapshot()  # a connection that dropped before its snapshot arrived
    tracker.expect_snapshot()
    (change,) = tracker.apply([status(A)])
    assert change.previous == ONLINE and not change.is_change


def test_ota_progress_percent_accepts_fractions_and_percentages() -> None:
    def progress(value: float) -> float:
        return OtaInstallProgress(device_id=A, update_id=1, task=0, progress=value).percent

    assert (progress(0.25), progress(25.0), progress(100.0), progress(250)) == (25, 25, 100, 100)


def test_share_permissions_follow_the_server_rule() -> None:
    vibrate_only = SharePermissions(vibrate=True)
    assert vibrate_only.allows(ControlType.VIBRATE) and vibrate_only.allows(ControlType.STOP)
    assert not vibrate_only.allows(ControlType.SHOCK)
    assert not SharePermissions().allows(ControlType.STOP)
    assert not SharePermissions(shock=True).allows(ControlType(7))


def test_shocker_directory_flattens_own_and_shared() -> None:
    directory = ShockerDirectory.model_validate(
        {
            "own": [{"id": str(A), "name": "Hub", "shockers": [{"id": str(B), "name": "Cuff"}]}],
            "shared": [
                {
                    "id": str(uuid4()),
                    "name": "Alice",
                    "devices": [
                        {
                            "id": str(uuid4()),
                            "name": "Alice's hub",
                            "shockers": [
                                {
                                    "id": str(UUID(int=3)),
                                    "name": "Collar",
                                    "isPaused": True,
                                    "permissions": {"vibrate": True},
                                    "limits": {"intensity": 20, "duration": None},
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )
    own, shared = directory.all()
    assert own.is_own and own.device_name == "Hub"
    assert shared.owner_name == "Alice" and shared.is_paused
    assert shared.limits is not None and shared.limits.duration is None
    assert directory.get(UUID(int=3)) == shared
    assert directory.get(B) == own
    assert directory.get(UUID(int=99)) is None
    assert A in directory.device_ids()
    # By an id's text as a share stores it, in any spelling UUID() reads.
    assert directory.find(str(B)) == own
    assert directory.find(str(B).upper()) == own
    assert directory.find(UUID(int=3).hex) == shared
    assert directory.find(str(UUID(int=99))) is None
    assert directory.find("not a uuid") is None


def test_a_shocker_both_own_and_shared_is_found_as_own() -> None:
    """As the first of all(): the account's own listing wins over a share of the same one."""
    shocker = {"id": str(B), "name": "Cuff"}
    directory = ShockerDirectory.model_validate(
        {
            "own": [{"id": str(A), "name": "Hub", "shockers": [shocker]}],
            "shared": [
                {
                    "id": str(uuid4()),
                    "name": "Alice",
                    "devices": [{"id": str(A), "name": "Hub", "shockers": [shocker]}],
                }
            ],
        }
    )
    assert [known.is_own for known in directory.all()] == [True, False]
    found = directory.find(str(B))
    assert found is not None and found.is_own and directory.get(B) == found


def test_backoff_is_capped_and_jittered() -> None:
    timings = HubTimings(backoff_initial=1, backoff_factor=2, backoff_max=30)
    delays = [timings.backoff(n) for n in range(10)]
    assert 0.5 <= delays[0] <= 1
    assert all(15 <= d <= 30 for d in delays[5:])
