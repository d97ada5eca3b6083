"""/shock, /vibrate, /sound, /stop and /panic."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import (
    Choices,
    check_percent,
    member_role_ids,
    resolve_shared_shocker,
    safe_autocomplete,
    seconds_to_ms,
)
from bot.domain.decision import (
    MAX_DURATION_MS,
    MIN_DURATION_MS,
    STOP_DURATION_MS,
    Allowed,
    ControlDecision,
    ControlType,
    ShockerAccess,
)
from bot.domain.render import control_summary
from bot.domain.text import inert
from bot.errors import UserError
from bot.services.control import ControlResult, Delivery
from bot.storage.models import Share
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

# How long the first answer waits for the hub's acknowledgement and OpenShock's Log before it
# is sent as "sending…" / "waiting for OpenShock" (and edited later).
ANSWER_WAIT = 1.0

Intensity = app_commands.Range[int, 1, 100]
Seconds = app_commands.Range[float, 0.3, 65.535]


def confirmed(task: asyncio.Task[Delivery]) -> Delivery:
    """The outcome of a finished confirmation task; cancelled (at shutdown) means unconfirmed."""
    return Delivery.NOT_CONFIRMED if task.cancelled() else task.result()


class ControlCog(commands.Cog):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.control = bot.control

    # -- names ----------------------------------------------------------------------------------

    async def wearer_name(self, guild: discord.Guild | None, share: Share) -> str:
        member = guild.get_member(share.wearer_id) if guild is not None else None
        if member is not None:
            return member.display_name
        account = await self.storage.accounts.get(share.account_id)
        return account.openshock_name if account is not None else "unknown wearer"

    async def target_label(self, guild: discord.Guild | None, share: Share) -> str:
        return f"{inert(share.shocker_name)} ({inert(await self.wearer_name(guild, share))})"

    # -- autocomplete ---------------------------------------------------------------------------

    async def usable_choices(
        self, interaction: discord.Interaction[Any], current: str, control_type: ControlType
    ) -> Choices:
        """Only the shockers this member may use for this type, each with its wearer and, when
        it cannot be used right now, why."""
        if interaction.guild_id is None:
            return []
        shares = await self.storage.shares.in_guild(interaction.guild_id)
        needle = current.casefold()
        shares = [
            s for s in shares if needle in s.shocker_name.casefold() or needle == s.shocker_id
        ]
        accesses = await self.control.access(
            shares,
            guild_id=interaction.guild_id,
            member_id=interaction.user.id,
            role_ids=member_role_ids(interaction.user),
        )
        choices = []
        for share, access in accesses:
            if control_type not in access.types:
                continue
            name = f"{share.shocker_name} ({await self.wearer_name(interaction.guild, share)})"
            note = self.availability_note(access, control_type)
            choices.append(app_commands.Choice(name=f"{name}{note}", value=share.shocker_id))
        return choices

    @staticmethod
    def availability_note(access: ShockerAccess, control_type: ControlType) -> str:
        if control_type in access.usable_now:
            return ""
        if access.undeliverable is not None:
            return " · unavailable"
        if access.hold is not None:
            return " · paused"
        if access.cooldown_remaining_ms > 0:
            return f" · cooldown {access.cooldown_remaining_ms / 1000:.0f} s"
        return ""

    # -- the control path -----------------------------------------------------------------------

    async def run_control(
        self,
        interaction: discord.Interaction[Any],
        shocker: str,
        control_type: ControlType,
        intensity: int,
        duration_ms: int,
    ) -> None:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        decide = functools.partial(
            self.control.decide,
            guild_id=interaction.guild_id,
            member_id=interaction.user.id,
            role_ids=member_role_ids(interaction.user),
            control_type=control_type,
            intensity=intensity,
            duration_ms=duration_ms,
        )
        # Autocomplete sends the shocker's id; a typed name is looked up only when that fails.
        prepared = await decide(shocker_id=shocker.strip())
        if prepared.share is None:
            named = await resolve_shared_shocker(self.storage, interaction.guild_id, shocker)
            prepared = await decide(shocker_id=named.shocker_id)
        decision, share = prepared.decision, prepared.share
        if not isinstance(decision, Allowed) or share is None:
            raise UserError(prepared.reason or "This shocker is not available here.")
        # The control goes out at once, while the answer to Discord is put together and sent
        # (Discord allows 3 s); the answer is then edited with what happened.
        sending = asyncio.create_task(
            self.control.send(prepared, interaction.user.display_name), name="control-send"
        )
        answered: Delivery | None = None  # what the first answer already said
        try:
            target = await self.target_label(interaction.guild, share)
            summary = self.summarize(decision, target)
            # The hub usually acknowledges, and OpenShock's Log confirms, within milliseconds:
            # then the one answer already says what happened (a failure goes to the sender
            # alone). A slow hub or Log gets an answer first, well inside Discord's 3 s, that is
            # edited later.
            deadline = asyncio.get_running_loop().time() + ANSWER_WAIT
            await asyncio.wait({sending}, timeout=ANSWER_WAIT)
            if sending.done():
                result = sending.result()
                summary = self.summarize(result.decision, target, summary)
                delivery = result.delivery
                if result.pending_confirmation is not None:
                    remaining = deadline - asyncio.get_running_loop().time()
                    await asyncio.wait({result.pending_confirmation}, timeout=max(remaining, 0))
                    if result.pending_confirmation.done():
                        delivery = confirmed(result.pending_confirmation)
                await reply(
                    interaction,
                    self.result_text(summary, result, delivery),
                    ephemeral=delivery in (Delivery.FAILED, Delivery.REFUSED),
                )
                answered = delivery
            else:
                await reply(interaction, f"{summary} · sending…", ephemeral=False)
        finally:
            result = await sending
        if answered is None:
            summary = self.summarize(result.decision, target, summary)
            if result.delivery is Delivery.REFUSED:
                # The public "sending…" must not carry the reason (it may be "blocked"): that
                # goes to the sender alone.
                await self.edit_reply(interaction, summary, result, public_refusal=True)
                await reply(interaction, f"✖ Not sent: {result.reason}")
                return
            await self.edit_reply(interaction, summary, result)
        if result.pending_confirmation is not None and answered in (None, Delivery.SENT):
            await asyncio.wait({result.pending_confirmation})
            delivery = confirmed(result.pending_confirmation)
            await self.edit_reply(interaction, summary, result, delivery)

    @staticmethod
    def summarize(decision: ControlDecision | None, target: str, fallback: str = "") -> str:
        """`⚡ Shock 25 % · 1.5 s → Collar (Alice) (capped at 25 % (wearer's limit))`: what was
        (or would have been) sent. The decision may have been made again just before sending."""
        if not isinstance(decision, Allowed):
            return fallback
        summary = control_summary(decision.type, decision.intensity, decision.duration_ms, target)
        if decision.capped_notes:
            summary += f" ({'; '.join(decision.capped_notes)})"
        return summary

    @staticmethod
    def result_text(summary: str, result: ControlResult, delivery: Delivery | None = None) -> str:
        delivery = delivery or result.delivery
        if delivery in (Delivery.FAILED, Delivery.REFUSED):
            return f"~~{summary}~~\n✖ Not sent: {result.reason}"
        if delivery is Delivery.CONFIRMED:
            return f"{summary} · ✅ delivered"
        if delivery is Delivery.NOT_CONFIRMED:
            text = f"{summary} · ⚠️ sent, but OpenShock did not confirm it"
            return f"{text} ({result.reason})" if result.reason else text
        if result.pending_confirmation is not None:
            return f"{summary} · sent, waiting for OpenShock…"
        return f"{summary} · sent (OpenShock confirms controls to the shocker's owner only)"

    async def edit_reply(
        self,
        interaction: discord.Interaction[Any],
        summary: str,
        result: ControlResult,
        delivery: Delivery | None = None,
        *,
        public_refusal: bool = False,
    ) -> None:
        text = f"~~{summary}~~ · not sent" if public_refusal else None
        try:
            await interaction.edit_original_response(
                content=text or self.result_text(summary, result, delivery),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException:
            log.warning("Could not update the reply of a control", exc_info=True)

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
        interaction: discord.Interaction[Any],
        shocker: str,
        intensity: Intensity,
        duration: Seconds,
    ) -> None:
        await self.run_control(
            interaction, shocker, ControlType.SHOCK, *self.values(intensity, duration)
        )

    @shock.autocomplete("shocker")
    @safe_autocomplete
    async def _shock_shocker(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        return await self.usable_choices(interaction, current, ControlType.SHOCK)

    @app_commands.command(name="vibrate", description="Send a vibration")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="A shocker you may control",
        intensity="Intensity in percent",
        duration="Duration in seconds",
    )
    async def vibrate(
        self,
        interaction: discord.Interaction[Any],
        shocker: str,
        intensity: Intensity,
        duration: Seconds,
    ) -> None:
        await self.run_control(
            interaction, shocker, ControlType.VIBRATE, *self.values(intensity, duration)
        )

    @vibrate.autocomplete("shocker")
    @safe_autocomplete
    async def _vibrate_shocker(
        self, interaction: discord.Interaction[Any], current: str
    ) -> Choices:
        return await self.usable_choices(interaction, current, ControlType.VIBRATE)

    @app_commands.command(name="sound", description="Play the shocker's sound")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="A shocker you may control",
        duration="Duration in seconds",
        intensity="Volume in percent (default 50)",
    )
    async def sound(
        self,
        interaction: discord.Interaction[Any],
        shocker: str,
        duration: Seconds,
        intensity: Intensity = 50,
    ) -> None:
        await self.run_control(
            interaction, shocker, ControlType.SOUND, *self.values(intensity, duration)
        )

    @sound.autocomplete("shocker")
    @safe_autocomplete
    async def _sound_shocker(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        return await self.usable_choices(interaction, current, ControlType.SOUND)

    @app_commands.command(name="stop", description="Stop a shocker now")
    @app_commands.guild_only()
    @app_commands.describe(shocker="A shocker you may control, or your own")
    async def stop(self, interaction: discord.Interaction[Any], shocker: str) -> None:
        await self.run_control(interaction, shocker, ControlType.STOP, 0, STOP_DURATION_MS)

    @stop.autocomplete("shocker")
    @safe_autocomplete
    async def _stop_shocker(self, interaction: discord.Interaction[Any], current: str) -> Choices:
        return await self.usable_choices(interaction, current, ControlType.STOP)

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
    async def panic(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        account = await self.storage.accounts.by_discord_user(interaction.user.id)
        paused, problem = await self.control.panic(
            wearer_id=interaction.user.id,
            account=account,
            display_name=interaction.user.display_name,
        )
        lines = [f"🛑 All your shares are paused in every server ({paused} paused)."]
        lines.append(problem or "⏹️ Stop was sent to all your shockers.")
        lines.append("Use `/shockers resume` in a server to allow controls there again.")
        await reply(interaction, "\n".join(lines))
