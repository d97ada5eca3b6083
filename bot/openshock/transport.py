"""pysignalr, adapted: one WebSocket connection per attempt, the token kept out of messages.

pysignalr is used for the protocol (framing, message types, completion routing), but not for
connection management, because of what it does on its own (shared/testing.md §2): it puts
``headers=`` (our token) into every invocation body, its retry budget is never reset, and
``run()`` ends for good on many ordinary failures. So ``HubClient`` makes exactly one connection
per ``run()``, which returns or raises when that connection ends; ``HubConnection`` (``hub``)
supervises the attempts.

A redirect of the upgrade is never followed (the token would go with it). For a server that may
be reached only on public addresses (OPENSHOCK_ALLOWED_SERVERS=*), each attempt resolves the host
itself, checks every address (``servers``) and connects to one of those exact addresses, keeping
the URI's host for TLS and the Host header.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp.abc import AbstractResolver
from pysignalr.client import SignalRClient
from pysignalr.messages import CloseMessage, InvocationMessage, Message, PingMessage
from pysignalr.protocol.json import JSONProtocol
from pysignalr.transport.websocket import WebsocketTransport
from pysignalr.utils import replace_scheme
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.uri import parse_uri

from bot.openshock.errors import HubNotConnected
from bot.openshock.rest import TOKEN_HEADER
from bot.openshock.servers import NotPublicAddress, PublicOnlyResolver
from bot.openshock.timings import HubTimings

__all__ = ["HubClient", "ServerClosed", "ServerSilent", "describe_failure"]

_log = logging.getLogger(__name__)
# websockets logs the upgrade request's headers, our token among them, at DEBUG: never go there.
_websockets_log = logging.getLogger(f"{__name__}.websockets")
_websockets_log.setLevel(logging.INFO)


class ServerClosed(Exception):
    """The server sent a SignalR Close message."""

    def __init__(self, error: str | None, allow_reconnect: bool | None) -> None:
        super().__init__(error or "closed without error")
        self.error = error
        self.allow_reconnect = allow_reconnect


class ServerSilent(Exception):
    """Nothing arrived from the server within the server timeout."""


class _TolerantJSONProtocol(JSONProtocol):
    """The JSON hub protocol, skipping a malformed record instead of dropping the connection."""

    def decode(self, raw_message: str | bytes) -> list[Message]:
        text = raw_message.decode() if isinstance(raw_message, bytes) else raw_message
        messages: list[Message] = []
        for record in text.split(self.record_separator):
            if not record:
                continue
            try:
                data = orjson.loads(record)  # as pysignalr's own decode
                if not isinstance(data, dict):
                    raise ValueError(f"a JSON {type(data).__name__}, not an object")
                if data:
                    messages.append(self.parse_message(data))
            except Exception as error:  # any shape pysignalr cannot parse
                _log.warning("Skipping a malformed hub message (%s): %.200s", error, record)
        return messages


class _Connect(connect):
    """websockets' ``connect``, following no redirect: the upgrade request carries the token,
    which must go nowhere but the server it was linked to. A 3xx fails the attempt."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class _OneAttemptTransport(WebsocketTransport):
    """Exactly one WebSocket connection per ``run()``, which returns or raises when it ends.

    Messages are handled one at a time, each before the next is read: a handler that waits
    (an event subscriber with no room left, see ``event_bus``) pauses reading, and the server's
    sends back up behind it (TCP back-pressure) instead of piling up in memory here.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        callback: Callable[[Message], Awaitable[None]],
        timings: HubTimings,
        user_agent: str,
        *,
        public_only: bool = False,
        resolver: AbstractResolver | None = None,
    ) -> None:
        super().__init__(
            url=url,
            protocol=_TolerantJSONProtocol(),
            callback=callback,
            headers=headers,
            skip_negotiation=True,  # the official clients skip it; the token goes on the upgrade
        )
        self._timings = timings
        # When the reader began waiting for the next message (None: handling one), and
        # whether the connection was dropped for the server's silence.
        self._listening_since: float | None = None
        self._silent = False
        self._user_agent = user_agent
        self._public_only = public_only
        self._resolver = resolver

    async def _open(self) -> ClientConnection:
        uri = replace_scheme(self._url, ws=True)
        options: dict[str, Any] = {
            "additional_headers": self._headers,
            "user_agent_header": self._user_agent,
            "open_timeout": self._timings.connect_timeout,
            "close_timeout": self._timings.connect_timeout,
            "ping_interval": None,  # SignalR pings and the server timeout cover liveness
            # No permessage-deflate: hub messages are a few hundred bytes, and compressing each
            # costs more CPU than it saves (OpenShock's ASP.NET Core hub does not accept it).
            "compression": None,
            "max_size": self._max_size,
            "proxy": None,
            "logger": _websockets_log,
        }
        if not self._public_only:
            return await _Connect(uri, **options)
        target = parse_uri(uri)
        addresses = await PublicOnlyResolver(self._resolver).addresses(target.host, target.port)
        if target.secure:
            options["server_hostname"] = target.host  # TLS checks the name, not the address
        failure: OSError = NotPublicAddress(target.host)  # (addresses is never empty)
        for address in addresses:
            try:
                # The checked address itself (a second lookup could answer otherwise); the
                # URI, and so the Host header, keeps the name.
                return await _Connect(uri, host=address, port=target.port, **options)
            except OSError as error:  # refused, unreachable, timed out: try the next one
                failure = error
        raise failure

    async def run(self) -> None:
        async with await self._open() as conn:
            async with asyncio.timeout(self._timings.connect_timeout):
                await self._handshake(conn)
            self._ws = conn
            keepalive = asyncio.create_task(self._keepalive(conn))
            try:
                await self._process(conn)
            finally:
                self._ws = None
                keepalive.cancel()
                await asyncio.gather(keepalive, return_exceptions=True)

    async def send(self, message: Message) -> None:
        conn = self._ws
        if conn is None:
            raise HubNotConnected()
        await conn.send(self._protocol.encode(message))

    async def _process(self, conn: ClientConnection) -> None:
        """Read and handle messages until the connection ends, or the server has been silent
        for the server timeout while we waited for it (`_watch_silence`: one timer for the
        connection, not one per message)."""
        loop = asyncio.get_running_loop()
        self._silent = False
        watchdog = asyncio.create_task(self._watch_silence(conn))
        try:
            while True:
                self._listening_since = loop.time()
                try:
                    raw = await conn.recv()
                except ConnectionClosed:
                    if self._silent:
                        raise ServerSilent(
                            f"no message from the server for {self._timings.server_timeout:g} s"
                        ) from None
                    raise
                self._listening_since = None
                await self._on_raw_message(raw)
        finally:
            watchdog.cancel()

    async def _watch_silence(self, conn: ClientConnection) -> None:
        """Drop the connection once the reader has waited the server timeout for a message.
        It drops the connection rather than cancel the reader, so a message that came in just
        then is still handled whole; a handler slow to take a message (back-pressure) is not
        the server's silence."""
        loop = asyncio.get_running_loop()
        limit = self._timings.server_timeout
        while True:
            since = self._listening_since
            if since is None:  # handling a message: look again a little later
                await asyncio.sleep(limit / 4)
                continue
            if loop.time() >= since + limit:
                self._silent = True
                conn.transport.abort()  # the reader's recv() ends with ConnectionClosed
                return
            await asyncio.sleep(since + limit - loop.time())

    async def _keepalive(self, conn: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self._timings.ping_interval)
            await conn.send(self._protocol.encode(PingMessage()))


