"""What goes in and out of the control pipeline's front door (`ControlService.submit`).

An entry point builds a `ControlOrder` (who, where, which shocker, what, and from where) and gets
a `ControlTicket`: the decision at once, and the outcome later. A slash command, a button or a
modal hand the ticket to ``bot.cogs.control_reply.answer_control``; a caller with no interaction
(random mode, a vote that ends, an approval) simply awaits `ticket.outcome()`. On a share in
approval mode a control by anyone but the wearer ends as ``AWAITING_APPROVAL`` (nothing sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bot.domain.controls import ControlKind
from bot.domain.decision import ControlDecision, Refused
from bot.domain.facts import ControlRequest
from bot.storage.models import Share

__all__ = [
    "ControlOrder",
    "ControlOutcome",
    "ControlReport",
    "ControlTicket",
    "Origin",
    "Sender",
]


class Origin(StrEnum):
    """Which way a control came in."""

    COMMAND = "command"
    BUTTON = "button"
    REACTION = "reaction"
    APPROVAL = "approval"
    RANDOM = "random"
    VOTE = "vote"
    ROULETTE = "roulette"


@dataclass(frozen=True, slots=True)
class Sender:
    """The member a control is decided for: their grants, blocks and cooldowns apply, and their
    display name goes into OpenShock's ``customName``."""

    member_id: int
    role_ids: frozenset[int]
    display_name: str


@dataclass(frozen=True, slots=True)
class ControlOrder:
    """One control to decide and send. Intensity in percent, duration in milliseconds, as asked
    (the decision checks the range and applies every cap)."""

    sender: Sender
    guild_id: int
    shocker_id: str
    kind: ControlKind
    intensity: int
    duration_ms: int
    origin: Origin = Origin.COMMAND
    # The channel the control came from: on a share in approval mode, the request to the
    # wearer is posted there (a control with no channel cannot ask, and is refused).
    channel_id: int | None = None
    # Checked with no await before the frame is written: a control that waited to fire (random
    # mode, an approval, a vote) returns False once a Stop, a pause or /panic ended it, and
    # then nothing is sent.
    still_wanted: Callable[[], bool] | None = field(default=None, compare=False)

    @property
    def request(self) -> ControlRequest:
        return ControlRequest(
            member_id=self.sender.member_id,
            member_role_ids=self.sender.role_ids,
            guild_id=self.guild_id,
            type=self.kind,
            intensity=self.intensity,
            duration_ms=self.duration_ms,
        )


class ControlOutcome(StrEnum):
    """What became of a control, as the reply and the audit trail tell it."""

    SENDING = "sending"  # allowed; the hub has not acknowledged the frame yet
    CONFIRMING = "confirming"  # acknowledged; waiting for OpenShock's Log
    SENT = "sent"  # acknowledged; OpenShock sends no Log for a shocker shared with the account
    CONFIRMED = "confirmed"  # OpenShock's Log says it was carried out
    NOT_CONFIRMED = "not_confirmed"  # acknowledged, but no Log came
    UNCERTAIN = "uncertain"  # the frame went out and was never acknowledged: it may have fired
    FAILED = "failed"  # nothing went out
    REFUSED = "refused"  # refused by the decision (first, or again right before sending)
    # Allowed, but the share is in approval mode: nothing was sent; a request to the wearer was
    # stored (`ControlReport.approval_id`). If they approve, the control is decided again and
    # sent as a new control (origin `approval`).
    AWAITING_APPROVAL = "awaiting_approval"

    @property
    def final(self) -> bool:
        return self not in (ControlOutcome.SENDING, ControlOutcome.CONFIRMING)


@dataclass(frozen=True, slots=True)
class ControlReport:
    """The latest word on a control. ``decision`` is the latest decision: a control is decided
    again right before its frame when something restrictive changed meanwhile. ``reason`` is the
    refusal or failure in the member's words, or a note on a missing confirmation."""

    outcome: ControlOutcome
    decision: ControlDecision
    reason: str | None = None
    audit_id: int | None = None
    approval_id: int | None = None  # the stored request, for AWAITING_APPROVAL


class ControlTicket:
    """The answer of the front door: the decision now, the outcome later.

    ``decision`` and ``share`` are the first decision and the share it was made on (None when
    the shocker is not shared here). `report` is the latest word; `settled` waits for the final
    one (or a deadline), `changed` for the next one, `outcome` for the final one. Only the
    control service moves a ticket on.
    """

    def __init__(self, order: ControlOrder, share: Share | None, report: ControlReport) -> None:
        self.order = order
        self.share = share
        self.decision: ControlDecision = report.decision
        self._report = report
        # Who waits for the next report, and who waits for the final one (futures rather than
        # events and asyncio.timeout: this is on the path of every control).
        self._on_change: list[asyncio.Future[None]] = []
        self._on_final: list[asyncio.Future[None]] = []

    @property
    def refused(self) -> bool:
        """Refused by the first decision: nothing will be sent and the report is final."""
        return isinstance(self.decision, Refused)

    @property
    def report(self) -> ControlReport:
        return self._report

    async def outcome(self) -> ControlReport:
        """The final report."""
        while not self._report.outcome.final:
            await _woken(self._on_final)
        return self._report

    async def settled(self, within: float | None = None) -> ControlReport:
        """The final report, or the latest one once ``within`` seconds have passed."""
        if within is None:
            return await self.outcome()
        if not self._report.outcome.final:
            await _woken(self._on_final, max(within, 0.0))  # a turn of the loop at the least
        return self._report

    async def changed(self, since: ControlReport) -> ControlReport:
        """The first report after ``since`` (at once if there is one already, or if ``since`` is
        final)."""
        while self._report is since and not since.outcome.final:
            await _woken(self._on_change)
        return self._report

    def _advance(self, report: ControlReport) -> None:
        """Called by the control service only."""
        if self._report.outcome.final:
            return
        self._report = report
        _wake_all(self._on_change)
        if report.outcome.final:
            _wake_all(self._on_final)


async def _woken(waiters: list[asyncio.Future[None]], within: float | None = None) -> None:
    """Wait until `_wake_all(waiters)`, or ``within`` seconds."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    waiters.append(waiter)
    timer = None if within is None else loop.call_later(within, _wake, waiter)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
    # A waiter the timer woke (or a cancelled one) stays listed, done, until the next report:
    # `_wake` passes it by.


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        _wake(waiter)
    waiters.clear()
