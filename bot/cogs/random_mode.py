"""/random start and /random stop, the public status message and its persistent Stop button.

The rules and the timing live in `bot.services.random_mode` and `bot.domain.random_draw`; this
cog checks the wearer's values against what they may send on their shocker, posts the status
message, re-renders it from storage after every change, and answers the Stop button.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import check_percent, member_role_ids, report_component_error, seconds_to_ms
from bot.cogs.control_reply import answer_control
from bot.cogs.options import OwnShare, Percent, Seconds
from bot.domain.controls import (
    MAX_DURATION_MS,
    MIN_DURATION_MS,
    STOP_DURATION_MS,
    ControlKind,
    format_duration,
)
from bot.domain.random_draw import (
    DEFAULT_MAX_DURATION_MS,
    DEFAULT_MAX_GAP_S,
    DEFAULT_MIN_GAP_S,
    DEFAULT_MIN_INTENSITY,
    MAX_GAP_S,
    MAX_MINUTES,
    MIN_GAP_S,
    MIN_MINUTES,
    RandomMode,
    RandomRanges,
    format_gap,
)
from bot.domain.render import control_summary
from bot.domain.text import inert
from bot.errors import UserError
from bot.services.control import ControlOrder, Origin, Sender
from bot.services.random_mode import RANDOM_STOP, RandomModeService
from bot.storage.models import Share
from bot.storage.random_modes import FiringOutcome, RandomModeRow
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

    Interaction = discord.Interaction[OpenShockBot]
else:
    Interaction = discord.Interaction

log = logging.getLogger(__name__)

Minutes = app_commands.Range[int, MIN_MINUTES, MAX_MINUTES]
Gap = app_commands.Range[float, MIN_GAP_S, MAX_GAP_S]

_OUTCOME_TEXT = {
    FiringOutcome.DELIVERED: "✅ delivered",
    FiringOutcome.SENT: "sent",
    FiringOutcome.UNCONFIRMED: "⚠️ sent, not confirmed by OpenShock",
    FiringOutcome.OFFLINE: "skipped: device offline",
    FiringOutcome.NOT_SENT: "not sent",
}


def status_text(row: RandomModeRow) -> str:
    """The public status message: shocker, wearer, mode and ranges, time left, last firing."""
    ranges = row.ranges
    lines = [f"🎲 **Random mode** on **{inert(row.shocker_name)}**, worn by <@{row.wearer_id}>"]
    lines.append(
        f"{ranges.mode.label} · {ranges.min_intensity}–{ranges.max_intensity} % · "
        f"{format_duration(MIN_DURATION_MS)}–{format_duration(ranges.max_duration_ms)} · "
        f"every {format_gap(ranges.min_gap_s)}–{format_gap(ranges.max_gap_s)}"
    )
    if row.running:
        lines.append(f"Ends <t:{int(row.ends_at)}:R>.")
    else:
        when = int(row.ended_at or row.ends_at)
        lines.append(f"⏹️ Ended <t:{when}:R>: {row.end_reason or 'it was stopped'}.")
    lines.append(_last_text(row))
    return "\n".join(lines)


def _last_text(row: RandomModeRow) -> str:
    if row.last_outcome is None or row.last_type is None:
        return "Last: nothing yet."
    what = control_summary(
        row.last_type, row.last_intensity, row.last_duration_ms, inert(row.shocker_name)
    )
    outcome = _OUTCOME_TEXT[row.last_outcome]
    if row.last_outcome is FiringOutcome.NOT_SENT and row.last_note:
        outcome += f": {inert(row.last_note)}"
    when = f" <t:{int(row.last_at)}:R>" if row.last_at is not None else ""
    return f"Last ({row.fired} so far): {what} — {outcome}{when}"


class RandomStopButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"random:stop:(?P<id>[0-9]{1,19})"
):
    """The status message's Stop: the wearer, and anyone who may Stop that shocker here."""

    def __init__(self, mode_id: int) -> None:
        self.mode_id = mode_id
        super().__init__(
            discord.ui.Button(
                label="Stop",
                emoji="⏹️",
                style=discord.ButtonStyle.danger,
                custom_id=f"random:stop:{mode_id}",
            )
        )

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: Interaction, item: discord.ui.Button[Any], match: re.Match[str], /
    ) -> RandomStopButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        cog = interaction.client.get_cog(RandomModeCog.__cog_name__)
        try:
            if not isinstance(cog, RandomModeCog):
                raise UserError("Random mode is not available right now.")
            await cog.press_stop(interaction, self.mode_id)
        except Exception as error:
            await report_component_error(interaction, error, "Random mode Stop")


