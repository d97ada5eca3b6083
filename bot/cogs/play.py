"""/vote and /roulette: controls the channel decides together, or chance does.

`/vote` checks that the starter may send the control now, stores the vote (`VoteService`), posts
it with persistent **Yes**/**No** buttons (`VoteButton`, a `DynamicItem`: everything a press
needs is in its custom id and re-checked against storage) and a countdown, and shows the tally
and the outcome as the service reports them (`DiscordVoteBoard`).

`/roulette` asks the access rules what the caller may use right now, lets
`bot.domain.roulette.pick` choose, and sends it through the pipeline's front door.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import (
    Choices,
    check_percent,
    member_role_ids,
    report_component_error,
    resolve_shared_shocker,
    safe_autocomplete,
    seconds_to_ms,
    sender_of,
)
from bot.cogs.control_reply import answer_control
from bot.cogs.options import Percent, Seconds, matching_accesses, usable_choice
from bot.domain.controls import (
    MAX_DURATION_MS,
    MIN_DURATION_MS,
    ControlKind,
)
from bot.domain.decision import Allowed, RefusalCode, Refused
from bot.domain.render import control_summary
from bot.domain.roulette import pick
from bot.domain.text import inert
from bot.domain.votes import (
    DEFAULT_VOTE_SECONDS,
    MAX_VOTE_SECONDS,
    MIN_VOTE_SECONDS,
    VOTE_KINDS,
    Tally,
    start_refusal,
)
from bot.errors import UserError
from bot.services.control import ControlOrder, ControlOutcome, ControlReport, Origin
from bot.services.votes import EndKind, VoteEnding, VoteService
from bot.storage.models import Share
from bot.storage.votes import NewVote, Vote
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

    Interaction = discord.Interaction[OpenShockBot]
else:
    Interaction = discord.Interaction

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()

KIND_CHOICES = [
    app_commands.Choice(name="shock", value="shock"),
    app_commands.Choice(name="vibrate", value="vibrate"),
    app_commands.Choice(name="sound", value="sound"),
]
_KINDS = {"shock": ControlKind.SHOCK, "vibrate": ControlKind.VIBRATE, "sound": ControlKind.SOUND}
_NOUNS = {ControlKind.SHOCK: "shock", ControlKind.VIBRATE: "vibration", ControlKind.SOUND: "sound"}

VoteSeconds = app_commands.Range[int, MIN_VOTE_SECONDS, MAX_VOTE_SECONDS]


def kind_of(value: str) -> ControlKind:
    """A type option, re-checked at run time (a forged value is refused, never guessed)."""
    kind = _KINDS.get(str(value).strip().casefold())
    if kind is None:
        raise UserError("`type` must be shock, vibrate or sound.")
    return kind


def _guild_id(interaction: Interaction) -> int:
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


class VoteShockerTransformer(app_commands.Transformer["OpenShockBot"]):
    """A shocker shared here (→ `Share`), offered when the caller may put the chosen type (or,
    before a type is chosen, any type) to a vote."""

    async def transform(self, interaction: Interaction, value: Any, /) -> Share:
        return await resolve_shared_shocker(
            interaction.client.storage, _guild_id(interaction), str(value)
        )

    @safe_autocomplete
    async def autocomplete(self, interaction: Interaction, value: Any, /) -> Choices:  # type: ignore[override]
        chosen = _KINDS.get(str(getattr(interaction.namespace, "type", "") or ""))
        kinds = {chosen} if chosen is not None else VOTE_KINDS
        choices = []
        for share, access in await matching_accesses(interaction, value):
            kind = next((k for k in kinds if k in access.types), None)
            if kind is not None:
                choices.append(await usable_choice(interaction, share, access, kind))
        return choices


VoteShocker = app_commands.Transform[Share, VoteShockerTransformer]


# -- how a vote reads ------------------------------------------------------------------------------


def vote_text(vote: Vote, tally: Tally, ending: VoteEnding | None) -> str:
    target = f"{inert(vote.shocker_name)} (<@{vote.wearer_id}>)"
    proposed = control_summary(
        vote.control_type, vote.shown_intensity, vote.shown_duration_ms, target
    )
    head = f"🗳️ **Vote** started by <@{vote.starter_id}>: {proposed}"
    count = f"✅ Yes {tally.yes} · ❌ No {tally.no}"
    if ending is None:
        return (
            f"{head}\nEnds <t:{int(vote.ends_at)}:R> · {count}\n"
            "Members who may control this shocker can vote (and change their vote)."
        )
    return f"{head}\nEnded · {count}\n{ending_text(vote, tally, ending)}"


def ending_text(vote: Vote, tally: Tally, ending: VoteEnding) -> str:
    if ending.kind is EndKind.HALTED:
        why = ending.halt.sentence if ending.halt is not None else "it was stopped"
        return f"⏹️ Ended early: {why}. Nothing was sent."
    if ending.kind is EndKind.NOT_PASSED:
        if tally.yes == tally.no:
            return "A tie: nothing was sent."
        return "No won: nothing was sent."
    if ending.kind is EndKind.LATE:
        return "It ended while the bot was offline: nothing was sent."
    if ending.kind is EndKind.NOT_SENT:
        return f"Yes won, but {ending.reason or 'it could not be sent.'}"
    report = ending.report
    assert report is not None
    decision = report.decision
    sent = ""
    if isinstance(decision, Allowed):
        target = f"{inert(vote.shocker_name)} (<@{vote.wearer_id}>)"
        sent = control_summary(decision.type, decision.intensity, decision.duration_ms, target)
        if decision.capped_notes:
            sent += f" ({'; '.join(decision.capped_notes)})"
    outcome = report.outcome
    if outcome is ControlOutcome.REFUSED:
        return f"Yes won, but it was not sent: {public_reason(report)}"
    if outcome is ControlOutcome.FAILED:
        return f"Yes won, but it could not be sent: {report.reason}"
    if outcome is ControlOutcome.AWAITING_APPROVAL:
        return f"Yes won: {sent} · ⏳ the wearer was asked to approve it (sent only if they do)"
    if outcome is ControlOutcome.CONFIRMED:
        return f"Yes won: {sent} · ✅ delivered"
    if outcome in (ControlOutcome.NOT_CONFIRMED, ControlOutcome.UNCERTAIN):
        return f"Yes won: {sent} · ⚠️ sent, but OpenShock did not confirm it"
    return f"Yes won: {sent} · sent"


def public_reason(report: ControlReport) -> str:
    """A refusal told to the whole channel: the decision's sentences speak to the sender ("You
    are cooling down…") and may say who blocked whom, so the channel reads a neutral one."""
    decision = report.decision
    if not isinstance(decision, Refused):
        return report.reason or "it was called off."
    code = decision.code
    if code is RefusalCode.PAUSED:
        return "the wearer paused this shocker."
    if code is RefusalCode.NOT_SHARED:
        return "the shocker is no longer shared here."
    if code is RefusalCode.COOLDOWN:
        return "the member who started the vote is cooling down on this shocker."
    if code in (RefusalCode.NO_GRANT, RefusalCode.BLOCKED, RefusalCode.TYPE_NOT_ALLOWED):
        return "the member who started the vote may no longer send it."
    return report.reason or decision.reason


