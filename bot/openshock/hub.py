"""One supervised connection to the OpenShock user hub (SignalR) for one account.

pysignalr is used for the protocol (framing, message types, completion routing), but not for
connection management, because of what it does on its own (shared/testing.md §2): it puts
``headers=`` (our token) into every invocation body, its retry budget is never reset, and
``run()`` ends for good on many ordinary failures. So each attempt builds a fresh client whose
transport makes exactly one connection, and ``HubConnection`` supervises the attempts: jittered
exponential backoff forever, except after a 401, which means the token is dead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import aiohttp
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from pysignalr.client import SignalRClient
from pysignalr.messages import (
    CloseMessage,
    CompletionMessage,
    InvocationMessage,
    Message,
    PingMessage,
)
from pysignalr.protocol.json import JSONProtocol
from pysignalr.transport.websocket import WebsocketTransport
from pysignalr.utils import replace_scheme
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.openshock.errors import (
    HubConnectionLost,
    HubInvocationFailed,
    HubInvocationTimeout,
    HubNotConnected,
    OpenShockError,
    TokenRejected,
)
from bot.openshock.models import (
    Control,
    ControlLogEvent,
    DeviceOnlineState,
    DeviceSnapshotApplied,
    DeviceState,
    DeviceStatusChanged,
    DeviceUpdate,
    HubConnected,
    HubDisconnected,
    HubEvent,
    OtaInstallFailed,
    OtaInstallProgress,
    OtaInstallStarted,
    OtaInstallSucceeded,
    OtaRollback,
    ShockerDirectory,
    ShockersRefreshed,
    Welcome,
)
from bot.openshock.rest import TOKEN_HEADER, USER_AGENT, OpenShockRest, join_url

__all__ = [
    "HUB_PATH",
    "MAX_CUSTOM_NAME",
    "DeviceTracker",
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
# websockets logs the upgrade request's headers, our token among them, at DEBUG: never go there.
_websockets_log = logging.getLogger(f"{__name__}.websockets")
_websockets_log.setLevel(logging.INFO)
_E = TypeVar("_E", bound=BaseModel)

EventCallback = Callable[[HubEvent], Awaitable[None]]
InvalidCallback = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class HubTimings:
    """Every delay the connection uses, so tests can shrink them."""

    backoff_initial: float = 1.0
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    # A connection that lasted this long resets the backoff; a server that accepts and then
    # drops us at once keeps backing off instead of being hammered.
    stable_after: float = 30.0
    ping_interval: float = 15.0  # the server drops clients it has not heard from for 30 s
    server_timeout: float = 30.0  # silence from the server (it pings every 15 s) means dead
    connect_timeout: float = 10.0
    invoke_timeout: float = 10.0

    def backoff(self, failures: int) -> float:
        """Delay before the next attempt: exponential, capped, with "equal jitter"."""
        ceiling = min(self.backoff_max, self.backoff_initial * self.backoff_factor**failures)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class HubState(Enum):
    STOPPED = "stopped"  # not started yet, or stopped
    CONNECTING = "connecting"  # connecting, or waiting to retry
    CONNECTED = "connected"
    INVALID = "invalid"  # the server rejected the token; no more attempts


@dataclass(frozen=True)
class HubStatus:
    state: HubState
    since: datetime  # when the current state began
    connection_id: str | None
    last_error: str | None

    @property
    def connected(self) -> bool:
        return self.state is HubState.CONNECTED


# --- pysignalr, adapted --------------------------------------------------------------------------


class _ServerClosed(Exception):
    """The server sent a SignalR Close message."""

    def __init__(self, error: str | None, allow_reconnect: bool | None) -> None:
        super().__init__(error or "closed without error")
        self.error = error
        self.allow_reconnect = allow_reconnect


class _ServerSilent(Exception):
    """Nothing arrived from the server within the server timeout."""


# Validation errors never echo their input: a payload may hold what the logs should not.
_NO_INPUT_IN_ERRORS = ConfigDict(hide_input_in_errors=True)
_JSON_OBJECT = TypeAdapter(dict[str, Any], config=_NO_INPUT_IN_ERRORS)


class _TolerantJSONProtocol(JSONProtocol):
    """The JSON hub protocol, skipping a malformed record instead of dropping the connection."""

    def decode(self, raw_message: str | bytes) -> list[Message]:
        text = raw_message.decode() if isinstance(raw_message, bytes) else raw_message
        messages: list[Message] = []
        for record in text.split(self.record_separator):
            if not record:
                continue
            try:
                data = _JSON_OBJECT.validate_json(record)
                if data:
                    messages.append(self.parse_message(data))
            except Exception as error:  # any shape pysignalr cannot parse
                _log.warning("Skipping a malformed hub message (%s): %.200s", error, record)
        return messages


class _OneAttemptTransport(WebsocketTransport):
    """Exactly one WebSocket connection per ``run()``, which returns or raises when it ends."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        callback: Callable[[Message], Awaitable[None]],
        timings: HubTimings,
        user_agent: str,
    ) -> None:
        super().__init__(
            url=url,
            protocol=_TolerantJSONProtocol(),
            callback=callback,
            headers=headers,
            skip_negotiation=True,  # the official clients skip it; the token goes on the upgrade
        )
        self._timings = timings
        self._user_agent = user_agent

    async def run(self) -> None:
        async with connect(
            replace_scheme(self._url, ws=True),
            additional_headers=self._headers,
            user_agent_header=self._user_agent,
            open_timeout=self._timings.connect_timeout,
            close_timeout=self._timings.connect_timeout,
            ping_interval=None,  # SignalR pings and the server timeout cover liveness
            max_size=self._max_size,
            proxy=None,
            logger=_websockets_log,
        ) as conn:
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
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives just as recv() completes, and then stop() would wait forever.
            try:
                async with asyncio.timeout(self._timings.server_timeout):
                    raw = await conn.recv()
            except TimeoutError:
                raise _ServerSilent(
                    f"no message from the server for {self._timings.server_timeout:g} s"
                ) from None
            await self._on_raw_message(raw)

    async def _keepalive(self, conn: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self._timings.ping_interval)
            await conn.send(self._protocol.encode(PingMessage()))