def stop_view(mode_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RandomStopButton(mode_id))
    return view


@app_commands.guild_only()
class RandomModeCog(
    commands.GroupCog, group_name="random", description="Random controls on your own shocker"
):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.service = RandomModeService(bot.storage, bot.control, bot.scheduler)
        self.service.on_change = self.refresh
        self._locks: dict[int, asyncio.Lock] = {}
        super().__init__()

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(RandomStopButton)
        self.service.open()
        if self.bot.connect_hubs:  # not when the bot only registers its commands
            await self.service.resume()

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(RandomStopButton)
        await self.service.close()

    # -- commands -------------------------------------------------------------------------------

    @app_commands.command(name="start", description="Random controls on your shocker for a while")
    @app_commands.describe(
        shocker="One of your shockers shared here",
        minutes="For how long (1-240 minutes)",
        mode="What to send (default vibrate)",
        min_intensity="Lowest intensity in percent (default 10)",
        max_intensity="Highest intensity in percent (default your limit here)",
        max_duration="Longest duration in seconds (default 1; the shortest is 0.3)",
        min_gap="Shortest wait between controls in seconds (default 30, at least 5)",
        max_gap="Longest wait between controls in seconds (default 300)",
    )
    @app_commands.choices(
        mode=[
            app_commands.Choice(name="vibrate", value=RandomMode.VIBRATE.value),
            app_commands.Choice(name="shock", value=RandomMode.SHOCK.value),
            app_commands.Choice(name="both (shock or vibrate)", value=RandomMode.BOTH.value),
        ]
    )
    async def start(
        self,
        interaction: Interaction,
        shocker: OwnShare,
        minutes: Minutes,
        mode: str = RandomMode.VIBRATE.value,
        min_intensity: Percent | None = None,
        max_intensity: Percent | None = None,
        max_duration: Seconds | None = None,
        min_gap: Gap | None = None,
        max_gap: Gap | None = None,
    ) -> None:
        share = shocker
        if not interaction.app_permissions.view_channel:
            # The status message is edited through the channel for hours: the bot must see it.
            raise UserError(
                "I cannot see this channel, so I could not keep random mode's status message "
                "up to date; start it in a channel I can see."
            )
        ranges = await self.ranges_for(
            interaction, share, mode, min_intensity, max_intensity, max_duration, min_gap, max_gap
        )
        row = await self.service.start(
            share=share,
            wearer_name=interaction.user.display_name,
            ranges=ranges,
            minutes=minutes,
        )
        try:
            response = await interaction.response.send_message(
                status_text(row),
                view=stop_view(row.id),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except BaseException:
            # Nothing may fire without the status message that tells it and can stop it.
            await self.service.stop(row.id, "its status message could not be posted")
            raise
        if response.message_id is not None and interaction.channel_id is not None:
            await self.storage.random_modes.set_message(
                row.id, interaction.channel_id, response.message_id
            )
            if not self.service.is_running(row.id):
                await self.refresh(row.id)  # it ended before the message was known

    async def ranges_for(
        self,
        interaction: Interaction,
        share: Share,
        mode_value: str,
        min_intensity: int | None,
        max_intensity: int | None,
        max_duration: float | None,
        min_gap: float | None,
        max_gap: float | None,
    ) -> RandomRanges:
        """The wearer's values, checked against what they may send on this shocker right now
        (every value again at run time: Discord's option bounds are a convenience)."""
        try:
            mode = RandomMode(mode_value)
        except ValueError:
            raise UserError("`mode` must be shock, vibrate or both.") from None
        ((_, access),) = await self.bot.control.access(
            [share],
            guild_id=share.guild_id,
            member_id=interaction.user.id,
            role_ids=member_role_ids(interaction.user),
        )
        if access.refusal is not None:
            raise UserError(access.refusal.reason)
        if access.hold is not None:
            raise UserError(f"Random mode cannot start: {access.hold.reason}")
        for kind in mode.kinds:
            if kind not in access.types:
                raise UserError(
                    f"Random mode cannot start: {kind.verb} is not allowed on this shocker here "
                    "(`/shockers share` sets which types are)."
                )
        cap = access.max_intensity
        if max_intensity is None:
            max_intensity = cap
        check_percent(max_intensity, option="max_intensity", maximum=cap)
        if min_intensity is None:
            min_intensity = min(DEFAULT_MIN_INTENSITY, max_intensity)
        check_percent(min_intensity, option="min_intensity", maximum=cap)
        duration_cap = min(access.max_duration_ms, MAX_DURATION_MS)
        if max_duration is None:
            max_duration_ms = min(DEFAULT_MAX_DURATION_MS, duration_cap)
        else:
            max_duration_ms = seconds_to_ms(
                max_duration,
                option="max_duration",
                minimum_ms=MIN_DURATION_MS,
                maximum_ms=duration_cap,
            )
        if min_gap is None:
            min_gap = min(DEFAULT_MIN_GAP_S, max_gap) if max_gap is not None else DEFAULT_MIN_GAP_S
        if max_gap is None:
            max_gap = max(DEFAULT_MAX_GAP_S, min_gap)
        return RandomRanges(
            mode=mode,
            min_intensity=min_intensity,
            max_intensity=max_intensity,
            max_duration_ms=max_duration_ms,
            min_gap_s=float(min_gap),
            max_gap_s=float(max_gap),
        )

    @app_commands.command(name="stop", description="End random mode on your shocker")
    @app_commands.describe(shocker="One of your shockers (leave empty for all of yours here)")
    async def stop(self, interaction: Interaction, shocker: OwnShare | None = None) -> None:
        assert interaction.guild_id is not None
        rows = await self.storage.random_modes.running_of(interaction.guild_id, interaction.user.id)
        if shocker is not None:
            rows = [row for row in rows if row.shocker_id == shocker.shocker_id]
        ended = [row for row in rows if await self.service.stop(row.id, RANDOM_STOP)]
        if not ended:
            where = "on that shocker" if shocker is not None else "on your shockers here"
            await reply(interaction, f"No random mode is running {where}.")
            return
        names = ", ".join(f"**{inert(row.shocker_name)}**" for row in ended)
        await reply(interaction, f"Random mode ended on {names}; nothing more will be sent.")

    # -- the Stop button ------------------------------------------------------------------------

    async def press_stop(self, interaction: Interaction, mode_id: int) -> None:
        row = await self.storage.random_modes.get(mode_id)
        if row is None or row.guild_id != interaction.guild_id:
            raise UserError("This random mode is not from this server.")
        if not row.running:
            await self.refresh(mode_id)
            raise UserError("This random mode has already ended.")
        user = interaction.user
        is_wearer = user.id == row.wearer_id
        if not is_wearer and not await self.may_stop(interaction, row):
            raise UserError(
                "Only the wearer and members who may Stop this shocker can end its random mode."
            )
        reason = "the wearer pressed Stop" if is_wearer else f"<@{user.id}> pressed Stop"
        await self.service.stop(mode_id, reason)
        order = ControlOrder(
            sender=Sender(user.id, frozenset(member_role_ids(user)), user.display_name),
            guild_id=row.guild_id,
            shocker_id=row.shocker_id,
            kind=ControlKind.STOP,
            intensity=0,
            duration_ms=STOP_DURATION_MS,
            origin=Origin.BUTTON,
        )
        await answer_control(interaction, await self.bot.control.submit(order))

    async def may_stop(self, interaction: Interaction, row: RandomModeRow) -> bool:
        """By the same rules as /stop: a grant that covers the shocker here."""
        share = await self.storage.shares.get(row.guild_id, row.shocker_id)
        if share is None:
            return False
        ((_, access),) = await self.bot.control.access(
            [share],
            guild_id=row.guild_id,
            member_id=interaction.user.id,
            role_ids=member_role_ids(interaction.user),
        )
        return access.refusal is None and ControlKind.STOP in access.types

    # -- the status message ---------------------------------------------------------------------

    async def refresh(self, mode_id: int) -> None:
        """Re-render the status message from storage (one edit at a time per random mode, so
        the last edit shows the latest state)."""
        lock = self._locks.setdefault(mode_id, asyncio.Lock())
        async with lock:
            row = await self.storage.random_modes.get(mode_id)
            if row is None or row.channel_id is None or row.message_id is None:
                return
            channel = self.bot.get_partial_messageable(row.channel_id)
            message = channel.get_partial_message(row.message_id)
            try:
                await message.edit(
                    content=status_text(row),
                    view=stop_view(row.id) if row.running else None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except discord.HTTPException:
                log.warning("Could not update the status of random mode %d", mode_id, exc_info=True)
        if not row.running:
            self._locks.pop(mode_id, None)
