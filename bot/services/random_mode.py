"""Random mode: random controls on a wearer's own shocker, at random gaps, until its end time.

Each random mode is a row (`storage.random_modes`) holding its end and its next planned firing,
and one scheduler timer (`Scheduler`, key ``("random-mode", id)``) armed at whichever comes
first. When the timer fires, the planned firing is checked against the ranges again, the next one
is drawn and stored, and the control goes through the pipeline's front door as the wearer's own
(`Origin.RANDOM`): every cap, pause and device-online check applies, and it is audited.

Ending: `/random stop`, the status message's Stop button, and every `Halt` (a Stop on the
shocker, `/panic`, a pause, an unshare, an unlink) call `end`, which drops the mode from memory
and cancels its timer synchronously. A firing already on its way checks `still_wanted` (is this
mode still running?) right before its frame, so nothing is sent after the end.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.domain.decision import Allowed, RefusalCode, Refused
from bot.domain.random_draw import (
    MAX_MINUTES,
    MIN_GAP_S,
    MIN_MINUTES,
    Firing,
    RandomRanges,
    draw_firing,
    range_problem,
)
from bot.errors import UserError
from bot.services.background import BackgroundTasks
from bot.services.control import ControlOrder, ControlOutcome, ControlReport, Origin, Sender
from bot.services.control.service import ControlService
from bot.services.halts import Halt
from bot.services.scheduler import Scheduler
from bot.storage import Storage
from bot.storage.models import Share
from bot.storage.random_modes import FiringOutcome, RandomModeRow, RandomModeRunning

log = logging.getLogger(__name__)

TIME_UP = "its time is up"
RANDOM_STOP = "the wearer used /random stop"
NOT_SHARED = "the shocker is no longer shared here"
PAUSED = "the shocker is paused"
CLOSE_WAIT = 5.0  # seconds for endings to be written at shutdown

ChangeListener = Callable[[int], Awaitable[None]]


def now() -> float:
    """The service's default clock (unix seconds)."""
    return time.time()


@dataclass(eq=False, slots=True)
class _Run:
    """A running random mode in memory: present in `RandomModeService._runs` while it runs."""

    row: RandomModeRow
    next_at: float
    planned: Firing


