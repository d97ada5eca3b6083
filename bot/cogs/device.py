"""/device: a device owner's own hubs: list them, emergency stop, reboot, captive portal, update.

The rules and the watching live in ``bot.services.devices``; this cog holds the options, the
confirmation buttons and the replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import Choices, report_component_error, safe_autocomplete
from bot.domain.text import inert
from bot.errors import UserError
from bot.openshock.errors import OpenShockError
from bot.services.devices import (
    AccountDevice,
    DeviceService,
    DeviceTicket,
    device_summary,
    find_own_device,
    own_devices,
    parse_version,
)
from bot.tree import describe_error, reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 60.0  # how long the Confirm button stays valid


# -- options --------------------------------------------------------------------------------------


class OwnDeviceOption(app_commands.Transformer["OpenShockBot"]):
    """One of the caller's own devices: autocomplete offers them, the value is found by id (what
    autocomplete sends) or exact unique name, and anything else is refused with a sentence.

    Finding it may wait on OpenShock (the device lists, up to 2 s when not loaded yet), so it
    defers the answer first: Discord wants one within 3 s.
    """

    async def transform(
        self, interaction: discord.Interaction[OpenShockBot], value: Any, /
    ) -> AccountDevice:
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)
        bot = interaction.client
        mine = await own_devices(bot.storage, bot.hubs, interaction.user.id)
        return AccountDevice(mine.account_id, find_own_device(mine.devices, str(value)))

    async def autocomplete(
        self, interaction: discord.Interaction[OpenShockBot], value: int | float | str, /
    ) -> list[app_commands.Choice[int | float | str]]:
        choices = await _device_choices(interaction, str(value))
        return [app_commands.Choice(name=c.name, value=c.value) for c in choices]


@safe_autocomplete
async def _device_choices(interaction: discord.Interaction[OpenShockBot], current: str) -> Choices:
    bot = interaction.client
    try:
        mine = await own_devices(bot.storage, bot.hubs, interaction.user.id)
    except UserError:  # not linked, or the lists cannot be read: nothing to offer
        return []
    needle = current.strip().casefold()
    return [
        app_commands.Choice(
            name=f"{device.name} · {device_summary(mine.hub, device)}", value=str(device.id)
        )
        for device in mine.devices
        if needle in device.name.casefold() or needle == str(device.id)
    ]


class FirmwareVersion(app_commands.Transformer["OpenShockBot"]):
    """A firmware version as OtaInstall takes it (Semantic Versioning; a leading ``v`` is
    dropped), or a refusal saying what the form is."""

    async def transform(self, interaction: discord.Interaction[OpenShockBot], value: Any, /) -> str:
        return parse_version(str(value))


YourDevice = app_commands.Transform[AccountDevice, OwnDeviceOption]
Version = app_commands.Transform[str, FirmwareVersion]


# -- confirmation ---------------------------------------------------------------------------------


class ConfirmView(discord.ui.View):
    """Confirm/Cancel buttons that only the caller can press, expiring after a while."""

    def __init__(
        self,
        *,
        owner_id: int,
        origin: discord.Interaction[OpenShockBot],
        label: str,
        timeout: float,
        on_confirm: Callable[[discord.Interaction[OpenShockBot]], Awaitable[None]],
        what: str,
    ) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.origin = origin
        self.on_confirm = on_confirm
        self.what = what
        self.answered = False
        self.confirm.label = label

    # The base class takes an interaction of any client here.
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
        self, interaction: discord.Interaction[OpenShockBot], button: discord.ui.Button[ConfirmView]
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
        self, interaction: discord.Interaction[OpenShockBot], button: discord.ui.Button[ConfirmView]
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
        self, interaction: discord.Interaction[Any], error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await report_component_error(interaction, error, self.what)


# -- the commands ---------------------------------------------------------------------------------


class DeviceCog(commands.GroupCog, group_name="device", description="Your OpenShock devices"):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.devices = DeviceService(bot.hubs)
        self.confirm_timeout = CONFIRM_TIMEOUT
        self._replies: set[asyncio.Task[None]] = set()  # edits waiting for a watch's outcome
        super().__init__()

    async def cog_unload(self) -> None:
        for task in list(self._replies):
            task.cancel()
        await asyncio.gather(*self._replies, return_exceptions=True)
        await self.devices.close()

    @app_commands.command(name="list", description="Your devices, online state and firmware")
    async def list_(self, interaction: discord.Interaction[OpenShockBot]) -> None:
        # Reading the devices may wait on OpenShock: answer Discord within its 3 s first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        mine = await own_devices(self.bot.storage, self.bot.hubs, interaction.user.id)
        lines = []
        for device in mine.devices:
            shockers = ", ".join(inert(s.name) for s in device.shockers) or "no shockers"
            lines.append(
                f"**{inert(device.name)}**: {device_summary(mine.hub, device)} · "
                f"shockers: {shockers}"
            )
        text = "\n".join(lines) or "Your OpenShock account has no devices."
        await reply(interaction, embed=discord.Embed(title="Your devices", description=text[:4000]))

    @app_commands.command(name="estop", description="Emergency stop one of your devices")
    @app_commands.describe(device="One of your devices")
    async def estop(
        self, interaction: discord.Interaction[OpenShockBot], device: YourDevice
    ) -> None:
        await reply(interaction, await self.devices.emergency_stop(device))

    @app_commands.command(
        name="portal", description="Turn the captive portal of a device on or off"
    )
    @app_commands.describe(device="One of your devices", enabled="On (true) or off (false)")
    async def portal(
        self, interaction: discord.Interaction[OpenShockBot], device: YourDevice, enabled: bool
    ) -> None:
        await reply(interaction, await self.devices.captive_portal(device, enabled))

    @app_commands.command(name="reboot", description="Reboot one of your devices (asks first)")
    @app_commands.describe(device="One of your devices")
    async def reboot(
        self, interaction: discord.Interaction[OpenShockBot], device: YourDevice
    ) -> None:
        self.devices.reachable_hub(device)  # refused now rather than after the confirmation
        await self._ask(
            interaction,
            f"Reboot **{device.name}**? Its shockers do not respond until it is back.",
            "Reboot",
            "/device reboot",
            lambda click: self._send(
                click, device, "a reboot", "Reboot", lambda: self.devices.reboot(device)
            ),
        )

    @app_commands.command(name="update", description="Install a firmware version on a device")
    @app_commands.describe(device="One of your devices", version="Firmware version, e.g. 1.4.0")
    async def update(
        self, interaction: discord.Interaction[OpenShockBot], device: YourDevice, version: Version
    ) -> None:
        self.devices.reachable_hub(device)  # refused now rather than after the confirmation
        await self._ask(
            interaction,
            f"Install firmware **{inert(version)}** on **{device.name}**? It reboots during "
            "the update, and its shockers do not respond until it is done.",
            "Update",
            "/device update",
            lambda click: self._send(
                click,
                device,
                "the update",
                "Update",
                lambda: self.devices.update(device, version),
            ),
        )

    # -- replies --------------------------------------------------------------------------------

    async def _ask(
        self,
        interaction: discord.Interaction[OpenShockBot],
        question: str,
        label: str,
        what: str,
        on_confirm: Callable[[discord.Interaction[OpenShockBot]], Awaitable[None]],
    ) -> None:
        view = ConfirmView(
            owner_id=interaction.user.id,
            origin=interaction,
            label=label,
            timeout=self.confirm_timeout,
            on_confirm=on_confirm,
            what=what,
        )
        text = f"{question}\nThis expires in {self.confirm_timeout:g} s."
        if interaction.response.is_done():
            # Deferred (the device list may take a moment): the buttons replace the "thinking"
            # answer, which is also what the expiry edits.
            await interaction.edit_original_response(content=text, view=view)
        else:
            await reply(interaction, text, view=view)

    async def _send(
        self,
        click: discord.Interaction[OpenShockBot],
        device: AccountDevice,
        sending: str,
        failed: str,
        send: Callable[[], Awaitable[DeviceTicket]],
    ) -> None:
        """The confirmed method: "sending…", then the ticket's sentence, then its outcome."""
        await click.response.edit_message(
            content=f"Sending {sending} to **{device.name}**…", view=None
        )
        try:
            ticket = await send()
        except (UserError, OpenShockError) as error:
            await self._edit(click, f"⚠️ {failed} of **{device.name}**: {describe_error(error)[0]}")
            return
        await self._edit(click, ticket.sentence)

        async def answer_later() -> None:
            await self._edit(click, await ticket.outcome)

        task = asyncio.create_task(answer_later(), name=f"device-reply {click.id}")
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    @staticmethod
    async def _edit(interaction: discord.Interaction[OpenShockBot], text: str) -> None:
        try:
            await interaction.edit_original_response(content=text)
        except discord.HTTPException as error:
            log.info("Could not edit a device reply: %s", error)
