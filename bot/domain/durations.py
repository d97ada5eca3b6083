"""Durations as people type them: `30m`, `2h`, `1d`, `1w`, and combinations such as `1h30m` or
`1d 12h`. Pure: `parse_duration` gives seconds or raises `DurationError` with one sentence.

Used for how long a grant lasts (`/permissions grant … expires:`): at least a minute, at most a
year.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_EXPIRY_S",
    "MIN_EXPIRY_S",
    "DurationError",
    "format_span",
    "parse_duration",
]

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
WEEK: Final = 7 * DAY

MIN_EXPIRY_S: Final = MINUTE
MAX_EXPIRY_S: Final = 365 * DAY

_UNITS: Final = {
    "w": WEEK,
    "week": WEEK,
    "weeks": WEEK,
    "d": DAY,
    "day": DAY,
    "days": DAY,
    "h": HOUR,
    "hr": HOUR,
    "hrs": HOUR,
    "hour": HOUR,
    "hours": HOUR,
    "m": MINUTE,
    "min": MINUTE,
    "mins": MINUTE,
    "minute": MINUTE,
    "minutes": MINUTE,
}
_PART: Final = re.compile(r"(\d{1,6})\s*([a-z]+)\s*")
_EXAMPLES: Final = "a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`"


class DurationError(ValueError):
    """A duration that cannot be used; the message is one sentence for the member."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_duration(
    text: str, *, minimum_s: int = MIN_EXPIRY_S, maximum_s: int = MAX_EXPIRY_S
) -> int:
    """Seconds in ``text``: one or more number-and-unit parts (w, d, h, m, or their names), each
    unit at most once. Refused: an empty or unreadable text, a bare number, a repeated unit, and
    anything shorter than ``minimum_s`` or longer than ``maximum_s``."""
    cleaned = text.strip().casefold()
    if not cleaned:
        raise DurationError(f"Give {_EXAMPLES}.")
    position = 0
    total = 0
    seen: set[int] = set()
    while position < len(cleaned):
        match = _PART.match(cleaned, position)
        if match is None or match.group(2) not in _UNITS:
            raise DurationError(f"`{_clip(text)}` is not {_EXAMPLES}.")
        unit = _UNITS[match.group(2)]
        if unit in seen:
            raise DurationError(f"`{_clip(text)}` gives the same unit twice; write it once.")
        seen.add(unit)
        total += int(match.group(1)) * unit
        position = match.end()
    if total < minimum_s:
        raise DurationError(f"A duration must be at least {format_span(minimum_s)}.")
    if total > maximum_s:
        raise DurationError(f"A duration can be at most {format_span(maximum_s)}.")
    return total


def format_span(seconds: int) -> str:
    """`1 week`, `2 days 3 hours`, 5400 → `1 hour 30 minutes`: whole units, largest first
    (seconds are left out); 365 days is `a year`."""
    if seconds == 365 * DAY:
        return "a year"
    parts = []
    remaining = int(seconds)
    for size, name in ((WEEK, "week"), (DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts) or "less than a minute"


def _clip(text: str, limit: int = 40) -> str:
    """The member's text, short and without backticks, to quote it back."""
    text = text.strip().replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"
