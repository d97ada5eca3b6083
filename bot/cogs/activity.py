"""/history (with its CSV export) and /stats: what happened in this server, from the audit trail."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import ChartRenderer
from bot.cogs.common import (
    Choices,
    is_admin,
    resolve_shared_shocker,
    safe_autocomplete,
    shared_shocker_choices,
)
from bot.domain.export import (
    DEFAULT_EXPORT_DAYS,
    MAX_EXPORT_ROWS,
    MAX_HISTORY_DAYS,
    HistoryCsv,
)
from bot.domain.render import control_summary
from bot.domain.stats import (
    DEFAULT_STATS_DAYS,
    MAX_STATS_DAYS,
    SECONDS_PER_DAY,
    TOP_COUNT,
    GuildStats,
    delivery_text,
    generated_at,
    period_text,
    summarize,
    window_start,
)
from bot.domain.text import inert
from bot.errors import UserError
from bot.storage.models import AuditEntry, AuditOutcome
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

OUTCOME_TEXT = {
    AuditOutcome.SENT: "sent",
    AuditOutcome.CONFIRMED: "delivered",
    AuditOutcome.NOT_CONFIRMED: "not confirmed",
    AuditOutcome.REFUSED: "refused",
    AuditOutcome.FAILED: "failed",
}

CHART_FILE = "stats.png"
DELIVERED_DEFINITION = (
    "Counts every attempt, refused and failed ones included. Delivered: confirmed by OpenShock, "
    "or accepted by the hub where OpenShock confirms to the shocker's owner only."
)


def check_days(days: int, *, maximum: int) -> int:
    """Re-checked at run time: Discord's option bounds are a convenience, not protection."""
    if not 1 <= days <= maximum:
        raise UserError(f"`days` must be between 1 and {maximum}.")
    return days