class _HubClient(SignalRClient):
    """A pysignalr client for one connection attempt, that keeps the token out of messages."""

    def __init__(self, url: str, token: str, timings: HubTimings, user_agent: str) -> None:
        headers = {TOKEN_HEADER: token}
        super().__init__(url, headers=headers)
        self._transport = _OneAttemptTransport(url, headers, self._on_message, timings, user_agent)

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
            invocation_id = str(uuid.uuid4())
            self._invocation_handlers[invocation_id] = on_invocation
        await self._transport.send(InvocationMessage(invocation_id, method, arguments, None))

    async def _on_close_message(self, message: CloseMessage) -> None:
        # pysignalr ignores a Close without error; either way this connection is over.
        raise _ServerClosed(message.error, message.allow_reconnect)


# --- Event parsing -------------------------------------------------------------------------------


def _positional(model: type[_E], *names: str) -> Callable[[Any], _E]:
    """Parse a hub event's positional arguments into ``model`` (names are the wire names)."""

    def parse(arguments: Any) -> _E:
        if not isinstance(arguments, list) or len(arguments) != len(names):
            raise ValueError(f"expected {len(names)} arguments, got {arguments!r:.100}")
        return model.model_validate(dict(zip(names, arguments, strict=True)))

    return parse


_DEVICE_STATES = TypeAdapter(list[DeviceOnlineState], config=_NO_INPUT_IN_ERRORS)


def _parse_device_status(arguments: Any) -> list[DeviceOnlineState]:
    if not isinstance(arguments, list) or len(arguments) != 1:
        raise ValueError(f"expected 1 argument, got {arguments!r:.100}")
    return _DEVICE_STATES.validate_python(arguments[0])


_parse_welcome = _positional(Welcome, "connectionId")
# Events that only need to be validated and handed on, by target name.
_PASS_THROUGH_EVENTS: dict[str, Callable[[Any], HubEvent]] = {
    "Log": _positional(ControlLogEvent, "sender", "logs"),
    "OtaInstallStarted": _positional(OtaInstallStarted, "deviceId", "updateId", "version"),
    "OtaInstallProgress": _positional(
        OtaInstallProgress, "deviceId", "updateId", "task", "progress"
    ),
    "OtaInstallFailed": _positional(OtaInstallFailed, "deviceId", "updateId", "fatal", "message"),
    "OtaRollback": _positional(OtaRollback, "deviceId", "updateId"),
    "OtaInstallSucceeded": _positional(OtaInstallSucceeded, "deviceId", "updateId"),
}
_parse_device_update = _positional(DeviceUpdate, "deviceId", "type")


