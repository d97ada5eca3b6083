"""Panic: pause all of a wearer's shares everywhere, and every share of the shockers their account
owns (whoever made it); Stop every shocker of their account; then pause their own shockers on
OpenShock itself, where the token allows it. `lift_openshock_pauses` undoes that last part for
`/shockers resume`, and only that."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from uuid import UUID

from bot.domain.controls import STOP_DURATION_MS, ControlKind
from bot.domain.render import custom_name_for
from bot.domain.text import inert
from bot.openshock.errors import OpenShockApiError, OpenShockError
from bot.openshock.hub import MAX_CUSTOM_NAME, HubConnection
from bot.openshock.manager import HubManager
from bot.openshock.models import Control, ControlType, ShockerDirectory
from bot.services.control.facts import FactGatherer, shocker_uuid
from bot.services.halts import Halt, Halts
from bot.services.owners import live_own_shockers, owner_of
from bot.storage import Storage
from bot.storage.models import Account, AuditOutcome, NewAuditEntry, OpenShockPause, Share
from bot.storage.shares import Owner

log = logging.getLogger(__name__)

PAUSE_SCOPE = "shockers.pause"
NO_PAUSE_SCOPE = (
    f"no `{PAUSE_SCOPE}` permission on your API token (a token with it lets /panic pause "
    "your shockers on OpenShock too)"
)


@dataclass(frozen=True, slots=True)
class PanicResult:
    paused: int  # the wearer's own shares paused
    problem: str | None  # why Stop may not have reached everything, or None
    others: list[Share] = field(default_factory=list)  # shares of their shockers by others
    openshock_paused: list[str] = field(default_factory=list)  # paused on OpenShock by /panic
    openshock_problem: str | None = None  # why (some) could not be paused on OpenShock

    def summary(self) -> str:
        """The panicking wearer's reply."""
        lines = [f"🛑 All your shares are paused in every server ({self.paused} paused)."]
        if self.others:
            lines.append(
                "🛑 Shares of your shockers by others are paused in every server too: "
                + _others_text(self.others)
                + "."
            )
        lines.append(self.problem or "⏹️ Stop was sent to all your shockers.")
        if self.openshock_paused:
            names = ", ".join(f"**{inert(name)}**" for name in self.openshock_paused)
            lines.append(f"⏸️ Paused on OpenShock: {names}.")
        if self.openshock_problem:
            lines.append(f"⚠️ Could not pause on OpenShock: {self.openshock_problem}.")
        lines.append(
            "Use `/shockers resume` in a server to allow controls there again; without a "
            "shocker it also lifts what /panic paused on OpenShock and on others' shares."
        )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class LiftResult:
    resumed: list[str]  # names resumed on OpenShock
    problem: str | None = None


