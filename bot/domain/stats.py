"""A guild's activity over the last days (for `/stats`), from the audit trail's aggregates.

Storage counts the rows (GROUP BY in SQLite); this module turns those counts into what `/stats`
shows: controls per UTC day by type, the totals by outcome, the share delivered, and the top
senders and shockers. It knows nothing of Discord, SQL or drawing.

What the numbers mean:
- **attempts** are all audit rows of the guild in the window: every control asked for, including
  the refused and the failed ones. The chart, the top senders and the top shockers count
  attempts.
- **delivered** are the attempts whose outcome is `confirmed` (OpenShock's Log confirmed it) or
  `sent` (the hub accepted it and no confirmation can come: OpenShock confirms controls to the
  shocker's owner only). `not_confirmed` (sent, but no confirmation in time), `refused` and
  `failed` are not delivered. The share delivered is delivered / attempts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from bot.domain.controls import ControlKind

SECONDS_PER_DAY = 86_400
EPOCH = date(1970, 1, 1)

DEFAULT_STATS_DAYS = 7
MAX_STATS_DAYS = 90
TOP_COUNT = 5

# The audit outcomes (their stored values) that count as delivered; see the module docstring.
DELIVERED_OUTCOMES = frozenset({"sent", "confirmed"})
OUTCOMES = ("confirmed", "sent", "not_confirmed", "refused", "failed")

# The order of the types in the chart's stack and legend.
CHART_TYPES = (ControlKind.SHOCK, ControlKind.VIBRATE, ControlKind.SOUND, ControlKind.STOP)


def day_number(timestamp: float) -> int:
    """The UTC calendar day of a unix time, as days since 1970-01-01 (SQLite computes the same
    with ``CAST(created_at / 86400 AS INTEGER)`` for times after 1970)."""
    return int(timestamp // SECONDS_PER_DAY)


def day_date(day: int) -> date:
    return EPOCH + timedelta(days=day)


def window_start(now: float, days: int) -> float:
    """The first second of the window of ``days`` UTC calendar days that ends today."""
    return float((day_number(now) - days + 1) * SECONDS_PER_DAY)


@dataclass(frozen=True, slots=True)
class DayCount:
    """How many attempts of one type on one UTC day ended with one outcome."""

    day: int
    control_type: int
    outcome: str
    count: int


@dataclass(frozen=True, slots=True)
class SenderCount:
    member_id: int
    count: int


@dataclass(frozen=True, slots=True)
class ShockerCount:
    """Attempts on one shocker that is shared in the guild, with its wearer there."""

    shocker_id: str
    shocker_name: str
    wearer_id: int
    count: int


@dataclass(frozen=True)
class GuildStats:
    days: int
    first_day: int
    per_type: dict[int, list[int]]  # control type -> attempts per day, `days` long
    outcomes: dict[str, int]  # stored outcome value -> attempts
    top_senders: Sequence[SenderCount] = field(default_factory=tuple)
    top_shockers: Sequence[ShockerCount] = field(default_factory=tuple)

    @property
    def dates(self) -> list[date]:
        return [day_date(self.first_day + offset) for offset in range(self.days)]

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())

    @property
    def delivered(self) -> int:
        return sum(self.outcomes.get(outcome, 0) for outcome in DELIVERED_OUTCOMES)

    @property
    def delivered_share(self) -> float | None:
        """Delivered / attempts, or None when there was no attempt."""
        return self.delivered / self.attempts if self.attempts else None

    @property
    def empty(self) -> bool:
        return self.attempts == 0

    def per_day(self) -> list[int]:
        """All types together, per day."""
        return [sum(column) for column in zip(*self.per_type.values(), strict=True)]


def summarize(
    *,
    days: int,
    now: float,
    counts: Iterable[DayCount],
    top_senders: Sequence[SenderCount] = (),
    top_shockers: Sequence[ShockerCount] = (),
) -> GuildStats:
    """The stats of the window of ``days`` UTC days ending today, from storage's aggregates
    (a few hundred groups at most: days × types × outcomes). Days without controls count 0;
    groups outside the window (a clock that went back) are left out."""
    first_day = day_number(now) - days + 1
    per_type = {int(control_type): [0] * days for control_type in CHART_TYPES}
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for group in counts:
        offset = group.day - first_day
        if not 0 <= offset < days:
            continue
        per_type.setdefault(group.control_type, [0] * days)[offset] += group.count
        outcomes[group.outcome] = outcomes.get(group.outcome, 0) + group.count
    return GuildStats(
        days=days,
        first_day=first_day,
        per_type=per_type,
        outcomes=outcomes,
        top_senders=tuple(top_senders),
        top_shockers=tuple(top_shockers),
    )


def percent(share: float) -> str:
    """`77 %` (halves round up); a share that is not quite all or nothing never reads 100 % or
    0 %."""
    value = math.floor(share * 100 + 0.5)
    if value == 100 and share < 1:
        value = 99
    if value == 0 and share > 0:
        value = 1
    return f"{value} %"


def period_text(stats: GuildStats) -> str:
    first, last = stats.dates[0], stats.dates[-1]
    if stats.days == 1:
        return f"today ({last.isoformat()}, UTC)"
    return f"the last {stats.days} days ({first.isoformat()} to {last.isoformat()}, UTC)"


def delivery_text(stats: GuildStats) -> str:
    """`110 of 142 attempts delivered (77 %) · 12 not confirmed · 15 refused · 5 failed`."""
    share = stats.delivered_share
    head = f"{stats.delivered} of {stats.attempts} attempts delivered"
    if share is not None:
        head += f" ({percent(share)})"
    parts = [head]
    for outcome, label in (
        ("not_confirmed", "not confirmed"),
        ("refused", "refused"),
        ("failed", "failed"),
    ):
        if stats.outcomes.get(outcome):
            parts.append(f"{stats.outcomes[outcome]} {label}")
    return " · ".join(parts)


def generated_at(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")
