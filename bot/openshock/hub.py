"""One supervised connection to the OpenShock user hub (SignalR) for one account.

``HubConnection`` supervises connection attempts (``transport``: one pysignalr client and one
WebSocket per attempt): jittered exponential backoff forever, except after a 401, which means
the token is dead. It turns what the server sends into events (``event_parsing``), keeps the
devices' online state (``device_state``) and the account's shocker lists (``shocker_cache``),
and hands events to waiters and subscribers (``event_bus``, which bounds what may queue up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import aiohttp
from aiohttp.abc import AbstractResolver
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from pysignalr.messages import CompletionMessage, Message
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.openshock.device_state import DeviceTracker
from bot.openshock.errors import (
    HubConnectionLost,
    HubInvocationFailed,
    HubInvocationTimeout,
    HubNotConnected,
    TokenRejected,
)
from bot.openshock.event_bus import DEFAULT_EVENT_BACKLOG, EventBus, EventCallback, EventFilter
from bot.openshock.event_parsing import (
    PASS_THROUGH_EVENTS,
    parse_device_status,
    parse_device_update,
    parse_welcome,
)
from bot.openshock.models import (
    Control,
    DeviceOnlineState,
    DeviceSnapshotApplied,
    DeviceState,
    DeviceUpdate,
    HubConnected,
    HubDisconnected,
    ShockerDirectory,
    Welcome,
)
from bot.openshock.rest import USER_AGENT, OpenShockRest, join_url
from bot.openshock.shocker_cache import ShockerCache
from bot.openshock.status import HubState, HubStatus
from bot.openshock.timings import HubTimings
from bot.openshock.transport import HubClient, describe_failure

__all__ = [
    "HUB_PATH",
    "MAX_CUSTOM_NAME",
    "EventCallback",
    "HubConnection",
    "HubState",
    "HubStatus",
    "HubTimings",
    "InvalidCallback",
]

HUB_PATH = "/1/hubs/user"
MAX_CUSTOM_NAME = 64  # the server stores it in a varchar(64); longer fails the whole call

_log = logging.getLogger(__name__)
_E = TypeVar("_E", bound=BaseModel)

InvalidCallback = Callable[[str], Awaitable[None]]


class HubConnection:
    """The user-hub connection of one account, reconnecting until stopped or the token dies.

    Readable state: ``status``, ``connection_id``, ``devices``/``device_state()`` and
    ``shockers`` (the account's own and shared shockers, re-read over REST after every
    (re)connect and on ``DeviceUpdate``). Events are handed to ``subscribe()``rs and
    ``expect()``/``next_event()`` waiters; each subscriber may fall ``event_backlog`` events
    behind before reading from the server waits for it (see ``event_bus``).

    With ``public_only`` (a server allowed through OPENSHOCK_ALLOWED_SERVERS=*), every
    connection, WebSocket or REST, goes only to a host whose every address is public, checked
    each time (``resolver`` answers for the WebSocket, by default the system's); a ``session``
    must then come from ``client_session(public_only=True)``.

    One-shot: after ``stop()`` make a new one.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        rest: OpenShockRest | None = None,
        session: aiohttp.ClientSession | None = None,
        timings: HubTimings | None = None,
        on_invalid: InvalidCallback | None = None,
        user_agent: str = USER_AGENT,
        name: str = "",
        event_backlog: int = DEFAULT_EVENT_BACKLOG,
        public_only: bool = False,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.hub_url = join_url(base_url, HUB_PATH)
        self.name = name or base_url
        self._token = token
        self._timings = timings or HubTimings()
        self._user_agent = user_agent
        self._on_invalid = on_invalid
        self._public_only = public_only
        self._resolver = resolver
        self.rest = rest or OpenShockRest(
            base_url, token, session=session, user_agent=user_agent, public_only=public_only
        )
        self._owns_rest = rest is None

        self._state = HubState.STOPPED
        self._state_since = datetime.now(UTC)
        self._state_changed = asyncio.Event()
        self._last_error: str | None = None
        self._connection_id: str | None = None
        self._connected_at: float | None = None  # loop time, for the backoff reset

        self._devices = DeviceTracker()
        self._events = EventBus(
            self.name,
            backlog=event_backlog,
            report_interval=self._timings.backlog_report_interval,
        )
        self._shockers = ShockerCache(
            self.rest,
            name=self.name,
            timings=self._timings,
            publish=self._events.publish,
            connected=lambda: self.connected,
            alive=lambda: not self._stopped and self._state is not HubState.INVALID,
            on_token_revoked=self._token_revoked_while_open,
        )
        self._client: HubClient | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"HubConnection({self.name!r}, state={self._state.value})"

    # --- Readable state ------------------------------------------------------------------------

    @property
    def status(self) -> HubStatus:
        return HubStatus(self._state, self._state_since, self._connection_id, self._last_error)

    @property
    def state(self) -> HubState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is HubState.CONNECTED

    @property
    def connection_id(self) -> str | None:
        """The id from the current ``Welcome``: ``Log.sender.connectionId`` equals it for our
        own controls."""
        return self._connection_id

    @property
    def devices(self) -> Mapping[UUID, DeviceState]:
        return self._devices.all()

    def device_state(self, device_id: UUID) -> DeviceState:
        return self._devices.get(device_id)

    @property
    def shockers(self) -> ShockerDirectory | None:
        """The shocker lists from the last successful REST refresh (None before the first)."""
        return self._shockers.directory

    @property
    def event_backlog(self) -> int:
        """The most events waiting for any one subscriber right now."""
        return self._events.backlog

    # --- Lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._stopped:
            raise RuntimeError("a stopped HubConnection cannot be restarted; make a new one")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"openshock-hub {self.name}"
            )

    async def stop(self) -> None:
        self._stopped = True
        # stop() may be called from the supervisor itself (an on_invalid callback that stops the
        # account): it ends on its own after that, and awaiting it here would wait forever.
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        await self._shockers.stop()
        await self._events.close()
        if self._owns_rest:
            await self.rest.close()
        if self._state is not HubState.INVALID:
            self._set_state(HubState.STOPPED)

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until connected. Raises ``TokenRejected`` if the token is refused meanwhile,
        ``HubNotConnected`` on timeout or when stopped."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._state_changed
                    if self._state is HubState.CONNECTED:
                        return
                    if self._state is HubState.INVALID:
                        raise TokenRejected()
                    if self._stopped:
                        raise HubNotConnected("the connection was stopped")
                    await changed.wait()
        except TimeoutError:
            reason = f"no connection within {timeout:g} seconds"
            if self._last_error:
                reason += f"; last error: {self._last_error}"
            raise HubNotConnected(reason) from None

    # --- Events --------------------------------------------------------------------------------

    def subscribe(
        self, callback: EventCallback, wants: EventFilter | None = None
    ) -> Callable[[], Awaitable[None]]:
        """Call ``callback`` with every event (or every one ``wants``, asked as each arrives), in
        order, on its own task. Returns an async ``unsubscribe``.

        A callback that falls ``event_backlog`` events behind pauses reading from the server
        until it catches up, so it must not wait for this connection's own traffic (an
        invocation's completion, a server event) while that far behind."""
        return self._events.subscribe(callback, wants)

    def expect(
        self,
        event_type: type[_E],
        predicate: Callable[[_E], bool] | None = None,
        *,
        claims: bool = False,
    ) -> asyncio.Future[_E]:
        """A future for the next event of ``event_type`` matching ``predicate``.

        Registered at once, so call it *before* the action whose effect it waits for (e.g. a
        control, then the ``Log`` that confirms it). Cancel it if you stop waiting.
        ``claims``: the event answers this waiter alone among the claiming ones (the oldest it
        matches): one ``Log`` confirms one control, not every control waiting on its shocker.
        """
        return self._events.expect(event_type, predicate, claims=claims)

    async def next_event(
        self,
        event_type: type[_E],
        predicate: Callable[[_E], bool] | None = None,
        *,
        timeout: float,  # noqa: ASYNC109
    ) -> _E:
        """Wait for the next matching event; raises ``TimeoutError`` if none comes in time."""
        future = self.expect(event_type, predicate)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            future.cancel()

    # --- Invocations ---------------------------------------------------------------------------

    async def invoke(
        self,
        method: str,
        *arguments: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - a timeout turns into HubInvocationTimeout
    ) -> Any:
        """Invoke a hub method and wait for its completion; returns its result (usually None).

        Raises ``HubNotConnected`` (not connected, or dropped while sending: nothing was sent),
        its subclass ``HubConnectionLost`` (dropped after the frame was sent, before the
        completion: it may or may not have been carried out), ``HubInvocationFailed``
        (completion error) or ``HubInvocationTimeout``. Arguments may be pydantic models, UUIDs
        and plain JSON values.
        """
        payload = [to_jsonable_python(argument, by_alias=True) for argument in arguments]
        return await self._invoke(method, payload, timeout)

    async def _invoke(
        self,
        method: str,
        payload: list[Any],
        timeout: float | None,  # noqa: ASYNC109 - as invoke's
    ) -> Any:
        """`invoke` with the arguments already as JSON values."""
        client = self._client
        if client is None or self._state is not HubState.CONNECTED:
            raise HubNotConnected()
        timeout = self._timings.invoke_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        completion: asyncio.Future[Any] = loop.create_future()

        async def on_completion(message: Message) -> None:
            if completion.done() or not isinstance(message, CompletionMessage):
                return
            if message.error:
                completion.set_exception(HubInvocationFailed(method, message.error))
            else:
                completion.set_result(message.result)

        self._pending.add(completion)
        try:
            try:
                await client.send(method, payload, on_invocation=on_completion)
            except (ConnectionClosed, OSError):
                if completion.done() and not completion.cancelled():
                    completion.exception()  # HubConnectionLost from the drop: superseded
                raise HubNotConnected("the connection dropped while sending") from None
            # A timer that fails the completion, rather than asyncio.timeout: the same, for
            # less work on the path of every control.
            timer = loop.call_later(timeout, _expire, completion, method, timeout)
            try:
                return await completion
            finally:
                timer.cancel()
        finally:
            self._pending.discard(completion)

    async def control(
        self,
        controls: Sequence[Control],
        custom_name: str | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Send a ``ControlV2`` batch. Completing says nothing about acceptance: the server drops
        a batch silently; only a ``Log`` event (to the owner) confirms it."""
        name = custom_name[:MAX_CUSTOM_NAME] if custom_name is not None else None
        await self._invoke("ControlV2", [[c.wire() for c in controls], name], timeout)

    async def emergency_stop(self, device_id: UUID) -> None:
        await self.invoke("EmergencyStop", device_id)

    async def reboot(self, device_id: UUID) -> None:
        await self.invoke("Reboot", device_id)

    async def captive_portal(self, device_id: UUID, enabled: bool) -> None:
        await self.invoke("CaptivePortal", device_id, enabled)

    async def ota_install(self, device_id: UUID, version: str) -> None:
        await self.invoke("OtaInstall", device_id, version)

    # --- Shocker lists -------------------------------------------------------------------------

    async def refresh_shockers(self) -> ShockerDirectory:
        """Re-read the own and shared shocker lists now (raises the REST client's errors)."""
        return await self._shockers.refresh()

    async def _token_revoked_while_open(self) -> None:
        """REST answered 401 while the hub was open (the hub checks the token only when a
        connection opens, so it would keep working until the next drop): the token is dead, so
        end the connection and stop as after a 401 on the upgrade."""
        if self._state is HubState.INVALID or self._stopped:
            return
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        # (The supervisor cannot have turned INVALID meanwhile: it sets that state before it
        # awaits anything, and then this method would have returned above.)
        self._connection_lost(str(TokenRejected()))
        await self._become_invalid()

    # --- Supervision ---------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while True:
            self._set_state(HubState.CONNECTING)
            try:
                await self._run_one_connection()
                reason = "the connection ended"
            except Exception as error:
                if isinstance(error, InvalidStatus) and error.response.status_code == 401:
                    await self._become_invalid()
                    return
                reason = describe_failure(error)
            lasted = self._connection_lost(reason)
            if lasted is not None and lasted >= self._timings.stable_after:
                failures = 0
            delay = self._timings.backoff(failures)
            failures += 1
            log_level = logging.WARNING if lasted is not None or failures == 1 else logging.INFO
            _log.log(log_level, "Hub %s: %s; retrying in %.1f s", self.name, reason, delay)
            await asyncio.sleep(delay)

    async def _run_one_connection(self) -> None:
        client = HubClient(
            self.hub_url,
            self._token,
            self._timings,
            self._user_agent,
            public_only=self._public_only,
            resolver=self._resolver,
        )
        handlers = {
            "Welcome": self._handler("Welcome", parse_welcome, self._on_welcome),
            "DeviceStatus": self._handler("DeviceStatus", parse_device_status, self._on_status),
            "DeviceUpdate": self._handler("DeviceUpdate", parse_device_update, self._on_update),
        }
        for target, parse in PASS_THROUGH_EVENTS.items():
            handlers[target] = self._handler(target, parse, self._events.publish)
        for target, handler in handlers.items():
            client.on(target, handler)
        # Completion errors reach the invoking future via on_invocation; without an on_error
        # callback pysignalr would raise and end the connection.
        client.on_error(_ignore_completion_error)
        self._client = client
        try:
            await client.run()
        finally:
            self._client = None
            # An invocation still sending gets "dropped while sending" from its own send (which
            # fails); one whose frame went out learns only that its outcome is unknown.
            for future in self._pending:
                if not future.done():
                    future.set_exception(HubConnectionLost())

    def _handler(
        self, target: str, parse: Callable[[Any], Any], apply: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        """Wrap an event handler so that nothing it does can end the connection."""

        async def handle(arguments: Any) -> None:
            try:
                event = parse(arguments)
            except (ValidationError, ValueError, TypeError) as error:
                _log.warning("Skipping a malformed %s event from OpenShock: %s", target, error)
                return
            try:
                await apply(event)
            except Exception:
                _log.exception("Failed to handle a %s event from OpenShock", target)

        return handle

    async def _on_welcome(self, welcome: Welcome) -> None:
        self._connection_id = welcome.connection_id
        self._connected_at = asyncio.get_running_loop().time()
        self._devices.expect_snapshot()
        self._set_state(HubState.CONNECTED)
        _log.info("OpenShock hub %s connected", self.name)
        self._shockers.request_refresh()  # DeviceUpdates may have been missed while away
        await self._events.publish(welcome)
        await self._events.publish(HubConnected(connection_id=welcome.connection_id))

    async def _on_status(self, states: list[DeviceOnlineState]) -> None:
        snapshot = self._devices.awaiting_snapshot
        for change in self._devices.apply(states):
            await self._events.publish(change)
        if snapshot:
            # Devices this process never knew (e.g. online before a restart) got no event above.
            online = frozenset(s.device for s in states if s.online)
            await self._events.publish(DeviceSnapshotApplied(online=online))

    async def _on_update(self, update: DeviceUpdate) -> None:
        self._shockers.request_refresh()
        await self._events.publish(update)

    def _connection_lost(self, reason: str) -> float | None:
        """Record the failure; returns how long the connection had been up, if it was."""
        self._last_error = reason
        if self._connected_at is None:
            return None
        lasted = asyncio.get_running_loop().time() - self._connected_at
        self._connected_at = None
        self._connection_id = None
        self._set_state(HubState.CONNECTING)
        self._events.publish_nowait(HubDisconnected(reason=reason))
        return lasted

    async def _become_invalid(self) -> None:
        if self._state is HubState.INVALID:  # on_invalid is called once
            return
        reason = str(TokenRejected())
        self._last_error = reason
        self._set_state(HubState.INVALID)
        _log.warning("OpenShock hub %s: token rejected (401); not retrying", self.name)
        if self._on_invalid is not None:
            try:
                await self._on_invalid(reason)
            except Exception:
                _log.exception("The on_invalid callback of %s failed", self.name)

    def _set_state(self, state: HubState) -> None:
        if state is self._state:
            return
        self._state = state
        self._state_since = datetime.now(UTC)
        # Wake everyone waiting for a change, and give later waiters a fresh event.
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()


async def _ignore_completion_error(message: CompletionMessage) -> None:
    _log.debug("Hub invocation %s failed: %s", message.invocation_id, message.error)


def _expire(completion: asyncio.Future[Any], method: str, timeout: float) -> None:
    if not completion.done():
        completion.set_exception(HubInvocationTimeout(method, timeout))
