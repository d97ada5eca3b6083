"""Approval mode, the Discord side: the request message, the wearer's Approve / Deny, expiry.

The control pipeline holds a control back on a share in approval mode, stores the request and
tells this cog (`ControlService.approval_listeners`, synchronously). The cog then

- posts the request in the channel the control came from, pinging the wearer and nobody else,
  with **Approve** and **Deny** buttons (persistent: `ApprovalButton`, a `DynamicItem`);
- ends it after `ControlService.approval_timeout` seconds (a scheduler timer): the message says
  so and nothing is sent;
- on Approve, submits the control again as the requester with ``Origin.APPROVAL``: decided with
  the facts of that moment and the requester's roles read from Discord right then (gone from the
  server, or Discord not reachable: nothing is sent), and guarded (``still_wanted``) by the
  request still being open;
- ends every open request a halt covers (Stop, pause, /panic, unshare, unlink) at once;
- edits the requester's answer (kept by `answer_control`) with what became of it.

Requests are rows in `storage.approvals`: a restart re-arms the open ones and ends those that
expired meanwhile. A request a halt ended is settled (stored as ended) first thing, and a
shutdown waits (up to `close_wait`) for those clean-ups, so it never comes back after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import discord
from discord.ext import commands

from bot.cogs.control_reply import ANSWER_WAIT, result_text, summarize
from bot.domain.controls import ControlKind
from bot.domain.text import inert
from bot.services.background import BackgroundTasks
from bot.services.control import ControlOrder, ControlOutcome, ControlReport, Origin, Sender
from bot.services.halts import Halt
from bot.services.members import MemberUnknown, NotAMember
from bot.storage.models import ApprovalRequest, ApprovalState
from bot.tree import APOLOGY, reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

NO_LONGER_OPEN = "This request is no longer open."
CLOSE_WAIT = 5.0  # seconds a shutdown waits for ended requests to be stored and told
ROLES_TIMEOUT = 1.5  # seconds for reading the requester's roles (the press has 3 s to answer)
_NOT_SENT = (ControlOutcome.REFUSED, ControlOutcome.FAILED)
_NO_PINGS = discord.AllowedMentions.none()
# An interaction's own answer, in the webhook routes (`/webhooks/{app}/{token}/messages/@original`).
_ORIGINAL = cast(int, "@original")


def _key(request_id: int) -> tuple[str, int]:
    return ("approval", request_id)


class ApprovalButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=re.compile(r"approval:(?P<id>[0-9]{1,19}):(?P<action>approve|deny)"),
):
    """Approve or Deny on a request message; works after a restart. The id in the custom id is
    outside input: the cog re-reads the request and checks the guild and the presser."""

    def __init__(self, request_id: int, action: str) -> None:
        approve = action == "approve"
        super().__init__(
            discord.ui.Button(
                label="Approve" if approve else "Deny",
                style=discord.ButtonStyle.success if approve else discord.ButtonStyle.danger,
                custom_id=f"approval:{request_id}:{action}",
            )
        )
        self.request_id = request_id
        self.approve = approve

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls,
        interaction: discord.Interaction[OpenShockBot],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ApprovalButton:
        return cls(int(match["id"]), match["action"])

    async def callback(self, interaction: discord.Interaction[OpenShockBot]) -> None:  # type: ignore[override]
        cog = interaction.client.get_cog(ApprovalsCog.__cog_name__)
        try:
            if not isinstance(cog, ApprovalsCog):
                await reply(interaction, NO_LONGER_OPEN)
                return
            await cog.answer(interaction, self.request_id, approve=self.approve)
        except Exception:
            log.exception("Answering approval request %d failed", self.request_id)
            with contextlib.suppress(discord.HTTPException):
                await reply(interaction, APOLOGY)


@dataclass
class _Open:
    """A request waiting for the wearer (``approved`` False) or approved and being sent."""

    request: ApprovalRequest
    approved: bool = False


class ApprovalsCog(commands.Cog):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self._open: dict[int, _Open] = {}
        self._posting: dict[int, asyncio.Task[None]] = {}
        self._tasks = BackgroundTasks("approval")
        self.close_wait = CLOSE_WAIT

    # -- lifecycle ------------------------------------------------------------------------------

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ApprovalButton)
        self.bot.control.halts.subscribe(self._on_halt)
        self.bot.control.approval_listeners.append(self._on_request)
        now = time.time()
        for request in await self.storage.approvals.all():
            if request.state is not ApprovalState.PENDING:
                # Answered before the restart; whatever was sent then is in the audit trail.
                await self.storage.approvals.forget(request.id)
            elif request.expires_at <= now:
                self._tasks.spawn(
                    self._finish(request, ApprovalState.EXPIRED, _expired_texts(request))
                )
            else:
                self._open[request.id] = _Open(request)
                self._arm(request)
        if self._open:
            log.info("Re-armed %d approval requests", len(self._open))

    async def cog_unload(self) -> None:
        self.bot.control.halts.unsubscribe(self._on_halt)
        if self._on_request in self.bot.control.approval_listeners:
            self.bot.control.approval_listeners.remove(self._on_request)
        self.bot.remove_dynamic_items(ApprovalButton)
        self.bot.scheduler.cancel_where(lambda key: isinstance(key, tuple) and key[0] == "approval")
        # Let endings reach their rows (a Stop just before shutdown must not bring the request
        # back with live buttons after the restart); a write and a message edit or two.
        await self._tasks.close(wait=self.close_wait)

    async def idle(self) -> None:
        """Wait until no posting, expiry, halt or answer clean-up is running (for tests)."""
        await self._tasks.idle()

    def _arm(self, request: ApprovalRequest) -> None:
        async def expire() -> None:
            await self._expire(request.id)

        self.bot.scheduler.at(_key(request.id), request.expires_at, expire)

    # -- a new request --------------------------------------------------------------------------

    def _on_request(self, request: ApprovalRequest) -> None:
        """Called by the pipeline, synchronously, when it held a control back."""
        self._open[request.id] = _Open(request)
        self._arm(request)
        task = self._tasks.spawn(self._post(request))
        self._posting[request.id] = task
        task.add_done_callback(lambda _: self._posting.pop(request.id, None))

    async def _post(self, request: ApprovalRequest) -> None:
        channel = self.bot.get_partial_messageable(request.channel_id, guild_id=request.guild_id)
        view = discord.ui.View(timeout=None)
        view.add_item(ApprovalButton(request.id, "approve"))
        view.add_item(ApprovalButton(request.id, "deny"))
        try:
            message = await channel.send(
                _request_text(request),
                view=view,
                # The one ping the bot makes: the wearer asked for it.
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[discord.Object(request.wearer_id)]
                ),
            )
        except discord.HTTPException as error:
            log.warning(
                "Could not post approval request %d in channel %d: %s",
                request.id,
                request.channel_id,
                error,
            )
            if self._open.pop(request.id, None) is not None:
                self.bot.scheduler.cancel(_key(request.id))
                text = (
                    "✖ Your request could not be posted in this channel, so "
                    f"<@{request.wearer_id}> could not approve it: ~~{request.summary}~~. "
                    "Nothing was sent."
                )
                await self._finish(request, ApprovalState.ENDED, (None, text), posted=False)
            return
        await self.storage.approvals.set_message(request.id, message.id)

    # -- the wearer's answer --------------------------------------------------------------------

    async def answer(
        self, interaction: discord.Interaction[OpenShockBot], request_id: int, *, approve: bool
    ) -> None:
        request = await self.storage.approvals.get(request_id)
        if request is None or request.guild_id != interaction.guild_id:
            await reply(interaction, NO_LONGER_OPEN)
            return
        if interaction.user.id != request.wearer_id:
            log.info("%s pressed approval request %d of another", interaction.user.id, request_id)
            await reply(interaction, f"Only <@{request.wearer_id}> can answer this request.")
            return
        entry = self._open.get(request_id)
        if (
            entry is None
            or entry.approved
            or request.state is not ApprovalState.PENDING
            or request.expires_at <= time.time()
        ):
            await reply(interaction, NO_LONGER_OPEN)
            return
        if approve:
            await self._approve(interaction, entry, request)
        else:
            await self._deny(interaction, request)

    async def _approve(
        self,
        interaction: discord.Interaction[OpenShockBot],
        entry: _Open,
        request: ApprovalRequest,
    ) -> None:
        entry.approved = True  # before any await: a halt from now on withdraws the control
        self.bot.scheduler.cancel(_key(request.id))
        if not await self.storage.approvals.settle(request.id, ApprovalState.APPROVED):
            self._open.pop(request.id, None)
            await reply(interaction, NO_LONGER_OPEN)
            return
        try:
            # The requester as they are now: roles taken away since the request count.
            role_ids = await self.bot.members.current_roles(
                request.guild_id, request.requester_id, within=ROLES_TIMEOUT
            )
        except (NotAMember, MemberUnknown) as error:
            self._open.pop(request.id, None)
            await self._not_checked(interaction, request, gone=isinstance(error, NotAMember))
            return
        order = ControlOrder(
            sender=Sender(request.requester_id, role_ids, request.requester_name),
            guild_id=request.guild_id,
            shocker_id=request.shocker_id,
            kind=ControlKind(request.control_type),
            intensity=request.intensity,
            duration_ms=request.duration_ms,
            origin=Origin.APPROVAL,
            channel_id=request.channel_id,
            still_wanted=lambda: self._open.get(request.id) is entry,
        )
        try:
            ticket = await self.bot.control.submit(order)
            target = inert(ticket.share.shocker_name) if ticket.share else "?"
            report = await ticket.settled(within=ANSWER_WAIT)
            await interaction.response.edit_message(
                content=_approved_text(request, report, target),
                view=None,
                allowed_mentions=_NO_PINGS,
            )
            if not report.outcome.final:
                report = await ticket.outcome()
                await _edit_original(interaction, _approved_text(request, report, target))
        finally:
            self._open.pop(request.id, None)
        if report.outcome in _NOT_SENT and report.reason:
            await reply(interaction, f"It was not sent: {report.reason}")
        summary = summarize(report.decision, target, request.summary)
        await self._tell_requester(
            request.id, f"✅ <@{request.wearer_id}> approved: {result_text(summary, report)}"
        )
        await self.storage.approvals.forget(request.id)

    async def _not_checked(
        self,
        interaction: discord.Interaction[OpenShockBot],
        request: ApprovalRequest,
        *,
        gone: bool,
    ) -> None:
        """Approved, but the requester could not be decided on as they are now: nothing sent."""
        requester = f"<@{request.requester_id}>"
        if gone:
            why = f"{requester} is no longer a member of this server"
            why_to_requester = "you are no longer a member of that server"
        else:
            why = f"the bot couldn't check {requester}'s roles with Discord"
            why_to_requester = "the bot couldn't check your roles with Discord"
        log.info("Approved request %d not sent: %s", request.id, "gone" if gone else "unchecked")
        await interaction.response.edit_message(
            content=(
                f"✅ <@{request.wearer_id}> approved {requester}'s request, but {why}; "
                f"nothing was sent: ~~{request.summary}~~."
            ),
            view=None,
            allowed_mentions=_NO_PINGS,
        )
        await self._tell_requester(
            request.id,
            f"✖ <@{request.wearer_id}> approved your request, but {why_to_requester}; "
            f"nothing was sent: ~~{request.summary}~~.",
        )
        await self.storage.approvals.forget(request.id)

    async def _deny(
        self, interaction: discord.Interaction[OpenShockBot], request: ApprovalRequest
    ) -> None:
        self._open.pop(request.id, None)
        self.bot.scheduler.cancel(_key(request.id))
        if not await self.storage.approvals.settle(request.id, ApprovalState.DENIED):
            await reply(interaction, NO_LONGER_OPEN)
            return
        await interaction.response.edit_message(
            content=(
                f"✖ <@{request.wearer_id}> denied <@{request.requester_id}>'s request: "
                f"~~{request.summary}~~. Nothing was sent."
            ),
            view=None,
            allowed_mentions=_NO_PINGS,
        )
        await self._tell_requester(
            request.id,
            f"✖ <@{request.wearer_id}> denied your request: ~~{request.summary}~~. "
            "Nothing was sent.",
        )
        await self.storage.approvals.forget(request.id)

    # -- expiry and halts -----------------------------------------------------------------------

    async def _expire(self, request_id: int) -> None:
        entry = self._open.get(request_id)
        if entry is None or entry.approved:
            return
        del self._open[request_id]
        self._tasks.spawn(
            self._finish(entry.request, ApprovalState.EXPIRED, _expired_texts(entry.request))
        )

    def _on_halt(self, halt: Halt) -> None:
        """Synchronous: every open request the halt covers ends before the halt's frame."""
        for request_id, entry in list(self._open.items()):
            request = entry.request
            if not halt.covers(
                guild_id=request.guild_id,
                wearer_id=request.wearer_id,
                shocker_id=request.shocker_id,
            ):
                continue
            del self._open[request_id]  # an approved one's guard now says no
            if entry.approved:
                continue  # its control is being decided; the approval tells how it ended
            self.bot.scheduler.cancel(_key(request_id))
            log.info("Approval request %d ended: %s", request_id, halt.reason)
            texts = (
                f"⏹️ <@{request.requester_id}>'s request ended because {halt.sentence}: "
                f"~~{request.summary}~~. Nothing was sent.",
                f"⏹️ Your request ended because {halt.sentence}: ~~{request.summary}~~. "
                "Nothing was sent.",
            )
            self._tasks.spawn(self._finish(request, ApprovalState.ENDED, texts))

    async def _finish(
        self,
        request: ApprovalRequest,
        state: ApprovalState,
        texts: tuple[str | None, str],
        *,
        posted: bool = True,
    ) -> None:
        """End a request that was not answered: store it, edit its message and the requester's
        answer, then forget it."""
        if not await self.storage.approvals.settle(request.id, state):
            return
        posting = self._posting.get(request.id)
        if posted and posting is not None and posting is not asyncio.current_task():
            await asyncio.wait([posting])  # its message id is stored once posted
        channel_text, requester_text = texts
        stored = await self.storage.approvals.get(request.id)
        if stored is not None and stored.message_id is not None and channel_text is not None:
            channel = self.bot.get_partial_messageable(stored.channel_id, guild_id=stored.guild_id)
            try:
                await channel.get_partial_message(stored.message_id).edit(
                    content=channel_text, view=None, allowed_mentions=_NO_PINGS
                )
            except discord.HTTPException as error:
                log.info("Could not edit approval request %d: %s", request.id, error)
        await self._tell_requester(request.id, requester_text)
        await self.storage.approvals.forget(request.id)

    async def _tell_requester(self, request_id: int, text: str) -> None:
        """Edit the requester's answer (`answer_control`'s), while its token lasts (15 min)."""
        stored = await self.storage.approvals.get(request_id)
        if stored is None or stored.reply_application_id is None or stored.reply_token is None:
            return
        webhook = discord.Webhook.partial(
            stored.reply_application_id, stored.reply_token, client=self.bot
        )
        try:
            await webhook.edit_message(_ORIGINAL, content=text, allowed_mentions=_NO_PINGS)
        except discord.HTTPException as error:
            log.info("Could not edit the requester's answer of request %d: %s", request_id, error)


