"""/panel: a public message with buttons (and, optionally, reactions) that control one shared
shocker, each press a control by the member who pressed, through the one control pipeline.

A press carries only `panel:<panel id>:<action>`; the panel, its share and the share's caps are
read from storage at the press, so panels survive restarts and a forged id is refused. The
panel's message shows the last control and the shocker's state, edited by one throttled editor
(`panel_view.PanelEditor`) however fast people press.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import (
    check_percent,
    is_admin,
    member_role_ids,
    report_component_error,
    seconds_to_ms,
    sender_of,
)
from bot.cogs.control_reply import answer_control
from bot.cogs.feed import bot_permissions_in, missing_permissions
from bot.cogs.options import SharedShocker
from bot.cogs.panel_view import PanelEditor, panel_buttons, panel_embed
from bot.domain.controls import MAX_DURATION_MS, MIN_DURATION_MS, ControlKind
from bot.domain.panels import REACTIONS, PanelAction, preset, reaction_action
from bot.domain.text import inert
from bot.errors import UserError
from bot.openshock.models import DeviceStatusChanged, HubEvent
from bot.services.background import BackgroundTasks
from bot.services.control import ControlOrder, ControlOutcome, ControlTicket, Origin, Sender
from bot.services.halts import Halt
from bot.services.hub_listener import HubListener
from bot.storage.models import Share
from bot.storage.panels import PanelState
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

FORGED = "That button is not from a panel of this server."
CLOSED = "This panel no longer works: {reason}."
ENDED = "the shocker is no longer shared here"

# What a panel with reactions needs besides view, send and embed (feed.REQUIRED_PERMISSIONS).
REACTION_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("add_reactions", "Add Reactions"),
    ("read_message_history", "Read Message History"),
)

_MODAL_TYPES = {
    "shock": (ControlKind.SHOCK, "allow_shock"),
    "vibrate": (ControlKind.VIBRATE, "allow_vibrate"),
    "sound": (ControlKind.SOUND, "allow_sound"),
}


class CustomControlModal(discord.ui.Modal, title="Custom control"):
    """Custom…: a type, an intensity and a duration, all checked again when submitted."""

    def __init__(self, cog: PanelCog, panel_id: int, share: Share) -> None:
        super().__init__(timeout=600)
        self.cog = cog
        self.panel_id = panel_id
        options = [
            discord.SelectOption(label=name.capitalize(), value=name)
            for name, (_, allowed) in _MODAL_TYPES.items()
            if getattr(share, allowed)
        ] or [discord.SelectOption(label="Shock", value="shock")]
        self.kind: discord.ui.Select[Any] = discord.ui.Select(options=options)
        self.intensity: discord.ui.TextInput[Any] = discord.ui.TextInput(
            placeholder=f"1 to 100 (this shocker's cap: {share.max_intensity})", max_length=3
        )
        self.duration: discord.ui.TextInput[Any] = discord.ui.TextInput(
            placeholder=f"e.g. 1.5 (this shocker's cap: {share.max_duration_ms / 1000:g})",
            max_length=6,
        )
        self.add_item(discord.ui.Label(text="Type", component=self.kind))
        self.add_item(discord.ui.Label(text="Intensity (%)", component=self.intensity))
        self.add_item(discord.ui.Label(text="Duration (seconds)", component=self.duration))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        chosen = self.kind.values[0] if self.kind.values else ""
        if chosen not in _MODAL_TYPES:
            raise UserError("Pick shock, vibrate or sound.")
        kind = _MODAL_TYPES[chosen][0]
        intensity = _whole_number(self.intensity.value, option="intensity")
        check_percent(intensity, option="intensity")
        duration_ms = seconds_to_ms(
            _number(self.duration.value, option="duration"),
            option="duration",
            minimum_ms=MIN_DURATION_MS,
            maximum_ms=MAX_DURATION_MS,
        )
        await self.cog.custom(interaction, self.panel_id, kind, intensity, duration_ms)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await report_component_error(interaction, error, "A custom panel control")


def _whole_number(text: str, *, option: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"`{option}` must be a whole number.") from None


def _number(text: str, *, option: str) -> float:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        raise UserError(f"`{option}` must be a number of seconds.") from None


class PanelCog(commands.Cog):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.editor = PanelEditor(bot)
        self._tasks = BackgroundTasks("panel")
        self._listener = HubListener(self._on_hub_event, _device_changes)

    async def cog_load(self) -> None:
        from bot.cogs.panel_view import PanelButton

        self.bot.add_dynamic_items(PanelButton)
        self.bot.control.halts.subscribe(self._on_halt)
        self.bot.control.halts.subscribe_resumes(self._on_halt)
        self.bot.hub_listeners.append(self._listener)

    async def cog_unload(self) -> None:
        from bot.cogs.panel_view import PanelButton

        self.bot.remove_dynamic_items(PanelButton)
        self.bot.control.halts.unsubscribe(self._on_halt)
        self.bot.control.halts.unsubscribe_resumes(self._on_halt)
        if self._listener in self.bot.hub_listeners:
            self.bot.hub_listeners.remove(self._listener)
        await self._tasks.close()
        await self.editor.close()

    # -- /panel -----------------------------------------------------------------------------------

    @app_commands.command(name="panel", description="Post buttons that control a shocker")
    @app_commands.guild_only()
    @app_commands.describe(
        shocker="A shocker shared here (yours, or any if you manage the server)",
        reactions="Also control with ⚡ 〰️ 🔊 reactions (default no)",
    )
    async def panel(
        self,
        interaction: discord.Interaction[OpenShockBot],
        shocker: SharedShocker,
        reactions: bool = False,
    ) -> None:
        if interaction.guild_id is None or interaction.channel_id is None:
            raise app_commands.NoPrivateMessage()
        share = shocker
        if share.wearer_id != interaction.user.id and not is_admin(interaction):
            raise UserError(
                f"Only the wearer of **{inert(share.shocker_name)}** or a member with Manage "
                "Server can post its panel."
            )
        # What Discord says the bot may do in this channel, sent with the interaction.
        permissions = interaction.app_permissions
        missing = missing_permissions(permissions)
        if reactions:
            missing += [
                label for name, label in REACTION_PERMISSIONS if not getattr(permissions, name)
            ]
        if missing:
            raise UserError(
                f"I can't post a panel in this channel: I need the {' and '.join(missing)} "
                "permission here."
            )
        await interaction.response.defer(ephemeral=True, thinking=True)
        panel = await self.storage.panels.create(
            channel_id=interaction.channel_id,
            share=share,
            reactions=reactions,
            created_by=interaction.user.id,
        )
        state = PanelState(panel, share, wearer_paused=False)
        state = await self.storage.panels.state(panel.id) or state
        channel = self.bot.get_partial_messageable(
            interaction.channel_id, guild_id=interaction.guild_id
        )
        try:
            message = await channel.send(
                embed=panel_embed(state, self.bot.control.facts.share_online(share)),
                view=panel_buttons(panel.id),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as error:
            await self.storage.panels.delete(panel.id)
            log.warning("Could not post panel %d: %s", panel.id, error)
            raise UserError(
                f"I could not post the panel here ({error.text or error.status})."
            ) from None
        await self.storage.panels.set_message(panel.id, message.id)
        note = ""
        if reactions:
            try:
                for emoji in REACTIONS:
                    await message.add_reaction(emoji)
            except discord.HTTPException as error:
                log.warning("Could not add the reactions of panel %d: %s", panel.id, error)
                note = " I could not add its reactions; members can still add ⚡ 〰️ 🔊 themselves."
        log.info(
            "Panel %d for shocker %s posted in channel %d by %d",
            panel.id,
            share.shocker_id,
            interaction.channel_id,
            interaction.user.id,
        )
        await reply(
            interaction,
            f"Posted the panel of **{inert(share.shocker_name)}**: {message.jump_url}.{note}",
        )

    # -- presses --------------------------------------------------------------------------------

    async def press(
        self, interaction: discord.Interaction[Any], parsed: tuple[int, PanelAction] | None
    ) -> None:
        """A panel button was pressed: a control by the presser, answered to them alone."""
        try:
            state = await self._usable_panel(interaction, parsed)
            assert parsed is not None and state.share is not None
            action = parsed[1]
            if action is PanelAction.CUSTOM:
                await interaction.response.send_modal(
                    CustomControlModal(self, state.panel.id, state.share)
                )
                return
            values = preset(
                action,
                max_intensity=state.share.max_intensity,
                max_duration_ms=state.share.max_duration_ms,
            )
            await self._control(
                interaction, state, values.kind, values.intensity, values.duration_ms
            )
        except Exception as error:
            await report_component_error(interaction, error, "A panel press")

    async def custom(
        self,
        interaction: discord.Interaction[Any],
        panel_id: int,
        kind: ControlKind,
        intensity: int,
        duration_ms: int,
    ) -> None:
        """Custom…'s modal was submitted: the panel is checked again, then as a press."""
        state = await self._usable_panel(interaction, (panel_id, PanelAction.CUSTOM))
        await self._control(interaction, state, kind, intensity, duration_ms)

    async def _usable_panel(
        self, interaction: discord.Interaction[Any], parsed: tuple[int, PanelAction] | None
    ) -> PanelState:
        """The pressed panel, re-checked against storage: of this guild, posted as this message,
        its share still there. Anything else is refused."""
        if parsed is None or interaction.guild_id is None:
            log.info("Malformed panel id from %s refused", interaction.user.id)
            raise UserError(FORGED)
        state = await self.storage.panels.state(parsed[0])
        message = interaction.message
        if (
            state is None
            or state.panel.guild_id != interaction.guild_id
            or (message is not None and state.panel.message_id != message.id)
        ):
            log.info("Forged panel id %s from %s refused", parsed, interaction.user.id)
            raise UserError(FORGED)
        if state.panel.closed or state.share is None:
            # Disable the buttons (again, if an edit was missed), then say so.
            self.editor.refresh(state.panel.id)
            raise UserError(CLOSED.format(reason=state.panel.closed_reason or ENDED))
        return state

    async def _control(
        self,
        interaction: discord.Interaction[Any],
        state: PanelState,
        kind: ControlKind,
        intensity: int,
        duration_ms: int,
    ) -> None:
        assert state.share is not None and interaction.guild_id is not None
        ticket = await self.bot.control.submit(
            ControlOrder(
                sender=sender_of(interaction),
                guild_id=interaction.guild_id,
                channel_id=state.panel.channel_id,  # where an approval request is posted
                shocker_id=state.share.shocker_id,
                kind=kind,
                intensity=intensity,
                duration_ms=duration_ms,
                origin=Origin.BUTTON,
            )
        )
        self.editor.note(state.panel, ticket)
        await answer_control(interaction, ticket, private=True)

    # -- reactions ------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, event: discord.RawReactionActionEvent) -> None:
        me = self.bot.user
        if event.guild_id is None or me is None or event.user_id == me.id:
            return
        action = reaction_action(event.emoji.name or "") if event.emoji.id is None else None
        if action is None or (event.member is not None and event.member.bot):
            return
        state = await self.storage.panels.state_by_message(event.message_id)
        if state is None or not state.panel.reactions or state.panel.guild_id != event.guild_id:
            return
        sender = await self._reaction_sender(event)
        if sender is None:
            return
        self._tasks.spawn(self._remove_reaction(event), "panel-reaction-removal")
        if state.panel.closed or state.share is None:
            self.editor.refresh(state.panel.id)
            await self._tell(
                event, action, CLOSED.format(reason=state.panel.closed_reason or ENDED)
            )
            return
        values = preset(
            action,
            max_intensity=state.share.max_intensity,
            max_duration_ms=state.share.max_duration_ms,
        )
        ticket = await self.bot.control.submit(
            ControlOrder(
                sender=sender,
                guild_id=event.guild_id,
                channel_id=event.channel_id,
                shocker_id=state.share.shocker_id,
                kind=values.kind,
                intensity=values.intensity,
                duration_ms=values.duration_ms,
                origin=Origin.REACTION,
            )
        )
        self.editor.note(state.panel, ticket)
        await self._tell_outcome(event, action, ticket)

    async def _reaction_sender(self, event: discord.RawReactionActionEvent) -> Sender | None:
        """The member who reacted, with their roles: from the event (it carries the member),
        else from Discord."""
        member = event.member
        if member is not None:
            return Sender(member.id, frozenset(member_role_ids(member)), member.display_name)
        assert event.guild_id is not None
        try:
            data: dict[str, Any] = dict(
                await self.bot.http.get_member(event.guild_id, event.user_id)
            )
        except discord.HTTPException as error:
            log.warning("Reaction by %d ignored: member not found (%s)", event.user_id, error)
            return None
        user = data.get("user") or {}
        if user.get("bot"):
            return None
        name = data.get("nick") or user.get("global_name") or user.get("username") or "?"
        return Sender(event.user_id, frozenset(int(r) for r in data.get("roles", [])), str(name))

    async def _remove_reaction(self, event: discord.RawReactionActionEvent) -> None:
        assert event.guild_id is not None
        try:
            permissions = await bot_permissions_in(self.bot, event.guild_id, event.channel_id)
            if not permissions.manage_messages:
                return
            await self.bot.http.remove_reaction(
                event.channel_id, event.message_id, str(event.emoji), event.user_id
            )
        except (discord.HTTPException, UserError) as error:
            log.info("Could not remove a reaction on panel message %d: %s", event.message_id, error)

    async def _tell_outcome(
        self, event: discord.RawReactionActionEvent, action: PanelAction, ticket: ControlTicket
    ) -> None:
        report = await ticket.outcome()
        if report.outcome in (ControlOutcome.REFUSED, ControlOutcome.FAILED):
            await self._tell(event, action, report.reason or "it could not be sent.")

    async def _tell(
        self, event: discord.RawReactionActionEvent, action: PanelAction, reason: str
    ) -> None:
        """A refusal reaches the member by DM, if they accept DMs; a failed DM is only logged."""
        link = (
            f"https://discord.com/channels/{event.guild_id}/{event.channel_id}/{event.message_id}"
        )
        text = f"Your {action.label} reaction on {link} was not sent: {reason}"
        try:
            dm = await self.bot.create_dm(discord.Object(id=event.user_id))
            await dm.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            log.info("Could not DM %d about a refused reaction: %s", event.user_id, error)

    # -- halts ----------------------------------------------------------------------------------

    def _on_halt(self, halt: Halt) -> None:
        """A pause, an unshare, an unlink or /panic, or a resume: the panels of that shocker or
        wearer show it (a panel whose share ended is closed and its buttons disabled)."""
        if halt.reason == "stop":
            return
        self._tasks.spawn(self._refresh_matching(halt), "panel-halt")

    async def _refresh_matching(self, halt: Halt) -> None:
        for panel in await self.storage.panels.open_matching(
            guild_id=halt.guild_id, wearer_id=halt.wearer_id, shocker_id=halt.shocker_id
        ):
            self.editor.refresh(panel.id)

    async def _on_hub_event(self, account_id: int, event: HubEvent) -> None:
        """A device went online or offline: the panels of that account's shockers show it."""
        if _device_changes(account_id, event):
            self._tasks.spawn(self._refresh_account(account_id), "panel-device")

    async def _refresh_account(self, account_id: int) -> None:
        for panel in await self.storage.panels.open_of_account(account_id):
            self.editor.refresh(panel.id)


def _device_changes(account_id: int, event: HubEvent) -> bool:
    return isinstance(event, DeviceStatusChanged) and event.is_change
