"""/permissions: who may control which shockers here, up to what, and the server-wide caps.

A grant may end on its own (``expires``): the decision stops counting it at that moment, and the
row is deleted by a timer at the next end (armed at start-up, which also deletes those that
ended while the bot was down).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import (
    Choices,
    check_percent,
    optional_seconds_to_ms,
    require_manage_guild,
    resolve_shared_shocker,
    safe_autocomplete,
    shared_shocker_choices,
    types_text,
)
from bot.cogs.options import Expiry, Percent, Seconds, SharedShocker
from bot.domain.controls import MAX_DURATION_MS, MIN_DURATION_MS, format_duration
from bot.domain.grants import GrantTarget
from bot.domain.text import inert
from bot.errors import UserError
from bot.storage.models import Grant
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

Who = discord.Member | discord.User | discord.Role

MAX_COOLDOWN_S = 86_400.0
_SWEEP = "grant-expiry"  # the scheduler key of the clean-up of ended grants


def describe_target(grant: Grant, guild_id: int) -> str:
    if grant.target_kind is GrantTarget.ROLE:
        return "@everyone" if grant.target_id == guild_id else f"<@&{grant.target_id}>"
    return f"<@{grant.target_id}>"


def describe_grant(grant: Grant, shocker_names: dict[str, str], guild_id: int) -> str:
    shocker = (
        "all shockers"
        if grant.shocker_id is None
        else shocker_names.get(grant.shocker_id, "a shocker no longer shared here")
    )
    types = types_text(grant.allow_shock, grant.allow_vibrate, grant.allow_sound)
    caps = []
    if grant.max_intensity is not None:
        caps.append(f"≤ {grant.max_intensity} %")
    if grant.max_duration_ms is not None:
        caps.append(f"≤ {format_duration(grant.max_duration_ms)}")
    if grant.cooldown_ms:
        caps.append(f"cooldown {format_duration(grant.cooldown_ms)}")
    if grant.expires_at is not None:
        caps.append(f"ends <t:{int(grant.expires_at)}:R>")
    detail = ", ".join([types, *caps])
    return f"{describe_target(grant, guild_id)} → {inert(shocker)}: {detail}"


def _target(who: Who) -> tuple[GrantTarget, int]:
    if isinstance(who, discord.Role):
        return GrantTarget.ROLE, who.id
    return GrantTarget.MEMBER, who.id


class GrantShockerTransformer(app_commands.Transformer["OpenShockBot"]):
    """The shocker of a grant (→ its id): a shocker shared here, by id or unique name, or the id
    of one a grant still names after its share ended."""

    async def transform(self, interaction: discord.Interaction[OpenShockBot], value: Any, /) -> str:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        storage = interaction.client.storage
        grants = await storage.grants.in_guild(interaction.guild_id)
        if any(g.shocker_id == value for g in grants):
            return str(value)
        return (await resolve_shared_shocker(storage, interaction.guild_id, str(value))).shocker_id

    @safe_autocomplete
    async def autocomplete(  # type: ignore[override]
        self, interaction: discord.Interaction[OpenShockBot], value: Any, /
    ) -> Choices:
        storage = interaction.client.storage
        return await shared_shocker_choices(storage, interaction.guild_id, str(value))


GrantShocker = app_commands.Transform[str, GrantShockerTransformer]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class PermissionsCog(
    commands.GroupCog, group_name="permissions", description="Who may control shockers here"
):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        # default_permissions only hides the commands; admins can change that, so check here too.
        require_manage_guild(interaction)
        return True

    async def cog_load(self) -> None:
        await self.sweep_ended_grants()

    async def cog_unload(self) -> None:
        self.bot.scheduler.cancel(_SWEEP)

    async def sweep_ended_grants(self) -> None:
        """Delete the grants that have ended (the decision already ignores them) and arm the
        next clean-up at the next end."""
        deleted = await self.storage.grants.delete_expired(time.time())
        if deleted:
            log.info("Deleted %d grants that ended", deleted)
        upcoming = await self.storage.grants.next_expiry()
        if upcoming is not None:
            self.bot.scheduler.at(_SWEEP, upcoming, self.sweep_ended_grants)

    @app_commands.command(name="grant", description="Allow a role or member to control shockers")
    @app_commands.describe(
        who="A role (including @everyone) or a member",
        shocker="One shocker shared here (leave empty for all of them)",
        max_intensity="Highest intensity in percent",
        max_duration="Longest duration in seconds",
        cooldown="Seconds between two controls by one member on one shocker",
        shock="Allow shocks (default yes)",
        vibrate="Allow vibrations (default yes)",
        sound="Allow sounds (default yes)",
        expires="When the grant ends, from now: 30m, 2h, 1d, 1w, 1h30m… (empty: never)",
    )
    async def grant(
        self,
        interaction: discord.Interaction[OpenShockBot],
        who: Who,
        shocker: SharedShocker | None = None,
        max_intensity: Percent | None = None,
        max_duration: Seconds | None = None,
        cooldown: app_commands.Range[float, 0.0, MAX_COOLDOWN_S] | None = None,
        shock: bool = True,
        vibrate: bool = True,
        sound: bool = True,
        expires: Expiry | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        share = shocker
        if max_intensity is not None:
            check_percent(max_intensity, option="max_intensity")
        duration_ms = optional_seconds_to_ms(
            max_duration,
            option="max_duration",
            minimum_ms=MIN_DURATION_MS,
            maximum_ms=MAX_DURATION_MS,
        )
        cooldown_ms = optional_seconds_to_ms(
            cooldown, option="cooldown", minimum_ms=0, maximum_ms=int(MAX_COOLDOWN_S * 1000)
        )
        kind, target_id = _target(who)
        # The pipeline's clock: the decision compares the end with the same clock.
        expires_at = None if expires is None else self.bot.control.facts.clock() + expires
        grant = await self.storage.grants.grant(
            guild_id=guild_id,
            target_kind=kind,
            target_id=target_id,
            shocker_id=share.shocker_id if share else None,
            share=share,  # required to still exist when the grant is written
            max_intensity=max_intensity,
            max_duration_ms=duration_ms,
            cooldown_ms=cooldown_ms or None,
            allow_shock=shock,
            allow_vibrate=vibrate,
            allow_sound=sound,
            created_by=interaction.user.id,
            expires_at=expires_at,
        )
        if expires_at is not None:
            await self.sweep_ended_grants()  # arms the clean-up at the earliest end
        names = {share.shocker_id: share.shocker_name} if share else {}
        await reply(interaction, f"Granted: {describe_grant(grant, names, guild_id)}.")

    @app_commands.command(name="revoke", description="Withdraw a role's or member's grant")
    @app_commands.describe(
        who="The role or member", shocker="The shocker of the grant (empty: the all-shockers one)"
    )
    async def revoke(
        self,
        interaction: discord.Interaction[OpenShockBot],
        who: Who,
        shocker: GrantShocker | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        kind, target_id = _target(who)
        shocker_id = shocker
        if not await self.storage.grants.revoke(guild_id, kind, target_id, shocker_id):
            raise UserError("There is no such grant; `/permissions list` shows them all.")
        target = "@everyone" if target_id == guild_id and kind is GrantTarget.ROLE else who.mention
        where = "all shockers" if shocker_id is None else "that shocker"
        await reply(interaction, f"Revoked the grant of {target} for {where}.")

    @app_commands.command(name="list", description="Show every grant and the server's caps")
    async def list_(self, interaction: discord.Interaction[OpenShockBot]) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        grants = await self.storage.grants.in_guild(guild_id)
        names = {s.shocker_id: s.shocker_name for s in await self.storage.shares.in_guild(guild_id)}
        settings = await self.storage.guild_settings.get(guild_id)
        lines = [describe_grant(grant, names, guild_id) for grant in grants]
        embed = discord.Embed(
            title="Permissions",
            description="\n".join(lines)[:4000] or "No grants yet: only wearers can control.",
        )
        embed.add_field(
            name="Server caps",
            value=self._caps_text(settings.max_intensity, settings.max_duration_ms),
        )
        embed.add_field(
            name="Bot caps",
            value=self._caps_text(
                self.bot.settings.max_intensity, self.bot.settings.max_duration_ms
            ),
        )
        await reply(interaction, embed=embed)

    @staticmethod
    def _caps_text(intensity: int | None, duration_ms: int | None) -> str:
        left = f"{intensity} %" if intensity is not None else "no intensity cap"
        right = format_duration(duration_ms) if duration_ms is not None else "no duration cap"
        return f"{left}, {right}"

    @app_commands.command(name="limits", description="Set the server-wide caps")
    @app_commands.describe(
        max_intensity="Highest intensity in percent (empty: no server cap)",
        max_duration="Longest duration in seconds (empty: no server cap)",
    )
    async def limits(
        self,
        interaction: discord.Interaction[OpenShockBot],
        max_intensity: Percent | None = None,
        max_duration: Seconds | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if max_intensity is not None:
            check_percent(max_intensity, option="max_intensity")
        duration_ms = optional_seconds_to_ms(
            max_duration,
            option="max_duration",
            minimum_ms=MIN_DURATION_MS,
            maximum_ms=MAX_DURATION_MS,
        )
        settings = await self.storage.guild_settings.set_limits(
            interaction.guild_id, max_intensity, duration_ms
        )
        await reply(
            interaction,
            "Server caps are now "
            f"{self._caps_text(settings.max_intensity, settings.max_duration_ms)}"
            " (the bot's own caps still apply).",
        )