class DiscordVoteBoard:
    """Shows votes on Discord: through the starting interaction while this process has it
    (works whatever the channel's permissions), else by editing the message in its channel."""

    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.origins: dict[int, Interaction] = {}

    async def show(self, vote: Vote, tally: Tally, ending: VoteEnding | None) -> None:
        content = vote_text(vote, tally, ending)
        extra: dict[str, Any] = {}
        if ending is not None:
            extra["view"] = None  # the buttons go
            interaction = self.origins.pop(vote.id, None)
        else:
            interaction = self.origins.get(vote.id)
        if interaction is not None:
            try:
                await interaction.edit_original_response(
                    content=content, allowed_mentions=NO_MENTIONS, **extra
                )
                return
            except discord.HTTPException as error:
                log.info("Vote %d: editing through the interaction failed (%s)", vote.id, error)
        if vote.message_id is None:
            return
        channel = self.bot.get_partial_messageable(vote.channel_id, guild_id=vote.guild_id)
        try:
            await channel.get_partial_message(vote.message_id).edit(
                content=content, allowed_mentions=NO_MENTIONS, **extra
            )
        except discord.HTTPException as error:
            log.warning("Could not update vote %d in its channel: %s", vote.id, error)


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=re.compile(r"vote:(?P<vote>[0-9]{1,19}):(?P<choice>yes|no)"),
):
    """Yes or No on one vote. The vote id is outside input: the service checks it is running in
    this guild and that the presser may control the shocker."""

    def __init__(self, vote_id: int, yes: bool) -> None:
        super().__init__(
            discord.ui.Button(
                label="Yes" if yes else "No",
                emoji="✅" if yes else "❌",
                style=discord.ButtonStyle.success if yes else discord.ButtonStyle.danger,
                custom_id=f"vote:{vote_id}:{'yes' if yes else 'no'}",
            )
        )
        self.vote_id = vote_id
        self.yes = yes

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> VoteButton:
        return cls(int(match["vote"]), match["choice"] == "yes")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            cog = interaction.client.get_cog(PlayCog.__cog_name__)
            if not isinstance(cog, PlayCog):
                raise UserError("Votes are not available right now.")
            tally = await cog.votes.cast(
                self.vote_id,
                guild_id=_guild_id(interaction),
                member_id=interaction.user.id,
                role_ids=member_role_ids(interaction.user),
                yes=self.yes,
            )
            choice = "✅ Yes" if self.yes else "❌ No"
            await reply(
                interaction,
                f"You voted {choice}. So far: ✅ Yes {tally.yes} · ❌ No {tally.no}. "
                "You can change your vote until it ends.",
            )
        except Exception as error:
            await report_component_error(interaction, error, "A vote")


