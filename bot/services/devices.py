"""A device owner's own hubs: finding them, and sending them hub methods with watched effects.

OpenShock answers these hub methods without saying whether anything happened (a non-owner's call
is dropped silently), so the bot only ever sends them for the caller's own devices, and then
tells what it observed: a reboot takes the device offline and back, an update starts with
``OtaInstallStarted``; emergency stop and captive portal show nothing, so those just say "sent".

Nothing here knows Discord. Each method returns the sentence for the person who asked; a reboot
or an update returns a ``DeviceTicket``: the sentence to show at once, and an awaitable
sentence saying what was observed, for the later edit.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from bot.domain.text import inert
from bot.errors import UserError
from bot.openshock.hub import HubConnection
from bot.openshock.manager import HubManager
from bot.openshock.models import DeviceStatusChanged, OtaInstallStarted, OwnDevice
from bot.services.accounts import require_account, require_usable, shocker_directory
from bot.storage import Storage

__all__ = [
    "AccountDevice",
    "DeviceService",
    "DeviceTicket",
    "OwnDevices",
    "WatchTimings",
    "device_summary",
    "find_own_device",
    "own_devices",
    "parse_version",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Semantic Versioning 2.0.0, the form OtaInstall binds (a malformed one is a binding error).
_NUMBER = r"(?:0|[1-9]\d*)"
_PRE_RELEASE_PART = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER = re.compile(
    rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-{_PRE_RELEASE_PART}(?:\.{_PRE_RELEASE_PART})*)?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$"
)

_CLOSED = "the connection to OpenShock closed before anything was observed"


@dataclass(frozen=True)
class WatchTimings:
    """How long the effect of a reboot or an update is watched for."""

    reboot: float = 120.0  # going offline is noticed up to ~35 s late, then it boots
    update: float = 60.0


@dataclass(frozen=True)
class OwnDevices:
    """The devices a person owns on OpenShock, with their account's hub connection."""

    account_id: int
    hub: HubConnection
    devices: list[OwnDevice]


@dataclass(frozen=True)
class AccountDevice:
    """One device the person owns, and the linked account it belongs to."""

    account_id: int
    device: OwnDevice

    @property
    def name(self) -> str:
        """The device's name, safe to put in a message."""
        return inert(self.device.name)


@dataclass(frozen=True)
class DeviceTicket:
    """A device method that was sent: ``sentence`` says so now; ``outcome`` gives the sentence
    of what was observed (or that nothing was) once the watch ends."""

    sentence: str
    outcome: Awaitable[str]


# --- Finding a person's own devices ---------------------------------------------------------------


def parse_version(value: str) -> str:
    """A firmware version as OtaInstall takes it (``v1.4.0`` → ``1.4.0``), or a refusal."""
    version = value.strip()
    if version[:1] in ("v", "V"):
        version = version[1:]
    if not SEMVER.match(version):
        raise UserError(
            f"`{value.strip()[:40]}` is not a valid firmware version; give it as "
            "major.minor.patch, e.g. `1.4.0` or `1.5.0-rc.1`."
        )
    return version


async def own_devices(storage: Storage, hubs: HubManager, discord_user_id: int) -> OwnDevices:
    """The person's own devices (may wait up to 2 s for OpenShock), or the sentence saying why
    they cannot be had."""
    account = await require_account(storage, discord_user_id)
    require_usable(account)
    hub = hubs.get(account.id)
    directory = await shocker_directory(hub)
    if hub is None or directory is None:
        raise UserError(
            "Your devices could not be read from OpenShock right now; "
            "`/account status` shows the connection. Try again in a moment."
        )
    return OwnDevices(account.id, hub, directory.own)


def find_own_device(devices: list[OwnDevice], value: str) -> OwnDevice:
    """One of the caller's own devices, by id (what autocomplete sends) or exact unique name.
    Anything else, including a device merely shared with them, is refused."""
    value = value.strip()
    try:
        device_id: UUID | None = UUID(value)
    except ValueError:
        device_id = None
    for device in devices:
        if device.id == device_id:
            return device
    named = [d for d in devices if d.name.casefold() == value.casefold()]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise UserError("Several of your devices have that name; pick one from the list.")
    raise UserError("That is not one of your devices; pick one from the list.")