def _request_text(request: ApprovalRequest) -> str:
    return (
        f"🙋 <@{request.wearer_id}>, <@{request.requester_id}> asks to send "
        f"**{request.summary}**. Nothing is sent unless you approve it "
        f"(this request ends <t:{int(request.expires_at)}:R>)."
    )


def _expired_texts(request: ApprovalRequest) -> tuple[str, str]:
    return (
        f"⌛ <@{request.requester_id}>'s request expired without an answer: "
        f"~~{request.summary}~~. Nothing was sent.",
        f"⌛ Your request expired without an answer from <@{request.wearer_id}>: "
        f"~~{request.summary}~~. Nothing was sent.",
    )


def _approved_text(request: ApprovalRequest, report: ControlReport, target: str) -> str:
    summary = summarize(report.decision, target, request.summary)
    head = f"✅ <@{request.wearer_id}> approved <@{request.requester_id}>'s request: "
    if report.outcome in _NOT_SENT:
        return f"{head}~~{summary}~~ · not sent"
    return head + result_text(summary, report)


async def _edit_original(interaction: discord.Interaction[OpenShockBot], content: str) -> None:
    try:
        await interaction.edit_original_response(content=content, allowed_mentions=_NO_PINGS)
    except discord.HTTPException:
        log.warning("Could not update an approval request message", exc_info=True)
