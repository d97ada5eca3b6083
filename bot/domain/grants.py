"""Grants: an admin's permission for a member or a role, and which grants decide a control.

`GrantIndex.resolve` applies the precedence rules (step 2 of `decision`'s rules); `merge_grants`
combines the grants of the winning tier into one `Authority`. A grant with an end
(``expires_at``) stops counting at that moment: `resolve` leaves it out from then on, as if it
had been revoked, so the next tier may decide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

__all__ = [
    "WEARER",
    "Authority",
    "GrantIndex",
    "GrantRule",
    "GrantTarget",
    "GrantTier",
    "merge_grants",
]


class GrantTarget(StrEnum):
    MEMBER = "member"
    ROLE = "role"


class GrantTier(IntEnum):
    """How specific a grant is; a lower value wins over every higher one."""

    MEMBER_SHOCKER = 0
    MEMBER_ALL = 1
    ROLE_SHOCKER = 2
    ROLE_ALL = 3


@dataclass(frozen=True, slots=True)
class GrantRule:
    """An admin's permission for a member or a role (the @everyone role id is the guild id), on
    one shocker or, with ``shocker_id`` None, on all shockers shared in the guild."""

    target_kind: GrantTarget
    target_id: int
    shocker_id: str | None = None
    max_intensity: int | None = None
    max_duration_ms: int | None = None
    cooldown_ms: int | None = None
    allow_shock: bool = True
    allow_vibrate: bool = True
    allow_sound: bool = True
    expires_at: float | None = None  # unix seconds; None: never

    def live(self, now: float) -> bool:
        """Does this grant still count at ``now``?"""
        return self.expires_at is None or now < self.expires_at


_ByTarget = dict[int, tuple[GrantRule, ...]]


@dataclass(frozen=True, slots=True)
class Authority:
    """Who is allowing a control: the wearer themselves, or the merged winning grants."""

    is_wearer: bool
    allow_shock: bool = True
    allow_vibrate: bool = True
    allow_sound: bool = True
    max_intensity: int | None = None
    max_duration_ms: int | None = None
    cooldown_ms: int = 0
    grants: tuple[GrantRule, ...] = ()
    tier: GrantTier | None = None


WEARER: Final = Authority(is_wearer=True)


class GrantIndex:
    """A guild's grants, indexed by shocker and target so a decision costs O(member's roles).

    Build it once per guild (``GrantIndex(grants)``) and rebuild it when the grants change; it is
    immutable once built.
    """

    __slots__ = ("_by_member", "_by_role", "_count", "_first_end")

    def __init__(self, grants: Iterable[GrantRule] = ()) -> None:
        by_member: dict[str | None, dict[int, list[GrantRule]]] = {}
        by_role: dict[str | None, dict[int, list[GrantRule]]] = {}
        count = 0
        first_end = math.inf
        for grant in grants:
            index = by_member if grant.target_kind is GrantTarget.MEMBER else by_role
            index.setdefault(grant.shocker_id, {}).setdefault(grant.target_id, []).append(grant)
            count += 1
            if grant.expires_at is not None:
                first_end = min(first_end, grant.expires_at)
        self._by_member: dict[str | None, _ByTarget] = _freeze(by_member)
        self._by_role: dict[str | None, _ByTarget] = _freeze(by_role)
        self._count = count
        # Until the first grant ends, nothing needs filtering (ended grants are deleted soon
        # after their end, so this is the usual case).
        self._first_end = first_end

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"GrantIndex({self._count} grants)"

    def resolve(
        self,
        member_id: int,
        role_ids: Iterable[int],
        guild_id: int,
        shocker_id: str,
        *,
        now: float,
    ) -> tuple[GrantTier, tuple[GrantRule, ...]] | None:
        """The grants that decide what this member may do with this shocker at ``now``, or None.

        Precedence, first non-empty tier wins outright (lower tiers are ignored, even when they
        would allow more): the member's own grant for this shocker; the member's own grant for all
        shockers; grants for this shocker to any role the member has; grants for all shockers to
        any role the member has. The guild id counts as a role every member has (@everyone).
        A grant whose end has come (``expires_at <= now``) is left out, as if revoked.
        """
        live = _all if now < self._first_end else _live
        by_member = self._by_member.get(shocker_id)
        if by_member is not None:
            found = live(by_member.get(member_id), now)
            if found:
                return GrantTier.MEMBER_SHOCKER, found
        by_member = self._by_member.get(None)
        if by_member is not None:
            found = live(by_member.get(member_id), now)
            if found:
                return GrantTier.MEMBER_ALL, found
        for tier, key in ((GrantTier.ROLE_SHOCKER, shocker_id), (GrantTier.ROLE_ALL, None)):
            by_role = self._by_role.get(key)
            if by_role is None:
                continue
            collected: tuple[GrantRule, ...] = live(by_role.get(guild_id), now)
            for role_id in role_ids:
                role_grants = by_role.get(role_id)
                if role_grants is not None and role_id != guild_id:
                    collected += live(role_grants, now)
            if collected:
                return tier, collected
        return None


def _all(grants: tuple[GrantRule, ...] | None, now: float) -> tuple[GrantRule, ...]:
    return grants or ()


def _live(grants: tuple[GrantRule, ...] | None, now: float) -> tuple[GrantRule, ...]:
    """``grants`` without those that ended by ``now`` (the same tuple when none did)."""
    if not grants:
        return ()
    for grant in grants:
        if grant.expires_at is not None and grant.expires_at <= now:
            return tuple(g for g in grants if g.live(now))
    return grants


def _freeze(index: dict[str | None, dict[int, list[GrantRule]]]) -> dict[str | None, _ByTarget]:
    return {
        shocker: {target: tuple(grants) for target, grants in by_target.items()}
        for shocker, by_target in index.items()
    }


def merge_grants(tier: GrantTier, grants: tuple[GrantRule, ...]) -> Authority:
    """Combine grants of one tier into the most permissive: any type one allows, the highest cap
    of each kind (no cap beats every cap), the shortest cooldown (none beats every cooldown)."""
    first = grants[0]
    if len(grants) == 1:
        return Authority(
            is_wearer=False,
            allow_shock=first.allow_shock,
            allow_vibrate=first.allow_vibrate,
            allow_sound=first.allow_sound,
            max_intensity=first.max_intensity,
            max_duration_ms=first.max_duration_ms,
            cooldown_ms=first.cooldown_ms or 0,
            grants=grants,
            tier=tier,
        )
    return Authority(
        is_wearer=False,
        allow_shock=any(g.allow_shock for g in grants),
        allow_vibrate=any(g.allow_vibrate for g in grants),
        allow_sound=any(g.allow_sound for g in grants),
        max_intensity=_loosest(g.max_intensity for g in grants),
        max_duration_ms=_loosest(g.max_duration_ms for g in grants),
        cooldown_ms=min((g.cooldown_ms or 0) for g in grants),
        grants=grants,
        tier=tier,
    )


def _loosest(caps: Iterable[int | None]) -> int | None:
    highest = 0
    for cap in caps:
        if cap is None:
            return None
        highest = max(highest, cap)
    return highest
