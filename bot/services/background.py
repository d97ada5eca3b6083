"""Background work a feature starts and must not lose track of: clean-ups after a halt, message
edits, postings.

Each task is kept until it ends and its failure is logged. At shutdown `close(wait=…)` lets what
is running finish for a bounded time before cancelling it: an ending written just before a
shutdown (a Stop that ended a vote, an approval or a random mode) must reach its row, or the
next start would bring the ended thing back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], name: str | None = None) -> asyncio.Task[None]:
        """Run `work` in the background; a failure is logged with `name`."""
        label = name or self._name
        task = asyncio.create_task(self._logged(work, label), name=label)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            log.exception("%s failed", name)

    async def idle(self) -> None:
        """Wait until nothing is running (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, wait: float = 0.0) -> None:
        """Let running tasks finish for up to `wait` seconds, then cancel what is left."""
        if not self._tasks:
            return
        if wait > 0:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=wait)
        else:
            stuck = set(self._tasks)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