# --- State kept from events ----------------------------------------------------------------------


class DeviceTracker:
    """Per-device online state, following the server's reconnect rule.

    After a reconnect the server sends a snapshot of the devices online *now* and never replays
    what was missed. So on ``Welcome`` every device is marked offline, the snapshot is applied,
    and the changes reported compare with the state known before the connection was lost. It
    knows only devices seen by this process: the hub publishes ``DeviceSnapshotApplied`` after
    each snapshot for subscribers that keep state longer (the feeds, across restarts).
    """

    def __init__(self) -> None:
        self._states: dict[UUID, DeviceState] = {}
        self._before_snapshot: dict[UUID, DeviceState] | None = None

    def get(self, device_id: UUID) -> DeviceState:
        return self._states.get(device_id, DeviceState(online=False))

    @property
    def awaiting_snapshot(self) -> bool:
        """A connection opened and its snapshot has not been applied yet."""
        return self._before_snapshot is not None

    def all(self) -> dict[UUID, DeviceState]:
        return dict(self._states)

    def expect_snapshot(self) -> None:
        """A new connection: mark everything offline until the snapshot says otherwise."""
        if self._before_snapshot is None:
            self._before_snapshot = dict(self._states)
        self._states = {
            device_id: state.model_copy(update={"online": False})
            for device_id, state in self._states.items()
        }

    def apply(self, reported: Sequence[DeviceOnlineState]) -> list[DeviceStatusChanged]:
        before, self._before_snapshot = self._before_snapshot, None
        if before is None:
            return [self._set(s, previous=self._states.get(s.device)) for s in reported]

        reported_ids = {s.device for s in reported}
        vanished = [
            DeviceStatusChanged(
                device_id=device_id,
                previous=state,
                current=self._states[device_id],
                from_snapshot=True,
            )
            for device_id, state in before.items()
            if state.online and device_id not in reported_ids
        ]
        return vanished + [
            self._set(s, previous=before.get(s.device), from_snapshot=True) for s in reported
        ]

    def _set(
        self, state: DeviceOnlineState, previous: DeviceState | None, from_snapshot: bool = False
    ) -> DeviceStatusChanged:
        current = DeviceState(online=state.online, firmware_version=state.firmware_version)
        self._states[state.device] = current
        return DeviceStatusChanged(
            device_id=state.device, previous=previous, current=current, from_snapshot=from_snapshot
        )


