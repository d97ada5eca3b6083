"""The services that want the hub events of every account (the feeds, the panels)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.openshock.models import HubEvent

__all__ = ["HubListener"]


def _every_event(account_id: int, event: HubEvent) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class HubListener:
    """``handle`` gets the events of every account that ``wants`` takes. ``wants`` is asked as
    each event arrives, before it is queued for the listeners: it must be quick and read only
    memory (an event no listener wants costs nothing more than the question)."""

    handle: Callable[[int, HubEvent], Awaitable[None]]
    wants: Callable[[int, HubEvent], bool] = _every_event
