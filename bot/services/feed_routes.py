"""Where a hub event goes, kept in memory: which guilds an account shared each shocker in, whose
account it is, which Discord user linked the account a control came from, and which channel each
guild's enabled feeds post in.

Every hub event is routed (the bot's own controls too, even where no feed exists), so routing
reads nothing from the database once known. What is kept is let go of as a whole whenever a
committed write changed shares, feeds or accounts (`Database.routing_version`, moved by
triggers, whichever repository wrote), and read again on the next event.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.storage import Storage
from bot.storage.feeds import AccountRoutes
from bot.storage.models import FeedKind

__all__ = ["FeedRoutes"]

FeedChannels = dict[FeedKind, int]


class FeedRoutes:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._version = -1
        self._accounts: dict[int, AccountRoutes | None] = {}
        self._feeds: dict[int, FeedChannels] = {}
        self._linked_by: dict[str, int | None] = {}  # OpenShock user id -> Discord user id

    def _current(self) -> int:
        version = self._storage.db.routing_version
        if version != self._version:
            self._accounts.clear()
            self._feeds.clear()
            self._linked_by.clear()
            self._version = version
        return version

    async def of_account(self, account_id: int) -> AccountRoutes | None:
        """The account's wearer and where it shared each shocker (None: not linked)."""
        version = self._current()
        if account_id in self._accounts:
            return self._accounts[account_id]
        routes = await self._storage.feeds.routes_of_account(account_id)
        # A write that committed while this was read moved the version: keep nothing then.
        if self._current() == version:
            self._accounts[account_id] = routes
        return routes

    async def discord_user_of(self, openshock_user_id: str) -> int | None:
        """The Discord user who linked this OpenShock account here (None: nobody). Senders
        are few (most controls come from a handful of accounts): each is kept once read."""
        version = self._current()
        if openshock_user_id in self._linked_by:
            return self._linked_by[openshock_user_id]
        account = await self._storage.accounts.by_openshock_user(openshock_user_id)
        user = account.discord_user_id if account is not None else None
        if self._current() == version and len(self._linked_by) < _SENDERS_KEPT:
            self._linked_by[openshock_user_id] = user
        return user

    async def channels(self, guild_ids: Iterable[int]) -> dict[int, FeedChannels]:
        """Each guild's enabled feeds (kind -> channel)."""
        version = self._current()
        wanted = set(guild_ids)
        missing = wanted - self._feeds.keys()
        if missing:
            found = await self._storage.feeds.enabled_channels(missing)
            if self._current() != version:  # what was kept is gone: read them all again
                return await self._storage.feeds.enabled_channels(wanted)
            self._feeds.update(found)
        return {guild_id: self._feeds[guild_id] for guild_id in wanted}

    def may_show(self, account_id: int, kind: FeedKind) -> bool:
        """False only when what is kept says that no guild where the account shared a shocker
        has an enabled ``kind`` feed (an event of it would go nowhere); True when one has, or
        when that is not known yet. In memory: asked as each hub event arrives."""
        self._current()
        if account_id not in self._accounts:
            return True
        routes = self._accounts[account_id]
        if routes is None:
            return False  # not linked
        for guild_ids in routes.guilds_of.values():
            for guild_id in guild_ids:
                feeds = self._feeds.get(guild_id)
                if feeds is None or kind in feeds:
                    return True
        return False

    def forget_account(self, account_id: int) -> None:
        self._accounts.pop(account_id, None)

    def forget_guild(self, guild_id: int) -> None:
        self._feeds.pop(guild_id, None)


# Senders of controls whose Discord user is kept (the rest are read each time).
_SENDERS_KEPT = 10_000
