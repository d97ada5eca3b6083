"""Roulette (`/roulette`): one shocker, at random, among those the member may use for a type
right now, and a random intensity within their cap. Pure: the caller gives the accesses (from
`describe_access`) and the random generator."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from bot.domain.controls import MIN_DURATION_MS, MIN_INTENSITY, ControlKind
from bot.domain.decision import ShockerAccess

__all__ = ["ROULETTE_DURATION_MS", "ROULETTE_KINDS", "RoulettePick", "pick"]

ROULETTE_DURATION_MS: Final = 1000
ROULETTE_KINDS: Final = (ControlKind.SHOCK, ControlKind.VIBRATE, ControlKind.SOUND)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RoulettePick(Generic[T]):
    item: T
    intensity: int
    duration_ms: int


def pick(
    candidates: Sequence[tuple[T, ShockerAccess]], kind: ControlKind, rng: random.Random
) -> RoulettePick[T] | None:
    """One candidate usable for `kind` right now (shared here, deliverable, not paused or
    blocked, not cooling down, allowed), an intensity between 1 % and the member's effective cap
    for it, for `ROULETTE_DURATION_MS` or the duration cap if lower. None: nothing is usable."""
    if kind not in ROULETTE_KINDS:
        raise ValueError(f"roulette does not send {kind.name}")
    usable = [
        (item, access)
        for item, access in candidates
        if kind in access.usable_now and access.max_intensity >= MIN_INTENSITY
    ]
    if not usable:
        return None
    item, access = rng.choice(usable)
    intensity = rng.randint(MIN_INTENSITY, access.max_intensity)
    duration_ms = max(MIN_DURATION_MS, min(ROULETTE_DURATION_MS, access.max_duration_ms))
    return RoulettePick(item, intensity, duration_ms)
