"""Random-mode rows against a real SQLite file: one running per shocker, and an ended row that
no later write brings back."""

from __future__ import annotations

import pytest

from bot.domain.controls import ControlKind
from bot.domain.random_draw import Firing, RandomMode, RandomRanges
from bot.storage import Storage
from bot.storage.random_modes import FiringOutcome, RandomModeRunning

RANGES = RandomRanges(RandomMode.BOTH, 10, 25, 1000, 30.0, 300.0)
FIRST = Firing(45.0, ControlKind.VIBRATE, 12, 700)


async def _start(storage: Storage, shocker: str = "s-1", guild: int = 111) -> int:
    row = await storage.random_modes.start(
        guild_id=guild,
        wearer_id=10,
        wearer_name="alice",
        shocker_id=shocker,
        shocker_name="Collar",
        ranges=RANGES,
        started_at=1000.0,
        ends_at=1600.0,
        first=FIRST,
    )
    return row.id


async def test_a_started_random_mode_keeps_its_ranges_and_first_firing(storage: Storage) -> None:
    mode_id = await _start(storage)
    row = await storage.random_modes.get(mode_id)
    assert row is not None and row.running
    assert row.ranges == RANGES and row.planned == FIRST
    assert row.next_at == 1045.0 and row.ends_at == 1600.0
    assert [r.id for r in await storage.random_modes.running()] == [mode_id]
    assert [r.id for r in await storage.random_modes.running_of(111, 10)] == [mode_id]
    assert await storage.random_modes.running_of(222, 10) == []


async def test_one_running_random_mode_per_shocker_in_any_guild(storage: Storage) -> None:
    mode_id = await _start(storage)
    with pytest.raises(RandomModeRunning):
        await _start(storage, guild=222)
    await _start(storage, shocker="s-2")  # another shocker is fine
    assert await storage.random_modes.end(mode_id, at=1100.0, reason="done")
    await _start(storage, guild=222)  # ended: a new one may start


async def test_an_ended_random_mode_stays_ended(storage: Storage) -> None:
    mode_id = await _start(storage)
    assert await storage.random_modes.end(mode_id, at=1100.0, reason="the wearer used /panic")
    assert not await storage.random_modes.end(mode_id, at=1200.0, reason="again")
    assert not await storage.random_modes.plan(mode_id, 1300.0, FIRST)
    assert not await storage.random_modes.record_firing(
        mode_id,
        at=1300.0,
        kind=ControlKind.SHOCK,
        intensity=20,
        duration_ms=500,
        outcome=FiringOutcome.DELIVERED,
        note=None,
    )
    row = await storage.random_modes.get(mode_id)
    assert row is not None and not row.running
    assert (row.end_reason, row.ended_at, row.fired) == ("the wearer used /panic", 1100.0, 0)
    assert await storage.random_modes.running() == []
