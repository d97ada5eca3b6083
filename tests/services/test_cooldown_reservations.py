"""Cooldown reservations: kept while they may be needed, let go of a few at a time once expired."""

from __future__ import annotations

from bot.services.control.cooldowns import (
    RESERVATION_TTL_S,
    RESERVATIONS_KEPT,
    CooldownReservations,
)

SHOCKER = "collar"


def test_a_busy_bot_keeps_every_reservation_within_the_ttl() -> None:
    reservations = CooldownReservations()
    for member in range(RESERVATIONS_KEPT + 500):
        reservations.reserve((member, SHOCKER), float(member) / 1000)
    assert all(
        reservations.get(member, SHOCKER) is not None for member in range(RESERVATIONS_KEPT + 500)
    )


def test_over_the_limit_expired_reservations_go_oldest_first() -> None:
    reservations = CooldownReservations()
    for member in range(RESERVATIONS_KEPT):
        reservations.reserve((member, SHOCKER), 0.0)
    later = RESERVATION_TTL_S + 1
    for member in range(RESERVATIONS_KEPT, RESERVATIONS_KEPT + 10):
        reservations.reserve((member, SHOCKER), later)
    # Ten reservations over the limit let go of the oldest expired ones (a few each), no more.
    gone = [m for m in range(RESERVATIONS_KEPT) if reservations.get(m, SHOCKER) is None]
    assert gone == list(range(len(gone))) and 10 <= len(gone) < RESERVATIONS_KEPT
    assert all(
        reservations.get(m, SHOCKER) == later
        for m in range(RESERVATIONS_KEPT, RESERVATIONS_KEPT + 10)
    )


def test_a_reservation_made_again_is_kept_as_new() -> None:
    reservations = CooldownReservations()
    reservations.reserve((0, SHOCKER), 0.0)
    for member in range(1, RESERVATIONS_KEPT):
        reservations.reserve((member, SHOCKER), 0.0)
    later = RESERVATION_TTL_S + 1
    assert reservations.reserve((0, SHOCKER), later) == 0.0  # the one it replaced
    for member in range(RESERVATIONS_KEPT, RESERVATIONS_KEPT + 600):
        reservations.reserve((member, SHOCKER), later)
    assert reservations.get(1, SHOCKER) is None  # expired and let go
    assert reservations.get(0, SHOCKER) == later  # reserved again: not among the old ones


def test_giving_back_restores_the_previous_reservation_unless_replaced() -> None:
    reservations = CooldownReservations()
    key = (1, SHOCKER)
    first = reservations.reserve(key, 10.0)
    assert first is None
    previous = reservations.reserve(key, 20.0)
    assert previous == 10.0
    reservations.release(key, 20.0, previous)
    assert reservations.get(*key) == 10.0
    reservations.release(key, 99.0, None)  # not the current one: nothing changes
    assert reservations.get(*key) == 10.0
    reservations.release(key, 10.0, None)
    assert reservations.get(*key) is None
