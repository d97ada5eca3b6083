"""Sending controls: gather the facts, ask the decision, send through the wearer's hub, confirm,
and write every attempt to the audit trail.

This is the only code that calls `HubConnection.control`, and it does so only with the values of
an `Allowed` decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from uuid import UUID

from bot.config import Settings
from bot.domain.decision import (
    STOP_DURATION_MS,
    Allowed,
    ControlDecision,
    ControlFacts,
    ControlRequest,
    ControlType,
    GrantIndex,
    GuildShare,
    Limits,
    OpenShockAccess,
    OpenShockShare,
    RefusalCode,
    Refused,
    ShockerAccess,
    decide_control,
    describe_access,
)
from bot.domain.decision import Grant as DecisionGrant
from bot.domain.render import custom_name_for
from bot.openshock.errors import HubConnectionLost, HubInvocationTimeout, OpenShockError
from bot.openshock.hub import MAX_CUSTOM_NAME, HubConnection
from bot.openshock.manager import HubManager
from bot.openshock.models import Control, ControlLogEvent, KnownShocker
from bot.openshock.models import ControlType as WireControlType
from bot.storage import Storage
from bot.storage.models import (
    Account,
    AuditOutcome,
    ControlContext,
    Grant,
    NewAuditEntry,
    Share,
)

log = logging.getLogger(__name__)

RESERVATIONS_KEPT = 4096
MAX_DECISIONS = 3  # for one control, counting the first
RESERVATION_TTL_S = 600.0


class Delivery(StrEnum):
    """What became of a control, as the reply and the audit trail tell it."""

    REFUSED = "refused"
    FAILED = "failed"
    SENT = "sent"  # sent to a shocker shared with the account: OpenShock sends us no Log for it
    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"


@dataclass(frozen=True, slots=True)
class ControlResult:
    delivery: Delivery
    decision: ControlDecision | None
    share: Share | None
    reason: str | None = None  # for refused and failed
    audit_id: int | None = None
    pending_confirmation: asyncio.Task[Delivery] | None = None


@dataclass(frozen=True, slots=True)
class PreparedControl:
    """A decided control, ready for `ControlService.send` when allowed."""

    decision: ControlDecision
    share: Share | None
    entry: NewAuditEntry
    reason: str | None  # the refusal, in the member's words
    audit_id: int | None  # set for refusals (already audited)
    previous_reserved: float | None  # the in-memory reservation this control replaced
    request: ControlRequest
    shocker_id: str
    generation: int  # storage.restrictions.value before the facts were read
    reserved_at: float | None = None  # this control's own cooldown reservation, if it made one

    @property
    def reservation_key(self) -> tuple[int, str]:
        return (self.request.member_id, self.shocker_id)


def to_decision_grant(grant: Grant) -> DecisionGrant:
    return DecisionGrant(
        target_kind=grant.target_kind,
        target_id=grant.target_id,
        shocker_id=grant.shocker_id,
        max_intensity=grant.max_intensity,
        max_duration_ms=grant.max_duration_ms,
        cooldown_ms=grant.cooldown_ms,
        allow_shock=grant.allow_shock,
        allow_vibrate=grant.allow_vibrate,
        allow_sound=grant.allow_sound,
    )


def guild_share(share: Share) -> GuildShare:
    return GuildShare(
        shocker_id=share.shocker_id,
        wearer_id=share.wearer_id,
        max_intensity=share.max_intensity,
        max_duration_ms=share.max_duration_ms,
        allow_shock=share.allow_shock,
        allow_vibrate=share.allow_vibrate,
        allow_sound=share.allow_sound,
        paused=share.paused,
    )


def openshock_access(known: KnownShocker | None) -> OpenShockAccess:
    if known is None:
        return OpenShockAccess()
    if known.share is None:
        return OpenShockAccess(shocker_paused=known.is_paused)
    limits = known.limits
    return OpenShockAccess(
        shocker_paused=known.is_paused,
        share=OpenShockShare(
            allow_shock=known.share.shock,
            allow_vibrate=known.share.vibrate,
            allow_sound=known.share.sound,
            max_intensity=limits.intensity if limits else None,
            max_duration_ms=limits.duration if limits else None,
            paused=known.is_paused,
        ),
    )


def _shocker_uuid(shocker_id: str) -> UUID | None:
    try:
        return UUID(shocker_id)
    except ValueError:
        return None


class ControlService:
    def __init__(
        self,
        storage: Storage,
        hubs: HubManager,
        settings: Settings,
        *,
        confirm_timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.hubs = hubs
        self.operator_limits = Limits(settings.max_intensity, settings.max_duration_ms)
        self.confirm_timeout = confirm_timeout
        # How long the hub may take to acknowledge ControlV2 before the member is told it failed.
        self.send_timeout = 5.0
        self.clock = clock
        self._confirmations: set[asyncio.Task[Delivery]] = set()
        # (member, shocker) → when an allowed control reserved the cooldown (a cooldown holds
        # across guilds: switching servers does not skip it).
        self._reserved: dict[tuple[int, str], float] = {}

    # -- facts ----------------------------------------------------------------------------------

    def hub_for(self, account_id: int) -> HubConnection | None:
        return self.hubs.get(account_id)

    def known_shocker(self, hub: HubConnection | None, shocker_id: str) -> KnownShocker | None:
        uuid = _shocker_uuid(shocker_id)
        if hub is None or hub.shockers is None or uuid is None:
            return None
        return hub.shockers.get(uuid)

    def device_online(self, hub: HubConnection | None, known: KnownShocker | None) -> bool | None:
        """None (unknown) when the hub is down or the shocker is not on the account any more."""
        if hub is None or not hub.connected or known is None:
            return None
        return hub.device_state(known.device_id).online

    async def grant_index(
        self, guild_id: int, member_id: int, role_ids: Iterable[int]
    ) -> GrantIndex:
        grants = await self.storage.grants.for_member(guild_id, member_id, role_ids)
        return GrantIndex(to_decision_grant(grant) for grant in grants)

    def facts(
        self,
        context: ControlContext | None,
        *,
        member_id: int,
        grants: GrantIndex,
        control_type: ControlType | None = None,
    ) -> ControlFacts:
        """The decision's facts: `context` from storage, delivery facts from the live hub, and
        the member's cooldown reservations made in this process."""
        if context is None:
            return ControlFacts(share=None, grants=grants, operator_limits=self.operator_limits)
        hub = self.hub_for(context.account_id)
        known = self.known_shocker(hub, context.shocker_id)
        last = None
        if control_type is not ControlType.STOP:
            key = (member_id, context.shocker_id)
            stored, reserved = context.last_control_at, self._reserved.get(key)
            last = max(stored, reserved) if stored and reserved else stored or reserved
        return ControlFacts(
            share=guild_share(context),
            grants=grants,
            operator_limits=self.operator_limits,
            guild_limits=Limits(context.guild_max_intensity, context.guild_max_duration_ms),
            wearer_paused=context.wearer_paused,
            blocked=context.blocked,
            openshock=openshock_access(known),
            device_online=self.device_online(hub, known),
            last_control_at=last,
            now=self.clock(),
        )

    async def access(
        self, shares: Sequence[Share], *, guild_id: int, member_id: int, role_ids: Iterable[int]
    ) -> list[tuple[Share, ShockerAccess]]:
        """What the member may do with each share (for lists and autocomplete)."""
        roles = list(role_ids)
        grants = await self.grant_index(guild_id, member_id, roles)
        result = []
        for share in shares:
            context = await self.storage.shares.control_context(
                guild_id, share.shocker_id, member_id
            )
            facts = self.facts(context, member_id=member_id, grants=grants)
            result.append(
                (
                    share,
                    describe_access(
                        facts, member_id=member_id, member_role_ids=roles, guild_id=guild_id
                    ),
                )
            )
        return result

    # -- sending --------------------------------------------------------------------------------

    async def decide(
        self,
        *,
        guild_id: int,
        member_id: int,
        role_ids: Iterable[int],
        shocker_id: str,
        control_type: ControlType,
        intensity: int,
        duration_ms: int,
    ) -> PreparedControl:
        """Decide one control. A refusal is audited here.

        An allowed control other than Stop reserves the member's cooldown in memory in the same
        step as the decision (no await in between), so two quick commands cannot both pass the
        cooldown; `send` then stores it, or gives it back when nothing went out."""
        roles = frozenset(role_ids)
        generation = self.storage.restrictions.value
        context = await self.storage.shares.control_context(guild_id, shocker_id, member_id)
        grants = await self.grant_index(guild_id, member_id, roles)
        request = ControlRequest(
            member_id=member_id,
            member_role_ids=roles,
            guild_id=guild_id,
            type=control_type,
            intensity=intensity,
            duration_ms=duration_ms,
        )
        # -- no await from here until the reservation is made --
        facts = self.facts(context, member_id=member_id, grants=grants, control_type=control_type)
        decision = decide_control(request, facts)
        key = (member_id, shocker_id)
        previous = self._reserved.get(key)
        reserved_at = None
        if isinstance(decision, Allowed) and decision.type is not ControlType.STOP:
            reserved_at = facts.now
            self._reserve(key, reserved_at)
        # -- end of the critical section --
        share = context
        entry = NewAuditEntry(
            guild_id=guild_id,
            member_id=member_id,
            wearer_id=share.wearer_id if share else None,
            account_id=share.account_id if share else None,
            shocker_id=shocker_id,
            shocker_name=share.shocker_name if share else None,
            control_type=int(control_type),
            requested_intensity=intensity,
            requested_duration_ms=duration_ms,
            outcome=AuditOutcome.REFUSED,
        )
        prepared = PreparedControl(
            decision,
            share,
            entry,
            None,
            None,
            previous,
            request,
            shocker_id,
            generation,
            reserved_at,
        )
        if isinstance(decision, Refused) and share is None:
            # No shocker by that id here: nothing to audit (the caller may try it as a name).
            return replace(prepared, reason=decision.reason)
        if isinstance(decision, Refused):
            reason = self._explain_refusal(decision, share)
            audit_id = await self.storage.audit.record(entry.model_copy(update={"reason": reason}))
            return replace(prepared, reason=reason, audit_id=audit_id)
        return prepared

    def _reserve(self, key: tuple[int, str], at: float) -> None:
        self._reserved[key] = at
        if len(self._reserved) > RESERVATIONS_KEPT:
            # Reservations only bridge the moment between a decision and the stored cooldown;
            # old ones are long in the database.
            cutoff = at - RESERVATION_TTL_S
            self._reserved = {k: t for k, t in self._reserved.items() if t >= cutoff}

    async def send(self, prepared: PreparedControl, display_name: str) -> ControlResult:
        """Send an allowed control. Never raises for OpenShock trouble: a failure is a result
        with a reason, so the caller always has one sentence for the member.

        If anything that can restrict controls was written since the facts were read (a pause,
        a panic, a block, a revoke…), the control is decided again first, right before the
        frame is written. Every attempt ends in exactly one audit row."""
        decisions = 1
        while True:
            decision, share = prepared.decision, prepared.share
            if isinstance(decision, Refused) or share is None:
                audit_id = prepared.audit_id
                if audit_id is None:
                    # Decided again after the share was withdrawn: still an attempt to record.
                    audit_id = await self.storage.audit.record(
                        prepared.entry.model_copy(update={"reason": prepared.reason})
                    )
                return ControlResult(Delivery.REFUSED, decision, share, prepared.reason, audit_id)
            result = await self._send(share, decision, prepared, display_name)
            if result is not None:
                break
            self._release(prepared)
            if decisions >= MAX_DECISIONS:
                reason = "Settings changed repeatedly while sending; nothing was sent. Try again."
                audit_id = await self.storage.audit.record(
                    prepared.entry.model_copy(update={"reason": reason})
                )
                return ControlResult(Delivery.REFUSED, decision, share, reason, audit_id)
            previous_entry = prepared.entry
            r = prepared.request
            prepared = await self.decide(
                guild_id=r.guild_id,
                member_id=r.member_id,
                role_ids=r.member_role_ids,
                shocker_id=prepared.shocker_id,
                control_type=r.type,
                intensity=r.intensity,
                duration_ms=r.duration_ms,
            )
            decisions += 1
            if prepared.share is None:
                prepared = replace(
                    prepared,
                    entry=previous_entry,
                    reason="This shocker is not shared here any more.",
                )
        if prepared.request.type is not ControlType.STOP:
            if result.delivery is Delivery.FAILED:
                self._release(prepared)  # nothing went out: give the cooldown back
            elif prepared.reserved_at is not None:
                member, shocker = prepared.reservation_key
                await self.storage.cooldowns.record(
                    prepared.request.guild_id, member, shocker, prepared.reserved_at
                )
        return result

    def _release(self, prepared: PreparedControl) -> None:
        """Undo this control's cooldown reservation, unless another control's replaced it."""
        key = prepared.reservation_key
        if prepared.reserved_at is None or self._reserved.get(key) != prepared.reserved_at:
            return
        if prepared.previous_reserved is None:
            self._reserved.pop(key, None)
        else:
            self._reserved[key] = prepared.previous_reserved

    async def control(
        self,
        *,
        guild_id: int,
        member_id: int,
        role_ids: Iterable[int],
        display_name: str,
        shocker_id: str,
        control_type: ControlType,
        intensity: int,
        duration_ms: int,
    ) -> ControlResult:
        """Decide and send in one step."""
        prepared = await self.decide(
            guild_id=guild_id,
            member_id=member_id,
            role_ids=role_ids,
            shocker_id=shocker_id,
            control_type=control_type,
            intensity=intensity,
            duration_ms=duration_ms,
        )
        return await self.send(prepared, display_name)

    def _explain_refusal(self, refused: Refused, share: Share | None) -> str:
        if share is not None and refused.code is RefusalCode.DEVICE_UNKNOWN:
            hub = self.hub_for(share.account_id)
            if hub is None or not hub.connected:
                return "The wearer's OpenShock connection is down right now; nothing was sent."
            if self.known_shocker(hub, share.shocker_id) is None:
                return (
                    "This shocker is no longer on the wearer's OpenShock account; nothing was sent."
                )
        return refused.reason

    async def _send(
        self, share: Share, allowed: Allowed, prepared: PreparedControl, display_name: str
    ) -> ControlResult | None:
        """Send, or return None when the decision must be made again (see `send`)."""
        entry = prepared.entry.model_copy(
            update={
                "effective_intensity": allowed.intensity,
                "effective_duration_ms": allowed.duration_ms,
            }
        )
        hub = self.hub_for(share.account_id)
        known = self.known_shocker(hub, share.shocker_id)
        if hub is None or not hub.connected or known is None:
            reason = "The wearer's OpenShock connection is down right now; nothing was sent."
            return await self._failed(entry, allowed, share, reason)
        control = Control(
            id=known.id,
            type=WireControlType(int(allowed.type)),
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
                    and any(log_.shocker.id == known.id for log_ in event.logs)
                ),
            )
        if self.storage.restrictions.value != prepared.generation:
            if confirmation is not None:
                confirmation.cancel()
            return None
        # No await between the check above and the frame being written by hub.control.
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
            outcome = AuditOutcome.CONFIRMED if delivered else AuditOutcome.NOT_CONFIRMED
            uncertain = (
                ""
                if isinstance(error, HubConnectionLost)
                else " It may or may not have been delivered."
            )
            note = None if delivered else f"{error}{uncertain}"
            audit_id = await self.storage.audit.record(
                entry.model_copy(update={"outcome": outcome, "reason": note})
            )
            delivery = Delivery.CONFIRMED if delivered else Delivery.NOT_CONFIRMED
            return ControlResult(delivery, allowed, share, note, audit_id)
        except OpenShockError as error:
            if confirmation is not None:
                confirmation.cancel()
            log.warning("Control to shocker %s failed: %s", share.shocker_id, error)
            return await self._failed(entry, allowed, share, f"{error} Nothing was sent.")
        audit_id = await self.storage.audit.record(
            entry.model_copy(update={"outcome": AuditOutcome.SENT})
        )
        if confirmation is None:
            return ControlResult(Delivery.SENT, allowed, share, audit_id=audit_id)
        task = asyncio.create_task(self._confirm(confirmation, audit_id), name="control-confirm")
        self._confirmations.add(task)
        task.add_done_callback(self._confirmations.discard)
        return ControlResult(
            Delivery.SENT, allowed, share, audit_id=audit_id, pending_confirmation=task
        )

    async def _failed(
        self, entry: NewAuditEntry, allowed: Allowed, share: Share, reason: str
    ) -> ControlResult:
        audit_id = await self.storage.audit.record(
            entry.model_copy(update={"outcome": AuditOutcome.FAILED, "reason": reason})
        )
        return ControlResult(Delivery.FAILED, allowed, share, reason, audit_id)

    async def _confirm(
        self, confirmation: asyncio.Future[ControlLogEvent], audit_id: int
    ) -> Delivery:
        await asyncio.wait({confirmation}, timeout=self.confirm_timeout)
        if confirmation.done() and not confirmation.cancelled():
            await self.storage.audit.set_outcome(audit_id, AuditOutcome.CONFIRMED, None)
            return Delivery.CONFIRMED
        # No Log in time, or the connection closed (its waiters are cancelled) before one came.
        reason = (
            "the connection to OpenShock closed before it confirmed"
            if confirmation.cancelled()
            else "no Log event from OpenShock in time"
        )
        confirmation.cancel()
        await self.storage.audit.set_outcome(audit_id, AuditOutcome.NOT_CONFIRMED, reason)
        return Delivery.NOT_CONFIRMED

    async def panic(
        self, *, wearer_id: int, account: Account | None, display_name: str
    ) -> tuple[int, str | None]:
        """Pause all the wearer's shares everywhere, then Stop every shocker of their account.

        The pause comes first and always: even with OpenShock unreachable, nothing more will be
        sent by this bot, and a control decided just before is decided again and refused (see
        `send`). Returns (shares paused, problem sending Stop or None)."""
        paused = await self.storage.shares.panic(wearer_id)
        if account is None:
            return paused, "You have no linked OpenShock account, so no Stop was sent."
        hub = self.hub_for(account.id)
        if hub is None or not hub.connected:
            return paused, "Your OpenShock connection is down, so no Stop could be sent."
        shared_here = {s.shocker_id for s in await self.storage.shares.of_account(account.id)}
        targets: dict[UUID, str] = {}
        if hub.shockers is not None:
            # OpenShock drops a whole batch silently at the first shocker it will not take
            # (paused, or shared without any permission): leave those out, they cannot fire.
            for known in hub.shockers.all():
                usable = not known.is_paused and (
                    known.share is None or known.share.allows(WireControlType.STOP)
                )
                if usable and (known.is_own or str(known.id) in shared_here):
                    targets[known.id] = known.name
        else:
            # The lists could not be read: still stop every shocker this bot could have sent to.
            for share in await self.storage.shares.of_account(account.id):
                if (uuid := _shocker_uuid(share.shocker_id)) is not None:
                    targets[uuid] = share.shocker_name
        if not targets:
            return paused, None
        name = custom_name_for(display_name, MAX_CUSTOM_NAME)
        # One ControlV2 per shocker, all at once: one shocker OpenShock refuses (deleted, share
        # revoked since the lists were read) cannot sink the Stop of the others. Only Stop is
        # built here (intensity 0): it cannot make a shocker fire.
        outcomes = await asyncio.gather(
            *(
                hub.control(
                    [
                        Control(
                            id=uuid,
                            type=WireControlType.STOP,
                            intensity=0,
                            duration=STOP_DURATION_MS,
                        )
                    ],
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
            await self.storage.audit.record(
                NewAuditEntry(
                    guild_id=None,
                    member_id=wearer_id,
                    wearer_id=wearer_id,
                    account_id=account.id,
                    shocker_id=str(uuid),
                    shocker_name=shocker_name,
                    control_type=int(ControlType.STOP),
                    effective_intensity=0,
                    effective_duration_ms=STOP_DURATION_MS,
                    outcome=AuditOutcome.FAILED
                    if isinstance(outcome, BaseException)
                    else AuditOutcome.SENT,
                    reason=f"panic: {outcome}" if isinstance(outcome, BaseException) else "panic",
                )
            )
        if failed:
            return paused, f"Stop may not have reached: {', '.join(failed)}."
        return paused, None

    async def close(self) -> None:
        for task in list(self._confirmations):
            task.cancel()
        await asyncio.gather(*self._confirmations, return_exceptions=True)
