"""Vote rules: who may start a vote, who may take part, and when Yes wins."""

from __future__ import annotations

from bot.domain.controls import ControlKind
from bot.domain.decision import RefusalCode, Refused, ShockerAccess
from bot.domain.votes import Tally, may_vote, start_refusal

ALL = frozenset(ControlKind)
USABLE = ShockerAccess(refusal=None, types=ALL, max_intensity=50, max_duration_ms=5000)
BLOCKED = Refused(RefusalCode.BLOCKED, "blocked")
PAUSED = Refused(RefusalCode.PAUSED, "The wearer has paused this shocker here.")
OFFLINE = Refused(RefusalCode.DEVICE_OFFLINE, "The shocker's device is offline.")


def access(**changes: object) -> ShockerAccess:
    values = {
        "refusal": None,
        "types": ALL,
        "max_intensity": 50,
        "max_duration_ms": 5000,
        **changes,
    }
    return ShockerAccess(**values)  # type: ignore[arg-type]


def test_yes_must_beat_no() -> None:
    assert Tally(yes=2, no=1).passed
    assert not Tally(yes=1, no=1).passed
    assert not Tally().passed
    assert not Tally(yes=0, no=3).passed


def test_the_starter_must_be_able_to_send_it_now() -> None:
    assert start_refusal(USABLE, ControlKind.SHOCK) is None
    no_grant = Refused(RefusalCode.NO_GRANT, "You do not have permission.")
    assert start_refusal(access(refusal=no_grant, types=frozenset()), ControlKind.SHOCK) == (
        "You do not have permission."
    )
    vibrate_only = access(types=frozenset({ControlKind.VIBRATE, ControlKind.STOP}))
    assert start_refusal(vibrate_only, ControlKind.SHOCK) == "You may not shock this shocker."
    assert start_refusal(access(hold=PAUSED), ControlKind.SHOCK) == PAUSED.reason
    assert start_refusal(access(undeliverable=OFFLINE), ControlKind.SHOCK) == OFFLINE.reason
    cooling = start_refusal(access(cooldown_remaining_ms=1500), ControlKind.SHOCK)
    assert cooling is not None and "try again in 2 s" in cooling
    assert start_refusal(USABLE, ControlKind.STOP) is not None  # a Stop needs no vote


def test_members_who_may_control_the_shocker_vote() -> None:
    assert may_vote(USABLE)
    # A pause, an offline device or a cooldown does not take the vote away…
    assert may_vote(access(hold=PAUSED, undeliverable=OFFLINE, cooldown_remaining_ms=10))
    # …no permission, Stop only, or a block does.
    assert not may_vote(access(refusal=Refused(RefusalCode.NO_GRANT, "no"), types=frozenset()))
    assert not may_vote(access(types=frozenset({ControlKind.STOP})))
    assert not may_vote(access(hold=BLOCKED))