def device_summary(hub: HubConnection, device: OwnDevice) -> str:
    """``online, firmware 1.4.0``, ``offline`` or ``state unknown (not connected)``."""
    if not hub.connected:
        return "state unknown (not connected)"
    state = hub.device_state(device.id)
    firmware = f", firmware {state.firmware_version}" if state.firmware_version else ""
    return ("online" if state.online else "offline") + firmware


# --- Sending -------------------------------------------------------------------------------------


class _HubClosed(Exception):
    """The hub connection was stopped while a watch waited (it cancels its event futures)."""


async def _observe(future: asyncio.Future[_T], timeout: float) -> _T:  # noqa: ASYNC109
    """The event ``future`` resolves to; ``TimeoutError`` when none comes in time.

    ``asyncio.wait`` rather than ``wait_for``: the hub cancels its futures when it stops, and
    ``wait_for`` would turn that into a ``CancelledError`` that looks like this task's own
    cancellation. Here the future's cancellation becomes ``_HubClosed``, while a cancellation
    of the watching task (shutdown) still propagates.
    """
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if not done:
        raise TimeoutError
    if future.cancelled():
        raise _HubClosed
    return future.result()


class DeviceService:
    """Sends device methods for their owners and watches what follows.

    The watches run on tasks of their own, so that they end (and leave the hub's waiter list)
    even if nobody awaits their outcome; ``close()`` cancels those still running.
    """

    def __init__(self, hubs: HubManager, timings: WatchTimings | None = None) -> None:
        self.hubs = hubs
        self.timings = timings or WatchTimings()
        self._watches: set[asyncio.Task[str]] = set()

    async def close(self) -> None:
        watches = list(self._watches)
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)

    def connected_hub(self, target: AccountDevice) -> HubConnection:
        """The device's hub connection, or the sentence saying it is down."""
        hub = self.hubs.get(target.account_id)
        if hub is None or not hub.connected:
            raise UserError(
                "Your OpenShock connection is down right now, so nothing was sent; "
                "`/account status` shows why."
            )
        return hub

    def reachable_hub(self, target: AccountDevice) -> HubConnection:
        """``connected_hub``, and the device online (OpenShock cannot reach it otherwise)."""
        hub = self.connected_hub(target)
        if not hub.device_state(target.device.id).online:
            raise UserError(
                f"**{target.name}** is offline, so OpenShock cannot reach it; nothing was sent."
            )
        return hub

    # -- nothing to observe ---------------------------------------------------------------------

    async def emergency_stop(self, target: AccountDevice) -> str:
        hub = self.connected_hub(target)
        await hub.emergency_stop(target.device.id)
        online = hub.device_state(target.device.id).online
        note = "" if online else " The device is shown as offline."
        return (
            f"🛑 Emergency stop sent to **{target.name}**. OpenShock does not report whether "
            f"the device acted on it.{note}"
        )

    async def captive_portal(self, target: AccountDevice, enabled: bool) -> str:
        hub = self.reachable_hub(target)
        await hub.captive_portal(target.device.id, enabled)
        return (
            f"Captive portal {'on' if enabled else 'off'}: sent to **{target.name}**. "
            "OpenShock does not report whether the device acted on it."
        )

    # -- reboot ---------------------------------------------------------------------------------

    async def reboot(self, target: AccountDevice) -> DeviceTicket:
        """Send a reboot, watching for the device to go offline and come back. Raises
        ``UserError``/``OpenShockError`` when nothing was sent."""
        device_id = target.device.id
        offline_seen = False

        def back_online(event: DeviceStatusChanged) -> bool:
            nonlocal offline_seen
            if event.device_id != device_id:
                return False
            if not event.current.online:
                offline_seen = True
                return False
            return offline_seen

        hub = self.connected_hub(target)
        # Registered before sending, so a quick effect cannot slip past.
        went_offline = hub.expect(
            DeviceStatusChanged, lambda e: e.device_id == device_id and not e.current.online
        )
        came_back = hub.expect(DeviceStatusChanged, back_online)
        await self._send(hub.reboot(device_id), went_offline, came_back)
        window = self.timings.reboot
        return DeviceTicket(
            f"🔄 Reboot sent to **{target.name}**; watching for it to go offline and come back "
            f"(up to {window:g} s)…",
            self._watch(
                self._watch_reboot(target, went_offline, came_back, window),
                f"device-reboot-watch {device_id}",
            ),
        )

    async def _watch_reboot(
        self,
        target: AccountDevice,
        went_offline: asyncio.Future[DeviceStatusChanged],
        came_back: asyncio.Future[DeviceStatusChanged],
        window: float,
    ) -> str:
        loop = asyncio.get_running_loop()
        started = loop.time()
        name = target.name
        try:
            try:
                await _observe(went_offline, window)
            except TimeoutError:
                return (
                    f"🔄 Reboot sent to **{name}**, but OpenShock did not report it going offline "
                    f"within {window:g} s; the device may not have rebooted."
                )
            except _HubClosed:
                return f"🔄 Reboot sent to **{name}**, but {_CLOSED}."
            offline_at = loop.time()
            try:
                back = await _observe(came_back, max(0.0, started + window - loop.time()))
            except TimeoutError:
                return (
                    f"⚠️ **{name}** went offline after the reboot but was not seen coming "
                    f"back within {window:g} s."
                )
            except _HubClosed:
                return (
                    f"⚠️ **{name}** went offline after the reboot, but the connection to "
                    "OpenShock closed before it was seen coming back."
                )
            firmware = back.current.firmware_version
            return (
                f"✅ **{name}** rebooted: it went offline and came back online after "
                f"{loop.time() - offline_at:.0f} s"
                + (f" (firmware {inert(firmware)})." if firmware else ".")
            )
        finally:
            went_offline.cancel()  # no longer waited for: leave the hub's waiter list
            came_back.cancel()

    # -- update ---------------------------------------------------------------------------------

    async def update(self, target: AccountDevice, version: str) -> DeviceTicket:
        """Send a firmware update (``version`` as ``parse_version`` gives it), watching for it
        to start. Raises ``UserError``/``OpenShockError`` when nothing was sent."""
        device_id = target.device.id
        hub = self.connected_hub(target)
        started = hub.expect(OtaInstallStarted, lambda e: e.device_id == device_id)
        await self._send(hub.ota_install(device_id, version), started)
        window = self.timings.update
        return DeviceTicket(
            f"⬆️ Update to {inert(version)} sent to **{target.name}**; waiting for it to start "
            f"(up to {window:g} s)…",
            self._watch(
                self._watch_update(target, version, started, window),
                f"device-update-watch {device_id}",
            ),
        )

    async def _watch_update(
        self,
        target: AccountDevice,
        version: str,
        started: asyncio.Future[OtaInstallStarted],
        window: float,
    ) -> str:
        name = target.name
        try:
            event = await _observe(started, window)
        except TimeoutError:
            return (
                f"⬆️ Update to {inert(version)} sent to **{name}**, but OpenShock did not report "
                f"it starting within {window:g} s; the device may be offline, or that version "
                "may not exist for it."
            )
        except _HubClosed:
            return f"⬆️ Update to {inert(version)} sent to **{name}**, but {_CLOSED}."
        finally:
            started.cancel()  # no longer waited for: leave the hub's waiter list
        return (
            f"⬆️ The update of **{name}** to {inert(event.version)} has started "
            f"(update {event.update_id}). The device reboots when it is done."
        )

    # -- plumbing -------------------------------------------------------------------------------

    @staticmethod
    async def _send(sending: Awaitable[None], *watches: asyncio.Future[Any]) -> None:
        """Send; if that fails, the watches registered for it are cancelled."""
        try:
            await sending
        except BaseException:
            for future in watches:
                future.cancel()
            raise

    def _watch(self, watch: Coroutine[Any, Any, str], name: str) -> asyncio.Task[str]:
        task = asyncio.create_task(watch, name=name)
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)
        return task