def vote_view(vote_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(vote_id, True))
    view.add_item(VoteButton(vote_id, False))
    return view


class PlayCog(commands.Cog):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.control = bot.control
        self.board = DiscordVoteBoard(bot)
        self.votes = VoteService(
            bot.storage, bot.control, bot.scheduler, bot.hubs, self.board, bot.members
        )
        self.rng = random.Random()

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(VoteButton)
        armed = await self.votes.load()
        if armed:
            log.info("Re-armed %d running votes", armed)

    async def cog_unload(self) -> None:
        await self.votes.close()
        self.bot.remove_dynamic_items(VoteButton)

    # -- /vote ----------------------------------------------------------------------------------

    @app_commands.command(name="vote", description="Let the channel vote on a control")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="A shocker you may control",
        kind="What to send if Yes wins",
        intensity="Intensity in percent",
        duration="Duration in seconds",
        seconds=f"How long the vote lasts (default {DEFAULT_VOTE_SECONDS})",
    )
    @app_commands.rename(kind="type")
    @app_commands.choices(kind=KIND_CHOICES)
    async def vote(
        self,
        interaction: Interaction,
        shocker: VoteShocker,
        kind: str,
        intensity: Percent,
        duration: Seconds,
        seconds: VoteSeconds = DEFAULT_VOTE_SECONDS,
    ) -> None:
        guild_id = _guild_id(interaction)
        control_kind = kind_of(kind)
        check_percent(intensity, option="intensity")
        duration_ms = seconds_to_ms(
            duration, option="duration", minimum_ms=MIN_DURATION_MS, maximum_ms=MAX_DURATION_MS
        )
        lasts = self.votes.check_seconds(seconds)
        sender = sender_of(interaction)
        ((share, access),) = await self.control.access(
            [shocker], guild_id=guild_id, member_id=sender.member_id, role_ids=sender.role_ids
        )
        refusal = start_refusal(access, control_kind)
        if refusal is not None:
            raise UserError(refusal)
        channel_id = interaction.channel_id
        if channel_id is None:
            raise UserError("Votes need a channel to be posted in.")
        running = await self.votes.open(
            NewVote(
                guild_id=guild_id,
                channel_id=channel_id,
                shocker_id=share.shocker_id,
                shocker_name=share.shocker_name,
                wearer_id=share.wearer_id,
                starter_id=sender.member_id,
                starter_name=sender.display_name,
                starter_role_ids=sender.role_ids,
                control_type=control_kind,
                intensity=intensity,
                duration_ms=duration_ms,
                shown_intensity=min(intensity, access.max_intensity),
                shown_duration_ms=min(duration_ms, access.max_duration_ms),
                ends_at=time.time() + lasts,
            )
        )
        vote = running.vote
        try:
            response = await interaction.response.send_message(
                vote_text(vote, Tally(), None),
                view=vote_view(vote.id),
                allowed_mentions=NO_MENTIONS,
            )
            message = response.resource
            message_id = (
                message.id
                if isinstance(message, discord.InteractionMessage)
                else (await interaction.original_response()).id
            )
        except BaseException:
            await self.votes.discard(running)
            raise
        self.board.origins[vote.id] = interaction
        await self.votes.posted(running, message_id)

    # -- /roulette ------------------------------------------------------------------------------

    @app_commands.command(
        name="roulette", description="Send a random control to a random shocker you may use"
    )
    @app_commands.guild_only()
    @app_commands.describe(kind="What to send (default shock)")
    @app_commands.rename(kind="type")
    @app_commands.choices(kind=KIND_CHOICES)
    async def roulette(
        self,
        interaction: Interaction,
        kind: str = "shock",
    ) -> None:
        guild_id = _guild_id(interaction)
        control_kind = kind_of(kind)
        sender = sender_of(interaction)
        shares = await self.storage.shares.in_guild(guild_id)
        accesses = await self.control.access(
            shares, guild_id=guild_id, member_id=sender.member_id, role_ids=sender.role_ids
        )
        chosen = pick(accesses, control_kind, self.rng)
        if chosen is None:
            raise UserError(
                f"No shocker here can take a {_NOUNS[control_kind]} from you right now (it must be "
                "shared with you here, online, not paused and not cooling down); nothing was sent."
            )
        share = chosen.item
        ticket = await self.control.submit(
            ControlOrder(
                sender=sender,
                guild_id=guild_id,
                channel_id=interaction.channel_id,
                shocker_id=share.shocker_id,
                kind=control_kind,
                intensity=chosen.intensity,
                duration_ms=chosen.duration_ms,
                origin=Origin.ROULETTE,
            )
        )
        await answer_control(interaction, ticket)
        if ticket.report.outcome not in (ControlOutcome.REFUSED, ControlOutcome.FAILED):
            await reply(
                interaction,
                f"🎲 The roulette picked **{inert(share.shocker_name)}**, worn by "
                f"<@{share.wearer_id}>.",
                ephemeral=False,
            )
