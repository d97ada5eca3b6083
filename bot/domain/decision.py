"""Deciding a control: the one pure function every path that can send goes through.

`decide_control` takes the facts about one member, one shocker and one moment and returns either
`Allowed` (with the values to send) or `Refused` (with one sentence for the member). It knows
nothing of Discord, SQL or sockets, so the safety rules live here and are tested without them.
`describe_access` answers "what may this member do with this shocker?" (for `/shockers list` and
autocomplete) from the same stages, so the two can never disagree.

The rules ("Deciding a control" in the design), in the order they are checked:

1. The shocker must be shared in the guild by its wearer, and the wearer must still be a member
   of the guild, else ``NOT_SHARED`` ("not available here"), Stop included.
2. The caller is either the wearer (self-control: no grant needed, no cooldown, no grant caps) or
   holds a grant that covers the shocker, else ``NO_GRANT``. Which grants count is decided by
   precedence (`GrantIndex.resolve`): the first non-empty tier of member+this shocker,
   member+all shockers, role+this shocker, role+all shockers wins outright (@everyone, whose
   role id is the guild id, is a role every member has). Several grants in the winning tier (one
   per role) combine into the most permissive: a type is allowed if any of them allows it, each
   cap is the highest of theirs (no cap beats any cap), the cooldown the shortest (none beats any).
3. **Stop** is allowed to the wearer and to anyone with a covering grant, whatever the pause,
   block, cooldown or type permissions in the guild. It is sent as intensity 0 for
   `STOP_DURATION_MS`. It is still refused when OpenShock itself would drop it silently (shocker
   paused on OpenShock, or a user-share that permits no type at all) or when the device is not
   known to be online: a Stop that cannot be delivered is reported honestly, never pretended.
4. Anything but Stop is refused while the member is blocked by the wearer (``BLOCKED``), the share
   is paused in the guild, the wearer paused everything in the guild, or the wearer's API token
   is paused on OpenShock (``PAUSED``). A pause means "nothing but Stop fires", so it refuses the
   **wearer's own** controls too; the reason tells them how to resume. So does a wearer whose
   membership could not be checked just now (``MEMBERSHIP_UNKNOWN``): Stop is harmless.
5. The type must be allowed by the winning grant(s), by the wearer's share in the guild and, when
   the wearer's account reaches the shocker through an OpenShock user-share, by that share
   (``TYPE_NOT_ALLOWED``, ``OPENSHOCK_NOT_PERMITTED``: OpenShock would drop the batch silently).
6. An intensity cap below 1 % leaves nothing to send (``ZERO_LIMIT``). A minimum of the wearer's
   API token above the cap that results from every other limit cannot be honoured
   (``TOKEN_LIMIT``).
7. The requested values must be in OpenShock's range, intensity 1 to 100 and duration
   300 to 65535 ms; out of range is refused with the valid range, never silently fixed
   (``OUT_OF_RANGE``).
8. The winning grants' cooldown, per (member, shocker), must have passed (``COOLDOWN``).
9. The shocker must not be paused on OpenShock (own shocker paused, or the user-share paused):
   OpenShock would drop the control silently (``OPENSHOCK_PAUSED``).
10. The device must be known to be online (``DEVICE_OFFLINE``, ``DEVICE_UNKNOWN``).
11. Values above a cap are lowered, not refused. The request first goes through the wearer's
    API token's own limits exactly as OpenShock applies them to REST controls (Clamp or Lerp,
    `token_limits`), then the effective value is the minimum of that and every cap that applies
    (winning grants, wearer's share, guild, operator, OpenShock share limit, the token's
    maximum). A duration cap below 300 ms counts as 300 ms, the shortest control OpenShock
    sends. `Allowed.capped_notes` says what was changed and by which limits ("capped at 25 %
    (wearer's limit)", "scaled to 15 % (token limit)"); a token whose scaling leaves 0 % has
    nothing to send (``ZERO_LIMIT``).

Performance: the caller builds one `GrantIndex` per guild (O(grants), cache it and rebuild when the
guild's grants change); a decision is then a handful of dictionary lookups, O(member's roles),
independent of how many grants and shares the guild has.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from bot.domain.controls import (
    MAX_DURATION_MS,
    MAX_INTENSITY,
    MIN_DURATION_MS,
    MIN_INTENSITY,
    STOP_DURATION_MS,
    ControlKind,
    Limits,
    format_duration,
)
from bot.domain.facts import (
    ControlFacts,
    ControlRequest,
    GuildShare,
    OpenShockAccess,
    OpenShockShare,
)
from bot.domain.grants import (
    WEARER,
    Authority,
    GrantIndex,
    GrantRule,
    GrantTarget,
    GrantTier,
    merge_grants,
)
from bot.domain.token_limits import LimitMode, TokenLimits

__all__ = [
    "MAX_DURATION_MS",
    "MAX_INTENSITY",
    "MIN_DURATION_MS",
    "MIN_INTENSITY",
    "STOP_DURATION_MS",
    "Allowed",
    "CapSource",
    "ControlDecision",
    "ControlFacts",
    "ControlKind",
    "ControlRequest",
    "GrantIndex",
    "GrantRule",
    "GrantTarget",
    "GrantTier",
    "GuildShare",
    "Limits",
    "OpenShockAccess",
    "OpenShockShare",
    "RefusalCode",
    "Refused",
    "ShockerAccess",
    "decide_control",
    "describe_access",
    "format_duration",
]


class CapSource(Enum):
    """Who set a cap; the value is how a reply names it."""

    GRANT = "your permission's limit"
    SHARE = "wearer's limit"
    GUILD = "server limit"
    OPERATOR = "bot's limit"
    OPENSHOCK = "OpenShock share limit"
    TOKEN = "token limit"  # noqa: S105 - a cap source, not a secret


class RefusalCode(StrEnum):
    NOT_SHARED = "not_shared"
    NO_GRANT = "no_grant"
    BLOCKED = "blocked"
    PAUSED = "paused"
    TYPE_NOT_ALLOWED = "type_not_allowed"
    OUT_OF_RANGE = "out_of_range"
    COOLDOWN = "cooldown"
    ZERO_LIMIT = "zero_limit"
    OPENSHOCK_PAUSED = "openshock_paused"
    OPENSHOCK_NOT_PERMITTED = "openshock_not_permitted"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_UNKNOWN = "device_unknown"
    TOKEN_LIMIT = "token_limit"  # noqa: S105 - a refusal code
    MEMBERSHIP_UNKNOWN = "membership_unknown"


# --- Results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowed:
    """Send this. ``via_grants`` are the grants that allowed it and ``via_tier`` their precedence
    tier (empty and None for the wearer's own control)."""

    type: ControlKind
    intensity: int
    duration_ms: int
    capped_notes: tuple[str, ...] = ()
    intensity_capped_by: tuple[CapSource, ...] = ()
    duration_capped_by: tuple[CapSource, ...] = ()
    via_grants: tuple[GrantRule, ...] = ()
    via_tier: GrantTier | None = None

    @property
    def capped(self) -> bool:
        return bool(self.capped_notes)


@dataclass(frozen=True, slots=True)
class Refused:
    """Do not send. ``reason`` is one sentence for the member; ``retry_after_ms`` is set for a
    cooldown."""

    code: RefusalCode
    reason: str
    retry_after_ms: int | None = None


ControlDecision = Allowed | Refused


@dataclass(frozen=True, slots=True)
class ShockerAccess:
    """What a member may do with one shocker.

    ``refusal`` is set when they may do nothing at all (not shared here, no grant); then ``types``
    is empty. Otherwise ``types`` is what their permissions allow (Stop included when OpenShock
    would carry it), up to ``max_intensity`` / ``max_duration_ms``, one control per
    ``cooldown_ms``. ``hold`` is a current state that allows nothing but Stop (blocked, paused),
    ``undeliverable`` one that allows nothing at all (OpenShock pause, device offline or unknown),
    and ``cooldown_remaining_ms`` the wait before the next control other than Stop.
    """

    refusal: Refused | None
    is_wearer: bool = False
    types: frozenset[ControlKind] = frozenset()
    max_intensity: int = 0
    max_duration_ms: int = 0
    cooldown_ms: int = 0
    hold: Refused | None = None
    undeliverable: Refused | None = None
    cooldown_remaining_ms: int = 0
    via_grants: tuple[GrantRule, ...] = ()

    @property
    def usable_now(self) -> frozenset[ControlKind]:
        """The types `decide_control` would allow right now (for in-range requests)."""
        if self.refusal is not None or self.undeliverable is not None:
            return frozenset()
        if self.hold is not None or self.cooldown_remaining_ms > 0:
            return self.types & _STOP_ONLY
        return self.types


_STOP_ONLY: Final = frozenset({ControlKind.STOP})


# --- The stages, shared by decide_control and describe_access ---------------------------------


def _authorize(
    member_id: int, role_ids: Iterable[int], guild_id: int, facts: ControlFacts
) -> Authority | Refused:
    share = facts.share
    if share is None or facts.wearer_is_member is False:
        return _NOT_SHARED
    if member_id == share.wearer_id:
        return WEARER
    # An expired grant no longer counts (`GrantIndex.resolve` at the facts' moment).
    resolved = facts.grants.resolve(member_id, role_ids, guild_id, share.shocker_id, now=facts.now)
    if resolved is None:
        return _NO_GRANT
    return merge_grants(*resolved)


@dataclass(frozen=True, slots=True)
class _Caps:
    intensity: int
    intensity_by: tuple[tuple[int, CapSource], ...]
    duration_ms: int
    duration_by: tuple[tuple[int, CapSource], ...]


def _caps(authority: Authority, facts: ControlFacts) -> _Caps:
    share = facts.share
    assert share is not None  # _authorize refused otherwise
    os_share = facts.openshock.share
    intensity: list[tuple[int, CapSource]] = [(share.max_intensity, CapSource.SHARE)]
    duration: list[tuple[int, CapSource]] = [(share.max_duration_ms, CapSource.SHARE)]
    for value, source, into in (
        (authority.max_intensity, CapSource.GRANT, intensity),
        (facts.guild_limits.max_intensity, CapSource.GUILD, intensity),
        (facts.operator_limits.max_intensity, CapSource.OPERATOR, intensity),
        (os_share.max_intensity if os_share else None, CapSource.OPENSHOCK, intensity),
        (authority.max_duration_ms, CapSource.GRANT, duration),
        (facts.guild_limits.max_duration_ms, CapSource.GUILD, duration),
        (facts.operator_limits.max_duration_ms, CapSource.OPERATOR, duration),
        (os_share.max_duration_ms if os_share else None, CapSource.OPENSHOCK, duration),
    ):
        if value is not None:
            into.append((value, source))
    token = _token_scope(facts)
    for value, source, into in (
        (token.intensity.maximum if token else None, CapSource.TOKEN, intensity),
        (token.duration.maximum if token else None, CapSource.TOKEN, duration),
    ):
        if value is not None:
            into.append((value, source))
    return _Caps(
        intensity=min(MAX_INTENSITY, *(v for v, _ in intensity)),
        intensity_by=tuple(intensity),
        duration_ms=max(MIN_DURATION_MS, min(MAX_DURATION_MS, *(v for v, _ in duration))),
        duration_by=tuple(duration),
    )


def _allows(
    holder: Authority | GuildShare | OpenShockShare | GrantRule, control_type: ControlKind
) -> bool:
    if control_type is ControlKind.SHOCK:
        return holder.allow_shock
    if control_type is ControlKind.VIBRATE:
        return holder.allow_vibrate
    if control_type is ControlKind.SOUND:
        return holder.allow_sound
    # Stop: OpenShock carries it when the share permits any type at all.
    return holder.allow_shock or holder.allow_vibrate or holder.allow_sound


def _permission_refusal(
    authority: Authority, facts: ControlFacts, control_type: ControlKind
) -> Refused | None:
    """Does what the member is allowed to do (not the current state) permit this type?"""
    os_share = facts.openshock.share
    if control_type is ControlKind.STOP:
        if os_share is not None and not _allows(os_share, control_type):
            return _OPENSHOCK_NO_TYPES
        return None
    share = facts.share
    assert share is not None
    verb = control_type.verb
    if not authority.is_wearer and not _allows(authority, control_type):
        return Refused(RefusalCode.TYPE_NOT_ALLOWED, f"You may not {verb} this shocker.")
    if not _allows(share, control_type):
        who = "You have" if authority.is_wearer else "The wearer has"
        return Refused(
            RefusalCode.TYPE_NOT_ALLOWED,
            f"{who} not allowed {verb} on this shocker in this server.",
        )
    if os_share is not None and not _allows(os_share, control_type):
        return Refused(
            RefusalCode.OPENSHOCK_NOT_PERMITTED,
            f"The OpenShock share of this shocker does not permit {verb}, "
            "so OpenShock would drop it; nothing was sent.",
        )
    return None


def _token_scope(facts: ControlFacts) -> TokenLimits | None:
    """The token's limits when they limit anything (a full-range Clamp changes nothing)."""
    token = facts.token
    return token if token is not None and token.limits_anything else None


def _zero_limit_refusal(caps: _Caps, facts: ControlFacts) -> Refused | None:
    """An intensity cap below 1 % leaves nothing but Stop to send; a token minimum above what
    every other limit allows cannot be honoured."""
    if caps.intensity < MIN_INTENSITY:
        return Refused(
            RefusalCode.ZERO_LIMIT,
            f"A limit of {caps.intensity} % applies to this shocker, so nothing can be sent.",
        )
    token = _token_scope(facts)
    if token is None:
        return None
    if token.intensity.minimum > caps.intensity:
        return Refused(
            RefusalCode.TOKEN_LIMIT,
            f"The wearer's OpenShock API token only sends at least {token.intensity.minimum} %, "
            f"above the {caps.intensity} % allowed here, so nothing can be sent.",
        )
    if token.duration.minimum > caps.duration_ms:
        return Refused(
            RefusalCode.TOKEN_LIMIT,
            "The wearer's OpenShock API token only sends at least "
            f"{format_duration(token.duration.minimum)}, above the "
            f"{format_duration(caps.duration_ms)} allowed here, so nothing can be sent.",
        )
    return None


def _hold_refusal(authority: Authority, facts: ControlFacts) -> Refused | None:
    """A state that lets nothing but Stop through: blocked, paused here, wearer paused."""
    if facts.blocked:
        return _BLOCKED
    share = facts.share
    assert share is not None
    if share.paused_by_owner:
        return _OWNER_PAUSED
    if share.paused:
        return _SELF_SHARE_PAUSED if authority.is_wearer else _SHARE_PAUSED
    if facts.wearer_paused:
        return _SELF_WEARER_PAUSED if authority.is_wearer else _WEARER_PAUSED
    if facts.token is not None and facts.token.paused:
        return _SELF_TOKEN_PAUSED if authority.is_wearer else _TOKEN_PAUSED
    if facts.wearer_is_member is None:
        return _MEMBERSHIP_UNKNOWN
    return None


def _cooldown_remaining_ms(authority: Authority, facts: ControlFacts) -> int:
    cooldown_ms = authority.cooldown_ms
    last = facts.last_control_at
    if cooldown_ms <= 0 or last is None:
        return 0
    elapsed_ms = (facts.now - last) * 1000.0
    if elapsed_ms >= cooldown_ms:
        return 0
    # A clock that went backwards never makes the wait longer than the cooldown itself.
    return min(cooldown_ms, math.ceil(cooldown_ms - elapsed_ms))


def _delivery_refusal(facts: ControlFacts) -> Refused | None:
    """A state in which nothing, not even Stop, would reach the shocker."""
    openshock = facts.openshock
    if openshock.shocker_paused:
        return _OPENSHOCK_SHOCKER_PAUSED
    if openshock.share is not None and openshock.share.paused:
        return _OPENSHOCK_SHARE_PAUSED
    online = facts.device_online
    if online is None:
        return _DEVICE_UNKNOWN
    if not online:
        return _DEVICE_OFFLINE
    return None


# --- Public functions -------------------------------------------------------------------------


def decide_control(request: ControlRequest, facts: ControlFacts) -> ControlDecision:
    """Decide one control. Pure: the same facts always give the same answer."""
    authority = _authorize(request.member_id, request.member_role_ids, request.guild_id, facts)
    if isinstance(authority, Refused):
        return authority
    control_type = request.type

    if control_type is ControlKind.STOP:
        refusal = _permission_refusal(authority, facts, control_type) or _delivery_refusal(facts)
        if refusal is not None:
            return refusal
        return Allowed(
            type=ControlKind.STOP,
            intensity=0,
            duration_ms=STOP_DURATION_MS,
            via_grants=authority.grants,
            via_tier=authority.tier,
        )

    refusal = _hold_refusal(authority, facts)
    if refusal is not None:
        return refusal
    refusal = _permission_refusal(authority, facts, control_type)
    if refusal is not None:
        return refusal
    caps = _caps(authority, facts)
    refusal = _zero_limit_refusal(caps, facts)
    if refusal is not None:
        return refusal
    refusal = _range_refusal(request.intensity, request.duration_ms)
    if refusal is not None:
        return refusal
    remaining_ms = _cooldown_remaining_ms(authority, facts)
    if remaining_ms:
        seconds = math.ceil(remaining_ms / 1000)
        return Refused(
            RefusalCode.COOLDOWN,
            f"You are cooling down on this shocker; try again in {seconds} s.",
            retry_after_ms=remaining_ms,
        )
    refusal = _delivery_refusal(facts)
    if refusal is not None:
        return refusal

    token = _token_scope(facts)
    intensity, intensity_by, intensity_note = _effective(
        request.intensity,
        token.apply_intensity(request.intensity) if token else request.intensity,
        caps.intensity,
        caps.intensity_by,
        token.intensity.mode if token else None,
        lambda value: f"{value} %",
    )
    if intensity < MIN_INTENSITY:
        return Refused(
            RefusalCode.ZERO_LIMIT,
            f"The wearer's OpenShock API token scales {request.intensity} % down to "
            f"{intensity} %, so nothing would be sent.",
        )
    duration_ms, duration_by, duration_note = _effective(
        request.duration_ms,
        token.apply_duration(request.duration_ms) if token else request.duration_ms,
        caps.duration_ms,
        caps.duration_by,
        token.duration.mode if token else None,
        format_duration,
        floor=MIN_DURATION_MS,
    )
    notes = tuple(note for note in (intensity_note, duration_note) if note)
    return Allowed(
        type=control_type,
        intensity=intensity,
        duration_ms=duration_ms,
        capped_notes=notes,
        intensity_capped_by=intensity_by,
        duration_capped_by=duration_by,
        via_grants=authority.grants,
        via_tier=authority.tier,
    )


def describe_access(
    facts: ControlFacts, *, member_id: int, member_role_ids: Iterable[int], guild_id: int
) -> ShockerAccess:
    """What this member may do with this shocker, by the same stages as `decide_control`."""
    authority = _authorize(member_id, member_role_ids, guild_id, facts)
    if isinstance(authority, Refused):
        return ShockerAccess(refusal=authority)
    caps = _caps(authority, facts)
    types = frozenset(t for t in ControlKind if _permission_refusal(authority, facts, t) is None)
    if _zero_limit_refusal(caps, facts) is not None:
        types &= _STOP_ONLY
    return ShockerAccess(
        refusal=None,
        is_wearer=authority.is_wearer,
        types=types,
        max_intensity=caps.intensity,
        max_duration_ms=caps.duration_ms,
        cooldown_ms=authority.cooldown_ms,
        hold=_hold_refusal(authority, facts),
        undeliverable=_delivery_refusal(facts),
        cooldown_remaining_ms=_cooldown_remaining_ms(authority, facts),
        via_grants=authority.grants,
    )


def _range_refusal(intensity: int, duration_ms: int) -> Refused | None:
    if not MIN_INTENSITY <= intensity <= MAX_INTENSITY:
        return Refused(
            RefusalCode.OUT_OF_RANGE,
            f"Intensity must be between {MIN_INTENSITY} and {MAX_INTENSITY} %.",
        )
    if not MIN_DURATION_MS <= duration_ms <= MAX_DURATION_MS:
        return Refused(
            RefusalCode.OUT_OF_RANGE,
            f"Duration must be between {format_duration(MIN_DURATION_MS)} "
            f"and {format_duration(MAX_DURATION_MS)}.",
        )
    return None


def _effective(
    requested: int,
    scaled: int,
    cap: int,
    cap_by: Sequence[tuple[int, CapSource]],
    token_mode: LimitMode | None,
    show: Callable[[int], str],
    *,
    floor: int = 0,
) -> tuple[int, tuple[CapSource, ...], str | None]:
    """One value: ``requested``, after the token's limits ``scaled``, then within ``cap`` (the
    lowest of ``cap_by``; never below ``floor``). Returns the value, the limits that set it and
    the note that says so (None when it is what was asked)."""
    value = max(floor, min(scaled, cap))
    if value == requested:
        return value, (), None
    by = tuple(source for v, source in cap_by if max(v, floor) == value)
    if token_mode is not None and value == scaled and CapSource.TOKEN not in by:
        by += (CapSource.TOKEN,)
    if value > requested:
        return value, by, f"raised to {show(value)} ({_names(by)})"
    verb = "scaled to" if by == (CapSource.TOKEN,) and token_mode is LimitMode.LERP else "capped at"
    return value, by, f"{verb} {show(value)} ({_names(by)})"


def _names(sources: Sequence[CapSource]) -> str:
    return ", ".join(source.value for source in sources)


_NOT_SHARED: Final = Refused(RefusalCode.NOT_SHARED, "This shocker is not available here.")
_NO_GRANT: Final = Refused(
    RefusalCode.NO_GRANT, "You do not have permission to control this shocker here."
)
_BLOCKED: Final = Refused(
    RefusalCode.BLOCKED, "The wearer has blocked you from controlling their shockers here."
)
_SHARE_PAUSED: Final = Refused(
    RefusalCode.PAUSED,
    "The wearer has paused this shocker here; only Stop works until they resume.",
)
_OWNER_PAUSED: Final = Refused(
    RefusalCode.PAUSED,
    "The shocker's owner has paused it; only Stop works until they resume it.",
)
_SELF_SHARE_PAUSED: Final = Refused(
    RefusalCode.PAUSED,
    "You paused this shocker here; only Stop works until you use /shockers resume.",
)
_WEARER_PAUSED: Final = Refused(
    RefusalCode.PAUSED,
    "The wearer has paused all their shockers here; only Stop works until they resume.",
)
_SELF_WEARER_PAUSED: Final = Refused(
    RefusalCode.PAUSED,
    "You paused all your shockers here; only Stop works until you use /shockers resume.",
)
_OPENSHOCK_NO_TYPES: Final = Refused(
    RefusalCode.OPENSHOCK_NOT_PERMITTED,
    "The OpenShock share of this shocker permits nothing, so OpenShock would drop any control; "
    "nothing was sent.",
)
_OPENSHOCK_SHOCKER_PAUSED: Final = Refused(
    RefusalCode.OPENSHOCK_PAUSED,
    "This shocker is paused on OpenShock, so OpenShock would drop any control; nothing was sent.",
)
_OPENSHOCK_SHARE_PAUSED: Final = Refused(
    RefusalCode.OPENSHOCK_PAUSED,
    "The OpenShock share of this shocker is paused, so OpenShock would drop any control; "
    "nothing was sent.",
)
_TOKEN_PAUSED: Final = Refused(
    RefusalCode.PAUSED,
    "The wearer's OpenShock API token is paused; only Stop works until they resume it.",
)
_SELF_TOKEN_PAUSED: Final = Refused(
    RefusalCode.PAUSED,
    "Your linked OpenShock API token is paused on OpenShock; only Stop works until you resume "
    "it there.",
)
_MEMBERSHIP_UNKNOWN: Final = Refused(
    RefusalCode.MEMBERSHIP_UNKNOWN,
    "Could not check that the wearer is still a member of this server just now; only Stop "
    "works. Try again in a moment.",
)
_DEVICE_OFFLINE: Final = Refused(
    RefusalCode.DEVICE_OFFLINE, "The shocker's device is offline; nothing was sent."
)
_DEVICE_UNKNOWN: Final = Refused(
    RefusalCode.DEVICE_UNKNOWN, "The shocker's device state is unknown; nothing was sent."
)
