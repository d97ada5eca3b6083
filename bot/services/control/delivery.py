"""Sending an allowed control through the wearer's hub, confirming it, and auditing what happened.

This is the only code that calls `HubConnection.control` for a decided control, and it does so
only with the values of an `Allowed` decision. Every attempt ends in exactly one audit row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.domain.decision import Allowed
from bot.domain.render import custom_name_for
from bot.openshock.errors import HubConnectionLost, HubInvocationTimeout, OpenShockError
from bot.openshock.hub import MAX_CUSTOM_NAME
from bot.openshock.models import Control, ControlLog, ControlLogEvent, ControlType
from bot.services.control.facts import HUB_DOWN, FactGatherer
from bot.services.control.ticket import ControlOutcome, ControlReport
from bot.storage import Storage
from bot.storage.models import AuditOutcome, NewAuditEntry, Share

log = logging.getLogger(__name__)

CONFIRMATION_CLOSED = "the connection to OpenShock closed before it confirmed"
CONFIRMATION_MISSING = "no Log event from OpenShock in time"
WITHDRAWN = "It was called off (a Stop, a pause or /panic) before it was sent; nothing was sent."


def _logs(log_: ControlLog, control: Control) -> bool:
    """Is ``log_`` OpenShock's record of ``control``? Same shocker and type, and for all but
    Stop the same values: the server logs them after clamping them to the shocker's limits,
    and an own shocker has none beyond OpenShock's bounds, within which every allowed control
    already is (a Stop's intensity 0 may be raised to the minimum). So of several controls in
    flight on one shocker, each is confirmed by its own Log, not by another's."""
    if log_.shocker.id != control.id or log_.type != control.type:
        return False
    return control.type is ControlType.STOP or (
        log_.intensity == control.intensity and log_.duration == control.duration
    )


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What `Dispatcher.send` did: the report, and OpenShock's Log still to wait for, if any."""

    report: ControlReport
    confirmation: asyncio.Future[ControlLogEvent] | None = None
    # The Log came before the hub's acknowledgement: the audit row already says confirmed.
    audited: bool = False


class Dispatcher:
    def __init__(
        self, storage: Storage, facts: FactGatherer, *, confirm_timeout: float, send_timeout: float
    ) -> None:
        self.storage = storage
        self.facts = facts
        self.confirm_timeout = confirm_timeout
        # How long the hub may take to acknowledge ControlV2 before the member is told it failed.
        self.send_timeout = send_timeout

    async def send(
        self,
        share: Share,
        allowed: Allowed,
        entry: NewAuditEntry,
        *,
        generation: int,
        display_name: str,
        still_wanted: Callable[[], bool] | None = None,
    ) -> Dispatched | None:
        """Send, or return None when the decision must be made again: something that can
        restrict controls was written since the facts were read (`generation`). Never raises
        for OpenShock trouble: a failure is a report with a reason."""
        hub = self.facts.hub_for(share.account_id)
        known = self.facts.known_shocker(hub, share.shocker_id)
        if hub is None or not hub.connected or known is None:
            return Dispatched(await self._failed(entry, allowed, HUB_DOWN))
        control = Control(
            id=known.id,
            type=ControlType(int(allowed.type)),
            intensity=allowed.intensity,
            duration=allowed.duration_ms,
        )
        confirmation = None
        if known.is_own:
            # Registered before sending so a fast Log cannot slip past.
            connection_id = hub.connection_id
            confirmation = hub.expect(
                ControlLogEvent,
                lambda event: (
                    event.sender.connection_id == connection_id
                    and any(_logs(log_, control) for log_ in event.logs)
                ),
                claims=True,
            )
        if self.storage.restrictions.value != generation:
            if confirmation is not None:
                confirmation.cancel()
            return None
        if still_wanted is not None and not still_wanted():
            if confirmation is not None:
                confirmation.cancel()
            return Dispatched(await self._withdrawn(entry, allowed))
        # No await between the checks above and the frame being written by hub.control.
        try:
            await hub.control(
                [control], custom_name_for(display_name, MAX_CUSTOM_NAME), timeout=self.send_timeout
            )
        except (HubInvocationTimeout, HubConnectionLost) as error:
            # The frame went out but was never acknowledged (no answer, or the connection
            # dropped after sending): it may have fired. Say so, and keep the cooldown.
            log.warning("Control to shocker %s unacknowledged: %s", share.shocker_id, error)
            delivered = (
                confirmation is not None and confirmation.done() and not confirmation.cancelled()
            )
            if confirmation is not None and not delivered:
                confirmation.cancel()
            uncertain = (
                ""
                if isinstance(error, HubConnectionLost)
                else " It may or may not have been delivered."
            )
            note = None if delivered else f"{error}{uncertain}"
            outcome = AuditOutcome.CONFIRMED if delivered else AuditOutcome.NOT_CONFIRMED
            audit_id = await self._audit(entry, allowed, outcome, note)
            said = ControlOutcome.CONFIRMED if delivered else ControlOutcome.UNCERTAIN
            return Dispatched(ControlReport(said, allowed, note, audit_id))
        except OpenShockError as error:
            if confirmation is not None:
                confirmation.cancel()
            log.warning("Control to shocker %s failed: %s", share.shocker_id, error)
            return Dispatched(await self._failed(entry, allowed, f"{error} Nothing was sent."))
        if confirmation is not None and confirmation.done() and not confirmation.cancelled():
            # OpenShock's Log came in before the hub acknowledged the frame: the one audit row
            # is written with the outcome, with no update to follow.
            audit_id = await self._audit(entry, allowed, AuditOutcome.CONFIRMED)
            return Dispatched(
                ControlReport(ControlOutcome.CONFIRMING, allowed, audit_id=audit_id),
                confirmation,
                audited=True,
            )
        audit_id = await self._audit(entry, allowed, AuditOutcome.SENT)
        if confirmation is None:
            return Dispatched(ControlReport(ControlOutcome.SENT, allowed, audit_id=audit_id))
        return Dispatched(
            ControlReport(ControlOutcome.CONFIRMING, allowed, audit_id=audit_id), confirmation
        )

    async def _audit(
        self,
        entry: NewAuditEntry,
        allowed: Allowed,
        outcome: AuditOutcome,
        reason: str | None = None,
    ) -> int:
        """The attempt's one audit row: the values it was (or would have been) sent with."""
        return await self.storage.audit.record(
            entry,
            effective_intensity=allowed.intensity,
            effective_duration_ms=allowed.duration_ms,
            outcome=outcome,
            reason=reason,
        )

    async def _withdrawn(self, entry: NewAuditEntry, allowed: Allowed) -> ControlReport:
        audit_id = await self._audit(entry, allowed, AuditOutcome.REFUSED, WITHDRAWN)
        return ControlReport(ControlOutcome.REFUSED, allowed, WITHDRAWN, audit_id)

    async def _failed(self, entry: NewAuditEntry, allowed: Allowed, reason: str) -> ControlReport:
        audit_id = await self._audit(entry, allowed, AuditOutcome.FAILED, reason)
        return ControlReport(ControlOutcome.FAILED, allowed, reason, audit_id)

    async def confirm(
        self,
        confirmation: asyncio.Future[ControlLogEvent],
        sent: ControlReport,
        *,
        audited: bool = False,
    ) -> ControlReport:
        """Wait for OpenShock's Log of a sent control, and audit what came of it (unless the
        audit row was written confirmed already: ``audited``)."""
        assert sent.audit_id is not None
        if not confirmation.done():
            await asyncio.wait({confirmation}, timeout=self.confirm_timeout)
        elif audited:
            # Nothing to wait for or write: one turn of the loop, so that whoever waits on the
            # ticket sees it acknowledged before it ends.
            await asyncio.sleep(0)
        if confirmation.done() and not confirmation.cancelled():
            if not audited:
                await self.storage.audit.set_outcome(sent.audit_id, AuditOutcome.CONFIRMED, None)
            return ControlReport(ControlOutcome.CONFIRMED, sent.decision, audit_id=sent.audit_id)
        # No Log in time, or the connection closed (its waiters are cancelled) before one came.
        reason = CONFIRMATION_CLOSED if confirmation.cancelled() else CONFIRMATION_MISSING
        confirmation.cancel()
        await self.storage.audit.set_outcome(sent.audit_id, AuditOutcome.NOT_CONFIRMED, reason)
        return ControlReport(
            ControlOutcome.NOT_CONFIRMED, sent.decision, reason, audit_id=sent.audit_id
        )