def _others_text(others: Iterable[Share]) -> str:
    by_shocker: dict[tuple[str, int], int] = {}
    for share in others:
        key = (share.shocker_name, share.wearer_id)
        by_shocker[key] = by_shocker.get(key, 0) + 1
    return ", ".join(
        f"**{inert(name)}** by <@{wearer}>" + (f" in {count} servers" if count > 1 else "")
        for (name, wearer), count in by_shocker.items()
    )


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
    restriction counter, see `ControlService`). Stop goes out before the OpenShock pause: a
    shocker paused on OpenShock drops every control, Stop too."""
    hub = facts.hub_for(account.id) if account is not None else None
    owner = owner_of(account) if account is not None else None
    pauses = await storage.shares.panic(wearer_id, owner, live_own_shockers(hub))
    # Approvals, votes, random mode end: the wearer's, and any on their shockers shared by others.
    halts.announce(Halt("panic", wearer_id=wearer_id))
    for shocker_id in sorted(pauses.owned_shocker_ids):
        halts.announce(Halt("panic", shocker_id=shocker_id))
    result = PanicResult(pauses.own_shares, None, others=pauses.others_shares)
    if account is None or owner is None:
        problem = "You have no linked OpenShock account, so no Stop was sent."
        return replace(result, problem=problem)
    if hub is None or not hub.connected:
        result = replace(
            result, problem="Your OpenShock connection is down, so no Stop could be sent."
        )
    else:
        result = replace(
            result, problem=await _stop_everything(storage, hub, account, wearer_id, display_name)
        )
    if hub is None:
        return replace(result, openshock_problem="your OpenShock connection is not running")
    paused, openshock_problem = await _pause_on_openshock(storage, hub, owner)
    result = replace(result, openshock_paused=paused, openshock_problem=openshock_problem)
    if paused:
        # So that the decision sees `isPaused` at once, for the owner and for the accounts that
        # reach these shockers through an OpenShock share (OpenShock tells them too, later).
        await _refresh([hub, *(facts.hub_for(share.account_id) for share in pauses.others_shares)])
    return result


async def _stop_everything(
    storage: Storage, hub: HubConnection, account: Account, wearer_id: int, display_name: str
) -> str | None:
    """Stop every shocker the account could have sent to; returns what may have failed."""
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
        return None
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
        return f"Stop may not have reached: {', '.join(failed)}."
    return None


async def _pause_on_openshock(
    storage: Storage, hub: HubConnection, owner: Owner
) -> tuple[list[str], str | None]:
    """Pause the account's own shockers on OpenShock, those not paused there already (a pause
    the wearer set on the website stays theirs: only what this sets is recorded, and lifted by
    `/shockers resume`). Returns the names paused, and why some or all could not be."""
    directory = await _fresh_list(hub)
    if directory is None:
        return [], "your shockers could not be read from OpenShock"
    targets = {
        known.id: known.name for known in directory.all() if known.is_own and not known.is_paused
    }
    if not targets:
        return [], None
    try:
        token = await hub.rest.get_token_info()
    except OpenShockError as error:
        log.info("Could not read the token's permissions of %s: %s", hub.name, error)
    else:
        if PAUSE_SCOPE not in token.permissions:
            return [], NO_PAUSE_SCOPE
    outcomes = await asyncio.gather(
        *(hub.rest.set_shocker_paused(uuid, True) for uuid in targets), return_exceptions=True
    )
    paused: dict[str, str] = {}
    forbidden, failed = False, []
    for (uuid, name), outcome in zip(targets.items(), outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            paused[str(uuid)] = name
        elif isinstance(outcome, OpenShockApiError) and outcome.status == 403:
            forbidden = True
        else:
            failed.append(name)
            log.warning("Panic pause of shocker %s on OpenShock failed: %s", uuid, outcome)
    if paused:
        await storage.shares.record_openshock_pauses(owner, paused)
    problem = None
    if forbidden:
        problem = NO_PAUSE_SCOPE
    elif failed:
        problem = (
            ", ".join(f"**{inert(name)}**" for name in failed)
            + " (OpenShock refused or did not answer)"
        )
    return list(paused.values()), problem


async def lift_openshock_pauses(storage: Storage, hubs: HubManager, account: Account) -> LiftResult:
    """Resume on OpenShock the shockers /panic paused there (and no other). A pause that could
    not be lifted stays recorded, for the next `/shockers resume`."""
    owner = owner_of(account)
    pauses = await storage.shares.openshock_pauses(owner)
    if not pauses:
        return LiftResult([])
    hub = hubs.get(account.id)
    if hub is None:
        names = ", ".join(f"**{inert(p.shocker_name)}**" for p in pauses)
        return LiftResult([], f"your OpenShock connection is not running, so {names} stay paused")
    outcomes = await asyncio.gather(
        *(_resume_one(hub, pause.shocker_id) for pause in pauses), return_exceptions=True
    )
    resumed: list[OpenShockPause] = []
    failed: list[str] = []
    for pause, outcome in zip(pauses, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failed.append(pause.shocker_name)
            log.warning("Resuming shocker %s on OpenShock failed: %s", pause.shocker_id, outcome)
            continue
        await storage.shares.forget_openshock_pause(owner, pause.shocker_id)
        resumed.append(pause)
    if resumed:
        # The owner's list, and the lists of the accounts that share these shockers here.
        sharing = {
            share.account_id
            for pause in resumed
            for share in await storage.shares.of_shocker(pause.shocker_id)
        }
        await _refresh([hub, *(hubs.get(account_id) for account_id in sharing)])
    problem = None
    if failed:
        names = ", ".join(f"**{inert(name)}**" for name in failed)
        problem = f"{names} could not be resumed on OpenShock right now; try again later"
    return LiftResult([pause.shocker_name for pause in resumed], problem)


async def _resume_one(hub: HubConnection, shocker_id: str) -> None:
    uuid = shocker_uuid(shocker_id)
    if uuid is None:
        return
    try:
        await hub.rest.set_shocker_paused(uuid, False)
    except OpenShockApiError as error:
        if error.status != 404:  # gone from the account: nothing left to resume
            raise


async def _fresh_list(hub: HubConnection) -> ShockerDirectory | None:
    try:
        return await hub.refresh_shockers()
    except OpenShockError as error:
        log.info("Could not refresh the shockers of %s before pausing: %s", hub.name, error)
        return hub.shockers


async def _refresh(hubs: Iterable[HubConnection | None]) -> None:
    unique = {id(hub): hub for hub in hubs if hub is not None}
    outcomes = await asyncio.gather(
        *(hub.refresh_shockers() for hub in unique.values()), return_exceptions=True
    )
    for hub, outcome in zip(unique.values(), outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.info("Could not refresh the shockers of %s: %s", hub.name, outcome)
