"""Gathering a decision's facts: the share and its guild from storage, delivery facts from the live
hub connection, and the member's cooldown (stored, or reserved in this process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar
from uuid import UUID

from bot.domain.controls import ControlKind, Limits
from bot.domain.decision import RefusalCode, Refused, ShockerAccess, describe_access
from bot.domain.facts import ControlFacts, GuildShare, OpenShockAccess, OpenShockShare
from bot.domain.grants import GrantIndex, GrantRule
from bot.domain.token_limits import (
    DURATION_INPUT,
    INTENSITY_INPUT,
    LimitMode,
    TokenLimits,
    TokenRange,
)
from bot.openshock.hub import HubConnection
from bot.openshock.manager import HubManager
from bot.openshock.models import ControlLimitSettings, KnownShocker, TokenInfo
from bot.services.control.cooldowns import CooldownReservations
from bot.services.members import MemberDirectory
from bot.storage import Storage
from bot.storage.models import ControlContext, Grant, Share

_S = TypeVar("_S")
_D = TypeVar("_D")

# How many sources `DerivedByIdentity` remembers (about what `decision_inputs` keeps).
DERIVED_KEPT = 2048

HUB_DOWN = "The wearer's OpenShock connection is down right now; nothing was sent."
NOT_ON_ACCOUNT = "This shocker is no longer on the wearer's OpenShock account; nothing was sent."


def grant_rule(grant: Grant) -> GrantRule:
    return GrantRule(
        target_kind=grant.target_kind,
        target_id=grant.target_id,
        shocker_id=grant.shocker_id,
        max_intensity=grant.max_intensity,
        max_duration_ms=grant.max_duration_ms,
        cooldown_ms=grant.cooldown_ms,
        allow_shock=grant.allow_shock,
        allow_vibrate=grant.allow_vibrate,
        allow_sound=grant.allow_sound,
        expires_at=grant.expires_at,
    )


def grant_index(grants: Iterable[Grant]) -> GrantIndex:
    return GrantIndex(grant_rule(grant) for grant in grants)


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
        paused_by_owner=isinstance(share, ControlContext) and share.owner_paused,
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


def _limit_mode(mode: str | int) -> LimitMode:
    """OpenShock's ``ControlLimitMode`` (a string on REST, 0/1 as a number); anything else is
    applied as Clamp, as OpenShock's own switch does."""
    if isinstance(mode, str):
        return LimitMode.LERP if mode.strip().casefold() == "lerp" else LimitMode.CLAMP
    return LimitMode.LERP if mode == 1 else LimitMode.CLAMP


def _token_range(settings: ControlLimitSettings | None, default: tuple[int, int]) -> TokenRange:
    if settings is None:
        return TokenRange(*default)
    return TokenRange(settings.min, settings.max, _limit_mode(settings.mode))


def token_limits(info: TokenInfo | None) -> TokenLimits | None:
    """The control scope of an account's API token, as the decision reads it (None: the server
    describes none, so OpenShock would apply none either)."""
    control = info.shocker_control if info is not None else None
    if control is None:
        return None
    return TokenLimits(
        intensity=_token_range(control.intensity, INTENSITY_INPUT),
        duration=_token_range(control.duration, DURATION_INPUT),
        paused=control.paused or not control.enabled,
    )


class DerivedByIdentity(Generic[_S, _D]):
    """What is derived from objects that are kept and handed out again as they are (a kept
    answer of `ShareRepository.decision_inputs`, a hub's shocker directory, its token's
    description), remembered by the source's identity: the next control with the same source
    skips the work. The source is immutable and held with what came of it (so that its id
    cannot be reused meanwhile); at most `limit` are held, then all are let go."""

    def __init__(self, derive: Callable[[_S], _D], limit: int = DERIVED_KEPT) -> None:
        self._derive = derive
        self._limit = limit
        self._kept: dict[int, tuple[_S, _D]] = {}

    def __call__(self, source: _S) -> _D:
        kept = self._kept.get(id(source))
        if kept is not None and kept[0] is source:
            return kept[1]
        derived = self._derive(source)
        if len(self._kept) >= self._limit:
            self._kept.clear()
        self._kept[id(source)] = (source, derived)
        return derived


def shocker_uuid(shocker_id: str) -> UUID | None:
    try:
        return UUID(shocker_id)
    except ValueError:
        return None


