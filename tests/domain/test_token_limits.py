"""The API token's own limits: OpenShock's arithmetic, and how the decision honours them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.decision import (
    Allowed,
    CapSource,
    ControlKind,
    GrantIndex,
    GuildShare,
    Limits,
    RefusalCode,
    Refused,
    decide_control,
    describe_access,
)
from bot.domain.token_limits import (
    DURATION_INPUT,
    INTENSITY_INPUT,
    LimitMode,
    TokenLimits,
    TokenRange,
    round_half_away_from_zero,
)
from tests.domain.test_decision import GUILD, MEMBER, SHARE, WEARER, facts, member_grant, request

CLAMP, LERP = LimitMode.CLAMP, LimitMode.LERP


def intensity_scope(low: int, high: int, mode: LimitMode) -> TokenLimits:
    return TokenLimits(intensity=TokenRange(low, high, mode))


def duration_scope(low: int, high: int, mode: LimitMode) -> TokenLimits:
    return TokenLimits(duration=TokenRange(low, high, mode))


# --- OpenShock's arithmetic (the cases of its own ApiTokenControlLimitsTests) -------------------


@pytest.mark.parametrize(
    ("low", "high", "value", "expected"),
    [(0, 100, 100, 100), (0, 50, 100, 50), (0, 50, 30, 30), (20, 80, 0, 20)],
)
def test_intensity_clamp(low: int, high: int, value: int, expected: int) -> None:
    assert intensity_scope(low, high, CLAMP).apply_intensity(value) == expected


@pytest.mark.parametrize(
    ("low", "high", "value", "expected"),
    [
        (0, 50, 0, 0),
        (0, 50, 100, 50),
        (0, 50, 50, 25),
        (20, 80, 0, 20),
        (20, 80, 100, 80),
        (20, 80, 50, 50),
    ],
)
def test_intensity_lerp(low: int, high: int, value: int, expected: int) -> None:
    assert intensity_scope(low, high, LERP).apply_intensity(value) == expected


@pytest.mark.parametrize(
    ("low", "high", "value", "expected"),
    [(300, 65535, 1000, 1000), (300, 1000, 5000, 1000), (300, 1000, 700, 700)],
)
def test_duration_clamp(low: int, high: int, value: int, expected: int) -> None:
    assert duration_scope(low, high, CLAMP).apply_duration(value) == expected


def test_duration_lerp_maps_the_whole_input_range() -> None:
    scope = duration_scope(1000, 5000, LERP)
    assert scope.apply_duration(300) == 1000
    assert scope.apply_duration(65535) == 5000
    assert scope.apply_duration((300 + 65535) // 2) == 3000


def test_lerp_rounds_half_away_from_zero_like_dotnet() -> None:
    # 0..5 at 50 %: 2.5 → 3 (Python's round() would give 2); 0..3 at 50 %: 1.5 → 2.
    assert intensity_scope(0, 5, LERP).apply_intensity(50) == 3
    assert intensity_scope(0, 3, LERP).apply_intensity(50) == 2
    assert intensity_scope(0, 30, LERP).apply_intensity(1) == 0  # 0.3 → 0
    assert intensity_scope(0, 50, LERP).apply_intensity(1) == 1  # 0.5 → 1
    assert round_half_away_from_zero(-2.5) == -3
    assert round_half_away_from_zero(0.49999999999999994) == 0  # floor(x + 0.5) would say 1


@given(
    low=st.integers(0, 100),
    span=st.integers(0, 100),
    value=st.integers(0, 100),
    mode=st.sampled_from(LimitMode),
)
def test_applied_intensity_matches_the_formula_and_stays_in_range(
    low: int, span: int, value: int, mode: LimitMode
) -> None:
    high = min(100, low + span)
    result = intensity_scope(low, high, mode).apply_intensity(value)
    assert low <= result <= high
    if mode is CLAMP:
        assert result == min(max(value, low), high)
    else:
        in_min, in_max = INTENSITY_INPUT
        exact = low + (high - low) * ((value - in_min) / (in_max - in_min))
        assert abs(result - exact) <= 0.5


def test_full_range_clamp_limits_nothing() -> None:
    assert not TokenLimits().limits_anything
    assert TokenLimits(intensity=TokenRange(*INTENSITY_INPUT, LERP)).limits_anything
    assert TokenLimits(duration=TokenRange(DURATION_INPUT[0], 2000)).limits_anything
    assert TokenLimits().describe() == "no limits"
    assert intensity_scope(0, 30, LERP).describe() == "intensity 0–30 % (scaled)"


# --- In the decision ------------------------------------------------------------------------


def test_clamp_caps_at_the_token_maximum_and_says_so() -> None:
    decision = decide_control(
        request(intensity=100), facts(member_grant(), token=intensity_scope(0, 30, CLAMP))
    )
    assert isinstance(decision, Allowed)
    assert decision.intensity == 30
    assert decision.intensity_capped_by == (CapSource.TOKEN,)
    assert decision.capped_notes == ("capped at 30 % (token limit)",)


def test_lerp_scales_the_request_with_openshocks_formula() -> None:
    decision = decide_control(
        request(intensity=50), facts(member_grant(), token=intensity_scope(0, 30, LERP))
    )
    assert isinstance(decision, Allowed)
    assert decision.intensity == 15
    assert decision.capped_notes == ("scaled to 15 % (token limit)",)


def test_token_scaling_comes_before_the_other_caps() -> None:
    # Lerp 0–80 % makes 100 % into 80 %; the wearer's share then caps it at 25 %.
    share = GuildShare(SHARE.shocker_id, WEARER, max_intensity=25, max_duration_ms=30_000)
    decision = decide_control(
        request(intensity=100),
        facts(member_grant(), share=share, token=intensity_scope(0, 80, LERP)),
    )
    assert isinstance(decision, Allowed)
    assert decision.intensity == 25
    assert decision.intensity_capped_by == (CapSource.SHARE,)


def test_a_token_minimum_raises_a_low_request() -> None:
    decision = decide_control(
        request(intensity=5), facts(member_grant(), token=intensity_scope(20, 80, CLAMP))
    )
    assert isinstance(decision, Allowed)
    assert decision.intensity == 20
    assert decision.capped_notes == ("raised to 20 % (token limit)",)


def test_a_token_minimum_above_the_resulting_cap_is_refused_with_a_sentence() -> None:
    grant = member_grant(max_intensity=10)
    decision = decide_control(
        request(intensity=10), facts(grant, token=intensity_scope(20, 80, CLAMP))
    )
    assert isinstance(decision, Refused)
    assert decision.code is RefusalCode.TOKEN_LIMIT
    assert "at least 20 %" in decision.reason and "10 %" in decision.reason
    access = describe_access(
        facts(grant, token=intensity_scope(20, 80, CLAMP)),
        member_id=MEMBER,
        member_role_ids=(),
        guild_id=GUILD,
    )
    assert access.types == frozenset({ControlKind.STOP})


def test_a_duration_minimum_above_the_cap_is_refused() -> None:
    decision = decide_control(
        request(duration_ms=1000),
        facts(member_grant(max_duration_ms=1000), token=duration_scope(2000, 5000, CLAMP)),
    )
    assert isinstance(decision, Refused)
    assert decision.code is RefusalCode.TOKEN_LIMIT


def test_an_inconsistent_token_range_is_a_refusal_not_an_exception() -> None:
    decision = decide_control(
        request(), facts(member_grant(), token=intensity_scope(60, 40, CLAMP))
    )
    assert isinstance(decision, Refused)
    assert decision.code is RefusalCode.TOKEN_LIMIT


def test_a_token_that_scales_to_zero_sends_nothing() -> None:
    decision = decide_control(
        request(intensity=1), facts(member_grant(), token=intensity_scope(0, 30, LERP))
    )
    assert isinstance(decision, Refused)
    assert decision.code is RefusalCode.ZERO_LIMIT


def test_duration_lerp_in_the_decision() -> None:
    decision = decide_control(
        request(duration_ms=65535),
        facts(
            member_grant(),
            operator_limits=Limits(100, 65535),
            token=duration_scope(300, 2000, LERP),
        ),
    )
    assert isinstance(decision, Allowed)
    assert decision.duration_ms == 2000
    assert decision.duration_capped_by == (CapSource.TOKEN,)


def test_a_paused_token_is_a_pause_but_stop_goes_through() -> None:
    paused = TokenLimits(paused=True)
    for member in (MEMBER, WEARER):
        refused = decide_control(request(member=member), facts(member_grant(), token=paused))
        assert isinstance(refused, Refused)
        assert refused.code is RefusalCode.PAUSED
        assert "token" in refused.reason
    stop = decide_control(request(ControlKind.STOP), facts(member_grant(), token=paused))
    assert isinstance(stop, Allowed)


def test_a_full_range_token_changes_nothing() -> None:
    decision = decide_control(request(intensity=100), facts(member_grant(), token=TokenLimits()))
    assert isinstance(decision, Allowed)
    assert decision.intensity == 100
    assert not decision.capped


@given(
    requested=st.integers(1, 100),
    duration=st.integers(300, 65535),
    low=st.integers(0, 100),
    high=st.integers(0, 100),
    mode=st.sampled_from(LimitMode),
    d_low=st.integers(300, 65535),
    d_high=st.integers(300, 65535),
    d_mode=st.sampled_from(LimitMode),
    grant_cap=st.one_of(st.none(), st.integers(0, 100)),
    share_cap=st.integers(1, 100),
    operator_cap=st.integers(1, 100),
)
def test_never_above_any_cap_and_never_below_the_token_minimum(
    requested: int,
    duration: int,
    low: int,
    high: int,
    mode: LimitMode,
    d_low: int,
    d_high: int,
    d_mode: LimitMode,
    grant_cap: int | None,
    share_cap: int,
    operator_cap: int,
) -> None:
    token = TokenLimits(
        intensity=TokenRange(low, high, mode), duration=TokenRange(d_low, d_high, d_mode)
    )
    share = GuildShare(SHARE.shocker_id, WEARER, max_intensity=share_cap, max_duration_ms=65535)
    decision = decide_control(
        request(intensity=requested, duration_ms=duration),
        facts(
            member_grant(max_intensity=grant_cap),
            share=share,
            operator_limits=Limits(operator_cap, 65535),
            grants=GrantIndex([member_grant(max_intensity=grant_cap)]),
            token=token,
        ),
    )
    if isinstance(decision, Refused):
        assert decision.code in (RefusalCode.TOKEN_LIMIT, RefusalCode.ZERO_LIMIT)
        return
    caps = [share_cap, operator_cap, high] + ([grant_cap] if grant_cap is not None else [])
    assert decision.intensity <= min(caps)
    assert low <= decision.intensity
    assert decision.intensity == min(token.apply_intensity(requested), *caps)
    assert d_low <= decision.duration_ms <= d_high
    assert decision.duration_ms == token.apply_duration(duration)
