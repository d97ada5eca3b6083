"""Who is a member of which guild, and what they are called there: a small cache in front of
Discord's member endpoint (``GET /guilds/{guild}/members/{user}``; no privileged intent).

Two rules use it:

- **Only members.** A share works only while its wearer is a member of the guild. The bot has no
  members intent, so Discord does not tell it when someone leaves; instead every decision asks
  here, and an answer is never older than ``max_age`` (a minute): a fresh one is served from
  memory, an older one is fetched again first. Answers past ``refresh_after`` are served and
  refreshed in the background, so the hot path rarely waits. A member seen in an interaction
  is a member at that moment.
- **Privacy.** Public text names people by their Discord identity; where a mention cannot be
  rendered (autocomplete choices), by their display name in the guild, read from here.

A lookup that fails (Discord unreachable, 5xx, timeout) answers None, "not known": the caller
decides what that means (the decision lets only Stop through).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MemberDirectory",
    "MemberFetch",
    "MemberInfo",
    "MemberUnknown",
    "NotAMember",
    "display_name_of",
    "role_ids_of",
]

log = logging.getLogger(__name__)

MAX_AGE = 60.0  # seconds: the oldest answer a decision may use
REFRESH_AFTER = 30.0  # seconds: answers older than this are refreshed in the background
FETCH_TIMEOUT = 2.0  # seconds: autocomplete and replies have 3 s in all
MAX_ENTRIES = 50_000


class NotAMember(Exception):
    """The member endpoint said 404: not (or no longer) a member of that guild."""


class MemberUnknown(Exception):
    """Discord could not be asked (unreachable, 5xx, 403, timeout): nothing is known."""


# Returns the member payload, raises NotAMember on 404 and anything else on failure.
MemberFetch = Callable[[int, int], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class MemberInfo:
    present: bool
    display_name: str | None
    checked_at: float  # monotonic seconds


def display_name_of(payload: dict[str, Any]) -> str | None:
    """A guild member payload's display name: nickname, else global name, else username."""
    user = payload.get("user") or {}
    for name in (payload.get("nick"), user.get("global_name"), user.get("username")):
        if isinstance(name, str) and name:
            return name
    return None


def role_ids_of(payload: dict[str, Any]) -> frozenset[int]:
    """A guild member payload's role ids (snowflakes as strings on the wire)."""
    roles = payload.get("roles") or []
    return frozenset(int(role) for role in roles)


class MemberDirectory:
    def __init__(
        self,
        fetch: MemberFetch,
        *,
        max_age: float = MAX_AGE,
        refresh_after: float = REFRESH_AFTER,
        timeout: float = FETCH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self.refresh_after = refresh_after
        self.timeout = timeout
        self.clock = clock
        self._entries: dict[tuple[int, int], MemberInfo] = {}
        self._inflight: dict[tuple[int, int], asyncio.Future[MemberInfo | None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # -- what is known --------------------------------------------------------------------------

    def note(self, guild_id: int, user_id: int, display_name: str | None) -> None:
        """``user_id`` is a member of ``guild_id`` right now (seen in an interaction there)."""
        self._store((guild_id, user_id), MemberInfo(True, display_name, self.clock()))

    def forget(self, guild_id: int, user_id: int) -> None:
        self._entries.pop((guild_id, user_id), None)

    def cached(self, guild_id: int, user_id: int) -> MemberInfo | None:
        """What is known, of any age (for names; not for membership decisions)."""
        return self._entries.get((guild_id, user_id))

    # -- asking ---------------------------------------------------------------------------------

    async def lookup(self, guild_id: int, user_id: int) -> MemberInfo | None:
        """An answer no older than ``max_age``; None when Discord could not be asked."""
        key = (guild_id, user_id)
        entry = self._entries.get(key)
        now = self.clock()
        if entry is not None:
            age = now - entry.checked_at
            if age < self.max_age:
                if age >= self.refresh_after:
                    self._refresh_soon(key)
                return entry
        return await self._fetch_once(key)

    async def current_roles(
        self, guild_id: int, user_id: int, *, within: float | None = None
    ) -> frozenset[int]:
        """The member's role ids right now: always read from Discord (never from memory), for a
        decision made on someone's behalf long after they acted (a vote's end, an approval).
        Raises `NotAMember` (404: not a member any more) or `MemberUnknown` (not reachable)."""
        key = (guild_id, user_id)
        try:
            async with asyncio.timeout(self.timeout if within is None else within):
                payload = await self._fetch(guild_id, user_id)
        except NotAMember:
            self._store(key, MemberInfo(False, None, self.clock()))
            raise
        except Exception as error:
            log.info(
                "Could not read the roles of user %d in guild %d: %s",
                user_id,
                guild_id,
                type(error).__name__,
            )
            raise MemberUnknown() from error
        self._store(key, MemberInfo(True, display_name_of(payload), self.clock()))
        return role_ids_of(payload)

    async def is_member(self, guild_id: int, user_id: int) -> bool | None:
        info = await self.lookup(guild_id, user_id)
        return info.present if info is not None else None

    async def memberships(self, guild_id: int, user_ids: Iterable[int]) -> dict[int, bool | None]:
        """Several at once (one request per user not known freshly, all in parallel)."""
        wanted = list(dict.fromkeys(user_ids))
        answers = await asyncio.gather(*(self.is_member(guild_id, u) for u in wanted))
        return dict(zip(wanted, answers, strict=True))

    async def display_name(self, guild_id: int, user_id: int) -> str | None:
        """The member's display name in the guild: from memory when known (any age), else
        fetched. None when they are not a member or it cannot be had."""
        entry = self._entries.get((guild_id, user_id))
        if entry is None or (entry.display_name is None and entry.present):
            entry = await self.lookup(guild_id, user_id)
        if entry is None or not entry.present:
            return None
        return entry.display_name

    async def close(self) -> None:
        pending = [*self._background, *self._inflight.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- plumbing -------------------------------------------------------------------------------

    def _store(self, key: tuple[int, int], info: MemberInfo) -> None:
        if len(self._entries) >= MAX_ENTRIES and key not in self._entries:
            self._prune()
        self._entries[key] = info

    def _prune(self) -> None:
        """Drop what is too old to decide on; if that is not enough, the oldest half."""
        now = self.clock()
        stale = [k for k, v in self._entries.items() if now - v.checked_at >= self.max_age]
        for key in stale:
            del self._entries[key]
        if len(self._entries) >= MAX_ENTRIES:
            by_age = sorted(self._entries, key=lambda k: self._entries[k].checked_at)
            for key in by_age[: len(by_age) // 2]:
                del self._entries[key]

    async def _fetch_once(self, key: tuple[int, int]) -> MemberInfo | None:
        """One request per key at a time; concurrent askers share its answer."""
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask_discord(key))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(pending)

    async def _ask_discord(self, key: tuple[int, int]) -> MemberInfo | None:
        guild_id, user_id = key
        try:
            async with asyncio.timeout(self.timeout):
                payload = await self._fetch(guild_id, user_id)
        except NotAMember:
            info = MemberInfo(False, None, self.clock())
        except Exception as error:  # Discord down, 5xx, 403, timeout: not known
            log.info(
                "Could not check whether user %d is a member of guild %d: %s",
                user_id,
                guild_id,
                type(error).__name__,
            )
            return None
        else:
            info = MemberInfo(True, display_name_of(payload), self.clock())
        self._store(key, info)
        return info

    def _refresh_soon(self, key: tuple[int, int]) -> None:
        if key in self._inflight:
            return
        task = asyncio.create_task(self._fetch_once(key), name="member-refresh")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
