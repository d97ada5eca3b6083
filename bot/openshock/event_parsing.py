"""Hub invocations from the server → validated event models.

SignalR sends an event's fields as positional arguments; each parser checks their number and
validates them into the model under their wire names. A parser raises ``ValueError`` (or
pydantic's ``ValidationError``, a subclass) for a malformed event, which the connection logs
and skips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter

from bot.openshock.models import (
    ControlLogEvent,
    DeviceOnlineState,
    DeviceUpdate,
    HubEvent,
    OtaInstallFailed,
    OtaInstallProgress,
    OtaInstallStarted,
    OtaInstallSucceeded,
    OtaRollback,
    Welcome,
)

__all__ = ["PASS_THROUGH_EVENTS", "parse_device_status", "parse_device_update", "parse_welcome"]

_E = TypeVar("_E", bound=BaseModel)


def _positional(model: type[_E], *names: str) -> Callable[[Any], _E]:
    """Parse a hub event's positional arguments into ``model`` (names are the wire names)."""

    def parse(arguments: Any) -> _E:
        if not isinstance(arguments, list) or len(arguments) != len(names):
            raise ValueError(f"expected {len(names)} arguments, got {arguments!r:.100}")
        return model.model_validate(dict(zip(names, arguments, strict=True)))

    return parse


# Validation errors never echo their input: a payload may hold what the logs should not.
_DEVICE_STATES = TypeAdapter(list[DeviceOnlineState], config=ConfigDict(hide_input_in_errors=True))


def parse_device_status(arguments: Any) -> list[DeviceOnlineState]:
    """``DeviceStatus(states)``: one argument, the list of device states."""
    if not isinstance(arguments, list) or len(arguments) != 1:
        raise ValueError(f"expected 1 argument, got {arguments!r:.100}")
    return _DEVICE_STATES.validate_python(arguments[0])


parse_welcome = _positional(Welcome, "connectionId")
parse_device_update = _positional(DeviceUpdate, "deviceId", "type")

# Events that only need to be validated and handed on, by target name.
PASS_THROUGH_EVENTS: dict[str, Callable[[Any], HubEvent]] = {
    "Log": _positional(ControlLogEvent, "sender", "logs"),
    "OtaInstallStarted": _positional(OtaInstallStarted, "deviceId", "updateId", "version"),
    "OtaInstallProgress": _positional(
        OtaInstallProgress, "deviceId", "updateId", "task", "progress"
    ),
    "OtaInstallFailed": _positional(OtaInstallFailed, "deviceId", "updateId", "fatal", "message"),
    "OtaRollback": _positional(OtaRollback, "deviceId", "updateId"),
    "OtaInstallSucceeded": _positional(OtaInstallSucceeded, "deviceId", "updateId"),
}
