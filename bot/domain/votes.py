"""Votes (`/vote`): the bounds of a vote, who may start one and who may take part, and the tally.

Pure rules on `ShockerAccess` (what `describe_access` says a member may do with a shocker), so
the vote follows the same stages as every control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from bot.domain.controls import ControlKind
from bot.domain.decision import RefusalCode, ShockerAccess

__all__ = [
    "DEFAULT_VOTE_SECONDS",
    "MAX_VOTE_SECONDS",
    "MIN_VOTE_SECONDS",
    "VOTE_KINDS",
    "Tally",
    "may_vote",
    "start_refusal",
]

MIN_VOTE_SECONDS: Final = 15
MAX_VOTE_SECONDS: Final = 600
DEFAULT_VOTE_SECONDS: Final = 60

# What a vote may propose: a Stop needs nobody's vote.
VOTE_KINDS: Final = frozenset({ControlKind.SHOCK, ControlKind.VIBRATE, ControlKind.SOUND})


@dataclass(frozen=True, slots=True)
class Tally:
    yes: int = 0
    no: int = 0

    @property
    def passed(self) -> bool:
        """Yes must have more votes than No; a tie sends nothing."""
        return self.yes > self.no


def start_refusal(access: ShockerAccess, kind: ControlKind) -> str | None:
    """Why the member may not put this control to a vote right now (None: they may). Whoever
    starts a vote must be able to send that control themselves at this moment."""
    if kind not in VOTE_KINDS:
        return "Only a shock, a vibration or a sound can be put to a vote."
    if access.refusal is not None:
        return access.refusal.reason
    if kind not in access.types:
        return f"You may not {kind.verb} this shocker."
    if access.undeliverable is not None:
        return access.undeliverable.reason
    if access.hold is not None:
        return access.hold.reason
    if access.cooldown_remaining_ms > 0:
        seconds = math.ceil(access.cooldown_remaining_ms / 1000)
        return f"You are cooling down on this shocker; try again in {seconds} s."
    return None


def may_vote(access: ShockerAccess) -> bool:
    """Members who may control the shocker vote: any type but Stop allowed to them, and not
    blocked by the wearer. (A pause, an offline device or a cooldown does not take the vote
    away: the control is decided again when the vote ends.)"""
    if access.refusal is not None:
        return False
    if access.hold is not None and access.hold.code is RefusalCode.BLOCKED:
        return False
    return bool(access.types & VOTE_KINDS)
