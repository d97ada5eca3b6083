"""An OpenShock API token's own control limits, applied as OpenShock applies them to REST controls.

Newer OpenShock servers let a wearer scope an API token: an intensity range and a duration range,
each applied in one of two modes, and a paused flag. OpenShock applies them to controls sent over
REST; over the user hub they do not take effect, so the bot applies them itself, as one more
input of the decision (`decision.decide_control`).

The arithmetic is OpenShock's, to the rounding:

- **Clamp**: the value is moved into ``[min, max]``.
- **Lerp**: the whole input range (intensity 0–100, duration 300–65535 ms) is mapped linearly onto
  ``[min, max]``: ``t = (value - in_min) / (in_max - in_min)``, then
  ``min + (max - min) * t`` in double precision, rounded half away from zero, then clamped into
  ``[min, max]``. So a token scoped to 0–30 % in Lerp mode turns a request of 100 % into 30 % and
  one of 50 % into 15 %.

A mode this code does not know is applied as Clamp, as OpenShock's own switch does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from bot.domain.controls import MAX_DURATION_MS, MAX_INTENSITY, MIN_DURATION_MS, format_duration

__all__ = [
    "DURATION_INPUT",
    "INTENSITY_INPUT",
    "NO_TOKEN_LIMITS",
    "LimitMode",
    "TokenLimits",
    "TokenRange",
    "round_half_away_from_zero",
]

# OpenShock's input ranges for the two values (its HardLimits): intensity starts at 0 there.
INTENSITY_INPUT: Final = (0, MAX_INTENSITY)
DURATION_INPUT: Final = (MIN_DURATION_MS, MAX_DURATION_MS)


class LimitMode(StrEnum):
    CLAMP = "clamp"
    LERP = "lerp"


def round_half_away_from_zero(value: float) -> int:
    """.NET's ``Math.Round(value, MidpointRounding.AwayFromZero)``: the integral part, plus one
    away from zero when the fractional part is at least one half."""
    fraction, whole = math.modf(value)
    if abs(fraction) >= 0.5:
        whole += math.copysign(1.0, fraction)
    return int(whole)


@dataclass(frozen=True, slots=True)
class TokenRange:
    """One value's scope on a token: ``[minimum, maximum]`` applied in ``mode``."""

    minimum: int
    maximum: int
    mode: LimitMode = LimitMode.CLAMP

    @property
    def consistent(self) -> bool:
        return self.minimum <= self.maximum

    def apply(self, value: int, input_range: tuple[int, int]) -> int:
        """The value OpenShock would carry on for a requested ``value``. Call only when
        ``consistent`` (OpenShock's own clamp throws otherwise)."""
        low, high = self.minimum, self.maximum
        if self.mode is LimitMode.LERP:
            in_min, in_max = input_range
            t = 0.0 if in_max <= in_min else (value - in_min) / (in_max - in_min)
            value = round_half_away_from_zero(low + (high - low) * t)
        return min(max(value, low), high)

    def covers(self, input_range: tuple[int, int]) -> bool:
        """Whether the scope changes nothing (full range, Clamp)."""
        return self.mode is LimitMode.CLAMP and (self.minimum, self.maximum) == input_range


@dataclass(frozen=True, slots=True)
class TokenLimits:
    """The control scope of the wearer's API token (``ApiTokenControlLimits``)."""

    intensity: TokenRange = TokenRange(*INTENSITY_INPUT)
    duration: TokenRange = TokenRange(*DURATION_INPUT)
    paused: bool = False

    def apply_intensity(self, intensity: int) -> int:
        return self.intensity.apply(intensity, INTENSITY_INPUT)

    def apply_duration(self, duration_ms: int) -> int:
        return self.duration.apply(duration_ms, DURATION_INPUT)

    @property
    def limits_anything(self) -> bool:
        return not (self.intensity.covers(INTENSITY_INPUT) and self.duration.covers(DURATION_INPUT))

    def describe(self) -> str:
        """`intensity 0–30 % (scaled), duration 0.3–2 s (capped)`, for the wearer's replies."""
        parts = []
        if not self.intensity.covers(INTENSITY_INPUT):
            parts.append(
                f"intensity {self.intensity.minimum}–{self.intensity.maximum} % "
                f"({_MODE_WORDS[self.intensity.mode]})"
            )
        if not self.duration.covers(DURATION_INPUT):
            parts.append(
                f"duration {format_duration(self.duration.minimum).removesuffix(' s')}–"
                f"{format_duration(self.duration.maximum)} ({_MODE_WORDS[self.duration.mode]})"
            )
        text = ", ".join(parts) or "no limits"
        return f"{text}; paused" if self.paused else text


_MODE_WORDS: Final = {LimitMode.CLAMP: "clamped", LimitMode.LERP: "scaled"}

NO_TOKEN_LIMITS: Final = TokenLimits()
