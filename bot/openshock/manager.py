"""Hub connections for every linked account, started and stopped by account id.

Storage-agnostic: the caller passes the API URL and the decrypted token, and learns about events
and dead tokens through callbacks keyed by account id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver

from bot.openshock.event_bus import DEFAULT_EVENT_BACKLOG
from bot.openshock.hub import HubConnection, HubTimings
from bot.openshock.models import HubEvent
from bot.openshock.rest import USER_AGENT, client_session
from bot.openshock.servers import Reach

__all__ = [
    "AccountEventCallback",
    "AccountEventFilter",
    "AccountInvalidCallback",
    "HubAccount",
    "HubManager",
]

AccountEventCallback = Callable[[int, HubEvent], Awaitable[None]]
# Which events ``on_event`` takes, asked as each arrives (see ``EventBus``'s ``EventFilter``).
AccountEventFilter = Callable[[int, HubEvent], bool]
AccountInvalidCallback = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True)
class HubAccount:
    account_id: int
    api_url: str
    token: str = field(repr=False)
    # How the server may be reached (``ServerPolicy.reach``; the bot always says): on
    # PUBLIC_ONLY, every connection the account makes, hub or REST, goes to public addresses only.
    reach: Reach = Reach.ANY_ADDRESS


class HubManager:
    """Owns one ``HubConnection`` per account and the HTTP sessions their REST clients share
    (one for the accounts whose server may be on any address, one that connects to public
    addresses only; ``resolver``, by default the system's, answers for the latter and for their
    WebSockets).

    ``on_event`` gets every event of every account (or every one ``wants_event`` takes), in
    order per account. While it is
    ``event_backlog`` events behind on an account, that account's connection drops the oldest
    superseded events (OTA progress, device updates) and waits for it before reading more
    (``event_bus``), so a flood cannot exhaust memory and no ``Log`` is lost: store what must
    be kept in ``on_event`` before doing anything slow with it.
    """

    def __init__(
        self,
        *,
        on_event: AccountEventCallback | None = None,
        wants_event: AccountEventFilter | None = None,
        on_invalid: AccountInvalidCallback | None = None,
        timings: HubTimings | None = None,
        user_agent: str = USER_AGENT,
        event_backlog: int = DEFAULT_EVENT_BACKLOG,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._on_event = on_event
        self._wants_event = wants_event
        self._on_invalid = on_invalid
        self._timings = timings
        self._user_agent = user_agent
        self._event_backlog = event_backlog
        self._connections: dict[int, HubConnection] = {}
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._public_session: aiohttp.ClientSession | None = None

    def get(self, account_id: int) -> HubConnection | None:
        return self._connections.get(account_id)

    def __iter__(self) -> Iterator[tuple[int, HubConnection]]:
        return iter(list(self._connections.items()))

    def __len__(self) -> int:
        return len(self._connections)

    async def start(self, account: HubAccount) -> HubConnection:
        """Connect an account, replacing its existing connection (e.g. after a new token)."""
        await self.stop(account.account_id)
        public_only = account.reach is Reach.PUBLIC_ONLY
        account_id = account.account_id

        async def on_invalid(reason: str) -> None:
            if self._on_invalid is not None:
                await self._on_invalid(account_id, reason)

        connection = HubConnection(
            account.api_url,
            account.token,
            session=self._session_for(public_only=public_only),
            timings=self._timings,
            on_invalid=on_invalid,
            user_agent=self._user_agent,
            name=f"account {account_id}",
            event_backlog=self._event_backlog,
            public_only=public_only,
            resolver=self._resolver,
        )
        if self._on_event is not None:
            on_event = self._on_event

            async def forward(event: HubEvent) -> None:
                await on_event(account_id, event)

            wants = None
            if self._wants_event is not None:
                wants_event = self._wants_event

                def wants(event: HubEvent) -> bool:
                    return wants_event(account_id, event)

            connection.subscribe(forward, wants)
        self._connections[account_id] = connection
        connection.start()
        return connection

    def _session_for(self, *, public_only: bool) -> aiohttp.ClientSession:
        """The shared session (it keeps no cookies, so accounts never share one's)."""
        if public_only:
            if self._public_session is None or self._public_session.closed:
                self._public_session = client_session(public_only=True, resolver=self._resolver)
            return self._public_session
        if self._session is None or self._session.closed:
            self._session = client_session()
        return self._session

    async def stop(self, account_id: int) -> None:
        connection = self._connections.pop(account_id, None)
        if connection is not None:
            await connection.stop()

    async def stop_all(self) -> None:
        """Stop every connection and close the shared sessions."""
        for account_id in list(self._connections):
            await self.stop(account_id)
        for session in (self._session, self._public_session):
            if session is not None:
                await session.close()
        self._session = self._public_session = None
