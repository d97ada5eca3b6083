"""A control panel's message: its embed, its persistent buttons, and the one throttled editor
that keeps every panel's message up to date.

The buttons are `discord.ui.DynamicItem`s: their custom id (`panel:<panel id>:<action>`) is all
a press carries, and the panel cog reads everything else from storage at the press. No view is
kept per panel; a restart changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import discord

from bot.domain.controls import format_duration
from bot.domain.decision import Allowed, ControlDecision
from bot.domain.panels import PRESET_DURATION_MS, REACTIONS, PanelAction
from bot.domain.render import control_icon, type_name
from bot.domain.text import inert
from bot.services.control import ControlOutcome, ControlTicket
from bot.storage.panels import Panel, PanelState

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

# A panel's message is edited at most once per this many seconds, however fast people press.
EDIT_INTERVAL = 3.0
# How long a new control waits for its outcome before the panel shows it as "sending…".
SETTLE_WAIT = 1.0

CUSTOM_ID_PREFIX = "panel:"
# Anything starting with the prefix is ours: a malformed id still gets a refusal, not silence.
CUSTOM_ID_TEMPLATE = re.compile(r"panel:(?P<rest>.{0,94})")
_CUSTOM_ID = re.compile(r"(?P<panel>[1-9][0-9]{0,18}):(?P<action>[a-z]{1,10})")

_STYLES = {
    PanelAction.LIGHT: discord.ButtonStyle.primary,
    PanelAction.MEDIUM: discord.ButtonStyle.primary,
    PanelAction.STRONG: discord.ButtonStyle.danger,
    PanelAction.VIBRATE: discord.ButtonStyle.secondary,
    PanelAction.SOUND: discord.ButtonStyle.secondary,
    PanelAction.STOP: discord.ButtonStyle.success,
    PanelAction.CUSTOM: discord.ButtonStyle.secondary,
}
_ROWS = {
    PanelAction.LIGHT: 0,
    PanelAction.MEDIUM: 0,
    PanelAction.STRONG: 0,
    PanelAction.VIBRATE: 1,
    PanelAction.SOUND: 1,
    PanelAction.STOP: 1,
    PanelAction.CUSTOM: 1,
}

OUTCOME_TEXT = {
    ControlOutcome.SENDING: "sending…",
    ControlOutcome.CONFIRMING: "sent, waiting for OpenShock…",
    ControlOutcome.SENT: "sent",
    ControlOutcome.CONFIRMED: "✅ delivered",
    ControlOutcome.NOT_CONFIRMED: "⚠️ sent, not confirmed",
    ControlOutcome.UNCERTAIN: "⚠️ sent, not confirmed",
    ControlOutcome.FAILED: "✖ not sent",
    ControlOutcome.REFUSED: "✖ not sent",
}


def outcome_text(outcome: str) -> str:
    """How the panel says what became of its last control; an outcome this module does not
    name (a newer one of the pipeline's, such as waiting for the wearer's approval) in words."""
    try:
        return OUTCOME_TEXT[ControlOutcome(outcome)]
    except (ValueError, KeyError):
        return outcome.replace("_", " ")


def custom_id(panel_id: int, action: PanelAction) -> str:
    return f"{CUSTOM_ID_PREFIX}{panel_id}:{action.value}"


def parse_custom_id(rest: str) -> tuple[int, PanelAction] | None:
    """The panel id and action of a custom id's part after `panel:`; None when malformed.
    A parsed id is outside input all the same: the press checks it against storage."""
    match = _CUSTOM_ID.fullmatch(rest)
    if match is None:
        return None
    try:
        return int(match.group("panel")), PanelAction(match.group("action"))
    except ValueError:
        return None


class PanelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID_TEMPLATE):
    """One button of a panel. `from_custom_id` never fails (its errors would be dropped
    silently): a malformed id is carried to the press handler, which refuses it."""

    def __init__(
        self,
        panel_id: int,
        action: PanelAction,
        *,
        disabled: bool = False,
        parsed: tuple[int, PanelAction] | None = None,
        raw_id: str | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=action.label,
                style=_STYLES[action],
                custom_id=raw_id or custom_id(panel_id, action),
                disabled=disabled,
                row=_ROWS[action],
            )
        )
        self.parsed = parsed if raw_id is not None else (panel_id, action)

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> PanelButton:
        parsed = parse_custom_id(match.group("rest"))
        panel_id, action = parsed or (0, PanelAction.CUSTOM)
        return cls(panel_id, action, parsed=parsed, raw_id=match.group(0))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        from bot.cogs.panel import PanelCog

        cog = interaction.client.get_cog(PanelCog.__cog_name__)
        if isinstance(cog, PanelCog):
            await cog.press(interaction, self.parsed)


def panel_buttons(panel_id: int, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in PanelAction:
        view.add_item(PanelButton(panel_id, action, disabled=disabled))
    return view


# -- the embed ----------------------------------------------------------------------------------


def control_head(decision: ControlDecision | None) -> str | None:
    """`⚡ Shock 6 % · 1 s`: what was sent, without its target (the panel is about one shocker)."""
    if not isinstance(decision, Allowed):
        return None
    head = f"{control_icon(decision.type)} {type_name(decision.type)}"
    if decision.intensity and decision.type != 0:
        head += f" {decision.intensity} % · {format_duration(decision.duration_ms)}"
    return head


def state_text(state: PanelState, online: bool | None) -> str:
    if state.share is None:
        return "closed"
    parts = [
        "❔ online state unknown" if online is None else "🟢 online" if online else "⚫ offline"
    ]
    parts.append("⏸️ paused: only Stop works" if state.paused else "▶️ active")
    return " · ".join(parts)


def panel_embed(state: PanelState, online: bool | None) -> discord.Embed:
    panel, share = state.panel, state.share
    name = inert(share.shocker_name if share is not None else panel.shocker_name)
    closed = panel.closed or share is None
    embed = discord.Embed(
        title=f"Control panel · {name}",
        colour=discord.Colour.dark_grey() if closed else discord.Colour.blurple(),
    )
    if closed:
        reason = panel.closed_reason or "the shocker is no longer shared here"
        embed.description = f"Worn by <@{panel.wearer_id}>. This panel is closed: {reason}."
    else:
        assert share is not None
        embed.description = (
            f"Worn by <@{panel.wearer_id}>. Each button sends a control **as you**: your "
            "permissions, caps and cooldowns apply, and only you see the answer."
        )
        embed.add_field(name="State", value=state_text(state, online), inline=False)
        types = [
            kind
            for kind, allowed in (
                ("shock", share.allow_shock),
                ("vibrate", share.allow_vibrate),
                ("sound", share.allow_sound),
            )
            if allowed
        ]
        embed.add_field(
            name="Caps",
            value=f"≤ {share.max_intensity} % · ≤ {format_duration(share.max_duration_ms)} · "
            f"{', '.join(types) or 'stop only'}",
            inline=False,
        )
    if panel.last_member_id is not None and panel.last_summary:
        outcome = outcome_text(panel.last_outcome or "sent")
        when = f" <t:{int(panel.last_at)}:R>" if panel.last_at else ""
        embed.add_field(
            name="Last control",
            value=f"<@{panel.last_member_id}> {panel.last_summary} · {outcome}{when}",
            inline=False,
        )
    elif not closed:
        embed.add_field(name="Last control", value="None yet", inline=False)
    if not closed:
        footer = (
            "Light, Medium, Strong: 25, 50, 100 % of the cap for "
            f"{format_duration(PRESET_DURATION_MS)} · Vibrate 50 % · Sound · Stop · Custom…"
        )
        if panel.reactions:
            footer += " · Reactions: " + " ".join(
                f"{emoji} {action.label}" for emoji, action in REACTIONS.items()
            )
        embed.set_footer(text=footer)
    return embed


# -- the editor ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastControl:
    member_id: int
    summary: str
    outcome: ControlOutcome
    at: float
    ticket: ControlTicket = field(compare=False)


@dataclass
class _Slot:
    """One panel's pending edit: at most one task per panel, edits coalesced."""

    dirty: bool = False
    task: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    last_edit: float = -math.inf
    last: LastControl | None = None  # what the panel is to show
    pending: LastControl | None = None  # the newest control, until its outcome is known
    written: LastControl | None = None