class _Subscriber:
    """Delivers events to one callback, in order, on its own task: a slow or failing
    subscriber never holds up the connection or the other subscribers."""

    def __init__(self, callback: EventCallback) -> None:
        self._callback = callback
        self._queue: asyncio.Queue[HubEvent] = asyncio.Queue()
        self._task = asyncio.create_task(self._deliver(), name="openshock-hub-subscriber")

    def put(self, event: HubEvent) -> None:
        self._queue.put_nowait(event)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _deliver(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._callback(event)
            except Exception:
                _log.exception("An OpenShock event subscriber failed on %s", type(event).__name__)


class _EventBus:
    def __init__(self) -> None:
        self._subscribers: list[_Subscriber] = []
        self._waiters: list[tuple[Callable[[HubEvent], bool], asyncio.Future[Any]]] = []

    def subscribe(self, callback: EventCallback) -> Callable[[], Awaitable[None]]:
        subscriber = _Subscriber(callback)
        self._subscribers.append(subscriber)

        async def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
                await subscriber.close()

        return unsubscribe

    def expect(self, matches: Callable[[HubEvent], bool]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (matches, future)
        self._waiters.append(entry)
        future.add_done_callback(lambda _: self._waiters.remove(entry))
        return future

    def publish(self, event: HubEvent) -> None:
        for matches, future in list(self._waiters):
            if not future.done() and _safely(matches, event):
                future.set_result(event)
        for subscriber in self._subscribers:
            subscriber.put(event)

    async def close(self) -> None:
        subscribers, self._subscribers = self._subscribers, []
        await asyncio.gather(*(s.close() for s in subscribers))
        for _, future in list(self._waiters):
            future.cancel()


def _safely(matches: Callable[[HubEvent], bool], event: HubEvent) -> bool:
    try:
        return matches(event)
    except Exception:
        _log.exception("An OpenShock event predicate failed")
        return False


# --- The connection ------------------------------------------------------------------------------


class HubConnection:
    """The user-hub connection of one account, reconnecting until stopped or the token dies.

    Readable state: ``status``, ``connection_id``, ``devices``/``device_state()`` and
    ``shockers`` (the account's own and shared shockers, re-read over REST after every
    (re)connect and on ``DeviceUpdate``). Events are handed to ``subscribe()``rs and
    ``expect()``/``next_event()`` waiters.

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
    ) -> None:
        self.hub_url = join_url(base_url, HUB_PATH)
        self.name = name or base_url
        self._token = token
        self._timings = timings or HubTimings()
        self._user_agent = user_agent
        self._on_invalid = on_invalid
        self.rest = rest or OpenShockRest(base_url, token, session=session, user_agent=user_agent)
        self._owns_rest = rest is None

        self._state = HubState.STOPPED
        self._state_since = datetime.now(UTC)
        self._state_changed = asyncio.Event()
        self._last_error: str | None = None
        self._connection_id: str | None = None
        self._connected_at: float | None = None  # loop time, for the backoff reset

        self._devices = DeviceTracker()
        self._shockers: ShockerDirectory | None = None
        self._events = _EventBus()
        self._client: _HubClient | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_again = False
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
        return self._shockers

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
        current = asyncio.current_task()
        tasks = [
            t for t in (self._supervisor, self._refresh_task) if t is not None and t is not current
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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

    def subscribe(self, callback: EventCallback) -> Callable[[], Awaitable[None]]:
        """Call ``callback`` with every event, in order, on its own task. Returns an async
        ``unsubscribe``."""
        return self._events.subscribe(callback)

    def expect(
        self, event_type: type[_E], predicate: Callable[[_E], bool] | None = None
    ) -> asyncio.Future[_E]:
        """A future for the next event of ``event_type`` matching ``predicate``.

        Registered at once, so call it *before* the action whose effect it waits for (e.g. a
        control, then the ``Log`` that confirms it). Cancel it if you stop waiting.
        """

        def matches(event: HubEvent) -> bool:
            return isinstance(event, event_type) and (predicate is None or predicate(event))

        return self._events.expect(matches)

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
        client = self._client
        if client is None or self._state is not HubState.CONNECTED:
            raise HubNotConnected()
        timeout = self._timings.invoke_timeout if timeout is None else timeout
        completion: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def on_completion(message: Message) -> None:
            if completion.done() or not isinstance(message, CompletionMessage):
                return
            if message.error:
                completion.set_exception(HubInvocationFailed(method, message.error))
            else:
                completion.set_result(message.result)

        payload = [to_jsonable_python(argument, by_alias=True) for argument in arguments]
        self._pending.add(completion)
        try:
            try:
                await client.send(method, payload, on_invocation=on_completion)
            except (ConnectionClosed, OSError):
                if completion.done() and not completion.cancelled():
                    completion.exception()  # HubConnectionLost from the drop: superseded
                raise HubNotConnected("the connection dropped while sending") from None
            async with asyncio.timeout(timeout):
                return await completion
        except TimeoutError:
            raise HubInvocationTimeout(method, timeout) from None
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
        await self.invoke("ControlV2", list(controls), name, timeout=timeout)

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
        try:
            own, shared = await asyncio.gather(
                self.rest.get_own_shockers(), self.rest.get_shared_shockers()
            )
        except TokenRejected:
            if (
                asyncio.current_task() is not self._refresh_task
                and not self._stopped
                and self._state is not HubState.INVALID
            ):
                # Let the background refresh see it too: it ends the connection.
                self._request_shocker_refresh()
            raise
        self._shockers = ShockerDirectory(own=own, shared=shared)
        self._events.publish(ShockersRefreshed(shockers=self._shockers))
        return self._shockers

    def _request_shocker_refresh(self) -> None:
        """Refresh in the background; requests made during a refresh coalesce into one more."""
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_again = True
            return
        self._refresh_task = asyncio.create_task(
            self._refresh_in_background(), name=f"openshock-refresh {self.name}"
        )

    async def _refresh_in_background(self) -> None:
        """Refresh until it succeeds: a failed refresh (429, 5xx, unreachable) is retried with
        backoff for as long as the hub is connected, or the lists (None after a start) would
        stay stale or missing, and with them everything that needs them (/stop, /panic). When
        the connection drops meanwhile, the next ``Welcome`` asks for a refresh again. A 401
        means the token was revoked: the connection ends as after a 401 on the upgrade."""
        failures = 0
        while True:
            self._refresh_again = False
            try:
                await self.refresh_shockers()
            except TokenRejected:
                await self._token_revoked_while_open()
                return
            except Exception as error:
                failures += 1
                if not self.connected:
                    _log.info("Could not refresh the shockers of %s: %s", self.name, error)
                    return
                delay = self._timings.backoff(failures - 1)
                if isinstance(error, OpenShockError):
                    _log.warning(
                        "Could not refresh the shockers of %s: %s; retrying in %.1f s",
                        self.name,
                        error,
                        delay,
                    )
                else:
                    _log.exception(
                        "Unexpected error refreshing the shockers of %s; retrying in %.1f s",
                        self.name,
                        delay,
                    )
                await asyncio.sleep(delay)
                if not self.connected:
                    return
                continue
            failures = 0
            if not self._refresh_again:
                return

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
                reason = _describe_failure(error)
            lasted = self._connection_lost(reason)
            if lasted is not None and lasted >= self._timings.stable_after:
                failures = 0
            delay = self._timings.backoff(failures)
            failures += 1
            log_level = logging.WARNING if lasted is not None or failures == 1 else logging.INFO
            _log.log(log_level, "Hub %s: %s; retrying in %.1f s", self.name, reason, delay)
            await asyncio.sleep(delay)

    async def _run_one_connection(self) -> None:
        client = _HubClient(self.hub_url, self._token, self._timings, self._user_agent)
        handlers = {
            "Welcome": self._handler("Welcome", _parse_welcome, self._on_welcome),
            "DeviceStatus": self._handler("DeviceStatus", _parse_device_status, self._on_status),
            "DeviceUpdate": self._handler("DeviceUpdate", _parse_device_update, self._on_update),
        }
        for target, parse in _PASS_THROUGH_EVENTS.items():
            handlers[target] = self._handler(target, parse, self._publish)
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
        self._events.publish(welcome)
        self._events.publish(HubConnected(connection_id=welcome.connection_id))
        self._request_shocker_refresh()  # DeviceUpdates may have been missed while away

    async def _on_status(self, states: list[DeviceOnlineState]) -> None:
        snapshot = self._devices.awaiting_snapshot
        for change in self._devices.apply(states):
            self._events.publish(change)
        if snapshot:
            # Devices this process never knew (e.g. online before a restart) got no event above.
            online = frozenset(s.device for s in states if s.online)
            self._events.publish(DeviceSnapshotApplied(online=online))

    async def _on_update(self, update: DeviceUpdate) -> None:
        self._events.publish(update)
        self._request_shocker_refresh()

    async def _publish(self, event: HubEvent) -> None:
        self._events.publish(event)

    def _connection_lost(self, reason: str) -> float | None:
        """Record the failure; returns how long the connection had been up, if it was."""
        self._last_error = reason
        if self._connected_at is None:
            return None
        lasted = asyncio.get_running_loop().time() - self._connected_at
        self._connected_at = None
        self._connection_id = None
        self._set_state(HubState.CONNECTING)
        self._events.publish(HubDisconnected(reason=reason))
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


def _describe_failure(error: Exception) -> str:
    """A short, token-free description of why a connection attempt ended."""
    if isinstance(error, InvalidStatus):
        return f"the server answered HTTP {error.response.status_code} to the connection request"
    if isinstance(error, _ServerClosed):
        return f"the server closed the connection ({error})"
    if isinstance(error, _ServerSilent):
        return str(error)
    if isinstance(error, ConnectionClosed):
        return "the connection was lost"
    if isinstance(error, TimeoutError):
        return "timed out while connecting"
    if isinstance(error, OSError):
        return f"cannot connect to the server ({error.strerror or type(error).__name__})"
    return f"unexpected error: {type(error).__name__}: {error}"
