"""/device: a device owner's own hubs: list them, emergency stop, reboot, captive portal, update.

OpenShock answers these hub methods without saying whether anything happened (a non-owner's call
is dropped silently), so the bot only ever sends them for the caller's own devices, and then
tells what it observed: a reboot takes the device offline and back, an update starts with
`OtaInstallStarted`; emergency stop and captive portal show nothing, so those just say "sent".
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import Choices, report_component_error, safe_autocomplete
from bot.domain.text import inert
from bot.errors import UserError
from bot.openshock.errors import OpenShockError
from bot.openshock.hub import HubConnection
from bot.openshock.models import DeviceStatusChanged, OtaInstallStarted, OwnDevice
from bot.services.accounts import require_account, require_usable, shocker_directory
from bot.tree import describe_error, reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

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


@dataclass(frozen=True)
class DeviceTimings:
    """How long confirmations stay valid and how long the bot watches for an effect."""

    confirm: float = 60.0
    reboot_watch: float = 120.0  # going offline is noticed up to ~35 s late, then it boots
    update_watch: float = 60.0


class _HubClosed(Exception):
    """The hub connection was stopped while a watch waited (it cancels its event futures)."""


async def _observe(future: asyncio.Future[_T], timeout: float) -> _T:  # noqa: ASYNC109
    """The event ``future`` resolves to; ``TimeoutError`` when none comes in time.

    ``asyncio.wait`` rather than ``wait_for``: the hub cancels its futures when it stops, and
    ``wait_for`` would turn that into a ``CancelledError`` that looks like this task's own
    cancellation. Here the future's cancellation becomes ``_HubClosed``, while a cancellation
    of the watching task (cog unload) still propagates.
    """
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if not done:
        raise TimeoutError
    if future.cancelled():
        raise _HubClosed
    return future.result()


_CLOSED = "the connection to OpenShock closed before anything was observed"


def parse_version(value: str) -> str:
    version = value.strip()
    if version[:1] in ("v", "V"):
        version = version[1:]
    if not SEMVER.match(version):
        raise UserError(
            f"`{value.strip()[:40]}` is not a valid firmware version; give it as "
            "major.minor.patch, e.g. `1.4.0` or `1.5.0-rc.1`."
        )
    return version


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
    if not hub.connected:
        return "state unknown (not connected)"
    state = hub.device_state(device.id)
    firmware = f", firmware {state.firmware_version}" if state.firmware_version else ""
    return ("online" if state.online else "offline") + firmware


class ConfirmView(discord.ui.View):
    """Confirm/Cancel buttons that only the caller can press, expiring after a while."""

    def __init__(
        self,
        *,
        owner_id: int,
        origin: discord.Interaction[Any],
        label: str,
        timeout: float,
        on_confirm: Callable[[discord.Interaction[Any]], Awaitable[None]],
        what: str,
    ) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.origin = origin
        self.on_confirm = on_confirm
        self.what = what
        self.answered = False
        self.confirm.label = label

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "Only the person who asked can confirm this.", ephemeral=True
        )
        return False

    @discord.ui.button(
        label="Confirm", style=discord.ButtonStyle.danger, custom_id="device:confirm"
    )
    async def confirm(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[ConfirmView]
    ) -> None:
        if self.answered:
            return
        self.answered = True
        self.stop()
        await self.on_confirm(interaction)

    @discord.ui.button(
        label="Cancel", style=discord.ButtonStyle.secondary, custom_id="device:cancel"
    )
    async def cancel(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[ConfirmView]
    ) -> None:
        if self.answered:
            return
        self.answered = True
        self.stop()
        await interaction.response.edit_message(content="Cancelled; nothing was sent.", view=None)

    async def on_timeout(self) -> None:
        if self.answered:
            return
        self.answered = True
        try:
            await self.origin.edit_original_response(
                content="This confirmation expired; nothing was sent.", view=None
            )
        except discord.HTTPException:
            log.info("Could not mark the %s confirmation as expired", self.what)

    async def on_error(
        self,
        interaction: discord.Interaction[Any],
        error: Exception,
        item: discord.ui.Item[Any],
    ) -> None:
        await report_component_error(interaction, error, self.what)


class DeviceCog(commands.GroupCog, group_name="device", description="Your OpenShock devices"):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.timings = DeviceTimings()
        self._watches: set[asyncio.Task[None]] = set()
        super().__init__()

    async def cog_unload(self) -> None:
        for task in list(self._watches):
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)

    # -- lookups --------------------------------------------------------------------------------

    async def _own_devices(self, user_id: int) -> tuple[int, HubConnection, list[OwnDevice]]:
        account = await require_account(self.storage, user_id)
        require_usable(account)
        hub = self.bot.hubs.get(account.id)
        directory = await shocker_directory(hub)
        if hub is None or directory is None:
            raise UserError(
                "Your devices could not be read from OpenShock right now; "
                "`/account status` shows the connection. Try again in a moment."
            )
        return account.id, hub, directory.own

    async def _own_device(self, user_id: int, value: str) -> tuple[int, HubConnection, OwnDevice]:
        account_id, hub, devices = await self._own_devices(user_id)
        return account_id, hub, find_own_device(devices, value)

    def _connected_hub(self, account_id: int) -> HubConnection:
        hub = self.bot.hubs.get(account_id)
        if hub is None or not hub.connected:
            raise UserError(
                "Your OpenShock connection is down right now, so nothing was sent; "
                "`/account status` shows why."
            )
        return hub

    @staticmethod
    def _require_online(hub: HubConnection, device: OwnDevice) -> None:
        if not hub.device_state(device.id).online:
            raise UserError(
                f"**{inert(device.name)}** is offline, so OpenShock cannot reach it; "
                "nothing was sent."
            )

    async def _device_choices(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        account = await self.storage.accounts.by_discord_user(interaction.user.id)
        if account is None:
            return []
        hub = self.bot.hubs.get(account.id)
        directory = await shocker_directory(hub)
        if hub is None or directory is None:
            return []
        needle = current.strip().casefold()
        return [
            app_commands.Choice(
                name=f"{device.name} · {device_summary(hub, device)}", value=str(device.id)
            )
            for device in directory.own
            if needle in device.name.casefold() or needle == str(device.id)
        ]

    def _spawn(self, coroutine: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    # -- list -----------------------------------------------------------------------------------

    @app_commands.command(name="list", description="Your devices, online state and firmware")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        # Reading the devices may wait on OpenShock: answer Discord within its 3 s first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        _, hub, devices = await self._own_devices(interaction.user.id)
        lines = []
        for device in devices:
            shockers = ", ".join(inert(s.name) for s in device.shockers) or "no shockers"
            lines.append(
                f"**{inert(device.name)}**: {device_summary(hub, device)} · shockers: {shockers}"
            )
        text = "\n".join(lines) or "Your OpenShock account has no devices."
        await reply(interaction, embed=discord.Embed(title="Your devices", description=text[:4000]))

    # -- estop / portal: no effect to observe ---------------------------------------------------

    @app_commands.command(name="estop", description="Emergency stop one of your devices")
    @app_commands.describe(device="One of your devices")
    async def estop(self, interaction: discord.Interaction[Any], device: str) -> None:
        # The device lookup and the hub call may each wait on OpenShock: defer first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        account_id, _, target = await self._own_device(interaction.user.id, device)
        hub = self._connected_hub(account_id)
        await hub.emergency_stop(target.id)
        note = "" if hub.device_state(target.id).online else " The device is shown as offline."
        await reply(
            interaction,
            f"🛑 Emergency stop sent to **{inert(target.name)}**. OpenShock does not report "
            f"whether the device acted on it.{note}",
        )

    @app_commands.command(
        name="portal", description="Turn the captive portal of a device on or off"
    )
    @app_commands.describe(device="One of your devices", enabled="On (true) or off (false)")
    async def portal(
        self, interaction: discord.Interaction[Any], device: str, enabled: bool
    ) -> None:
        # The device lookup and the hub call may each wait on OpenShock: defer first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        account_id, _, target = await self._own_device(interaction.user.id, device)
        hub = self._connected_hub(account_id)
        self._require_online(hub, target)
        await hub.captive_portal(target.id, enabled)
        await reply(
            interaction,
            f"Captive portal {'on' if enabled else 'off'}: sent to **{inert(target.name)}**. "
            "OpenShock does not report whether the device acted on it.",
        )

    # -- reboot ---------------------------------------------------------------------------------

    @app_commands.command(name="reboot", description="Reboot one of your devices (asks first)")
    @app_commands.describe(device="One of your devices")
    async def reboot(self, interaction: discord.Interaction[Any], device: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        account_id, _, target = await self._own_device(interaction.user.id, device)
        self._require_online(self._connected_hub(account_id), target)

        async def confirmed(click: discord.Interaction[Any]) -> None:
            await self._reboot(click, account_id, target)

        await self._ask(
            interaction,
            f"Reboot **{inert(target.name)}**? Its shockers do not respond until it is back.",
            "Reboot",
            confirmed,
            "/device reboot",
        )

    async def _reboot(
        self, click: discord.Interaction[Any], account_id: int, device: OwnDevice
    ) -> None:
        offline_seen = False

        def back_online(event: DeviceStatusChanged) -> bool:
            nonlocal offline_seen
            if event.device_id != device.id:
                return False
            if not event.current.online:
                offline_seen = True
                return False
            return offline_seen

        watches = await self._send_watched(
            click,
            account_id,
            device,
            sending="a reboot",
            failed="Reboot",
            expect=lambda hub: [
                hub.expect(
                    DeviceStatusChanged,
                    lambda e: e.device_id == device.id and not e.current.online,
                ),
                hub.expect(DeviceStatusChanged, back_online),
            ],
            send=lambda hub: hub.reboot(device.id),
        )
        if watches is None:
            return
        went_offline, came_back = watches
        window = self.timings.reboot_watch
        await click.edit_original_response(
            content=f"🔄 Reboot sent to **{inert(device.name)}**; watching for it to go offline "
            f"and come back (up to {window:g} s)…"
        )
        self._spawn(
            self._watch_reboot(click, device, went_offline, came_back, window),
            name=f"device-reboot-watch {device.id}",
        )

    async def _watch_reboot(
        self,
        click: discord.Interaction[Any],
        device: OwnDevice,
        went_offline: asyncio.Future[DeviceStatusChanged],
        came_back: asyncio.Future[DeviceStatusChanged],
        window: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        name = inert(device.name)
        try:
            try:
                await _observe(went_offline, window)
            except TimeoutError:
                text = (
                    f"🔄 Reboot sent to **{name}**, but OpenShock did not report it going offline "
                    f"within {window:g} s; the device may not have rebooted."
                )
            except _HubClosed:
                text = f"🔄 Reboot sent to **{name}**, but {_CLOSED}."
            else:
                offline_at = loop.time()
                try:
                    back = await _observe(came_back, max(0.0, started + window - loop.time()))
                except TimeoutError:
                    text = (
                        f"⚠️ **{name}** went offline after the reboot but was not seen coming "
                        f"back within {window:g} s."
                    )
                except _HubClosed:
                    text = (
                        f"⚠️ **{name}** went offline after the reboot, but the connection to "
                        "OpenShock closed before it was seen coming back."
                    )
                else:
                    firmware = back.current.firmware_version
                    text = (
                        f"✅ **{name}** rebooted: it went offline and came back online after "
                        f"{loop.time() - offline_at:.0f} s"
                        + (f" (firmware {inert(firmware)})." if firmware else ".")
                    )
        finally:
            went_offline.cancel()
            came_back.cancel()
        await self._edit(click, text)

    # -- update ---------------------------------------------------------------------------------

    @app_commands.command(name="update", description="Install a firmware version on a device")
    @app_commands.describe(device="One of your devices", version="Firmware version, e.g. 1.4.0")
    async def update(
        self, interaction: discord.Interaction[Any], device: str, version: str
    ) -> None:
        wanted = parse_version(version)
        await interaction.response.defer(ephemeral=True, thinking=True)
        account_id, _, target = await self._own_device(interaction.user.id, device)
        self._require_online(self._connected_hub(account_id), target)

        async def confirmed(click: discord.Interaction[Any]) -> None:
            await self._update(click, account_id, target, wanted)

        await self._ask(
            interaction,
            f"Install firmware **{inert(wanted)}** on **{inert(target.name)}**? It reboots during "
            "the update, and its shockers do not respond until it is done.",
            "Update",
            confirmed,
            "/device update",
        )

    async def _update(
        self, click: discord.Interaction[Any], account_id: int, device: OwnDevice, version: str
    ) -> None:
        watches = await self._send_watched(
            click,
            account_id,
            device,
            sending="the update",
            failed="Update",
            expect=lambda hub: [hub.expect(OtaInstallStarted, lambda e: e.device_id == device.id)],
            send=lambda hub: hub.ota_install(device.id, version),
        )
        if watches is None:
            return
        (started,) = watches
        window = self.timings.update_watch
        await click.edit_original_response(
            content=f"⬆️ Update to {inert(version)} sent to **{inert(device.name)}**; "
            "waiting for it "
            f"to start (up to {window:g} s)…"
        )
        self._spawn(
            self._watch_update(click, device, version, started, window),
            name=f"device-update-watch {device.id}",
        )

    async def _watch_update(
        self,
        click: discord.Interaction[Any],
        device: OwnDevice,
        version: str,
        started: asyncio.Future[OtaInstallStarted],
        window: float,
    ) -> None:
        name = inert(device.name)
        try:
            event = await _observe(started, window)
        except TimeoutError:
            text = (
                f"⬆️ Update to {inert(version)} sent to **{name}**, but OpenShock did not report it "
                f"starting within {window:g} s; the device may be offline, or that version may "
                "not exist for it."
            )
        except _HubClosed:
            text = f"⬆️ Update to {inert(version)} sent to **{name}**, but {_CLOSED}."
        else:
            text = (
                f"⬆️ The update of **{name}** to {inert(event.version)} has started "
                f"(update {event.update_id}). The device reboots when it is done."
            )
        finally:
            started.cancel()  # no longer waited for: leave the hub's waiter list
        await self._edit(click, text)

    # -- plumbing -------------------------------------------------------------------------------

    async def _send_watched(
        self,
        click: discord.Interaction[Any],
        account_id: int,
        device: OwnDevice,
        *,
        sending: str,
        failed: str,
        expect: Callable[[HubConnection], list[asyncio.Future[Any]]],
        send: Callable[[HubConnection], Awaitable[None]],
    ) -> list[asyncio.Future[Any]] | None:
        """Send a confirmed device method with its effects watched. The watches are registered
        before sending, so a quick effect cannot slip past; on failure they are cancelled, the
        reply says why, and None is returned."""
        await click.response.edit_message(
            content=f"Sending {sending} to **{inert(device.name)}**…", view=None
        )
        watches: list[asyncio.Future[Any]] = []
        try:
            hub = self._connected_hub(account_id)
            watches = expect(hub)
            await send(hub)
        except (UserError, OpenShockError) as error:
            for future in watches:
                future.cancel()
            await self._edit(
                click, f"⚠️ {failed} of **{inert(device.name)}**: {describe_error(error)[0]}"
            )
            return None
        return watches

    async def _ask(
        self,
        interaction: discord.Interaction[Any],
        question: str,
        label: str,
        on_confirm: Callable[[discord.Interaction[Any]], Awaitable[None]],
        what: str,
    ) -> None:
        view = ConfirmView(
            owner_id=interaction.user.id,
            origin=interaction,
            label=label,
            timeout=self.timings.confirm,
            on_confirm=on_confirm,
            what=what,
        )
        text = f"{question}\nThis expires in {self.timings.confirm:g} s."
        if interaction.response.is_done():
            # Deferred (the device list may take a moment): the buttons replace the "thinking"
            # answer, which is also what the expiry edits.
            await interaction.edit_original_response(content=text, view=view)
        else:
            await reply(interaction, text, view=view)

    @staticmethod
    async def _edit(interaction: discord.Interaction[Any], text: str) -> None:
        try:
            await interaction.edit_original_response(content=text)
        except discord.HTTPException as error:
            log.info("Could not edit a device reply: %s", error)

    @estop.autocomplete("device")
    @portal.autocomplete("device")
    @reboot.autocomplete("device")
    @update.autocomplete("device")
    @safe_autocomplete
    async def _device_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> Choices:
        return await self._device_choices(interaction, current)
