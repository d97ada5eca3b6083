"""The control decision: every rule of "Deciding a control", by example and by property."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bot.domain.decision import (
    MAX_DURATION_MS,
    MIN_DURATION_MS,
    STOP_DURATION_MS,
    Allowed,
    CapSource,
    ControlFacts,
    ControlKind,
    ControlRequest,
    GrantIndex,
    GrantRule,
    GrantTarget,
    GrantTier,
    GuildShare,
    Limits,
    OpenShockAccess,
    OpenShockShare,
    RefusalCode,
    Refused,
    decide_control,
    describe_access,
    format_duration,
)

GUILD = 1000
WEARER = 1
MEMBER = 2
OTHER = 3
ROLE = 50
OTHER_ROLE = 51
SHOCKER = "shocker-a"
OTHER_SHOCKER = "shocker-b"
NOW = 1_700_000_000.0

SHARE = GuildShare(shocker_id=SHOCKER, wearer_id=WEARER, max_intensity=100, max_duration_ms=30_000)
OPERATOR = Limits(max_intensity=100, max_duration_ms=30_000)


def member_grant(**kwargs: object) -> GrantRule:
    return GrantRule(GrantTarget.MEMBER, MEMBER, **kwargs)  # type: ignore[arg-type]


def role_grant(role: int = ROLE, **kwargs: object) -> GrantRule:
    return GrantRule(GrantTarget.ROLE, role, **kwargs)  # type: ignore[arg-type]


def facts(*grants: GrantRule, **kwargs: object) -> ControlFacts:
    values: dict[str, object] = {
        "share": SHARE,
        "grants": GrantIndex(grants),
        "operator_limits": OPERATOR,
        "device_online": True,
        "now": NOW,
    }
    values.update(kwargs)
    return ControlFacts(**values)  # type: ignore[arg-type]


def request(
    control_type: ControlKind = ControlKind.SHOCK,
    intensity: int = 50,
    duration_ms: int = 1000,
    member: int = MEMBER,
    roles: frozenset[int] = frozenset({ROLE}),
) -> ControlRequest:
    return ControlRequest(member, roles, GUILD, control_type, intensity, duration_ms)


def allowed(decision: Allowed | Refused) -> Allowed:
    assert isinstance(decision, Allowed), decision
    return decision


def refused(decision: Allowed | Refused, code: RefusalCode) -> Refused:
    assert isinstance(decision, Refused), decision
    assert decision.code is code, decision
    return decision


# --- Examples -----------------------------------------------------------------------------------


def test_unshared_shocker_is_not_available_here() -> None:
    decision = decide_control(request(), facts(member_grant(), share=None))
    assert "not available here" in refused(decision, RefusalCode.NOT_SHARED).reason


def test_member_without_grant_is_refused_even_stop() -> None:
    for control_type in ControlKind:
        decision = decide_control(request(control_type), facts(role_grant(OTHER_ROLE)))
        refused(decision, RefusalCode.NO_GRANT)


def test_wearer_controls_own_shocker_without_grant() -> None:
    decision = allowed(decide_control(request(member=WEARER, roles=frozenset()), facts()))
    assert (decision.intensity, decision.duration_ms, decision.via_grants) == (50, 1000, ())


def test_wearer_self_control_is_capped_by_share_guild_and_operator() -> None:
    decision = allowed(
        decide_control(
            request(intensity=90, member=WEARER),
            facts(
                share=replace(SHARE, max_intensity=40),
                guild_limits=Limits(max_intensity=30),
                operator_limits=Limits(20, 30_000),
            ),
        )
    )
    assert decision.intensity == 20
    assert decision.intensity_capped_by == (CapSource.OPERATOR,)


def test_wearer_grant_caps_do_not_apply_to_self_control() -> None:
    decision = decide_control(
        request(intensity=90, member=WEARER, roles=frozenset()),
        facts(GrantRule(GrantTarget.MEMBER, WEARER, max_intensity=10)),
    )
    assert allowed(decision).intensity == 90


def test_paused_share_refuses_shock_but_allows_stop() -> None:
    paused = facts(member_grant(), share=replace(SHARE, paused=True))
    assert "resume" in refused(decide_control(request(), paused), RefusalCode.PAUSED).reason
    stop = allowed(decide_control(request(ControlKind.STOP), paused))
    assert (stop.type, stop.intensity, stop.duration_ms) == (ControlKind.STOP, 0, STOP_DURATION_MS)


def test_wearer_paused_in_guild_refuses_all_but_stop() -> None:
    paused = facts(member_grant(), wearer_paused=True)
    for control_type in (ControlKind.SHOCK, ControlKind.VIBRATE, ControlKind.SOUND):
        refused(decide_control(request(control_type), paused), RefusalCode.PAUSED)
    allowed(decide_control(request(ControlKind.STOP), paused))


def test_pause_refuses_the_wearers_own_controls_and_says_how_to_resume() -> None:
    decision = decide_control(request(member=WEARER), facts(wearer_paused=True))
    assert "/shockers resume" in refused(decision, RefusalCode.PAUSED).reason
    allowed(decide_control(request(ControlKind.STOP, member=WEARER), facts(wearer_paused=True)))


def test_blocked_member_may_only_stop() -> None:
    blocked = facts(member_grant(), blocked=True)
    refused(decide_control(request(), blocked), RefusalCode.BLOCKED)
    allowed(decide_control(request(ControlKind.STOP), blocked))


def test_stop_ignores_cooldown_and_types_and_sends_zero() -> None:
    grant = member_grant(cooldown_ms=60_000, allow_shock=False, allow_vibrate=False)
    state = facts(grant, share=replace(SHARE, allow_sound=False), last_control_at=NOW - 1)
    stop = allowed(decide_control(request(ControlKind.STOP, intensity=0, duration_ms=0), state))
    assert (stop.intensity, stop.duration_ms, stop.via_grants) == (0, STOP_DURATION_MS, (grant,))


def test_member_grant_wins_over_role_grant() -> None:
    state = facts(member_grant(max_intensity=10), role_grant(max_intensity=80))
    decision = allowed(decide_control(request(intensity=50), state))
    assert decision.intensity == 10
    assert decision.intensity_capped_by == (CapSource.GRANT,)


def test_member_grant_for_all_shockers_wins_over_role_grant_for_this_shocker() -> None:
    state = facts(member_grant(allow_shock=False), role_grant(shocker_id=SHOCKER))
    refused(decide_control(request(), state), RefusalCode.TYPE_NOT_ALLOWED)


def test_shocker_grant_wins_over_all_shockers_grant() -> None:
    state = facts(
        member_grant(max_intensity=90),
        member_grant(shocker_id=SHOCKER, max_intensity=20),
        member_grant(shocker_id=OTHER_SHOCKER, max_intensity=5),
    )
    assert allowed(decide_control(request(intensity=50), state)).intensity == 20
    role_state = facts(
        role_grant(max_intensity=90), role_grant(shocker_id=SHOCKER, max_intensity=20)
    )
    assert allowed(decide_control(request(intensity=50), role_state)).intensity == 20


def test_grant_for_another_shocker_does_not_cover_this_one() -> None:
    state = facts(member_grant(shocker_id=OTHER_SHOCKER))
    refused(decide_control(request(ControlKind.STOP), state), RefusalCode.NO_GRANT)


def test_equal_role_grants_combine_to_the_most_permissive() -> None:
    state = facts(
        role_grant(
            ROLE, max_intensity=30, max_duration_ms=None, cooldown_ms=10_000, allow_shock=False
        ),
        role_grant(
            OTHER_ROLE,
            max_intensity=60,
            max_duration_ms=2000,
            cooldown_ms=None,
            allow_vibrate=False,
        ),
    )
    roles = frozenset({ROLE, OTHER_ROLE})
    shock = allowed(decide_control(request(intensity=90, duration_ms=20_000, roles=roles), state))
    assert (shock.intensity, shock.duration_ms) == (60, 20_000)
    assert len(shock.via_grants) == 2
    later = replace(state, last_control_at=NOW - 1)
    allowed(decide_control(request(ControlKind.VIBRATE, roles=roles), later))


def test_everyone_role_grant_applies() -> None:
    state = facts(role_grant(GUILD, max_intensity=15))
    decision = allowed(decide_control(request(intensity=50, roles=frozenset()), state))
    assert decision.intensity == 15


def test_everyone_grant_loses_to_a_role_grant_of_the_same_specificity_only_by_permissiveness() -> (
    None
):
    state = facts(role_grant(GUILD, max_intensity=15), role_grant(ROLE, max_intensity=40))
    assert allowed(decide_control(request(intensity=50), state)).intensity == 40


def test_grant_without_the_type_refuses_it() -> None:
    decision = decide_control(
        request(ControlKind.VIBRATE), facts(member_grant(allow_vibrate=False))
    )
    assert (
        refused(decision, RefusalCode.TYPE_NOT_ALLOWED).reason
        == "You may not vibrate this shocker."
    )


def test_share_without_the_type_refuses_it() -> None:
    state = facts(member_grant(), share=replace(SHARE, allow_shock=False))
    refused(decide_control(request(), state), RefusalCode.TYPE_NOT_ALLOWED)


def test_cooldown_refuses_until_passed() -> None:
    grant = member_grant(cooldown_ms=5000)
    early = decide_control(request(), facts(grant, last_control_at=NOW - 1.2))
    cooling = refused(early, RefusalCode.COOLDOWN)
    assert cooling.retry_after_ms == 3800
    assert "try again in 4 s" in cooling.reason
    allowed(decide_control(request(), facts(grant, last_control_at=NOW - 5)))
    allowed(decide_control(request(), facts(grant, last_control_at=None)))


def test_cooldown_never_exceeds_itself_when_the_clock_went_back() -> None:
    decision = decide_control(
        request(), facts(member_grant(cooldown_ms=5000), last_control_at=NOW + 60)
    )
    assert refused(decision, RefusalCode.COOLDOWN).retry_after_ms == 5000


def test_capped_reply_names_the_cap() -> None:
    state = facts(
        member_grant(max_duration_ms=1500),
        share=replace(SHARE, max_intensity=25),
        guild_limits=Limits(max_duration_ms=1500),
    )
    decision = allowed(decide_control(request(intensity=80, duration_ms=5000), state))
    assert (decision.intensity, decision.duration_ms) == (25, 1500)
    assert decision.capped_notes == (
        "capped at 25 % (wearer's limit)",
        "capped at 1.5 s (your permission's limit, server limit)",
    )


def test_uncapped_reply_has_no_notes() -> None:
    decision = allowed(
        decide_control(request(intensity=25, duration_ms=1500), facts(member_grant()))
    )
    assert decision.capped_notes == ()
    assert not decision.capped


def test_openshock_share_limits_cap_the_values() -> None:
    via_share = OpenShockAccess(share=OpenShockShare(max_intensity=30, max_duration_ms=2000))
    decision = allowed(
        decide_control(
            request(intensity=50, duration_ms=3000), facts(member_grant(), openshock=via_share)
        )
    )
    assert (decision.intensity, decision.duration_ms) == (30, 2000)
    assert decision.intensity_capped_by == (CapSource.OPENSHOCK,)


def test_openshock_share_without_vibrate_refuses_vibrate() -> None:
    via_share = OpenShockAccess(share=OpenShockShare(allow_vibrate=False))
    state = facts(member_grant(), openshock=via_share)
    reason = refused(
        decide_control(request(ControlKind.VIBRATE), state), RefusalCode.OPENSHOCK_NOT_PERMITTED
    ).reason
    assert "vibrate" in reason
    allowed(decide_control(request(ControlKind.SHOCK), state))
    allowed(decide_control(request(ControlKind.STOP), state))


def test_openshock_share_permitting_nothing_refuses_stop_too() -> None:
    nothing = OpenShockShare(allow_shock=False, allow_vibrate=False, allow_sound=False)
    state = facts(member_grant(), openshock=OpenShockAccess(share=nothing))
    refused(decide_control(request(ControlKind.STOP), state), RefusalCode.OPENSHOCK_NOT_PERMITTED)


@pytest.mark.parametrize(
    "openshock",
    [OpenShockAccess(shocker_paused=True), OpenShockAccess(share=OpenShockShare(paused=True))],
)
def test_paused_on_openshock_refuses_everything(openshock: OpenShockAccess) -> None:
    state = facts(member_grant(), openshock=openshock)
    for control_type in ControlKind:
        refused(decide_control(request(control_type), state), RefusalCode.OPENSHOCK_PAUSED)


def test_offline_device_refused() -> None:
    for control_type in ControlKind:
        decision = decide_control(request(control_type), facts(member_grant(), device_online=False))
        assert "offline" in refused(decision, RefusalCode.DEVICE_OFFLINE).reason


def test_unknown_device_state_refused() -> None:
    decision = decide_control(request(), facts(member_grant(), device_online=None))
    refused(decision, RefusalCode.DEVICE_UNKNOWN)


@pytest.mark.parametrize(
    ("intensity", "duration_ms"), [(0, 1000), (101, 1000), (50, 299), (50, 65_536), (-5, 0)]
)
def test_out_of_range_refused(intensity: int, duration_ms: int) -> None:
    decision = decide_control(
        request(intensity=intensity, duration_ms=duration_ms), facts(member_grant())
    )
    reason = refused(decision, RefusalCode.OUT_OF_RANGE).reason
    assert "between" in reason


def test_in_range_value_above_the_caps_is_lowered_not_refused() -> None:
    decision = allowed(
        decide_control(request(intensity=100, duration_ms=MAX_DURATION_MS), facts(member_grant()))
    )
    assert (decision.intensity, decision.duration_ms) == (100, 30_000)
    assert decision.duration_capped_by == (CapSource.SHARE, CapSource.OPERATOR)


def test_duration_cap_below_the_minimum_sends_the_minimum() -> None:
    state = facts(member_grant(max_duration_ms=100))
    assert allowed(decide_control(request(duration_ms=1000), state)).duration_ms == MIN_DURATION_MS


def test_zero_intensity_cap_refuses_all_but_stop() -> None:
    state = facts(member_grant(max_intensity=0))
    refused(decide_control(request(), state), RefusalCode.ZERO_LIMIT)
    allowed(decide_control(request(ControlKind.STOP), state))


def test_format_duration() -> None:
    assert [format_duration(ms) for ms in (300, 1500, 3000, 65_535)] == [
        "0.3 s",
        "1.5 s",
        "3 s",
        "65.535 s",
    ]


def test_grant_index_resolves_by_precedence() -> None:
    index = GrantIndex([role_grant(GUILD), role_grant(ROLE, shocker_id=SHOCKER)])
    assert len(index) == 2
    assert index.resolve(MEMBER, {ROLE}, GUILD, SHOCKER, now=0.0) == (
        GrantTier.ROLE_SHOCKER,
        (role_grant(ROLE, shocker_id=SHOCKER),),
    )
    assert index.resolve(MEMBER, set(), GUILD, SHOCKER, now=0.0) == (
        GrantTier.ROLE_ALL,
        (role_grant(GUILD),),
    )
    assert GrantIndex().resolve(MEMBER, {ROLE}, GUILD, SHOCKER, now=0.0) is None


def test_describe_access_lists_types_and_caps() -> None:
    state = facts(
        member_grant(max_intensity=40, cooldown_ms=2000, allow_sound=False),
        share=replace(SHARE, max_duration_ms=5000),
    )
    access = describe_access(state, member_id=MEMBER, member_role_ids={ROLE}, guild_id=GUILD)
    assert access.refusal is None
    assert access.types == {ControlKind.STOP, ControlKind.SHOCK, ControlKind.VIBRATE}
    assert (access.max_intensity, access.max_duration_ms, access.cooldown_ms) == (40, 5000, 2000)
    assert access.usable_now == access.types


def test_describe_access_when_paused_leaves_only_stop() -> None:
    state = facts(member_grant(), wearer_paused=True)
    access = describe_access(state, member_id=MEMBER, member_role_ids=(), guild_id=GUILD)
    assert access.hold is not None and access.hold.code is RefusalCode.PAUSED
    assert access.usable_now == {ControlKind.STOP}


def test_describe_access_without_grant_allows_nothing() -> None:
    access = describe_access(facts(), member_id=MEMBER, member_role_ids=(), guild_id=GUILD)
    assert access.refusal is not None and access.refusal.code is RefusalCode.NO_GRANT
    assert access.types == frozenset() and access.usable_now == frozenset()


# --- Properties -----------------------------------------------------------------------------------

MEMBERS = st.sampled_from([WEARER, MEMBER, OTHER])
ROLES = st.sampled_from([GUILD, ROLE, OTHER_ROLE, 52])
SHOCKERS = st.sampled_from([SHOCKER, OTHER_SHOCKER])
INTENSITY_CAP = st.integers(1, 100)
DURATION_CAP = st.integers(100, 65_535)
# Pauses, blocks and missing permissions are drawn rarely, so many cases get as far as the caps.
RARELY = st.integers(1, 8).map(lambda n: n == 8)
USUALLY = st.integers(1, 8).map(lambda n: n != 8)


@st.composite
def grants(draw: st.DrawFn) -> GrantRule:
    kind = draw(st.sampled_from(GrantTarget))
    return GrantRule(
        target_kind=kind,
        target_id=draw(MEMBERS if kind is GrantTarget.MEMBER else ROLES),
        shocker_id=draw(st.none() | SHOCKERS),
        max_intensity=draw(st.none() | INTENSITY_CAP),
        max_duration_ms=draw(st.none() | DURATION_CAP),
        cooldown_ms=draw(st.none() | st.integers(0, 10_000)),
        allow_shock=draw(USUALLY),
        allow_vibrate=draw(USUALLY),
        allow_sound=draw(USUALLY),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ControlRequest, ControlFacts, list[GrantRule]]:
    grant_list = draw(st.lists(grants(), min_size=1, max_size=8))
    share = None
    if not draw(RARELY):
        share = GuildShare(
            shocker_id=SHOCKER,
            wearer_id=WEARER,
            max_intensity=draw(st.integers(1, 100)),
            max_duration_ms=draw(st.integers(300, 65_535)),
            allow_shock=draw(USUALLY),
            allow_vibrate=draw(USUALLY),
            allow_sound=draw(USUALLY),
            paused=draw(RARELY),
        )
    limits = st.builds(Limits, st.none() | INTENSITY_CAP, st.none() | DURATION_CAP)
    os_share = st.builds(
        OpenShockShare,
        allow_shock=USUALLY,
        allow_vibrate=USUALLY,
        allow_sound=USUALLY,
        max_intensity=st.none() | INTENSITY_CAP,
        max_duration_ms=st.none() | DURATION_CAP,
        paused=RARELY,
    )
    state = ControlFacts(
        share=share,
        grants=GrantIndex(grant_list),
        operator_limits=draw(limits),
        guild_limits=draw(limits),
        wearer_paused=draw(RARELY),
        blocked=draw(RARELY),
        openshock=draw(st.builds(OpenShockAccess, RARELY, st.none() | os_share)),
        device_online=draw(st.sampled_from([True, True, True, False, None])),
        last_control_at=draw(st.none() | st.floats(NOW - 12, NOW + 1)),
        now=NOW,
    )
    req = ControlRequest(
        member_id=draw(MEMBERS),
        member_role_ids=draw(st.frozensets(ROLES.filter(lambda r: r != GUILD), max_size=3)),
        guild_id=GUILD,
        type=draw(st.sampled_from(ControlKind)),
        intensity=draw(st.integers(1, 100) | st.integers(-5, 110)),
        duration_ms=draw(st.integers(300, 65_535) | st.integers(0, 70_000)),
    )
    return req, state, grant_list


def _winning_grants(req: ControlRequest, grant_list: list[GrantRule]) -> list[GrantRule]:
    """The precedence rules, written out the slow, obvious way."""
    roles = req.member_role_ids | {req.guild_id}
    for kind, shocker in (
        (GrantTarget.MEMBER, SHOCKER),
        (GrantTarget.MEMBER, None),
        (GrantTarget.ROLE, SHOCKER),
        (GrantTarget.ROLE, None),
    ):
        targets = {req.member_id} if kind is GrantTarget.MEMBER else roles
        tier = [
            g
            for g in grant_list
            if g.target_kind is kind and g.target_id in targets and g.shocker_id == shocker
        ]
        if tier:
            return tier
    return []


def _covering_grant_exists(req: ControlRequest, grant_list: list[GrantRule]) -> bool:
    roles = req.member_role_ids | {req.guild_id}
    return any(
        g.shocker_id in (None, SHOCKER)
        and (
            (g.target_kind is GrantTarget.MEMBER and g.target_id == req.member_id)
            or (g.target_kind is GrantTarget.ROLE and g.target_id in roles)
        )
        for g in grant_list
    )


@settings(max_examples=1000, deadline=None)
@given(scenarios())
def test_decisions_respect_every_rule(
    scenario: tuple[ControlRequest, ControlFacts, list[GrantRule]],
) -> None:
    req, state, grant_list = scenario
    decision = decide_control(req, state)
    event(decision.code.name if isinstance(decision, Refused) else f"allowed {req.type.name}")

    if isinstance(decision, Refused):
        assert not hasattr(decision, "intensity") and not hasattr(decision, "duration_ms")
        assert decision.reason.endswith(".")
    else:
        assert decision.type is req.type

    # Stop: exactly when the wearer or a covering grant asks, and OpenShock would carry it.
    if req.type is ControlKind.STOP:
        os_share = state.openshock.share
        expected = (
            state.share is not None
            and (req.member_id == WEARER or _covering_grant_exists(req, grant_list))
            and not state.openshock.shocker_paused
            and (
                os_share is None
                or (
                    not os_share.paused
                    and (os_share.allow_shock or os_share.allow_vibrate or os_share.allow_sound)
                )
            )
            and state.device_online is True
        )
        assert isinstance(decision, Allowed) == expected, decision
        if isinstance(decision, Allowed):
            assert (decision.intensity, decision.duration_ms) == (0, STOP_DURATION_MS)
        return

    # Paused or blocked: nothing but Stop.
    assert state.share is not None or isinstance(decision, Refused)
    if state.share is None or state.share.paused or state.wearer_paused or state.blocked:
        assert isinstance(decision, Refused)
        return
    if not isinstance(decision, Allowed):
        return

    # An allowed control is in range and under every cap that applies.
    assert 1 <= req.intensity <= 100 and 300 <= req.duration_ms <= 65_535
    intensity_caps = [req.intensity, state.share.max_intensity]
    duration_caps = [req.duration_ms, state.share.max_duration_ms]
    if req.member_id != WEARER:
        winners = _winning_grants(req, grant_list)
        assert winners and set(decision.via_grants) == set(winners)
        cooldown_ms = min(g.cooldown_ms or 0 for g in winners)
        if cooldown_ms and state.last_control_at is not None:
            assert (state.now - state.last_control_at) * 1000 >= cooldown_ms
        if all(g.max_intensity is not None for g in winners):
            intensity_caps.append(max(g.max_intensity or 0 for g in winners))
        if all(g.max_duration_ms is not None for g in winners):
            duration_caps.append(max(g.max_duration_ms or 0 for g in winners))
    os_share = state.openshock.share
    for limits in (state.guild_limits, state.operator_limits, os_share):
        if limits is not None and limits.max_intensity is not None:
            intensity_caps.append(limits.max_intensity)
        if limits is not None and limits.max_duration_ms is not None:
            duration_caps.append(limits.max_duration_ms)
    assert 1 <= decision.intensity == min(intensity_caps)
    assert decision.duration_ms == max(MIN_DURATION_MS, min(duration_caps))
    assert decision.duration_ms >= MIN_DURATION_MS
    assert decision.capped == (
        decision.intensity < req.intensity or decision.duration_ms < req.duration_ms
    )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_describe_access_agrees_with_decide_control(
    scenario: tuple[ControlRequest, ControlFacts, list[GrantRule]],
) -> None:
    req, state, _ = scenario
    access = describe_access(
        state, member_id=req.member_id, member_role_ids=req.member_role_ids, guild_id=GUILD
    )
    for control_type in ControlKind:
        probe = replace(req, type=control_type, intensity=1, duration_ms=MIN_DURATION_MS)
        decision = decide_control(probe, state)
        assert isinstance(decision, Allowed) == (control_type in access.usable_now), (
            control_type,
            decision,
            access,
        )
        big = replace(probe, intensity=100, duration_ms=MAX_DURATION_MS)
        outcome = decide_control(big, state)
        if isinstance(outcome, Allowed) and control_type is not ControlKind.STOP:
            assert (outcome.intensity, outcome.duration_ms) == (
                access.max_intensity,
                access.max_duration_ms,
            )
