"""/shock, /vibrate, /sound, /stop and /panic."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import (
    check_percent,
    seconds_to_ms,
    sender_of,
)
from bot.cogs.control_reply import answer_control
from bot.cogs.options import (
    Percent,
    Seconds,
    ShockableShocker,
    ShockerPick,
    SoundableShocker,
    StoppableShocker,
    VibratableShocker,
)
from bot.domain.controls import MAX_DURATION_MS, MIN_DURATION_MS, STOP_DURATION_MS, ControlKind
from bot.services.control import ControlOrder, Origin
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)


class ControlCog(commands.Cog):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.control = bot.control

    async def run_control(
        self,
        interaction: discord.Interaction[OpenShockBot],
        shocker: ShockerPick,
        kind: ControlKind,
        intensity: int,
        duration_ms: int,
    ) -> None:
        """A control by the member who ran the command, through the pipeline's front door."""
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        order = ControlOrder(
            sender=sender_of(interaction),
            guild_id=interaction.guild_id,
            shocker_id=shocker.value,
            kind=kind,
            intensity=intensity,
            duration_ms=duration_ms,
            origin=Origin.COMMAND,
            channel_id=interaction.channel_id,
        )
        ticket = await self.control.submit(order)
        if ticket.share is None:
            # Autocomplete sends the shocker's id; a typed name is looked up only when that fails.
            share = await shocker.resolve(self.storage)
            ticket = await self.control.submit(replace(order, shocker_id=share.shocker_id))
        await answer_control(interaction, ticket)

    # -- commands -------------------------------------------------------------------------------

    @app_commands.command(name="shock", description="Send a shock")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="A shocker you may control",
        intensity="Intensity in percent",
        duration="Duration in seconds",
    )
    async def shock(
        self,
        interaction: discord.Interaction[OpenShockBot],
        shocker: ShockableShocker,
        intensity: Percent,
        duration: Seconds,
    ) -> None:
        await self.run_control(
            interaction, shocker, ControlKind.SHOCK, *self.values(intensity, duration)
        )

    @app_commands.command(name="vibrate", description="Send a vibration")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="A shocker you may control",
        intensity="Intensity in percent",
        duration="Duration in seconds",
    )
    async def vibrate(
        self,
        interaction: discord.Interaction[OpenShockBot],
        shocker: VibratableShocker,
        intensity: Percent,
        duration: Seconds,
    ) -> None:
        await self.run_control(
            interaction, shocker, ControlKind.VIBRATE, *self.values(intensity, duration)
        )

    @app_commands.command(name="sound", description="Play the shocker's sound")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="A shocker you may control",
        duration="Duration in seconds",
        intensity="Volume in percent (default 50)",
    )
    async def sound(
        self,
        interaction: discord.Interaction[OpenShockBot],
        shocker: SoundableShocker,
        duration: Seconds,
        intensity: Percent = 50,
    ) -> None:
        await self.run_control(
            interaction, shocker, ControlKind.SOUND, *self.values(intensity, duration)
        )

    @app_commands.command(name="stop", description="Stop a shocker now")
    @app_commands.guild_only()
    @app_commands.describe(shocker="A shocker you may control, or your own")
    async def stop(
        self, interaction: discord.Interaction[OpenShockBot], shocker: StoppableShocker
    ) -> None:
        await self.run_control(interaction, shocker, ControlKind.STOP, 0, STOP_DURATION_MS)

    @staticmethod
    def values(intensity: int, duration: float) -> tuple[int, int]:
        """Re-checked at run time: Discord's option bounds are a convenience, not protection."""
        check_percent(intensity, option="intensity")
        return intensity, seconds_to_ms(
            duration, option="duration", minimum_ms=MIN_DURATION_MS, maximum_ms=MAX_DURATION_MS
        )

    @app_commands.command(
        name="panic", description="Stop all your shockers and pause all your shares everywhere"
    )
    async def panic(self, interaction: discord.Interaction[OpenShockBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        account = await self.storage.accounts.by_discord_user(interaction.user.id)
        result = await self.control.panic(
            wearer_id=interaction.user.id,
            account=account,
            display_name=interaction.user.display_name,
        )
        await reply(interaction, result.summary())