class ActivityCog(commands.Cog):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.charts = ChartRenderer()

    async def cog_unload(self) -> None:
        await self.charts.close()

    # -- /history -------------------------------------------------------------------------------

    @app_commands.command(name="history", description="Recent controls in this server")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="Only this shocker",
        member="Only controls sent by this member (admins)",
        days=f"Only the last this many days (the export's default: {DEFAULT_EXPORT_DAYS})",
        export="Send the rows as a CSV file",
    )
    async def history(
        self,
        interaction: discord.Interaction[Any],
        shocker: str | None = None,
        member: discord.Member | discord.User | None = None,
        days: app_commands.Range[int, 1, MAX_HISTORY_DAYS] | None = None,
        export: bool = False,
    ) -> None:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        guild_id = interaction.guild_id
        if days is not None:
            check_days(days, maximum=MAX_HISTORY_DAYS)
        elif export:
            days = DEFAULT_EXPORT_DAYS
        shocker_id = None
        if shocker:
            shocker_id = (await resolve_shared_shocker(self.storage, guild_id, shocker)).shocker_id
        admin = is_admin(interaction)
        query: dict[str, Any] = {
            "shocker_id": shocker_id,
            "member_id": member.id if member is not None else None,
            # Members see the rows about themselves (as controller or wearer); admins see all.
            "involving": None if admin else interaction.user.id,
            "since": time.time() - days * SECONDS_PER_DAY if days is not None else None,
        }
        scope = "this server" if admin else "you"
        period = f" in the last {days} day{'s' if days != 1 else ''}" if days else ""
        if export:
            await self.export_history(interaction, guild_id, query, f"involving {scope}{period}")
            return
        entries = await self.storage.audit.recent(guild_id, **query)
        if not entries:
            await reply(interaction, f"No controls involving {scope}{period} yet.")
            return
        embed = discord.Embed(
            title="Recent controls",
            description="\n".join(self.history_line(entry) for entry in entries)[:4000],
        )
        embed.set_footer(text=f"Newest first · involving {scope}{period}")
        await reply(interaction, embed=embed)

    async def export_history(
        self,
        interaction: discord.Interaction[Any],
        guild_id: int,
        query: dict[str, Any],
        scope: str,
    ) -> None:
        """The same rows as the listing, every one of the period (up to `MAX_EXPORT_ROWS`,
        newest first), as a CSV file only the caller sees."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        export = HistoryCsv(max_rows=MAX_EXPORT_ROWS)
        # One row more than fits, to know whether the file was cut.
        pages = self.storage.audit.export_pages(guild_id, **query, limit=MAX_EXPORT_ROWS + 1)
        async for page in pages:
            if not await asyncio.to_thread(export.add, page):
                break
        await pages.aclose()
        if not export.rows:
            await reply(interaction, f"No controls {scope} to export.")
            return
        rows = export.rows
        text = f"📄 {rows} control{'s' if rows != 1 else ''} {scope}, newest first (UTC times)."
        if export.full:
            text += f" Only the newest {rows} fit in one file; use a shorter `days` for the rest."
        await interaction.followup.send(
            text,
            file=discord.File(io.BytesIO(export.getvalue()), filename=f"history-{guild_id}.csv"),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @history.autocomplete("shocker")
    @safe_autocomplete
    async def _history_shocker(
        self, interaction: discord.Interaction[Any], current: str
    ) -> Choices:
        return await shared_shocker_choices(self.storage, interaction.guild_id, current)

    @staticmethod
    def history_line(entry: AuditEntry) -> str:
        intensity = entry.effective_intensity or entry.requested_intensity
        duration = entry.effective_duration_ms or entry.requested_duration_ms
        target = inert(entry.shocker_name or entry.shocker_id or "?")
        if entry.wearer_id is not None:
            target += f" (<@{entry.wearer_id}>)"
        summary = control_summary(entry.control_type, intensity, duration, target)
        outcome = OUTCOME_TEXT[entry.outcome]
        if entry.outcome in (AuditOutcome.REFUSED, AuditOutcome.FAILED) and entry.reason:
            outcome += f": {inert(entry.reason)}"
        return f"<t:{int(entry.created_at)}:R> <@{entry.member_id}> {summary} — {outcome}"

    # -- /stats ---------------------------------------------------------------------------------

    @app_commands.command(name="stats", description="This server's controls: a chart and the top")
    @app_commands.guild_only()
    @app_commands.describe(days=f"How many days, up to {MAX_STATS_DAYS} (default 7)")
    async def stats(
        self,
        interaction: discord.Interaction[Any],
        days: app_commands.Range[int, 1, MAX_STATS_DAYS] = DEFAULT_STATS_DAYS,
    ) -> None:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        check_days(days, maximum=MAX_STATS_DAYS)
        # The counts over a busy server's audit trail can take a while: answer Discord first.
        await interaction.response.defer(thinking=True)
        now = time.time()
        stats = await self.guild_stats(interaction.guild_id, days, now)
        if stats.empty:
            await reply(
                interaction,
                f"No controls in this server in {period_text(stats)}: nothing to chart yet.",
                ephemeral=False,
            )
            return
        chart = await self.charts.controls_chart(stats)
        embed = self.stats_embed(stats, now)
        embed.set_image(url=f"attachment://{CHART_FILE}")
        await interaction.followup.send(
            embed=embed,
            file=discord.File(io.BytesIO(chart), filename=CHART_FILE),
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def guild_stats(self, guild_id: int, days: int, now: float) -> GuildStats:
        since = window_start(now, days)
        counts = await self.storage.audit.day_counts(guild_id, int(since // SECONDS_PER_DAY))
        senders = await self.storage.audit.top_senders(guild_id, since, TOP_COUNT)
        shockers = await self.storage.audit.top_shockers(guild_id, since, TOP_COUNT)
        return summarize(
            days=days, now=now, counts=counts, top_senders=senders, top_shockers=shockers
        )

    @staticmethod
    def stats_embed(stats: GuildStats, now: float) -> discord.Embed:
        """Members by mention (the reply pings no one), shockers by name and wearer."""
        embed = discord.Embed(
            title="Controls in this server",
            description=f"In {period_text(stats)}: {delivery_text(stats)}.",
        )
        senders = [
            f"{rank}. <@{sender.member_id}> · {sender.count}"
            for rank, sender in enumerate(stats.top_senders, start=1)
        ]
        embed.add_field(name="Top senders", value="\n".join(senders) or "—", inline=True)
        shockers = [
            f"{rank}. {inert(shocker.shocker_name)} (<@{shocker.wearer_id}>) · {shocker.count}"
            for rank, shocker in enumerate(stats.top_shockers, start=1)
        ]
        embed.add_field(
            name="Most controlled shockers", value="\n".join(shockers) or "—", inline=True
        )
        embed.set_footer(text=f"{DELIVERED_DEFINITION} As of {generated_at(now)}.")
        return embed
