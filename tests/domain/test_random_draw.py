"""Random mode's pure rules: drawn firings always within the ranges, and the ranges' checks; and
drawn firings decided like the wearer's own controls never exceed a cap or pass a pause."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.controls import MAX_DURATION_MS, MIN_DURATION_MS, ControlKind, Limits
from bot.domain.decision import Allowed, RefusalCode, Refused, decide_control
from bot.domain.facts import ControlFacts, ControlRequest, GuildShare
from bot.domain.grants import GrantIndex
from bot.domain.random_draw import (
    MAX_GAP_S,
    MIN_GAP_S,
    Firing,
    RandomMode,
    RandomRanges,
    draw_firing,
    format_gap,
    range_problem,
)

GUILD = 10
WEARER = 1
SHOCKER = "collar"


@st.composite
def ranges(draw: st.DrawFn, gap_floor: float = MIN_GAP_S) -> RandomRanges:
    low = draw(st.integers(1, 100))
    high = draw(st.integers(low, 100))
    min_gap = draw(st.floats(gap_floor, MAX_GAP_S))
    max_gap = draw(st.floats(min_gap, MAX_GAP_S))
    return RandomRanges(
        mode=draw(st.sampled_from(RandomMode)),
        min_intensity=low,
        max_intensity=high,
        max_duration_ms=draw(st.integers(MIN_DURATION_MS, MAX_DURATION_MS)),
        min_gap_s=min_gap,
        max_gap_s=max_gap,
    )


@settings(max_examples=500)
@given(ranges(), st.randoms(use_true_random=False))
def test_a_drawn_firing_is_always_within_the_ranges(
    value: RandomRanges, rng: random.Random
) -> None:
    assert range_problem(value) is None
    for _ in range(5):
        firing = draw_firing(value, rng)
        assert firing.fits(value)
        assert firing.kind in value.mode.kinds
        assert value.min_intensity <= firing.intensity <= value.max_intensity
        assert MIN_DURATION_MS <= firing.duration_ms <= value.max_duration_ms
        assert value.min_gap_s <= firing.gap_s <= value.max_gap_s


def test_both_kinds_are_drawn_in_mode_both() -> None:
    value = RandomRanges(RandomMode.BOTH, 10, 20, 1000, 5.0, 10.0)
    rng = random.Random(7)
    assert {draw_firing(value, rng).kind for _ in range(50)} == {
        ControlKind.SHOCK,
        ControlKind.VIBRATE,
    }


def test_the_same_seed_draws_the_same_firings() -> None:
    value = RandomRanges(RandomMode.BOTH, 10, 60, 5000, 5.0, 600.0)
    first = [draw_firing(value, random.Random(42)) for _ in range(3)]
    second = [draw_firing(value, random.Random(42)) for _ in range(3)]
    assert first == second


def test_range_problems_are_one_sentence_each() -> None:
    good = RandomRanges(RandomMode.VIBRATE, 10, 25, 1000, 30.0, 300.0)
    assert range_problem(good) is None
    cases = {
        "`min_intensity` must be between 1 and 100 %.": replace(good, min_intensity=0),
        "`max_intensity` must be between 1 and 100 %.": replace(good, max_intensity=101),
        "`min_intensity` (30 %) is above `max_intensity` (25 %).": replace(good, min_intensity=30),
        "`max_duration` must be between 0.3 s and 65.535 s.": replace(good, max_duration_ms=200),
        "`min_gap` must be between 5 s and 240 min.": replace(good, min_gap_s=4.9),
        "`max_gap` must be between 5 s and 240 min.": replace(good, max_gap_s=MAX_GAP_S + 1),
        "`min_gap` (5 min) is above `max_gap` (60 s).": replace(
            good, min_gap_s=300.0, max_gap_s=60.0
        ),
    }
    for expected, value in cases.items():
        assert range_problem(value) == expected
    assert range_problem(replace(good, min_gap_s=float("nan"))) is not None
    assert range_problem(replace(good, min_gap_s=0.05), gap_floor=0.01) is None


def test_a_stored_firing_out_of_range_does_not_fit() -> None:
    value = RandomRanges(RandomMode.VIBRATE, 10, 25, 1000, 30.0, 300.0)
    fine = Firing(60.0, ControlKind.VIBRATE, 20, 800)
    assert fine.fits(value)
    assert not replace(fine, kind=ControlKind.SHOCK).fits(value)
    assert not replace(fine, intensity=26).fits(value)
    assert not replace(fine, duration_ms=1100).fits(value)
    assert not replace(fine, gap_s=1.0).fits(value)


def test_gaps_read_in_seconds_or_minutes() -> None:
    assert [format_gap(g) for g in (5, 45.5, 120, 150, 300)] == [
        "5 s",
        "45.5 s",
        "2 min",
        "2.5 min",
        "5 min",
    ]


# --- Firings decided as the wearer's own controls, with pauses and caps changing between ------

Step = tuple[str, int, int]  # ("fire" | "pause" | "pause all" | "resume" | "caps", a, b)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("fire"), st.just(0), st.just(0)),
        st.tuples(st.sampled_from(["pause", "pause all", "resume"]), st.just(0), st.just(0)),
        st.tuples(
            st.just("caps"), st.integers(1, 100), st.integers(MIN_DURATION_MS, MAX_DURATION_MS)
        ),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(
    ranges(),
    steps,
    st.randoms(use_true_random=False),
    st.integers(1, 100),
    st.integers(MIN_DURATION_MS, MAX_DURATION_MS),
)
def test_no_sequence_of_firings_exceeds_a_cap_or_passes_a_pause(
    value: RandomRanges, sequence: list[Step], rng: random.Random, guild_cap: int, op_ms: int
) -> None:
    share = GuildShare(SHOCKER, WEARER, max_intensity=100, max_duration_ms=MAX_DURATION_MS)
    wearer_paused = False
    guild_limits = Limits(max_intensity=guild_cap)
    operator = Limits(max_duration_ms=op_ms)
    for action, a, b in sequence:
        if action == "pause":
            share = replace(share, paused=True)
        elif action == "pause all":
            wearer_paused = True
        elif action == "resume":
            share, wearer_paused = replace(share, paused=False), False
        elif action == "caps":
            share = replace(share, max_intensity=a, max_duration_ms=b)
        else:
            firing = draw_firing(value, rng)
            request = ControlRequest(
                WEARER, frozenset(), GUILD, firing.kind, firing.intensity, firing.duration_ms
            )
            facts = ControlFacts(
                share=share,
                grants=GrantIndex(),
                operator_limits=operator,
                guild_limits=guild_limits,
                wearer_paused=wearer_paused,
                device_online=True,
            )
            decision = decide_control(request, facts)
            paused = share.paused or wearer_paused
            if paused:
                assert isinstance(decision, Refused) and decision.code is RefusalCode.PAUSED
                continue
            assert isinstance(decision, Allowed)
            assert decision.type is firing.kind
            assert 1 <= decision.intensity <= min(firing.intensity, share.max_intensity, guild_cap)
            cap_ms = max(MIN_DURATION_MS, min(share.max_duration_ms, op_ms))
            assert MIN_DURATION_MS <= decision.duration_ms <= min(firing.duration_ms, cap_ms)
