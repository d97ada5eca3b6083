"""Random mode's rules: the ranges a wearer sets, and drawing the next firing within them.

Pure: the random source is passed in (`random.Random`), so a seeded one gives the same firings
and tests can generate any. A firing drawn here is only a wish: it is decided like any other
control of the wearer's (caps, pause, device online) by the control pipeline when it is due.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from bot.domain.controls import (
    MAX_DURATION_MS,
    MAX_INTENSITY,
    MIN_DURATION_MS,
    MIN_INTENSITY,
    ControlKind,
    format_duration,
)

__all__ = [
    "DEFAULT_MAX_DURATION_MS",
    "DEFAULT_MAX_GAP_S",
    "DEFAULT_MIN_GAP_S",
    "DEFAULT_MIN_INTENSITY",
    "DURATION_STEP_MS",
    "MAX_GAP_S",
    "MAX_MINUTES",
    "MIN_GAP_S",
    "MIN_MINUTES",
    "Firing",
    "RandomMode",
    "RandomRanges",
    "draw_firing",
    "format_gap",
    "range_problem",
]

MIN_MINUTES: Final = 1
MAX_MINUTES: Final = 240
MIN_GAP_S: Final = 5.0
"""The shortest gap a wearer may ask for (the public floor)."""
MAX_GAP_S: Final = MAX_MINUTES * 60.0
DEFAULT_MIN_GAP_S: Final = 30.0
DEFAULT_MAX_GAP_S: Final = 300.0
DEFAULT_MIN_INTENSITY: Final = 10
DEFAULT_MAX_DURATION_MS: Final = 1000
DURATION_STEP_MS: Final = 100
"""Durations are drawn in steps of 0.1 s (from 0.3 s), so they read well."""


class RandomMode(StrEnum):
    """Which kinds of control random mode sends."""

    SHOCK = "shock"
    VIBRATE = "vibrate"
    BOTH = "both"

    @property
    def kinds(self) -> tuple[ControlKind, ...]:
        if self is RandomMode.SHOCK:
            return (ControlKind.SHOCK,)
        if self is RandomMode.VIBRATE:
            return (ControlKind.VIBRATE,)
        return (ControlKind.SHOCK, ControlKind.VIBRATE)

    @property
    def label(self) -> str:
        return "shock or vibrate" if self is RandomMode.BOTH else self.value


@dataclass(frozen=True, slots=True)
class RandomRanges:
    """What the wearer set: the kinds, intensity in percent, the longest duration in ms (the
    shortest is OpenShock's 0.3 s) and the gap between firings in seconds."""

    mode: RandomMode
    min_intensity: int
    max_intensity: int
    max_duration_ms: int
    min_gap_s: float
    max_gap_s: float


@dataclass(frozen=True, slots=True)
class Firing:
    """One planned control: sent ``gap_s`` seconds after the previous firing (or the start)."""

    gap_s: float
    kind: ControlKind
    intensity: int
    duration_ms: int

    def fits(self, ranges: RandomRanges) -> bool:
        """Is this firing (as stored) within the ranges? Checked again when it is due."""
        return (
            self.kind in ranges.mode.kinds
            and ranges.min_intensity <= self.intensity <= ranges.max_intensity
            and MIN_DURATION_MS <= self.duration_ms <= ranges.max_duration_ms
            and ranges.min_gap_s <= self.gap_s <= ranges.max_gap_s
        )


def range_problem(ranges: RandomRanges, *, gap_floor: float = MIN_GAP_S) -> str | None:
    """One sentence saying what is wrong with the ranges, or None when they are usable."""
    if not MIN_INTENSITY <= ranges.min_intensity <= MAX_INTENSITY:
        return f"`min_intensity` must be between {MIN_INTENSITY} and {MAX_INTENSITY} %."
    if not MIN_INTENSITY <= ranges.max_intensity <= MAX_INTENSITY:
        return f"`max_intensity` must be between {MIN_INTENSITY} and {MAX_INTENSITY} %."
    if ranges.min_intensity > ranges.max_intensity:
        return (
            f"`min_intensity` ({ranges.min_intensity} %) is above `max_intensity` "
            f"({ranges.max_intensity} %)."
        )
    if not MIN_DURATION_MS <= ranges.max_duration_ms <= MAX_DURATION_MS:
        return (
            f"`max_duration` must be between {format_duration(MIN_DURATION_MS)} and "
            f"{format_duration(MAX_DURATION_MS)}."
        )
    for name, gap in (("min_gap", ranges.min_gap_s), ("max_gap", ranges.max_gap_s)):
        if not math.isfinite(gap) or not gap_floor <= gap <= MAX_GAP_S:
            return f"`{name}` must be between {format_gap(gap_floor)} and {format_gap(MAX_GAP_S)}."
    if ranges.min_gap_s > ranges.max_gap_s:
        return (
            f"`min_gap` ({format_gap(ranges.min_gap_s)}) is above `max_gap` "
            f"({format_gap(ranges.max_gap_s)})."
        )
    return None


def draw_firing(ranges: RandomRanges, rng: random.Random) -> Firing:
    """The next firing: a gap, a kind, an intensity and a duration, each uniform within the
    ranges (which `range_problem` accepted)."""
    gap = min(
        max(rng.uniform(ranges.min_gap_s, ranges.max_gap_s), ranges.min_gap_s), ranges.max_gap_s
    )
    kind = rng.choice(ranges.mode.kinds)
    intensity = rng.randint(ranges.min_intensity, ranges.max_intensity)
    low = MIN_DURATION_MS // DURATION_STEP_MS
    high = max(low, ranges.max_duration_ms // DURATION_STEP_MS)
    duration_ms = min(rng.randint(low, high) * DURATION_STEP_MS, ranges.max_duration_ms)
    return Firing(gap_s=gap, kind=kind, intensity=intensity, duration_ms=duration_ms)


def format_gap(seconds: float) -> str:
    """A gap as a person reads it: `5 s`, `45 s`, `5 min`, `2.5 min`."""
    if seconds < 120:
        return f"{seconds:.2f}".rstrip("0").rstrip(".") + " s"
    return f"{seconds / 60:.1f}".rstrip("0").rstrip(".") + " min"
