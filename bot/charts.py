"""The `/stats` chart: a guild's controls per UTC day, stacked by type, as a PNG.

Drawn with matplotlib's object-oriented API on the Agg canvas: no pyplot, no global figure state,
no display. `render_controls_chart` is blocking CPU work (tens to hundreds of milliseconds): the
cog runs it on a worker thread (`asyncio.to_thread`). matplotlib is not thread-safe, so one lock
lets one chart be drawn at a time. The chart holds no names: only dates, counts and types.
"""

from __future__ import annotations

import io
import math
import threading

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.domain.decision import ControlType
from bot.domain.render import type_name
from bot.domain.stats import CHART_TYPES, GuildStats

WIDTH_PX, HEIGHT_PX, DPI = 1000, 450, 100

COLOURS = {
    ControlType.SHOCK: "#e4572e",
    ControlType.VIBRATE: "#4c9bd6",
    ControlType.SOUND: "#76b041",
    ControlType.STOP: "#8d8d8d",
}
OTHER_COLOUR = "#b07aa1"

_drawing = threading.Lock()


def render_controls_chart(stats: GuildStats) -> bytes:
    """The PNG bytes (``WIDTH_PX`` × ``HEIGHT_PX``) of attempts per day by type."""
    with _drawing:
        return _render(stats)


def _colour(control_type: int) -> str:
    try:
        return COLOURS[ControlType(control_type)]
    except ValueError:
        return OTHER_COLOUR


def _render(stats: GuildStats) -> bytes:
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
