"""Background tasks are kept until they end, their failures logged, and a shutdown lets them
finish for a bounded time."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.services.background import BackgroundTasks


async def test_a_failure_is_logged_and_the_task_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks("thing")

    async def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="bot.services.background"):
        tasks.spawn(broken(), "broken thing")
        await tasks.idle()
    assert len(tasks) == 0
    assert any("broken thing failed" in r.getMessage() for r in caplog.records)


async def test_close_lets_running_work_finish_within_the_wait() -> None:
    tasks = BackgroundTasks("ending")
    written: list[str] = []

    async def write() -> None:
        await asyncio.sleep(0.01)
        written.append("ended")

    tasks.spawn(write())
    await tasks.close(wait=5)
    assert written == ["ended"]


async def test_close_cancels_what_is_stuck_past_the_wait() -> None:
    tasks = BackgroundTasks("stuck")
    never = asyncio.Event()
    tasks.spawn(never.wait())
    await tasks.close(wait=0.05)
    assert len(tasks) == 0
