"""The wearer's membership as a fact of the decision."""

from __future__ import annotations

from bot.domain.decision import (
    Allowed,
    ControlKind,
    RefusalCode,
    Refused,
    decide_control,
    describe_access,
)
from tests.domain.test_decision import GUILD, MEMBER, facts, member_grant, request


def test_a_wearer_who_left_makes_the_share_unavailable_even_for_stop() -> None:
    for kind in ControlKind:
        decision = decide_control(request(kind), facts(member_grant(), wearer_is_member=False))
        assert isinstance(decision, Refused)
        assert decision.code is RefusalCode.NOT_SHARED
        assert decision.reason == "This shocker is not available here."
    access = describe_access(
        facts(member_grant(), wearer_is_member=False),
        member_id=MEMBER,
        member_role_ids=(),
        guild_id=GUILD,
    )
    assert access.refusal is not None and not access.types


def test_unknown_membership_lets_only_stop_through() -> None:
    refused = decide_control(request(), facts(member_grant(), wearer_is_member=None))
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.MEMBERSHIP_UNKNOWN
    stop = decide_control(request(ControlKind.STOP), facts(member_grant(), wearer_is_member=None))
    assert isinstance(stop, Allowed)


def test_a_member_wearer_changes_nothing() -> None:
    assert isinstance(
        decide_control(request(), facts(member_grant(), wearer_is_member=True)), Allowed
    )
