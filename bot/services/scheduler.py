"""Timers for what happens later: an approval that expires, a vote that ends, a random-mode firing,
an expiring grant's clean-up.

The durable part is each feature's own table (a row with its due time, in unix seconds); at
start-up the feature re-arms its timers from those rows, so a restart delays nothing and forgets
nothing. `Scheduler` only runs each callback once at its time, as a tracked task whose failure is
logged, and lets a feature cancel a timer by key before it runs: a Stop, a pause or `/panic`
cancels the timers of what it ends *before* it sends anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

TimerCallback = Callable[[], Awaitable[None]]


class Scheduler:
    """Keyed one-shot timers on the running event loop.

    `at(key, when, callback)` arms (or re-arms) the timer `key`; `cancel(key)` disarms it. A
    callback that has started is not cancelled by `cancel` (it may be half-way through a send):
    callbacks re-check their own state, and the control pipeline re-checks the request's guard
    right before writing a frame.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._handles: dict[Hashable, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._handles)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._handles

    def at(self, key: Hashable, when: float, callback: TimerCallback) -> None:
        """Run `callback` at `when` (unix seconds; a time in the past runs it at once)."""
        if self._closed:
            return
        self.cancel(key)
        delay = max(0.0, when - self._clock())
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(delay, self._fire, key, callback)

    def cancel(self, key: Hashable) -> bool:
        """Disarm `key`; False when it was not armed (never armed, already run or cancelled)."""
        handle = self._handles.pop(key, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    def cancel_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Disarm every timer whose key matches; returns how many."""
        keys = [key for key in self._handles if predicate(key)]
        for key in keys:
            self.cancel(key)
        return len(keys)

    def _fire(self, key: Hashable, callback: TimerCallback) -> None:
        self._handles.pop(key, None)
        task = asyncio.create_task(self._run(key, callback), name=f"timer-{key}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @staticmethod
    async def _run(key: Hashable, callback: TimerCallback) -> None:
        try:
            await callback()
        except Exception:
            log.exception("Timer %s failed", key)

    async def idle(self) -> None:
        """Wait until no callback is running (for tests and shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def close(self) -> None:
        """Disarm everything and cancel running callbacks (the process is stopping; the rows
        stay, and the next start re-arms them)."""
        self._closed = True
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*list(self._running), return_exceptions=True)