class FactGatherer:
    def __init__(
        self,
        storage: Storage,
        hubs: HubManager,
        operator_limits: Limits,
        reservations: CooldownReservations,
        clock: Callable[[], float] = time.time,
        members: MemberDirectory | None = None,
    ) -> None:
        self.storage = storage
        self.hubs = hubs
        self.operator_limits = operator_limits
        self.reservations = reservations
        self.clock = clock
        # Whether a wearer is still a member of a guild (None: not checked, as in tests of the
        # pipeline alone; the bot always passes one).
        self.members = members
        # The decision's forms of what storage and the hubs keep (see DerivedByIdentity).
        self.grant_index_of = DerivedByIdentity(grant_index)
        self._guild_share = DerivedByIdentity(guild_share)
        self._token_limits = DerivedByIdentity(token_limits)

    async def wearer_is_member(self, guild_id: int, wearer_id: int) -> bool | None:
        """Whether the wearer is a member of the guild now (an answer at most a minute old;
        None: it could not be checked). Someone who just used an interaction there is one
        (the bot notes them), so a wearer's own command asks Discord nothing."""
        if self.members is None:
            return True
        return await self.members.is_member(guild_id, wearer_id)

    def hub_for(self, account_id: int) -> HubConnection | None:
        return self.hubs.get(account_id)

    def known_shocker(self, hub: HubConnection | None, shocker_id: str) -> KnownShocker | None:
        directory = hub.shockers if hub is not None else None
        return directory.find(shocker_id) if directory is not None else None

    def device_online(self, hub: HubConnection | None, known: KnownShocker | None) -> bool | None:
        """None (unknown) when the hub is down or the shocker is not on the account any more."""
        if hub is None or not hub.connected or known is None:
            return None
        return hub.device_state(known.device_id).online

    def token_limits(self, hub: HubConnection | None) -> TokenLimits | None:
        """The account's token scope, read with its shocker lists after every (re)connect."""
        directory = hub.shockers if hub is not None else None
        info = directory.token if directory is not None else None
        return self._token_limits(info) if info is not None else None

    def share_online(self, share: Share) -> bool | None:
        """Whether the device of a shared shocker is online (None: not known)."""
        hub = self.hub_for(share.account_id)
        return self.device_online(hub, self.known_shocker(hub, share.shocker_id))

    async def grant_index(
        self, guild_id: int, member_id: int, role_ids: Iterable[int]
    ) -> GrantIndex:
        return grant_index(await self.storage.grants.for_member(guild_id, member_id, role_ids))

    def facts(
        self,
        context: ControlContext | None,
        *,
        member_id: int,
        grants: GrantIndex,
        kind: ControlKind | None = None,
        wearer_is_member: bool | None = True,
    ) -> ControlFacts:
        """The decision's facts: `context` from storage, delivery facts from the live hub, and
        the member's cooldown reservations made in this process. No await: the control service
        reads these, decides and reserves in one step."""
        if context is None:
            return ControlFacts(share=None, grants=grants, operator_limits=self.operator_limits)
        hub = self.hub_for(context.account_id)
        known = self.known_shocker(hub, context.shocker_id)
        last = None
        if kind is not ControlKind.STOP:
            stored = context.last_control_at
            reserved = self.reservations.get(member_id, context.shocker_id)
            last = max(stored, reserved) if stored and reserved else stored or reserved
        return ControlFacts(
            share=self._guild_share(context),
            grants=grants,
            operator_limits=self.operator_limits,
            guild_limits=Limits(context.guild_max_intensity, context.guild_max_duration_ms),
            wearer_paused=context.wearer_paused,
            blocked=context.blocked,
            openshock=openshock_access(known),
            device_online=self.device_online(hub, known),
            last_control_at=last,
            now=self.clock(),
            token=self.token_limits(hub),
            wearer_is_member=wearer_is_member,
        )

    async def access(
        self, shares: Sequence[Share], *, guild_id: int, member_id: int, role_ids: Iterable[int]
    ) -> list[tuple[Share, ShockerAccess]]:
        """What the member may do with each share (for lists and autocomplete). Shares whose
        wearer is no longer a member of the guild are left out: they work nowhere here."""
        roles = list(role_ids)
        grants = await self.grant_index(guild_id, member_id, roles)
        present: dict[int, bool | None] = {}
        if self.members is not None:
            present = await self.members.memberships(guild_id, {s.wearer_id for s in shares})
        result = []
        for share in shares:
            membership = present.get(share.wearer_id, True)
            if membership is False:
                continue
            context = await self.storage.shares.control_context(
                guild_id, share.shocker_id, member_id
            )
            facts = self.facts(
                context, member_id=member_id, grants=grants, wearer_is_member=membership
            )
            access = describe_access(
                facts, member_id=member_id, member_role_ids=roles, guild_id=guild_id
            )
            result.append((share, access))
        return result

    def explain_refusal(self, refused: Refused, share: Share | None) -> str:
        """A refusal in the member's words; "device unknown" says why it is unknown."""
        if share is not None and refused.code is RefusalCode.DEVICE_UNKNOWN:
            hub = self.hub_for(share.account_id)
            if hub is None or not hub.connected:
                return HUB_DOWN
            if self.known_shocker(hub, share.shocker_id) is None:
                return NOT_ON_ACCOUNT
        return refused.reason
