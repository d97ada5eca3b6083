"""Grants that end: the duration parser (`30m`, `2h`, `1d`, `1w`, `1h30m`, with clear refusals)
and the decision, which stops counting a grant at its end."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.decision import (
    ControlFacts,
    ControlKind,
    ControlRequest,
    GrantIndex,
    GrantRule,
    GrantTarget,
    GrantTier,
    GuildShare,
    Limits,
    RefusalCode,
    Refused,
    decide_control,
    describe_access,
)
from bot.domain.durations import (
    MAX_EXPIRY_S,
    MIN_EXPIRY_S,
    DurationError,
    format_span,
    parse_duration,
)

GUILD, WEARER, MEMBER, ROLE = 1000, 1, 2, 50
SHOCKER = "shocker-a"
NOW = 1_700_000_000.0
SHARE = GuildShare(shocker_id=SHOCKER, wearer_id=WEARER, max_intensity=100, max_duration_ms=30_000)


# -- the parser ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86_400),
        ("1w", 604_800),
        ("1h30m", 5400),
        ("1d 12h", 129_600),
        ("  2H ", 7200),
        ("90 minutes", 5400),
        ("1 week 2 days", 777_600),
        ("1m", 60),
        ("52w1d", 365 * 86_400),
        ("365d", 365 * 86_400),
    ],
)
def test_durations_people_type(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("", "Give a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("30", "`30` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("2y", "`2y` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("soon", "`soon` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("-5m", "`-5m` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("1.5h", "`1.5h` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("1h 1h", "`1h 1h` gives the same unit twice; write it once."),
        ("0m", "A duration must be at least 1 minute."),
        ("30s", "`30s` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("366d", "A duration can be at most a year."),
        ("999999w", "A duration can be at most a year."),
        (
            "`@everyone`",
            "`'@everyone'` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`.",
        ),
    ],
)
def test_anything_else_is_refused_with_one_sentence(text: str, sentence: str) -> None:
    with pytest.raises(DurationError) as refused:
        parse_duration(text)
    assert refused.value.message == sentence


@given(st.text(max_size=30))
def test_the_parser_gives_seconds_in_range_or_a_sentence(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError as error:
        assert error.message.endswith(".")
    else:
        assert MIN_EXPIRY_S <= seconds <= MAX_EXPIRY_S


def test_format_span() -> None:
    assert [format_span(s) for s in (60, 5400, 86_400 * 9, 365 * 86_400)] == [
        "1 minute",
        "1 hour 30 minutes",
        "1 week 2 days",
        "a year",
    ]


# -- the decision -------------------------------------------------------------------------------


def facts(*grants: GrantRule, now: float = NOW) -> ControlFacts:
    return ControlFacts(
        share=SHARE,
        grants=GrantIndex(grants),
        operator_limits=Limits(100, 30_000),
        device_online=True,
        now=now,
    )


def shock(member: int = MEMBER) -> ControlRequest:
    return ControlRequest(member, frozenset({ROLE}), GUILD, ControlKind.SHOCK, 50, 1000)


def test_a_grant_counts_until_its_end_and_not_from_then_on() -> None:
    grant = GrantRule(GrantTarget.MEMBER, MEMBER, expires_at=NOW + 60)
    assert not isinstance(decide_control(shock(), facts(grant, now=NOW + 59.9)), Refused)
    for now in (NOW + 60, NOW + 3600):
        decision = decide_control(shock(), facts(grant, now=now))
        assert isinstance(decision, Refused) and decision.code is RefusalCode.NO_GRANT
    access = describe_access(
        facts(grant, now=NOW + 60), member_id=MEMBER, member_role_ids={ROLE}, guild_id=GUILD
    )
    assert access.refusal is not None and access.refusal.code is RefusalCode.NO_GRANT


def test_an_ended_grant_no_longer_wins_its_tier() -> None:
    """Ended is as if revoked: the member's own grant no longer hides their role's grant."""
    own = GrantRule(GrantTarget.MEMBER, MEMBER, shocker_id=SHOCKER, expires_at=NOW)
    role = GrantRule(GrantTarget.ROLE, ROLE, max_intensity=10)
    index = GrantIndex([own, role])
    assert index.resolve(MEMBER, {ROLE}, GUILD, SHOCKER, now=NOW - 1) == (
        GrantTier.MEMBER_SHOCKER,
        (own,),
    )
    assert index.resolve(MEMBER, {ROLE}, GUILD, SHOCKER, now=NOW) == (GrantTier.ROLE_ALL, (role,))
    # Of two role grants in one tier, only the live one merges.
    ended_role = GrantRule(GrantTarget.ROLE, GUILD, max_intensity=90, expires_at=NOW)
    index = GrantIndex([ended_role, role])
    assert index.resolve(MEMBER, {ROLE}, GUILD, SHOCKER, now=NOW) == (GrantTier.ROLE_ALL, (role,))


def test_the_wearer_needs_no_grant_and_a_stop_needs_a_live_one() -> None:
    grant = GrantRule(GrantTarget.MEMBER, MEMBER, expires_at=NOW)
    assert not isinstance(decide_control(shock(WEARER), facts(grant)), Refused)
    stop = ControlRequest(MEMBER, frozenset(), GUILD, ControlKind.STOP)
    decision = decide_control(stop, facts(grant))
    assert isinstance(decision, Refused) and decision.code is RefusalCode.NO_GRANT