class PanelEditor:
    """Edits panel messages, each at most once per `interval` seconds: a burst of presses
    becomes one edit now and one when the interval is over, showing the latest of them."""

    def __init__(self, bot: OpenShockBot, *, interval: float = EDIT_INTERVAL) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.interval = interval
        self._slots: dict[int, _Slot] = {}
        self.edits = 0

    def note(self, panel: Panel, ticket: ControlTicket) -> None:
        """A control sent from the panel: show it (and its outcome once known)."""
        if ticket.refused:
            return  # told to the member alone; the panel shows what was sent
        head = control_head(ticket.decision)
        if head is None:
            return
        slot = self._slots.setdefault(panel.id, _Slot())
        last = LastControl(
            ticket.order.sender.member_id, head, ticket.report.outcome, time.time(), ticket
        )
        if last.outcome.final:
            slot.last = last
            self._schedule(panel.id, slot)
            return
        # Shown once its outcome is known (usually within milliseconds): one edit, not two.
        slot.pending = last
        if slot.watcher is None or slot.watcher.done():
            slot.watcher = asyncio.create_task(
                self._watch(panel.id, slot), name=f"panel-watch-{panel.id}"
            )

    def refresh(self, panel_id: int) -> None:
        """Show the panel's state again (a pause, an unshare, an unlink)."""
        self._schedule(panel_id, self._slots.setdefault(panel_id, _Slot()))

    async def close(self) -> None:
        tasks = [
            task
            for slot in self._slots.values()
            for task in (slot.task, slot.watcher)
            if task is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._slots.clear()

    async def idle(self) -> None:
        """Wait until no edit is pending (for tests and shutdown)."""
        while pending := [
            task
            for slot in self._slots.values()
            for task in (slot.task, slot.watcher)
            if task is not None and not task.done()
        ]:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- inside -----------------------------------------------------------------------------

    def _schedule(self, panel_id: int, slot: _Slot) -> None:
        slot.dirty = True
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(
                self._run(panel_id, slot), name=f"panel-edit-{panel_id}"
            )

    async def _watch(self, panel_id: int, slot: _Slot) -> None:
        """Show the newest control of the panel as soon as its outcome is known (or as
        "sending…" after `SETTLE_WAIT`); under a steady stream of presses, each newest one in
        turn, so the panel keeps moving (the edits themselves are coalesced by `_run`)."""
        while (pending := slot.pending) is not None:
            report = await pending.ticket.settled(within=SETTLE_WAIT)
            head = control_head(report.decision) or pending.summary
            slot.last = replace(pending, outcome=report.outcome, summary=head)
            self._schedule(panel_id, slot)
            if slot.pending is pending and report.outcome.final:
                slot.pending = None

    async def _run(self, panel_id: int, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = slot.last_edit + self.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not slot.dirty:
                break
            slot.dirty = False
            try:
                await self._edit(panel_id, slot)
            except Exception:
                log.exception("Updating panel %d failed", panel_id)
            slot.last_edit = loop.time()
        if slot.watcher is None or slot.watcher.done():
            self._slots.pop(panel_id, None)

    async def _edit(self, panel_id: int, slot: _Slot) -> None:
        last = slot.last
        if last is not None and last != slot.written:
            await self.storage.panels.record_last(
                panel_id,
                member_id=last.member_id,
                summary=last.summary,
                outcome=last.outcome.value,
                at=last.at,
            )
            slot.written = last
        state = await self.storage.panels.state(panel_id)
        if state is None or state.panel.message_id is None:
            return
        panel, message_id = state.panel, state.panel.message_id
        if state.share is None and not panel.closed:
            reason = "the shocker is no longer shared here"
            await self.storage.panels.close(panel_id, reason)
            state = replace(state, panel=panel.model_copy(update={"closed_reason": reason}))
            panel = state.panel
            log.info("Panel %d closed: %s", panel_id, reason)
        closed = panel.closed or state.share is None
        online = self.bot.control.facts.share_online(state.share) if state.share else None
        message = self.bot.get_partial_messageable(
            panel.channel_id, guild_id=panel.guild_id
        ).get_partial_message(message_id)
        try:
            await message.edit(
                embed=panel_embed(state, online),
                view=panel_buttons(panel_id, disabled=closed),
                allowed_mentions=discord.AllowedMentions.none(),
            )
            self.edits += 1
        except discord.NotFound:
            # The message was deleted: nothing will show this panel again.
            await self.storage.panels.close(panel_id, "the panel's message was deleted")
            log.info("Panel %d closed: its message was deleted", panel_id)
        except discord.HTTPException as error:
            log.warning("Could not update panel %d: %s", panel_id, error)