class RandomModeService:
    """Starts, fires, resumes and ends random modes. ``on_change(mode_id)`` is awaited after
    every change a status message shows (the Discord side re-renders it from storage)."""

    # The smallest gap the service accepts. The public floor is MIN_GAP_S; tests lower it so a
    # few firings take milliseconds.
    min_gap_floor: float = MIN_GAP_S

    def __init__(
        self,
        storage: Storage,
        control: ControlService,
        scheduler: Scheduler,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.storage = storage
        self.control = control
        self.scheduler = scheduler
        self.rng = rng if rng is not None else random.SystemRandom()
        self.clock = clock if clock is not None else now
        self.on_change: ChangeListener | None = None
        self._runs: dict[int, _Run] = {}
        self._tasks = BackgroundTasks("random-mode")
        self._subscribed = False

    # -- life cycle -----------------------------------------------------------------------------

    def open(self) -> None:
        """Listen for halts (a Stop, /panic, a pause, an unshare, an unlink)."""
        if not self._subscribed:
            self.control.halts.subscribe(self.on_halt)
            self._subscribed = True

    async def resume(self) -> None:
        """Re-arm every running random mode after a start; end those whose time passed."""
        current = self.clock()
        for row in await self.storage.random_modes.running():
            if row.id in self._runs:
                continue
            if current >= row.ends_at:
                await self.storage.random_modes.end(row.id, at=current, reason=TIME_UP)
                self._tasks.spawn(self._changed(row.id))
                continue
            run = _Run(row, row.next_at, row.planned)
            if run.next_at < current:
                # Missed while the bot was down: draw afresh from now rather than firing the
                # moment the bot is back (its connections to OpenShock are still opening).
                run.planned = draw_firing(row.ranges, self.rng)
                run.next_at = current + run.planned.gap_s
                await self.storage.random_modes.plan(row.id, run.next_at, run.planned)
            self._runs[row.id] = run
            self._arm(run)
            log.info("Resumed random mode %d on shocker %s", row.id, row.shocker_id)

    async def close(self) -> None:
        """Stop listening and disarm (the rows stay; the next start resumes them)."""
        if self._subscribed:
            self.control.halts.unsubscribe(self.on_halt)
            self._subscribed = False
        for mode_id in list(self._runs):
            self.scheduler.cancel(_key(mode_id))
        self._runs.clear()
        # Let endings reach their rows (a /panic just before shutdown must not resume later);
        # they are a write and a message edit, so this is short unless Discord hangs.
        await self._tasks.close(wait=CLOSE_WAIT)

    async def idle(self) -> None:
        """Wait until no clean-up task is running (for tests)."""
        await self._tasks.idle()

    # -- starting -------------------------------------------------------------------------------

    async def start(
        self,
        *,
        share: Share,
        wearer_name: str,
        ranges: RandomRanges,
        minutes: int,
    ) -> RandomModeRow:
        """Start a random mode on the wearer's share (its caps and types were checked by the
        caller against the wearer's access). Raises `UserError` with one sentence."""
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            raise UserError(f"`minutes` must be between {MIN_MINUTES} and {MAX_MINUTES}.")
        problem = range_problem(ranges, gap_floor=self.min_gap_floor)
        if problem is not None:
            raise UserError(problem)
        started = self.clock()
        first = draw_firing(ranges, self.rng)
        try:
            row = await self.storage.random_modes.start(
                guild_id=share.guild_id,
                wearer_id=share.wearer_id,
                wearer_name=wearer_name,
                shocker_id=share.shocker_id,
                shocker_name=share.shocker_name,
                ranges=ranges,
                started_at=started,
                ends_at=started + minutes * 60,
                first=first,
            )
        except RandomModeRunning:
            raise UserError(
                "Random mode is already running on this shocker; `/random stop` ends it."
            ) from None
        run = _Run(row, row.next_at, first)
        self._runs[row.id] = run
        self._arm(run)
        log.info(
            "Random mode %d started on shocker %s for %d min", row.id, share.shocker_id, minutes
        )
        return row

    def is_running(self, mode_id: int) -> bool:
        return mode_id in self._runs

    # -- ending ---------------------------------------------------------------------------------

    def on_halt(self, halt: Halt) -> None:
        """A Stop, /panic, a pause, an unshare or an unlink: end what it covers, at once."""
        for mode_id, run in list(self._runs.items()):
            row = run.row
            if halt.covers(
                guild_id=row.guild_id, wearer_id=row.wearer_id, shocker_id=row.shocker_id
            ):
                self.end(mode_id, halt.sentence)

    def end(self, mode_id: int, reason: str) -> asyncio.Task[None] | None:
        """End a random mode: out of memory and its timer cancelled before this returns (a
        firing in flight then fails its guard); the row and the status message follow in a
        task, returned. None when it was not running here."""
        if self._runs.pop(mode_id, None) is None:
            return None
        self.scheduler.cancel(_key(mode_id))
        log.info("Random mode %d ended: %s", mode_id, reason)
        return self._tasks.spawn(self._record_end(mode_id, reason))

    async def stop(self, mode_id: int, reason: str) -> bool:
        """End and wait until the row says so. False when it had ended already."""
        task = self.end(mode_id, reason)
        if task is not None:
            await task
            return True
        # Not running in memory (e.g. never resumed): still mark the row ended.
        if await self.storage.random_modes.end(mode_id, at=self.clock(), reason=reason):
            await self._changed(mode_id)
            return True
        return False

    async def _record_end(self, mode_id: int, reason: str) -> None:
        await self.storage.random_modes.end(mode_id, at=self.clock(), reason=reason)
        await self._changed(mode_id)

    # -- firing ---------------------------------------------------------------------------------

    def _arm(self, run: _Run) -> None:
        mode_id = run.row.id
        when = min(run.next_at, run.row.ends_at)
        self.scheduler.at(_key(mode_id), when, lambda: self.due(mode_id))

    async def due(self, mode_id: int) -> None:
        """The timer's callback: end the random mode when its time is up, else send the planned
        firing and plan the next. (Tests call it to fire at once instead of waiting.)"""
        run = self._runs.get(mode_id)
        if run is None:
            return  # ended meanwhile
        row = run.row
        current = self.clock()
        if run.next_at >= row.ends_at or current >= row.ends_at:
            await self._finish(run, TIME_UP)
            return
        firing = run.planned
        if not firing.fits(row.ranges):
            # Never drawn that way: the stored plan was changed behind the bot's back.
            log.warning("Random mode %d: a planned firing out of range was dropped", row.id)
            firing = draw_firing(row.ranges, self.rng)
        # The next firing is drawn and stored before this one is sent: a crash in between never
        # sends this one twice.
        run.planned = draw_firing(row.ranges, self.rng)
        run.next_at = current + run.planned.gap_s
        await self.storage.random_modes.plan(row.id, run.next_at, run.planned)
        if self._runs.get(row.id) is not run:
            return
        report = await self._send(run, firing)
        if report is None:
            return  # the shocker is not shared here any more; ended
        decision = report.decision
        if isinstance(decision, Refused) and decision.code is RefusalCode.PAUSED:
            # A pause ends random mode (its halt normally got here first).
            await self._finish(run, PAUSED)
            return
        outcome, note = _firing_outcome(report)
        await self.storage.random_modes.record_firing(
            row.id,
            at=current,
            kind=firing.kind,
            intensity=_sent_intensity(report, firing),
            duration_ms=_sent_duration(report, firing),
            outcome=outcome,
            note=note,
        )
        if self._runs.get(row.id) is run:
            self._arm(run)
        await self._changed(row.id)

    async def _send(self, run: _Run, firing: Firing) -> ControlReport | None:
        row = run.row
        order = ControlOrder(
            sender=Sender(row.wearer_id, frozenset(), row.wearer_name),
            guild_id=row.guild_id,
            shocker_id=row.shocker_id,
            kind=firing.kind,
            intensity=firing.intensity,
            duration_ms=firing.duration_ms,
            origin=Origin.RANDOM,
            still_wanted=lambda: self._runs.get(row.id) is run,
        )
        ticket = await self.control.submit(order)
        if ticket.share is None:
            await self._finish(run, NOT_SHARED)
            return None
        return await ticket.outcome()

    async def _finish(self, run: _Run, reason: str) -> None:
        if self._runs.get(run.row.id) is run:
            task = self.end(run.row.id, reason)
            if task is not None:
                await task

    # -- telling the status message -------------------------------------------------------------

    async def _changed(self, mode_id: int) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change(mode_id)
        except Exception:
            log.exception("Updating the status of random mode %d failed", mode_id)


def _key(mode_id: int) -> tuple[str, int]:
    return ("random-mode", mode_id)


_OFFLINE = (RefusalCode.DEVICE_OFFLINE, RefusalCode.DEVICE_UNKNOWN)


def _firing_outcome(report: ControlReport) -> tuple[FiringOutcome, str | None]:
    outcome = report.outcome
    if outcome is ControlOutcome.CONFIRMED:
        return FiringOutcome.DELIVERED, None
    if outcome is ControlOutcome.SENT:
        return FiringOutcome.SENT, None
    if outcome in (ControlOutcome.NOT_CONFIRMED, ControlOutcome.UNCERTAIN):
        return FiringOutcome.UNCONFIRMED, report.reason
    decision = report.decision
    if isinstance(decision, Refused) and decision.code in _OFFLINE:
        return FiringOutcome.OFFLINE, decision.reason
    return FiringOutcome.NOT_SENT, report.reason or "it was not sent"


def _sent_intensity(report: ControlReport, firing: Firing) -> int:
    decision = report.decision
    return decision.intensity if isinstance(decision, Allowed) else firing.intensity


def _sent_duration(report: ControlReport, firing: Firing) -> int:
    decision = report.decision
    return decision.duration_ms if isinstance(decision, Allowed) else firing.duration_ms
