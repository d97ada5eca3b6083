"""The scheduler runs each timer once, at its time, and a cancelled timer never runs."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.services.scheduler import Scheduler, TimerCallback


async def test_a_timer_runs_once_at_its_time() -> None:
    scheduler = Scheduler()
    fired = asyncio.Event()
    runs: list[float] = []

    async def callback() -> None:
        runs.append(time.time())
        fired.set()

    armed_at = time.time()
    scheduler.at("t", armed_at + 0.05, callback)
    assert "t" in scheduler
    await asyncio.wait_for(fired.wait(), 5)
    await scheduler.idle()
    assert len(runs) == 1
    assert runs[0] >= armed_at + 0.04  # never early (call_later may round a little)
    assert "t" not in scheduler
    await scheduler.close()


async def test_a_time_in_the_past_runs_at_once() -> None:
    scheduler = Scheduler()
    fired = asyncio.Event()

    async def callback() -> None:
        fired.set()

    scheduler.at("late", time.time() - 3600, callback)
    await asyncio.wait_for(fired.wait(), 5)
    await scheduler.close()


async def test_a_cancelled_timer_never_runs() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    later = asyncio.Event()

    async def cancelled() -> None:
        ran.append("cancelled")

    async def witness() -> None:
        later.set()

    scheduler.at("x", time.time() + 0.02, cancelled)
    assert scheduler.cancel("x") is True
    assert scheduler.cancel("x") is False
    scheduler.at("w", time.time() + 0.05, witness)
    await asyncio.wait_for(later.wait(), 5)
    await scheduler.idle()
    assert ran == []
    await scheduler.close()


async def test_rearming_a_key_replaces_the_earlier_timer() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    done = asyncio.Event()

    async def first() -> None:
        ran.append("first")

    async def second() -> None:
        ran.append("second")
        done.set()

    scheduler.at("k", time.time() + 0.02, first)
    scheduler.at("k", time.time() + 0.04, second)
    assert len(scheduler) == 1
    await asyncio.wait_for(done.wait(), 5)
    await scheduler.idle()
    assert ran == ["second"]
    await scheduler.close()


async def test_cancel_where_disarms_matching_keys_only() -> None:
    scheduler = Scheduler()
    ran: list[tuple[str, int]] = []
    done = asyncio.Event()

    def make(key: tuple[str, int]) -> TimerCallback:
        async def callback() -> None:
            ran.append(key)
            if key == ("vote", 2):
                done.set()

        return callback

    for key in (("random", 1), ("random", 2), ("vote", 2)):
        scheduler.at(key, time.time() + 0.03, make(key))
    assert scheduler.cancel_where(lambda key: key in (("random", 1), ("random", 2))) == 2
    await asyncio.wait_for(done.wait(), 5)
    await scheduler.idle()
    assert ran == [("vote", 2)]
    await scheduler.close()


async def test_a_failing_callback_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = Scheduler()
    done = asyncio.Event()

    async def broken() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        done.set()

    now = time.time()
    scheduler.at("broken", now, broken)
    scheduler.at("fine", now + 0.02, fine)
    with caplog.at_level(logging.ERROR, logger="bot.services.scheduler"):
        await asyncio.wait_for(done.wait(), 5)
        await scheduler.idle()
    assert any("Timer broken failed" in r.getMessage() for r in caplog.records)
    await scheduler.close()


async def test_close_disarms_and_refuses_new_timers() -> None:
    scheduler = Scheduler()
    ran: list[str] = []

    async def callback() -> None:
        ran.append("ran")

    scheduler.at("a", time.time() + 0.01, callback)
    await scheduler.close()
    scheduler.at("b", time.time(), callback)
    await asyncio.sleep(0.05)
    assert ran == []
    assert len(scheduler) == 0