class HubClient(SignalRClient):
    """A pysignalr client for one connection attempt, that keeps the token out of messages."""

    def __init__(
        self,
        url: str,
        token: str,
        timings: HubTimings,
        user_agent: str,
        *,
        public_only: bool = False,
        resolver: AbstractResolver | None = None,
    ) -> None:
        headers = {TOKEN_HEADER: token}
        super().__init__(url, headers=headers)
        self._invocation_ids = itertools.count(1)
        self._transport = _OneAttemptTransport(
            url,
            headers,
            self._on_message,
            timings,
            user_agent,
            public_only=public_only,
            resolver=resolver,
        )

    async def send(
        self,
        method: str,
        arguments: list[Any],
        on_invocation: Callable[[Message], Awaitable[Any | None]] | None = None,
    ) -> None:
        # SignalRClient.send copies the connection headers, i.e. the token, into the message
        # body of every invocation. Build the message here without them.
        invocation_id: str | None = None
        if on_invocation is not None:
            # Unique on this connection is all SignalR asks (its own clients count from 1): no
            # uuid4, which reads the system's randomness on every control.
            invocation_id = str(next(self._invocation_ids))
            self._invocation_handlers[invocation_id] = on_invocation
        await self._transport.send(InvocationMessage(invocation_id, method, arguments, None))

    async def _on_close_message(self, message: CloseMessage) -> None:
        # pysignalr ignores a Close without error; either way this connection is over.
        raise ServerClosed(message.error, message.allow_reconnect)


def describe_failure(error: Exception) -> str:
    """A short, token-free description of why a connection attempt ended."""
    if isinstance(error, InvalidStatus):
        return f"the server answered HTTP {error.response.status_code} to the connection request"
    if isinstance(error, NotPublicAddress):
        return "not connecting: the server's address is not public"
    if isinstance(error, ServerClosed):
        return f"the server closed the connection ({error})"
    if isinstance(error, ServerSilent):
        return str(error)
    if isinstance(error, ConnectionClosed):
        return "the connection was lost"
    if isinstance(error, TimeoutError):
        return "timed out while connecting"
    if isinstance(error, OSError):
        return f"cannot connect to the server ({error.strerror or type(error).__name__})"
    return f"unexpected error: {type(error).__name__}: {error}"
