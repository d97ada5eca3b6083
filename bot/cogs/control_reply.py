"""Turning a control's ticket into the answer to an interaction (a slash command, a button press
or a modal submit alike), and its later edits.

    ticket = await bot.control.submit(order)
    await answer_control(interaction, ticket)

- A refusal goes to the member alone, at once.
- The hub usually acknowledges, and OpenShock's Log confirms, within milliseconds: then the one
  answer already says what happened. A slow hub or Log gets a public "sending…" first, well
  inside Discord's 3 s, edited later with what happened.
- A failure is told to the sender alone when it is known for the first answer. A refusal found
  when the control is decided again right before sending (the wearer paused meanwhile…) strikes
  the public "sending…" through and tells the reason to the sender alone (it may be "blocked").
- On a share in approval mode the control waits for the wearer (``AWAITING_APPROVAL``): the
  sender alone is told it was asked, and the approvals cog edits that answer with the outcome.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot.domain.decision import Allowed, ControlDecision
from bot.domain.render import control_summary
from bot.domain.text import inert
from bot.services.control import ControlOutcome, ControlReport, ControlTicket
from bot.storage.models import Share
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

# How long the first answer waits for the hub's acknowledgement and OpenShock's Log before it
# is sent as "sending…" / "waiting for OpenShock" (and edited later).
ANSWER_WAIT = 1.0

_TOLD_ALONE = (ControlOutcome.FAILED, ControlOutcome.REFUSED)


async def answer_control(
    interaction: discord.Interaction[OpenShockBot],
    ticket: ControlTicket,
    *,
    private: bool = False,
) -> None:
    """Answer the interaction with what became of the control, editing the answer until the
    outcome is final. Returns once it is. ``private``: every answer goes to the member alone (a
    panel's button press: the panel itself shows the last control to everyone)."""
    share = ticket.share
    if ticket.refused or share is None:
        reason = ticket.report.reason or "This shocker is not available here."
        log.info("Control by %s refused: %s", interaction.user.id, reason)
        await reply(interaction, reason)
        return
    target = await target_label(interaction, share)
    summary = summarize(ticket.decision, target)
    if ticket.report.outcome is ControlOutcome.AWAITING_APPROVAL:
        await _asked_for_approval(interaction, ticket.report, summary)
        return
    report = await ticket.settled(within=ANSWER_WAIT)
    summarized = ticket.decision
    if report.decision is not summarized:  # decided again before sending
        summarized, summary = report.decision, summarize(report.decision, target, summary)
    if report.outcome is ControlOutcome.SENDING:
        await reply(interaction, f"{summary} · sending…", ephemeral=private)
    else:
        await reply(
            interaction,
            result_text(summary, report),
            ephemeral=private or report.outcome in _TOLD_ALONE,
        )
    while not report.outcome.final:
        report = await ticket.changed(report)
        if report.decision is not summarized:
            summarized, summary = report.decision, summarize(report.decision, target, summary)
        if report.outcome is ControlOutcome.REFUSED:
            # The public "sending…" must not carry the reason: that goes to the sender alone.
            await _edit(interaction, f"~~{summary}~~ · not sent")
            await reply(interaction, f"✖ Not sent: {report.reason}")
            return
        await _edit(interaction, result_text(summary, report))


async def _asked_for_approval(
    interaction: discord.Interaction[OpenShockBot], report: ControlReport, summary: str
) -> None:
    """Nothing was sent: the wearer was asked. The answer's interaction is kept with the request
    (after the answer exists) so that the approvals cog can edit it with what the wearer chose."""
    asked = f"⏳ Asked the wearer for approval: {summary}."
    await reply(
        interaction,
        f"{asked} Nothing is sent unless they approve it in time; "
        "this message will say what they chose.",
    )
    if report.approval_id is None:
        return
    if not await interaction.client.storage.approvals.attach_reply(
        report.approval_id, interaction.application_id, interaction.token
    ):
        # Answered or ended before this reply existed, so it could not be edited then.
        await _edit(
            interaction,
            f"{asked} It was answered or ended already: the request in the channel says how.",
        )


UNNAMED_MEMBER = "a member"


async def wearer_name(interaction: discord.Interaction[OpenShockBot], share: Share) -> str:
    """The wearer's display name in the guild, for text that cannot show a mention
    (autocomplete choices): from discord.py's cache or the bot's member directory (fetched
    when unknown), never the OpenShock account name, which only its owner sees."""
    guild = interaction.guild
    member = guild.get_member(share.wearer_id) if guild is not None else None
    if member is not None:
        return member.display_name
    name = await interaction.client.members.display_name(share.guild_id, share.wearer_id)
    return name or UNNAMED_MEMBER


async def target_label(interaction: discord.Interaction[OpenShockBot], share: Share) -> str:
    """`Collar (<@wearer>)`: the shocker's name made inert, the wearer by mention (public
    replies are sent with no mentions allowed, so nobody is pinged)."""
    return f"{inert(share.shocker_name)} (<@{share.wearer_id}>)"


def summarize(decision: ControlDecision | None, target: str, fallback: str = "") -> str:
    """`⚡ Shock 25 % · 1.5 s → Collar (Alice) (capped at 25 % (wearer's limit))`: what was (or
    would have been) sent. The decision may have been made again just before sending."""
    if not isinstance(decision, Allowed):
        return fallback
    summary = control_summary(decision.type, decision.intensity, decision.duration_ms, target)
    if decision.capped_notes:
        summary += f" ({'; '.join(decision.capped_notes)})"
    return summary


def result_text(summary: str, report: ControlReport) -> str:
    outcome = report.outcome
    if outcome in _TOLD_ALONE:
        return f"~~{summary}~~\n✖ Not sent: {report.reason}"
    if outcome is ControlOutcome.CONFIRMED:
        return f"{summary} · ✅ delivered"
    if outcome is ControlOutcome.UNCERTAIN:
        text = f"{summary} · ⚠️ sent, but OpenShock did not confirm it"
        return f"{text} ({report.reason})" if report.reason else text
    if outcome is ControlOutcome.NOT_CONFIRMED:
        return f"{summary} · ⚠️ sent, but OpenShock did not confirm it"
    if outcome is ControlOutcome.CONFIRMING:
        return f"{summary} · sent, waiting for OpenShock…"
    if outcome is ControlOutcome.SENDING:
        return f"{summary} · sending…"
    return f"{summary} · sent (OpenShock confirms controls to the shocker's owner only)"


async def _edit(interaction: discord.Interaction[OpenShockBot], content: str) -> None:
    try:
        await interaction.edit_original_response(
            content=content, allowed_mentions=discord.AllowedMentions.none()
        )
    except discord.HTTPException:
        log.warning("Could not update the reply of a control", exc_info=True)
