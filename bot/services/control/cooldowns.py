"""Cooldown reservations: the moment between an allowed decision and its stored cooldown.

A cooldown is per (member, shocker) and holds across guilds. An allowed control other than Stop
reserves it here in the same step as the decision (no await in between), so two quick commands
cannot both pass; the pipeline then stores it, or gives it back when nothing went out.
"""

from __future__ import annotations

from itertools import islice

RESERVATIONS_KEPT = 4096
RESERVATION_TTL_S = 600.0
_LET_GO_AT_ONCE = 8  # expired reservations dropped per reservation, at most (more than it adds)

Key = tuple[int, str]  # (member id, shocker id)


class CooldownReservations:
    """Kept oldest first (a key reserved again moves to the end), so that over
    `RESERVATIONS_KEPT` the expired ones are let go from the front, a few at a time: never a
    walk through all of them on a control (a busy bot has more than that many members and
    shockers active within `RESERVATION_TTL_S`, and keeps them all)."""

    def __init__(self) -> None:
        self._reserved: dict[Key, float] = {}

    def get(self, member_id: int, shocker_id: str) -> float | None:
        return self._reserved.get((member_id, shocker_id))

    def reserve(self, key: Key, at: float) -> float | None:
        """Reserve the cooldown from ``at``; returns the reservation this one replaced."""
        reserved = self._reserved
        previous = reserved.pop(key, None)
        reserved[key] = at
        if len(reserved) > RESERVATIONS_KEPT:
            # Reservations only bridge the moment between a decision and the stored cooldown;
            # old ones are long in the database.
            cutoff = at - RESERVATION_TTL_S
            for oldest, reserved_at in list(islice(reserved.items(), _LET_GO_AT_ONCE)):
                if reserved_at >= cutoff:
                    break
                del reserved[oldest]
        return previous

    def release(self, key: Key, at: float, previous: float | None) -> None:
        """Undo the reservation made at ``at``, unless another control's replaced it."""
        if self._reserved.get(key) != at:
            return
        if previous is None:
            self._reserved.pop(key, None)
        else:
            self._reserved[key] = previous
