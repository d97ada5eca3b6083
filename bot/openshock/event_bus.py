"""Hub events handed to waiters and subscribers, with a bound on what may queue up.

Waiters (``expect``) are resolved the moment an event is published, looked up by the event's
type; a claiming waiter (a control waiting for its ``Log``) takes the event, so one event
resolves at most one claiming waiter, the oldest it matches. Each subscriber gets every
event in order on its own task, so a slow or failing one never holds up the others. But a
server can send events faster than a subscriber handles them (a self-hosted one can flood the
connection), and an unbounded queue would then grow without limit.

So each subscriber holds at most ``limit`` events. Kinds that a later event of the same kind
supersedes (``SUPERSEDED``: OTA progress, device updates, shocker-list refreshes) make room by
dropping the oldest of them. Every other kind, a control ``Log`` above all (a feed must show
each one), is never dropped: its publisher waits for room. The server's events are published
by the connection's reader, one message at a time, so that wait pauses reading from the socket
and the server's sends back up behind it (TCP back-pressure) instead of piling up here. The
client's own lifecycle events (a few per connection, ``publish_nowait``) never wait and may go
over the bound. Falling behind is logged at most once per report interval, with what happened
since the last report.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from bot.openshock.models import DeviceUpdate, HubEvent, OtaInstallProgress, ShockersRefreshed

__all__ = ["DEFAULT_EVENT_BACKLOG", "SUPERSEDED", "EventBus", "EventCallback", "EventFilter"]

_log = logging.getLogger(__name__)

EventCallback = Callable[[HubEvent], Awaitable[None]]
# Which events a subscriber takes: called as each is published, before it is queued, so it must
# be quick and must not fail (an event it turns away costs the subscriber nothing).
EventFilter = Callable[[HubEvent], bool]

# Events a subscriber may queue before the oldest superseded one is dropped or the publisher
# waits. Far above what a real server sends in the time a subscriber needs for one event.
DEFAULT_EVENT_BACKLOG = 1000
# Kinds that only matter until the next one: progress is shown as the latest value, a
# DeviceUpdate only asks for a refresh (already requested before it is published), and each
# ShockersRefreshed carries the whole list.
SUPERSEDED: tuple[type[HubEvent], ...] = (OtaInstallProgress, DeviceUpdate, ShockersRefreshed)


class _BacklogReport:
    """Warnings about subscribers falling behind, at most one line per interval.

    The first is logged at once; what happens later within the interval is counted and logged
    when it ends, so a flood gives a line a minute, not one per event.
    """

    def __init__(self, name: str, interval: float) -> None:
        self._name = name
        self._interval = interval
        self._dropped: Counter[str] = Counter()
        self._held = 0
        self._backlog = 0
        self._last_at: float | None = None
        self._flush: asyncio.TimerHandle | None = None

    def dropped(self, event: HubEvent, backlog: int) -> None:
        self._dropped[type(event).__name__] += 1
        self._note(backlog)

    def held(self, backlog: int) -> None:
        self._held += 1
        self._note(backlog)

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        self._emit()

    def _note(self, backlog: int) -> None:
        self._backlog = max(self._backlog, backlog)
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._last_at is None or now - self._last_at >= self._interval:
            self._emit()
        elif self._flush is None:
            self._flush = loop.call_at(self._last_at + self._interval, self._emit)

    def _emit(self) -> None:
        self._flush = None
        if not self._dropped and not self._held:
            return
        parts = []
        if self._dropped:
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self._dropped.items()))
            parts.append(f"dropped the oldest superseded events ({counts})")
        if self._held:
            parts.append(
                f"paused reading from the server for {self._held} events that are never "
                "dropped until there was room"
            )
        _log.warning(
            "Hub %s: events arrive faster than a subscriber handles them (up to %d waiting); %s",
            self._name,
            self._backlog,
            "; ".join(parts),
        )
        self._dropped.clear()
        self._held = 0
        self._backlog = 0
        self._last_at = asyncio.get_running_loop().time()


class _Subscriber:
    """Delivers events to one callback, in order, on its own task, holding at most ``limit``."""

    def __init__(
        self,
        callback: EventCallback,
        limit: int,
        report: _BacklogReport,
        wants: EventFilter | None = None,
    ) -> None:
        self._callback = callback
        self.wants = wants
        self._limit = limit
        self._report = report
        # Two queues, so the oldest superseded event is found at once; the sequence numbers
        # merge them back into arrival order.
        self._kept: deque[tuple[int, HubEvent]] = deque()
        self._superseded: deque[tuple[int, HubEvent]] = deque()
        self._sequence = itertools.count()
        self._ready = asyncio.Event()  # set while anything is queued
        self._room = asyncio.Event()  # set when an event was taken off the queue
        self._closed = False
        self._task = asyncio.create_task(self._deliver(), name="openshock-hub-subscriber")

    def __len__(self) -> int:
        return len(self._kept) + len(self._superseded)

    async def put(self, event: HubEvent) -> None:
        """Queue ``event``; an event that is never dropped waits until there is room."""
        if not isinstance(event, SUPERSEDED):
            while len(self) >= self._limit and not self._superseded and not self._closed:
                self._report.held(len(self))
                self._room.clear()
                await self._room.wait()
        self.put_nowait(event)

    def put_nowait(self, event: HubEvent) -> None:
        """Queue ``event`` at once; over the bound, the oldest superseded event makes room."""
        if self._closed:
            return
        queue = self._superseded if isinstance(event, SUPERSEDED) else self._kept
        queue.append((next(self._sequence), event))
        self._ready.set()
        if len(self) > self._limit and self._superseded:
            _, dropped = self._superseded.popleft()
            self._report.dropped(dropped, len(self))

    async def close(self) -> None:
        self._closed = True
        self._room.set()  # a publisher waiting for room gives up
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _take(self) -> HubEvent:
        kept, superseded = self._kept, self._superseded
        if kept and (not superseded or kept[0][0] < superseded[0][0]):
            return kept.popleft()[1]
        return superseded.popleft()[1]

    async def _deliver(self) -> None:
        while True:
            while not self:
                self._ready.clear()
                await self._ready.wait()
            event = self._take()
            self._room.set()
            try:
                await self._callback(event)
            except Exception:
                _log.exception("An OpenShock event subscriber failed on %s", type(event).__name__)


class EventBus:
    """One connection's events: waiters resolved at once, subscribers fed through their queues."""

    def __init__(
        self,
        name: str,
        *,
        backlog: int = DEFAULT_EVENT_BACKLOG,
        report_interval: float = 60.0,
    ) -> None:
        if backlog < 1:
            raise ValueError("the event backlog must hold at least one event")
        self._backlog = backlog
        self._report = _BacklogReport(name, report_interval)
        self._subscribers: list[_Subscriber] = []
        # By the event type they wait for, oldest first; those that claim (see `expect`) apart,
        # so that an event stops looking at them once one has it.
        self._waiters: dict[type, list[_Waiter]] = {}
        self._claiming: dict[type, list[_Waiter]] = {}

    @property
    def backlog(self) -> int:
        """The most events waiting for any one subscriber."""
        return max((len(s) for s in self._subscribers), default=0)

    def subscribe(
        self, callback: EventCallback, wants: EventFilter | None = None
    ) -> Callable[[], Awaitable[None]]:
        subscriber = _Subscriber(callback, self._backlog, self._report, wants)
        self._subscribers.append(subscriber)

        async def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
                await subscriber.close()

        return unsubscribe

    def expect(
        self,
        event_type: type,
        matches: Callable[[Any], bool] | None = None,
        *,
        claims: bool = False,
    ) -> asyncio.Future[Any]:
        """A future for the next event of ``event_type`` (or a subclass) that ``matches``.
        ``claims``: the event is this waiter's alone (no later claiming waiter gets it)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(matches, future)
        by_type = self._claiming if claims else self._waiters
        waiting = by_type.setdefault(event_type, [])
        waiting.append(waiter)

        def done(_: asyncio.Future[Any]) -> None:
            waiting.remove(waiter)
            if not waiting and by_type.get(event_type) is waiting:
                del by_type[event_type]

        future.add_done_callback(done)
        return future

    async def publish(self, event: HubEvent) -> None:
        """Hand ``event`` on; waits while a subscriber has no room for an event never dropped."""
        self._resolve_waiters(event)
        for subscriber in list(self._subscribers):
            if subscriber.wants is None or subscriber.wants(event):
                await subscriber.put(event)

    def publish_nowait(self, event: HubEvent) -> None:
        """Hand on one of the client's own events (a few per connection) without waiting."""
        self._resolve_waiters(event)
        for subscriber in self._subscribers:
            if subscriber.wants is None or subscriber.wants(event):
                subscriber.put_nowait(event)

    async def close(self) -> None:
        subscribers, self._subscribers = self._subscribers, []
        await asyncio.gather(*(s.close() for s in subscribers))
        for by_type in (self._waiters, self._claiming):
            for waiting in list(by_type.values()):
                for waiter in list(waiting):
                    waiter.future.cancel()
        self._report.close()

    def _resolve_waiters(self, event: HubEvent) -> None:
        """Every waiting future the event matches, but of those that claim only the oldest.
        (A future's done callback, which drops it from its list, runs later: the lists do not
        change while they are walked.)"""
        if not self._waiters and not self._claiming:
            return
        claimed = False
        for event_type in type(event).__mro__:
            if not claimed and (claiming := self._claiming.get(event_type)):
                for waiter in claiming:
                    if not waiter.future.done() and _matches(waiter, event):
                        waiter.future.set_result(event)
                        claimed = True
                        break
            waiting = self._waiters.get(event_type)
            if waiting:
                for waiter in list(waiting):
                    if not waiter.future.done() and _matches(waiter, event):
                        waiter.future.set_result(event)


class _Waiter:
    __slots__ = ("future", "matches")

    def __init__(self, matches: Callable[[Any], bool] | None, future: asyncio.Future[Any]) -> None:
        self.matches = matches
        self.future = future


def _matches(waiter: _Waiter, event: HubEvent) -> bool:
    return waiter.matches is None or _safely(waiter.matches, event)


def _safely(matches: Callable[[HubEvent], bool], event: HubEvent) -> bool:
    try:
        return matches(event)
    except Exception:
        _log.exception("An OpenShock event predicate failed")
        return False
