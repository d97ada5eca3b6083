"""The `/stats` chart: a guild's controls per UTC day, stacked by type, as a PNG.

Drawn with matplotlib's object-oriented API on the Agg canvas: no pyplot, no global figure state,
no display. Drawing is CPU work (0.2-0.5 s) that holds the GIL for long stretches and leaves
thousands of objects in reference cycles: on a worker thread of the bot's process it stalled the
event loop for 50-200 ms at a time (measured with bench/stats.py), so `ChartRenderer` draws in a
separate worker process instead, at a lower CPU priority (started on first use, kept for the next
chart, stopped with the cog). Only `render_controls_chart` runs there; the bot's process never
imports matplotlib. The chart holds no names: only dates, counts and types.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bot.domain.controls import ControlKind
from bot.domain.render import type_name
from bot.domain.stats import CHART_TYPES, GuildStats

log = logging.getLogger(__name__)

WIDTH_PX, HEIGHT_PX, DPI = 1000, 450, 100
WORKER_NICENESS = 10

COLOURS = {
    ControlKind.SHOCK: "#e4572e",
    ControlKind.VIBRATE: "#4c9bd6",
    ControlKind.SOUND: "#76b041",
    ControlKind.STOP: "#8d8d8d",
}
OTHER_COLOUR = "#b07aa1"


class ChartRenderer:
    """Draws charts in one worker process (``spawn``: a fresh interpreter that inherits none of
    the bot's threads or sockets), one chart at a time; a worker that died is replaced once."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._starting = asyncio.Lock()

    async def controls_chart(self, stats: GuildStats) -> bytes:
        """The PNG bytes (``WIDTH_PX`` × ``HEIGHT_PX``) of attempts per day by type."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(await self._worker(), render_controls_chart, stats)
        except BrokenProcessPool:
            log.warning("The chart process ended unexpectedly; starting a new one")
            self._pool = None
            return await loop.run_in_executor(await self._worker(), render_controls_chart, stats)

    async def _worker(self) -> ProcessPoolExecutor:
        async with self._starting:
            if self._pool is None:
                pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_prepare_worker,
                )
                # The first task starts the process (fork and exec, and pickling its start-up
                # data: tens of milliseconds), so it is submitted from a thread, not the loop.
                try:
                    started = await asyncio.to_thread(pool.submit, _ready)
                    await asyncio.wrap_future(started)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _prepare_worker() -> None:
    """In the worker, once: yield the CPU to the bot's event loop (on a one- or two-core host a
    chart would otherwise delay the loop's wake-ups while it draws), and import matplotlib."""
    with contextlib.suppress(OSError, AttributeError):  # os.nice is POSIX-only
        os.nice(WORKER_NICENESS)
    import matplotlib.backends.backend_agg  # noqa: F401


def _ready() -> None:
    """The first task of a new worker: it is running."""


def _colour(control_type: int) -> str:
    try:
        return COLOURS[ControlKind(control_type)]
    except ValueError:
        return OTHER_COLOUR


def render_controls_chart(stats: GuildStats) -> bytes:
    """Draw the chart: blocking, and it imports matplotlib (the worker process calls it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(stats.days))
    bottom = [0] * stats.days
    order = [int(t) for t in CHART_TYPES] + sorted(set(stats.per_type) - set(CHART_TYPES))
    for control_type in order:
        counts = stats.per_type.get(control_type)
        if not counts or not any(counts):
            continue
        axes.bar(
            positions,
            counts,
            width=0.8 if stats.days > 1 else 0.4,
            bottom=bottom,
            label=type_name(control_type),
            color=_colour(control_type),
            edgecolor="white",
            linewidth=0.4 if stats.days > 30 else 0.8,
        )
        bottom = [below + count for below, count in zip(bottom, counts, strict=True)]
    # A label under every bar for short windows, else about a dozen, the last day always.
    step = math.ceil(stats.days / 12)
    ticks = positions[::-1][::step][::-1]
    dates = stats.dates
    label = "%a %d %b" if stats.days <= 7 else "%d %b"
    axes.set_xticks(ticks, [dates[tick].strftime(label) for tick in ticks])
    axes.set_xlim(-0.6, stats.days - 0.4)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(0, max(max(bottom) * 1.05, 1))
    axes.set_ylabel("Controls (attempts)")
    axes.set_title(f"Controls per day (UTC), {dates[0]:%d %b} to {dates[-1]:%d %b %Y}", loc="left")
    axes.grid(axis="y", color="#dddddd", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=4, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
