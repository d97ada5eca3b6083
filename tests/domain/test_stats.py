"""The /stats numbers from storage's aggregates: windows, zero-filled days, the delivered share."""

from __future__ import annotations

import sqlite3
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.stats import (
    SECONDS_PER_DAY,
    DayCount,
    day_number,
    delivery_text,
    percent,
    period_text,
    summarize,
    window_start,
)

NOW = date(2026, 11, 30).toordinal() - date(1970, 1, 1).toordinal()
NOW_TS = NOW * SECONDS_PER_DAY + 15 * 3600.0  # 2026-11-30 15:00 UTC


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_day_number_is_the_day_sqlite_computes(timestamp: float) -> None:
    with sqlite3.connect(":memory:") as db:
        (day,) = db.execute("SELECT CAST(? / 86400 AS INTEGER)", (timestamp,)).fetchone()
    assert day == day_number(timestamp)


def test_the_window_is_whole_utc_days_ending_today() -> None:
    assert window_start(NOW_TS, 1) == NOW * SECONDS_PER_DAY
    assert window_start(NOW_TS, 7) == (NOW - 6) * SECONDS_PER_DAY
    stats = summarize(days=7, now=NOW_TS, counts=[])
    assert stats.dates[0] == date(2026, 11, 24) and stats.dates[-1] == date(2026, 11, 30)
    assert period_text(stats) == "the last 7 days (2026-11-24 to 2026-11-30, UTC)"
    assert period_text(summarize(days=1, now=NOW_TS, counts=[])) == "today (2026-11-30, UTC)"


def test_days_without_controls_count_zero_and_groups_outside_are_left_out() -> None:
    counts = [
        DayCount(NOW, 1, "confirmed", 4),
        DayCount(NOW, 1, "refused", 1),
        DayCount(NOW - 2, 2, "sent", 3),
        DayCount(NOW - 2, 0, "not_confirmed", 2),
        DayCount(NOW - 3, 3, "failed", 5),  # before a 3-day window
        DayCount(NOW + 1, 1, "confirmed", 9),  # after it (a clock that went back)
    ]
    stats = summarize(days=3, now=NOW_TS, counts=counts)
    assert stats.per_type == {1: [0, 0, 5], 2: [3, 0, 0], 3: [0, 0, 0], 0: [2, 0, 0]}
    assert stats.per_day() == [5, 0, 5]
    assert stats.attempts == 10 and stats.delivered == 7
    assert stats.delivered_share == 0.7
    assert delivery_text(stats) == (
        "7 of 10 attempts delivered (70 %) · 2 not confirmed · 1 refused"
    )
    empty = summarize(days=3, now=NOW_TS, counts=counts[4:])
    assert empty.empty and empty.delivered_share is None
    assert delivery_text(empty) == "0 of 0 attempts delivered"


def test_percentages_round_halves_up_and_never_claim_all_or_nothing() -> None:
    assert [percent(x) for x in (0.625, 0.5, 0.994, 0.999, 1.0, 0.0, 0.001)] == [
        "63 %",
        "50 %",
        "99 %",
        "99 %",
        "100 %",
        "0 %",
        "1 %",
    ]
