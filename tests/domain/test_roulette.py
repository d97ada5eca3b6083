"""Roulette's pure choice: only a shocker usable right now, within the member's caps, for 1 s.

The candidates are built from facts through the real `describe_access`, the way the cog gets
them, and the property checks the choice against `decide_control`: what roulette picks is
allowed as it is, with nothing capped."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bot.domain.controls import MIN_DURATION_MS, ControlKind, Limits
from bot.domain.decision import (
    Allowed,
    ShockerAccess,
    decide_control,
    describe_access,
)
from bot.domain.facts import ControlFacts, ControlRequest, GuildShare, OpenShockAccess
from bot.domain.grants import GrantIndex, GrantRule, GrantTarget
from bot.domain.roulette import ROULETTE_DURATION_MS, ROULETTE_KINDS, pick

GUILD = 1000
MEMBER = 2
NOW = 1_700_000_000.0
OPERATOR = Limits(max_intensity=100, max_duration_ms=30_000)


@dataclass(frozen=True)
class Candidate:
    """One shocker in one state (`state` names what makes it unusable, if anything)."""

    shocker_id: str
    state: str
    facts: ControlFacts


STATES = (
    "usable",
    "unshared",
    "no grant",
    "paused",
    "wearer paused",
    "blocked",
    "offline",
    "unknown device",
    "paused on OpenShock",
    "cooling down",
    "type not allowed",
)


@st.composite
def candidates(draw: st.DrawFn, index: int) -> Candidate:
    shocker_id = f"shocker-{index}"
    state = draw(st.sampled_from(STATES))
    wearer = 100 + index
    share = GuildShare(
        shocker_id=shocker_id,
        wearer_id=wearer,
        max_intensity=draw(st.integers(1, 100)),
        max_duration_ms=draw(st.integers(300, 65_535)),
        allow_shock=state != "type not allowed",
        allow_vibrate=state != "type not allowed",
        allow_sound=state != "type not allowed",
        paused=state == "paused",
    )
    grant = GrantRule(
        GrantTarget.MEMBER,
        MEMBER,
        max_intensity=draw(st.none() | st.integers(1, 100)),
        max_duration_ms=draw(st.none() | st.integers(300, 65_535)),
        cooldown_ms=60_000 if state == "cooling down" else None,
    )
    online: bool | None = {"offline": False, "unknown device": None}.get(state, True)
    facts = ControlFacts(
        share=None if state == "unshared" else share,
        grants=GrantIndex([] if state == "no grant" else [grant]),
        operator_limits=OPERATOR,
        guild_limits=Limits(draw(st.none() | st.integers(1, 100)), None),
        wearer_paused=state == "wearer paused",
        blocked=state == "blocked",
        openshock=OpenShockAccess(shocker_paused=state == "paused on OpenShock"),
        device_online=online,
        last_control_at=NOW - 10 if state == "cooling down" else None,
        now=NOW,
    )
    return Candidate(shocker_id, state, facts)


@st.composite
def scenes(draw: st.DrawFn) -> list[Candidate]:
    count = draw(st.integers(0, 6))
    return [draw(candidates(index)) for index in range(count)]


def accesses(scene: list[Candidate]) -> list[tuple[Candidate, ShockerAccess]]:
    return [
        (c, describe_access(c.facts, member_id=MEMBER, member_role_ids=(), guild_id=GUILD))
        for c in scene
    ]


@given(scene=scenes(), kind=st.sampled_from(ROULETTE_KINDS), seed=st.integers(0, 2**32))
def test_roulette_picks_only_what_the_decision_allows_as_it_is(
    scene: list[Candidate], kind: ControlKind, seed: int
) -> None:
    chosen = pick(accesses(scene), kind, random.Random(seed))
    usable = [c for c in scene if c.state == "usable"]
    if chosen is None:
        event("nothing usable")
        assert usable == []
        return
    candidate = chosen.item
    event(f"picked among {len(usable)}")
    # Never a paused, offline, blocked, unshared… shocker.
    assert candidate.state == "usable"
    decision = decide_control(
        ControlRequest(
            member_id=MEMBER,
            member_role_ids=frozenset(),
            guild_id=GUILD,
            type=kind,
            intensity=chosen.intensity,
            duration_ms=chosen.duration_ms,
        ),
        candidate.facts,
    )
    assert isinstance(decision, Allowed)
    assert not decision.capped  # within the effective caps: sent exactly as picked
    assert chosen.intensity >= 1
    assert MIN_DURATION_MS <= chosen.duration_ms <= ROULETTE_DURATION_MS


@given(scene=scenes(), seed=st.integers(0, 2**32))
def test_the_same_seed_gives_the_same_pick(scene: list[Candidate], seed: int) -> None:
    first = pick(accesses(scene), ControlKind.SHOCK, random.Random(seed))
    again = pick(accesses(scene), ControlKind.SHOCK, random.Random(seed))
    assert first == again


def _usable(index: int, max_intensity: int) -> Candidate:
    share = GuildShare(f"s{index}", 100 + index, max_intensity=max_intensity, max_duration_ms=500)
    facts = ControlFacts(
        share=share,
        grants=GrantIndex([GrantRule(GrantTarget.MEMBER, MEMBER)]),
        operator_limits=OPERATOR,
        device_online=True,
        now=NOW,
    )
    return Candidate(f"s{index}", "usable", facts)


def test_every_usable_shocker_and_every_intensity_up_to_the_cap_come_up() -> None:
    scene = [_usable(0, 3), _usable(1, 3)]
    rng = random.Random(7)
    picks = [pick(accesses(scene), ControlKind.VIBRATE, rng) for _ in range(200)]
    assert {p.item.shocker_id for p in picks if p} == {"s0", "s1"}
    assert {p.intensity for p in picks if p} == {1, 2, 3}
    assert {p.duration_ms for p in picks if p} == {500}  # the duration cap is below 1 s


def test_stop_is_not_a_roulette_type() -> None:
    with pytest.raises(ValueError, match="STOP"):
        pick(accesses([_usable(0, 10)]), ControlKind.STOP, random.Random(0))
