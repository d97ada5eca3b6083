"""Panic: pause all of a wearer's shares everywhere, then Stop every shocker of their account."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from uuid import UUID

from bot.domain.controls import STOP_DURATION_MS, ControlKind
from bot.domain.render import custom_name_for
from bot.openshock.hub import MAX_CUSTOM_NAME
from bot.openshock.models import Control, ControlType
from bot.services.control.facts import FactGatherer, shocker_uuid
from bot.services.halts import Halt, Halts
from bot.storage import Storage
from bot.storage.models import Account, AuditOutcome, NewAuditEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PanicResult:
    paused: int  # shares paused
    problem: str | None  # why Stop may not have reached everything, or None


async def panic(
    storage: Storage,
    facts: FactGatherer,
    halts: Halts,
    *,
    wearer_id: int,
    account: Account | None,
    display_name: str,
) -> PanicResult:
    """The pause comes first and always: even with OpenShock unreachable, nothing more will be
    sent by this bot, and a control decided just before is decided again and refused (the
    restriction counter, see `ControlService`)."""
    paused = await storage.shares.panic(wearer_id)
    halts.announce(Halt("panic", wearer_id=wearer_id))  # approvals, votes, random mode end
    if account is None:
        return PanicResult(paused, "You have no linked OpenShock account, so no Stop was sent.")
    hub = facts.hub_for(account.id)
    if hub is None or not hub.connected:
        return PanicResult(paused, "Your OpenShock connection is down, so no Stop could be sent.")
    shared = await storage.shares.of_account(account.id)
    shared_here = {s.shocker_id for s in shared}
    targets: dict[UUID, str] = {}
    if hub.shockers is not None:
        # OpenShock drops a whole batch silently at the first shocker it will not take
        # (paused, or shared without any permission): leave those out, they cannot fire.
        for known in hub.shockers.all():
            usable = not known.is_paused and (
                known.share is None or known.share.allows(ControlType.STOP)
            )
            if usable and (known.is_own or str(known.id) in shared_here):
                targets[known.id] = known.name
    else:
        # The lists could not be read: still stop every shocker this bot could have sent to.
        for share in shared:
            if (uuid := shocker_uuid(share.shocker_id)) is not None:
                targets[uuid] = share.shocker_name
    if not targets:
        return PanicResult(paused, None)
    name = custom_name_for(display_name, MAX_CUSTOM_NAME)
    # One ControlV2 per shocker, all at once: one shocker OpenShock refuses (deleted, share
    # revoked since the lists were read) cannot sink the Stop of the others. Only Stop is
    # built here (intensity 0): it cannot make a shocker fire.
    outcomes = await asyncio.gather(
        *(
            hub.control(
                [Control(id=uuid, type=ControlType.STOP, intensity=0, duration=STOP_DURATION_MS)],
                name,
            )
            for uuid in targets
        ),
        return_exceptions=True,
    )
    failed = []
    for (uuid, shocker_name), outcome in zip(targets.items(), outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failed.append(shocker_name)
            log.warning("Panic Stop to shocker %s failed: %s", uuid, outcome)
        await storage.audit.record(
            NewAuditEntry(
                guild_id=None,
                member_id=wearer_id,
                wearer_id=wearer_id,
                account_id=account.id,
                shocker_id=str(uuid),
                shocker_name=shocker_name,
                control_type=int(ControlKind.STOP),
                effective_intensity=0,
                effective_duration_ms=STOP_DURATION_MS,
                outcome=AuditOutcome.FAILED
                if isinstance(outcome, BaseException)
                else AuditOutcome.SENT,
                reason=f"panic: {outcome}" if isinstance(outcome, BaseException) else "panic",
            )
        )
    if failed:
        return PanicResult(paused, f"Stop may not have reached: {', '.join(failed)}.")
    return PanicResult(paused, None)
