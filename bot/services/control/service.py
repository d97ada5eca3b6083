"""The control pipeline's front door: `ControlService.submit` decides a control, sends it through
the wearer's hub, confirms it and audits it, for every entry point.

The jobs live beside this module: the decision's facts (`facts`), cooldown reservations
(`cooldowns`), sending, confirming and auditing (`delivery`), and `/panic` (`panic`). What this
module keeps is the order of things and two safety windows:

- **Decision and reservation in one step.** `decide` reads the facts, decides and reserves the
  cooldown with no `await` in between, so two quick controls cannot both pass a cooldown.
- **Decided again right before the frame.** `storage.restrictions` counts every write that can
  restrict controls (a pause, a panic, a block, a revoke, an unshare…). If it moved since the
  facts were read, the control is decided again before its frame is written (`Dispatcher.send`
  checks the counter with no `await` before the write), up to `MAX_DECISIONS` times.

**Approval mode** is a gate here, after the decision: on a share with ``approval`` on, an allowed
control by anyone but the wearer (Stop aside) is not sent. A request is stored
(`storage.approvals`), the approval listeners are told synchronously (the approvals cog posts it
and arms its expiry), and the ticket ends ``AWAITING_APPROVAL``. It reserves no cooldown: if the
wearer approves, the control is submitted again with ``Origin.APPROVAL`` (which passes the gate)
and decided with the facts of that moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from bot.config import Settings
from bot.domain.controls import ControlKind, Limits
from bot.domain.decision import Allowed, ControlDecision, Refused, ShockerAccess, decide_control
from bot.domain.render import control_summary
from bot.domain.text import inert
from bot.openshock.manager import HubManager
from bot.services.control.cooldowns import CooldownReservations
from bot.services.control.delivery import Dispatched, Dispatcher
from bot.services.control.facts import FactGatherer
from bot.services.control.panic import PanicResult, panic
from bot.services.control.ticket import (
    ControlOrder,
    ControlOutcome,
    ControlReport,
    ControlTicket,
    Origin,
)
from bot.services.halts import Halt, Halts
from bot.services.members import MemberDirectory
from bot.storage import Storage
from bot.storage.models import (
    Account,
    ApprovalRequest,
    AuditOutcome,
    NewApprovalRequest,
    NewAuditEntry,
    Share,
)

log = logging.getLogger(__name__)

MAX_DECISIONS = 3  # for one control, counting the first
SETTINGS_CHURN = "Settings changed repeatedly while sending; nothing was sent. Try again."
UNSHARED_MEANWHILE = "This shocker is not shared here any more."

# Approval mode
APPROVAL_TIMEOUT = 60.0  # seconds a request waits for the wearer
# Per member and shocker in a guild, requests the wearer did not approve within ten minutes
# (each pinged the wearer): see ApprovalRepository.create.
MAX_PENDING_APPROVALS = 3
NO_APPROVAL_CHANNEL = (
    "The wearer approves each control on this shocker, and this one came from nowhere a "
    "request can be posted; nothing was sent."
)
TOO_MANY_REQUESTS = (
    "You have asked the wearer {count} times in the last ten minutes without an approval; "
    "wait for their answer, or try again later. Nothing was sent."
)
APPROVAL_TURNED_ON = (
    "The wearer turned on approval for this shocker while it was being sent; nothing was sent. "
    "Ask again to request their approval."
)

ApprovalListener = Callable[[ApprovalRequest], None]


def needs_approval(order: ControlOrder, share: Share | None) -> bool:
    """The approval-mode gate: a control on a share in approval mode by anyone but the wearer,
    other than Stop, and not the approved control itself."""
    return (
        share is not None
        and share.approval
        and order.kind is not ControlKind.STOP
        and order.origin is not Origin.APPROVAL
        and order.sender.member_id != share.wearer_id
    )


@dataclass(frozen=True, slots=True)
class PreparedControl:
    """A decided control. A refusal is already audited (``audit_id``) unless the shocker is not
    shared here at all (``share`` None); an allowed control holds its cooldown reservation."""

    order: ControlOrder
    decision: ControlDecision
    share: Share | None
    entry: NewAuditEntry
    generation: int  # storage.restrictions.value before the facts were read
    reason: str | None = None  # the refusal, in the member's words
    audit_id: int | None = None
    reserved_at: float | None = None  # this control's cooldown reservation, if it made one
    previous_reserved: float | None = None  # the reservation it replaced
    awaiting_approval: bool = False  # allowed, but held for the wearer's approval

    @property
    def reservation_key(self) -> tuple[int, str]:
        return (self.order.sender.member_id, self.order.shocker_id)


class ControlService:
    def __init__(
        self,
        storage: Storage,
        hubs: HubManager,
        settings: Settings,
        *,
        confirm_timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
        halts: Halts | None = None,
        members: MemberDirectory | None = None,
    ) -> None:
        self.storage = storage
        # Pending controls (approvals, votes, random mode) subscribe here; an allowed Stop and
        # a panic announce before their frames.
        self.halts = halts if halts is not None else Halts()
        self.reservations = CooldownReservations()
        self.facts = FactGatherer(
            storage,
            hubs,
            Limits(settings.max_intensity, settings.max_duration_ms),
            self.reservations,
            clock,
            members,
        )
        self.delivery = Dispatcher(
            storage, self.facts, confirm_timeout=confirm_timeout, send_timeout=5.0
        )
        self._running: set[asyncio.Task[None]] = set()
        # Approval mode: how long a request waits, and who posts it (the approvals cog).
        self.approval_timeout = APPROVAL_TIMEOUT
        self.approval_listeners: list[ApprovalListener] = []

    @property
    def send_timeout(self) -> float:
        return self.delivery.send_timeout

    @send_timeout.setter
    def send_timeout(self, seconds: float) -> None:
        self.delivery.send_timeout = seconds

    # -- the front door -------------------------------------------------------------------------

    async def submit(self, order: ControlOrder) -> ControlTicket:
        """Decide one control and, when allowed, start sending it at once.

        The ticket carries the decision now; its outcome follows (`ControlTicket.outcome`). A
        refusal is final at once (and audited, unless the shocker is not shared here)."""
        prepared = await self.decide(order)
        decision = prepared.decision
        if not isinstance(decision, Allowed) or prepared.share is None:
            report = ControlReport(
                ControlOutcome.REFUSED, decision, prepared.reason, prepared.audit_id
            )
            return ControlTicket(order, prepared.share, report)
        if prepared.awaiting_approval:
            return await self._ask_approval(prepared, decision, prepared.share)
        ticket = ControlTicket(
            order, prepared.share, ControlReport(ControlOutcome.SENDING, decision)
        )
        task = asyncio.create_task(self._carry_out(ticket, prepared), name="control-send")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return ticket

    async def access(
        self, shares: Sequence[Share], *, guild_id: int, member_id: int, role_ids: Iterable[int]
    ) -> list[tuple[Share, ShockerAccess]]:
        """What the member may do with each share (for lists and autocomplete)."""
        return await self.facts.access(
            shares, guild_id=guild_id, member_id=member_id, role_ids=role_ids
        )

    async def panic(
        self, *, wearer_id: int, account: Account | None, display_name: str
    ) -> PanicResult:
        """Pause all the wearer's shares everywhere, then Stop every shocker of their account."""
        return await panic(
            self.storage,
            self.facts,
            self.halts,
            wearer_id=wearer_id,
            account=account,
            display_name=display_name,
        )

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    # -- deciding -------------------------------------------------------------------------------

    async def decide(self, order: ControlOrder) -> PreparedControl:
        """Decide one control; audit a refusal; reserve an allowed control's cooldown in the
        same step as the decision."""
        sender = order.sender
        generation = self.storage.restrictions.value
        # The share's context and the member's grants in one round trip.
        context, stored_grants = await self.storage.shares.decision_inputs(
            order.guild_id, order.shocker_id, sender.member_id, sender.role_ids
        )
        grants = self.facts.grant_index_of(stored_grants)
        member = None
        if context is not None:
            member = await self.facts.wearer_is_member(order.guild_id, context.wearer_id)
        # -- no await from here until the reservation is made --
        facts = self.facts.facts(
            context,
            member_id=sender.member_id,
            grants=grants,
            kind=order.kind,
            wearer_is_member=member,
        )
        decision = decide_control(order.request, facts)
        reserved_at = previous = None
        held = isinstance(decision, Allowed) and needs_approval(order, context)
        if isinstance(decision, Allowed) and decision.type is not ControlKind.STOP and not held:
            reserved_at = facts.now
            previous = self.reservations.reserve((sender.member_id, order.shocker_id), reserved_at)
        # -- end of the critical section --
        share: Share | None = context
        entry = NewAuditEntry(
            guild_id=order.guild_id,
            member_id=sender.member_id,
            wearer_id=share.wearer_id if share else None,
            account_id=share.account_id if share else None,
            shocker_id=order.shocker_id,
            shocker_name=share.shocker_name if share else None,
            control_type=int(order.kind),
            requested_intensity=order.intensity,
            requested_duration_ms=order.duration_ms,
            outcome=AuditOutcome.REFUSED,
            origin=order.origin,
        )
        prepared = PreparedControl(
            order,
            decision,
            share,
            entry,
            generation,
            None,
            None,
            reserved_at,
            previous,
            awaiting_approval=held,
        )
        if isinstance(decision, Refused) and share is None:
            # No shocker by that id here: nothing to audit.
            return replace(prepared, reason=decision.reason)
        if isinstance(decision, Refused):
            reason = self.facts.explain_refusal(decision, share)
            audit_id = await self.storage.audit.record(entry, reason=reason)
            return replace(prepared, reason=reason, audit_id=audit_id)
        return prepared

    # -- approval mode --------------------------------------------------------------------------

    async def _ask_approval(
        self, prepared: PreparedControl, decision: Allowed, share: Share
    ) -> ControlTicket:
        """Hold an allowed control for the wearer: store the request and tell the listeners
        (synchronously, so a halt right after the ticket finds it). Nothing is sent."""
        order = prepared.order
        if order.channel_id is None or not self.approval_listeners:
            return await self._refuse_request(prepared, decision, NO_APPROVAL_CHANNEL)
        summary = control_summary(
            decision.type, decision.intensity, decision.duration_ms, inert(share.shocker_name)
        )
        if decision.capped_notes:
            summary += f" ({'; '.join(decision.capped_notes)})"
        request = await self.storage.approvals.create(
            NewApprovalRequest(
                guild_id=order.guild_id,
                channel_id=order.channel_id,
                shocker_id=order.shocker_id,
                wearer_id=share.wearer_id,
                requester_id=order.sender.member_id,
                requester_roles=order.sender.role_ids,
                requester_name=order.sender.display_name,
                control_type=int(order.kind),
                intensity=order.intensity,
                duration_ms=order.duration_ms,
                origin=order.origin.value,
                summary=summary,
            ),
            expires_at=time.time() + self.approval_timeout,
            max_pending=MAX_PENDING_APPROVALS,
        )
        if request is None:
            reason = TOO_MANY_REQUESTS.format(count=MAX_PENDING_APPROVALS)
            return await self._refuse_request(prepared, decision, reason)
        log.info(
            "Control by %s on shocker %s held for the wearer's approval (request %d)",
            order.sender.member_id,
            order.shocker_id,
            request.id,
        )
        for listener in list(self.approval_listeners):
            try:
                listener(request)
            except Exception:
                log.exception("An approval listener failed on request %d", request.id)
        report = ControlReport(ControlOutcome.AWAITING_APPROVAL, decision, approval_id=request.id)
        return ControlTicket(order, share, report)

    async def _refuse_request(
        self, prepared: PreparedControl, decision: Allowed, reason: str
    ) -> ControlTicket:
        audit_id = await self.storage.audit.record(prepared.entry, reason=reason)
        report = ControlReport(ControlOutcome.REFUSED, decision, reason, audit_id)
        return ControlTicket(prepared.order, prepared.share, report)

    def _release(self, prepared: PreparedControl) -> None:
        if prepared.reserved_at is not None:
            self.reservations.release(
                prepared.reservation_key, prepared.reserved_at, prepared.previous_reserved
            )

    # -- sending --------------------------------------------------------------------------------

    async def _carry_out(self, ticket: ControlTicket, prepared: PreparedControl) -> None:
        """Send, confirm and report an allowed control on its ticket. The ticket always ends
        final, also when the bot shuts down meanwhile."""
        try:
            dispatched = await self._send(prepared)
            ticket._advance(dispatched.report)
            if dispatched.confirmation is not None:
                ticket._advance(
                    await self.delivery.confirm(
                        dispatched.confirmation, dispatched.report, audited=dispatched.audited
                    )
                )
        except asyncio.CancelledError:
            # Shutting down: whatever was sent may or may not have been carried out.
            report = ticket.report
            outcome = (
                ControlOutcome.NOT_CONFIRMED
                if report.outcome is ControlOutcome.CONFIRMING
                else ControlOutcome.UNCERTAIN
            )
            ticket._advance(replace(report, outcome=outcome))
            raise
        except Exception:
            log.exception("Sending a control to shocker %s failed", prepared.order.shocker_id)
            report = ticket.report
            ticket._advance(replace(report, outcome=ControlOutcome.UNCERTAIN))

    async def _send(self, prepared: PreparedControl) -> Dispatched:
        """Send an allowed control, deciding it again first whenever a restriction was written
        since its facts were read. Every attempt ends in exactly one audit row."""
        order = prepared.order
        decisions = 1
        while True:
            decision, share = prepared.decision, prepared.share
            if isinstance(decision, Refused) or share is None:
                audit_id = prepared.audit_id
                if audit_id is None:
                    # Decided again after the share was withdrawn: still an attempt to record.
                    audit_id = await self.storage.audit.record(
                        prepared.entry, reason=prepared.reason
                    )
                report = ControlReport(ControlOutcome.REFUSED, decision, prepared.reason, audit_id)
                return Dispatched(report)
            if decision.type is ControlKind.STOP:
                # Synchronous: what waited to fire on this shocker ends before the Stop's frame.
                self.halts.announce(Halt("stop", shocker_id=order.shocker_id))
            dispatched = await self.delivery.send(
                share,
                decision,
                prepared.entry,
                generation=prepared.generation,
                display_name=order.sender.display_name,
                still_wanted=order.still_wanted,
            )
            if dispatched is not None:
                break
            self._release(prepared)
            if decisions >= MAX_DECISIONS:
                audit_id = await self.storage.audit.record(prepared.entry, reason=SETTINGS_CHURN)
                return Dispatched(
                    ControlReport(ControlOutcome.REFUSED, decision, SETTINGS_CHURN, audit_id)
                )
            previous_entry = prepared.entry
            prepared = await self.decide(order)
            decisions += 1
            if prepared.share is None:
                prepared = replace(prepared, entry=previous_entry, reason=UNSHARED_MEANWHILE)
            elif prepared.awaiting_approval:
                # Approval mode was turned on meanwhile: this control did not ask for it.
                audit_id = await self.storage.audit.record(
                    prepared.entry, reason=APPROVAL_TURNED_ON
                )
                return Dispatched(
                    ControlReport(
                        ControlOutcome.REFUSED, prepared.decision, APPROVAL_TURNED_ON, audit_id
                    )
                )
        if order.kind is not ControlKind.STOP:
            if dispatched.report.outcome in (ControlOutcome.FAILED, ControlOutcome.REFUSED):
                self._release(prepared)  # nothing went out: give the cooldown back
            elif prepared.reserved_at is not None:
                member, shocker = prepared.reservation_key
                await self.storage.cooldowns.record(
                    order.guild_id, member, shocker, prepared.reserved_at
                )
        return dispatched
