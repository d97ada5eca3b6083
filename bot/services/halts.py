"""Halts: Stop, /panic, a pause, an unshare or an unlink ends whatever was waiting to fire.

Approvals waiting for the wearer, votes that have not ended and random modes all hold a control
that may be sent later. Each of them subscribes here; whoever stops, pauses, unshares or unlinks
announces a `Halt` naming what it covers, and every subscriber ends what falls under it. The
subscribers are called synchronously, in the announcing step, so what they cancel in memory is
cancelled before the announcer sends its Stop frame or returns; they may start async clean-up
(database rows, message edits) as tasks of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Halt:
    """What ends: every pending control that matches all the fields given (None = any).

    - Stop on a shocker: ``Halt("stop", shocker_id=S)``
    - `/panic` or unlink by a wearer: ``Halt("panic", wearer_id=W)``
    - a pause or unshare of one shocker in a guild: ``Halt("pause", guild_id=G, shocker_id=S)``
    - a wearer's pause of everything in a guild: ``Halt("pause", guild_id=G, wearer_id=W)``
    """

    reason: str
    guild_id: int | None = None
    wearer_id: int | None = None
    shocker_id: str | None = None

    def covers(self, *, guild_id: int | None, wearer_id: int, shocker_id: str) -> bool:
        """Does this halt end a pending control on `shocker_id` (worn by `wearer_id`) in
        `guild_id` (None: not tied to a guild)?"""
        return (
            (self.guild_id is None or self.guild_id == guild_id)
            and (self.wearer_id is None or self.wearer_id == wearer_id)
            and (self.shocker_id is None or self.shocker_id == shocker_id)
        )

    @property
    def sentence(self) -> str:
        """Why a pending control ended, as the people waiting on it read it."""
        return _SENTENCES.get(self.reason, "it was stopped")


_SENTENCES = {
    "stop": "a Stop was sent to the shocker",
    "panic": "the wearer used /panic",
    "pause": "the wearer paused it",
    "unshare": "the shocker is no longer shared here",
    "unlink": "the wearer unlinked their account",
}

HaltListener = Callable[[Halt], None]


class Halts:
    """The subscribers, and `announce` to reach them all.

    A resume is announced on its own channel (`subscribe_resumes` / `announce_resume`, with the
    same scope fields): it ends nothing, but what shows a pause (panels) shows that it lifted.
    """

    def __init__(self) -> None:
        self._listeners: list[HaltListener] = []
        self._resume_listeners: list[HaltListener] = []

    def subscribe_resumes(self, listener: HaltListener) -> None:
        self._resume_listeners.append(listener)

    def unsubscribe_resumes(self, listener: HaltListener) -> None:
        if listener in self._resume_listeners:
            self._resume_listeners.remove(listener)

    def announce_resume(self, scope: Halt) -> None:
        """A pause in `scope` was lifted; one failing subscriber does not stop the others."""
        for listener in list(self._resume_listeners):
            try:
                listener(scope)
            except Exception:
                log.exception("A resume listener failed on %s", scope)

    def subscribe(self, listener: HaltListener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: HaltListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def announce(self, halt: Halt) -> None:
        """Tell every subscriber; one that fails is logged and does not stop the others."""
        for listener in list(self._listeners):
            try:
                listener(halt)
            except Exception:
                log.exception("A halt listener failed on %s", halt)
