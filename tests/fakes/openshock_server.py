"""A fake OpenShock server: the REST endpoints the bot uses and the SignalR user hub.

It speaks the real wire protocols on 127.0.0.1 so the real client code runs against it, and it
applies the server's real rules where they matter to the bot (see shared/openshock.md and the
server's ``ControlSender.cs``): a control batch is dropped silently at the first unknown, paused
or not-permitted shocker, values are clamped to share limits, and ``Log`` goes to the shocker's
owner only.

Set up state from Python, start it, point the client at ``server.base_url``::

    server = FakeOpenShockServer()
    alice = server.add_user("alice")
    hub = server.add_device(alice, "Hub")
    collar = server.add_shocker(hub, "Collar")
    await server.start()

Everything it receives is recorded (``requests``, ``connections[i].frames``, ``invocations``,
``device_commands``, ``executed_controls``), and the ``wait_*`` helpers let tests wait for exactly
what they need instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import socket
import string
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from aiohttp import WSMsgType, web

RECORD_SEPARATOR = "\x1e"
TOKEN_HEADERS = ("OpenShockToken", "Open-Shock-Token", "ShockLinkToken")
HUB_PATH = "/1/hubs/user"
MAX_CUSTOM_NAME = 64
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


# --- State ---------------------------------------------------------------------------------------


def _alphanumeric(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(eq=False)
class FakeUser:
    name: str
    token: str
    id: UUID = field(default_factory=uuid4)
    token_id: UUID = field(default_factory=uuid4)
    token_name: str = "bot token"
    permissions: list[str] = field(default_factory=lambda: ["shockers.use", "shockers.pause"])
    token_revoked: bool = False
    # The token's own control scope, as GET /2/tokens/self shows it (`shockerControl`); the
    # default is the real server's: full range, Clamp, not paused.
    token_paused: bool = False
    token_intensity: tuple[int, int, str] = (0, 100, "Clamp")
    token_duration: tuple[int, int, str] = (300, 65535, "Clamp")

    def limit_token(
        self,
        *,
        intensity: tuple[int, int, str] | None = None,
        duration: tuple[int, int, str] | None = None,
        paused: bool | None = None,
    ) -> None:
        """Scope the token, as its owner would on the website: (min, max, "Clamp"|"Lerp")."""
        if intensity is not None:
            self.token_intensity = intensity
        if duration is not None:
            self.token_duration = duration
        if paused is not None:
            self.token_paused = paused

    @property
    def email(self) -> str:
        return f"{self.name.lower()}@example.org"

    @property
    def image(self) -> str:
        return f"https://www.gravatar.com/avatar/{self.id.hex}"


@dataclass(eq=False)
class FakeDevice:
    name: str
    owner: FakeUser
    online: bool = True
    firmware: str | None = "1.4.0"
    id: UUID = field(default_factory=uuid4)
    created_on: datetime = field(default_factory=lambda: datetime.now(UTC))

    def status(self) -> dict[str, Any]:
        return {"device": str(self.id), "online": self.online, "firmwareVersion": self.firmware}


@dataclass(eq=False)
class FakeShocker:
    name: str
    device: FakeDevice
    paused: bool = False
    rf_id: int = 1234
    model: str = "CaiXianlin"
    id: UUID = field(default_factory=uuid4)
    created_on: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def owner(self) -> FakeUser:
        return self.device.owner


@dataclass(eq=False)
class FakeShare:
    """A user share: ``shocker`` shared with ``user``, with permissions and limits."""

    shocker: FakeShocker
    user: FakeUser
    shock: bool = True
    vibrate: bool = True
    sound: bool = True
    live: bool = True
    max_intensity: int | None = None
    max_duration: int | None = None
    paused: bool = False

    def allows(self, control_type: int) -> bool:
        # PermissionUtils.IsAllowed: Stop needs any permission; unknown types are refused.
        return {
            0: self.shock or self.vibrate or self.sound,
            1: self.shock,
            2: self.vibrate,
            3: self.sound,
        }.get(control_type, False)


# --- Records -------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def user_agent(self) -> str | None:
        return self.headers.get("User-Agent")


@dataclass(eq=False)
class FakeHubConnection:
    """One hub connection as the server sees it."""

    user: FakeUser
    connection_id: str
    upgrade_headers: dict[str, str]
    ws: web.WebSocketResponse
    request: web.BaseRequest
    handshake_done: bool = False
    raw_messages: list[str] = field(default_factory=list)  # WebSocket messages, as received
    frames: list[dict[str, Any]] = field(default_factory=list)  # parsed records, in order
    sent: list[dict[str, Any]] = field(default_factory=list)  # records the server sent
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_open(self) -> bool:
        return self.handshake_done and not self.closed.is_set()

    def frames_of_type(self, message_type: int) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == message_type]

    async def send(self, *records: dict[str, Any]) -> None:
        """Send records in one WebSocket message (the protocol allows several per message)."""
        if self.ws.closed:
            return
        self.sent.extend(records)
        payload = "".join(json.dumps(r) + RECORD_SEPARATOR for r in records)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(payload)

    def abort(self) -> None:
        """Cut the TCP connection without a WebSocket Close frame."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


@dataclass
class HubInvocation:
    connection: FakeHubConnection
    target: str
    arguments: list[Any]
    invocation_id: str | None
    # When the server received it (unix seconds), for "not before" checks.
    received_at: float = field(default_factory=time.time)


@dataclass
class DeviceCommand:
    method: str  # EmergencyStop, Reboot, CaptivePortal, OtaInstall
    device: FakeDevice
    user: FakeUser
    arguments: list[Any]


@dataclass
class ExecutedControl:
    """One control the server accepted (after clamping), as it would reach the device."""

    sender: FakeUser
    shocker: FakeShocker
    type: int
    intensity: int
    duration: int
    exclusive: bool
    custom_name: str | None


@dataclass
class _RestFailure:
    status: int
    times: int
    retry_after: str | None
    title: str = "Injected failure"
    location: str | None = None  # a 3xx answer's Location


class _BindingError(Exception):
    """Arguments that SignalR could not bind to the hub method's parameters."""


class _HubMethodError(Exception):
    """An exception inside a hub method (e.g. the database rejecting a too long custom name)."""


# --- The server ----------------------------------------------------------------------------------


class FakeOpenShockServer:
    def __init__(self, *, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self.users: list[FakeUser] = []
        self.devices: list[FakeDevice] = []
        self.shockers: list[FakeShocker] = []
        self.shares: list[FakeShare] = []

        self.requests: list[RecordedRequest] = []
        # Answer every authenticated REST request with a Set-Cookie naming the user.
        self.session_cookies = False
        self.connections: list[FakeHubConnection] = []
        self.invocations: list[HubInvocation] = []
        self.device_commands: list[DeviceCommand] = []
        self.executed_controls: list[ExecutedControl] = []

        # Behaviour switches tests may flip.
        self.hub_upgrade_status: int | None = None  # answer the hub upgrade with this status
        self.answer_pings = True
        self.keepalive_interval: float | None = None  # server pings, like the real one's 15 s
        self.simulate_reboot = True  # Reboot: device goes offline, then online again
        self.reboot_delay = 0.05
        self.simulate_ota = True  # OtaInstall: emit OtaInstallStarted to the owner
        self.unanswered_methods: set[str] = set()  # recorded, never completed (timeout tests)
        self.serve_tokens_v2 = True  # False: an older server without GET /2/tokens/self
        # Seconds between a control's completion and its Log (0: the Log goes first, as the
        # hub method pushes it before it returns).
        self.log_delay = 0.0
        self._late_logs: set[asyncio.Task[None]] = set()

        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._rest_failures: dict[str, list[_RestFailure]] = {}
        self._changed = asyncio.Condition()
        self._consumed_invocations: set[int] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._update_ids = itertools.count(1)

    # --- Lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake server has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def hub_url(self) -> str:
        return self.base_url + HUB_PATH

    @property
    def running(self) -> bool:
        return self._runner is not None

    def reserve_port(self) -> int:
        """Pick a free port without listening, to test a server that is down at start-up."""
        if self._port is None:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self._port = sock.getsockname()[1]
        return self._port

    async def start(self) -> None:
        """Start listening (on the same port as before after a stop)."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self._build_app(), shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port or 0, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self._port is None:
            self._port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop as a crashing server would: open connections are cut, nothing listens."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for connection in self.open_connections():
            connection.abort()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # --- Builder -----------------------------------------------------------------------------

    def add_user(
        self, name: str, *, token: str | None = None, permissions: Iterable[str] | None = None
    ) -> FakeUser:
        # Like OpenShock's own: 64 characters of [A-Za-z0-9].
        user = FakeUser(name=name, token=token or _alphanumeric(64))
        if permissions is not None:
            user.permissions = list(permissions)
        self.users.append(user)
        return user

    def add_device(
        self, owner: FakeUser, name: str, *, online: bool = True, firmware: str | None = "1.4.0"
    ) -> FakeDevice:
        device = FakeDevice(name=name, owner=owner, online=online, firmware=firmware)
        self.devices.append(device)
        return device

    def add_shocker(
        self, device: FakeDevice, name: str, *, paused: bool = False, model: str = "CaiXianlin"
    ) -> FakeShocker:
        shocker = FakeShocker(
            name=name, device=device, paused=paused, model=model, rf_id=1000 + len(self.shockers)
        )
        self.shockers.append(shocker)
        return shocker

    def share_shocker(
        self,
        shocker: FakeShocker,
        with_user: FakeUser,
        *,
        shock: bool = True,
        vibrate: bool = True,
        sound: bool = True,
        live: bool = True,
        max_intensity: int | None = None,
        max_duration: int | None = None,
        paused: bool = False,
    ) -> FakeShare:
        share = FakeShare(
            shocker=shocker,
            user=with_user,
            shock=shock,
            vibrate=vibrate,
            sound=sound,
            live=live,
            max_intensity=max_intensity,
            max_duration=max_duration,
            paused=paused,
        )
        self.shares.append(share)
        return share

    def revoke_token(self, user: FakeUser) -> None:
        """New requests and upgrades get 401; open hub connections stay, like the real server."""
        user.token_revoked = True

    # --- Test controls: REST ---------------------------------------------------------------------

    def fail_rest(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        title: str = "Injected failure",
        location: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status`` (problem+json with
        ``title``; a 3xx with ``location`` is a redirect there).

        ``path`` is relative to the prefix, either literal (``/1/users/self``) or the route
        pattern (``/1/shockers/{shocker_id}/pause``).
        """
        value = None if retry_after is None else str(retry_after)
        failure = _RestFailure(status, times, value, title, location)
        self._rest_failures.setdefault(path, []).append(failure)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == self.prefix + path]

    # --- Test controls: hub ----------------------------------------------------------------------

    def open_connections(self, user: FakeUser | None = None) -> list[FakeHubConnection]:
        return [c for c in self.connections if c.is_open and (user is None or c.user is user)]

    def connections_of(self, user: FakeUser) -> list[FakeHubConnection]:
        """Every connection the user completed a handshake on, open or closed, oldest first."""
        return [c for c in self.connections if c.user is user and c.handshake_done]

    async def push(self, user: FakeUser, target: str, *arguments: Any) -> None:
        """Send an event (an Invocation without id) to every open connection of ``user``."""
        record = {"type": 1, "target": target, "arguments": list(arguments)}
        for connection in self.open_connections(user):
            await connection.send(record)

    async def push_raw(self, user: FakeUser, text: str) -> None:
        """Send raw text as one WebSocket message (for malformed-frame tests)."""
        for connection in self.open_connections(user):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await connection.ws.send_str(text)

    async def push_to_watchers(self, device: FakeDevice, target: str, *arguments: Any) -> None:
        """Send an event to the device's owner and to every user with a share on it."""
        for user in self._watchers(device):
            await self.push(user, target, *arguments)

    async def set_device_online(
        self, device: FakeDevice, online: bool = True, *, firmware: str | None = None
    ) -> None:
        device.online = online
        if firmware is not None:
            device.firmware = firmware
        await self.push_to_watchers(device, "DeviceStatus", [device.status()])

    async def push_device_update(self, device: FakeDevice, update_type: int = 1) -> None:
        await self.push_to_watchers(device, "DeviceUpdate", str(device.id), update_type)

    async def drop_connections(self, user: FakeUser | None = None) -> None:
        """Cut connections abruptly (TCP closed without a Close frame) and wait until gone."""
        connections = self.open_connections(user)
        for connection in connections:
            connection.abort()
        for connection in connections:
            await asyncio.wait_for(connection.closed.wait(), 5)

    async def close_connections(
        self,
        user: FakeUser | None = None,
        *,
        error: str | None = None,
        allow_reconnect: bool | None = None,
    ) -> None:
        """Send a SignalR Close message, then close the WebSocket, like the real server."""
        record: dict[str, Any] = {"type": 7}
        if error is not None:
            record["error"] = error
        if allow_reconnect is not None:
            record["allowReconnect"] = allow_reconnect
        connections = self.open_connections(user)
        for connection in connections:
            await connection.send(record)
            await connection.ws.close()
        for connection in connections:
            await asyncio.wait_for(connection.closed.wait(), 5)

    # --- Waiting -----------------------------------------------------------------------------

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a timeout fails the test with a clear message
        what: str = "a condition",
    ) -> None:
        """Wait until ``predicate()`` holds: re-checked whenever the server records something,
        and every 20 ms for what it does not see (client-side state)."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._changed:
            while not predicate():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.02))

    async def wait_for_connections(
        self,
        user: FakeUser,
        n: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[FakeHubConnection]:
        """Wait until ``user`` has completed at least ``n`` hub handshakes in total."""
        await self.wait_until(
            lambda: len(self.connections_of(user)) >= n, timeout, f"{n} connections of {user.name}"
        )
        return self.connections_of(user)

    async def wait_for_invocation(
        self,
        target: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> HubInvocation:
        """The oldest invocation of ``target`` not returned by an earlier call, once it arrives."""

        def unconsumed() -> int | None:
            for index, invocation in enumerate(self.invocations):
                if invocation.target == target and index not in self._consumed_invocations:
                    return index
            return None

        what = f"an invocation of {target}"
        await self.wait_until(lambda: unconsumed() is not None, timeout, what)
        index = unconsumed()
        assert index is not None
        self._consumed_invocations.add(index)
        return self.invocations[index]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- HTTP plumbing -----------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject])
        p = self.prefix
        app.router.add_get(p + "/1/users/self", self._users_self)
        app.router.add_get(p + "/1/shockers/own", self._shockers_own)
        app.router.add_get(p + "/1/shockers/shared", self._shockers_shared)
        app.router.add_get(p + "/1/tokens/self", self._tokens_self)
        app.router.add_get(p + "/2/tokens/self", self._tokens_self_v2)
        app.router.add_post(p + "/1/shockers/{shocker_id}/pause", self._pause_shocker)
        app.router.add_post(p + HUB_PATH + "/negotiate", self._negotiate)
        app.router.add_get(p + HUB_PATH, self._hub)
        return app

    @web.middleware
    async def _record_and_inject(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            text = await request.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        headers = dict(request.headers)
        self.requests.append(RecordedRequest(request.method, request.path, headers, body))
        await self._notify()
        failure = self._take_failure(request)
        if failure is not None:
            if failure.location is not None:
                return web.Response(status=failure.status, headers={"Location": failure.location})
            retry = {"Retry-After": failure.retry_after} if failure.retry_after else None
            return _problem(failure.status, "Test.InjectedFailure", failure.title, retry)
        response = await handler(request)
        user = self._authenticate(request) if self.session_cookies else None
        if user is not None and isinstance(response, web.Response):
            response.set_cookie("session", user.name)  # as a site behind a login might
        return response

    def _take_failure(self, request: web.Request) -> _RestFailure | None:
        relative = request.path[len(self.prefix) :]
        resource = request.match_info.route.resource
        pattern = resource.canonical[len(self.prefix) :] if resource is not None else None
        for key in (relative, pattern):
            queue = self._rest_failures.get(key) if key else None
            if queue:
                failure = queue[0]
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
                return failure
        return None

    def _authenticate(self, request: web.Request) -> FakeUser | None:
        token = next((request.headers[h] for h in TOKEN_HEADERS if h in request.headers), None)
        if not token:
            return None
        return next((u for u in self.users if u.token == token and not u.token_revoked), None)

    # --- REST endpoints ------------------------------------------------------------------------

    async def _users_self(self, request: web.Request) -> web.StreamResponse:
        user = self._authenticate(request)
        if user is None:
            return _unauthorized()
        return _envelope(
            {
                "id": str(user.id),
                "name": user.name,
                "email": user.email,
                "image": user.image,
                "roles": [],
                "rank": "User",
                "hasPassword": True,
            }
        )

    async def _shockers_own(self, request: web.Request) -> web.StreamResponse:
        user = self._authenticate(request)
        if user is None:
            return _unauthorized()
        return _envelope(
            [
                {
                    "id": str(device.id),
                    "name": device.name,
                    "createdOn": device.created_on.isoformat(),
                    "shockers": [
                        {
                            "id": str(s.id),
                            "rfId": s.rf_id,
                            "model": s.model,
                            "name": s.name,
                            "isPaused": s.paused,
                            "createdOn": s.created_on.isoformat(),
                        }
                        for s in self.shockers
                        if s.device is device
                    ],
                }
                for device in self.devices
                if device.owner is user
            ]
        )

    async def _shockers_shared(self, request: web.Request) -> web.StreamResponse:
        user = self._authenticate(request)
        if user is None:
            return _unauthorized()
        shares = [s for s in self.shares if s.user is user]
        owners = list(dict.fromkeys(s.shocker.owner for s in shares))
        payload = []
        for owner in owners:
            owner_shares = [s for s in shares if s.shocker.owner is owner]
            devices = list(dict.fromkeys(s.shocker.device for s in owner_shares))
            payload.append(
                {
                    "id": str(owner.id),
                    "name": owner.name,
                    "image": owner.image,
                    "devices": [
                        {
                            "id": str(device.id),
                            "name": device.name,
                            "shockers": [
                                _shared_shocker_json(s)
                                for s in owner_shares
                                if s.shocker.device is device
                            ],
                        }
                        for device in devices
                    ],
                }
            )
        return _envelope(payload)

    async def _tokens_self(self, request: web.Request) -> web.StreamResponse:
        user = self._authenticate(request)
        if user is None:
            return _unauthorized()
        return web.json_response(
            {
                "id": str(user.token_id),
                "name": user.token_name,
                "createdOn": "2024-01-01T00:00:00Z",
                "validUntil": None,
                "lastUsed": datetime.now(UTC).isoformat(),
                "permissions": user.permissions,
            }
        )

    async def _tokens_self_v2(self, request: web.Request) -> web.StreamResponse:
        if not self.serve_tokens_v2:
            return _problem(404, "NotFound", "Not Found")
        user = self._authenticate(request)
        if user is None:
            return _unauthorized()

        def scope(limits: tuple[int, int, str]) -> dict[str, Any]:
            return {"min": limits[0], "max": limits[1], "mode": limits[2]}

        return web.json_response(
            {
                "id": str(user.token_id),
                "name": user.token_name,
                "createdOn": "2024-01-01T00:00:00Z",
                "validUntil": None,
                "lastUsed": datetime.now(UTC).isoformat(),
                "permissions": user.permissions,
                "shockerControl": {
                    "paused": user.token_paused,
                    "intensity": scope(user.token_intensity),
                    "duration": scope(user.token_duration),
                },
            }
        )

    async def _pause_shocker(self, request: web.Request) -> web.StreamResponse:
        user = self._authenticate(request)
        if user is None:
            return _unauthorized()
        if "shockers.pause" not in user.permissions:
            return _problem(403, "Authentication.TokenMissingPermission", "Missing permission")
        shocker = self._own_shocker(user, request.match_info["shocker_id"])
        body = await request.json()
        if shocker is None:
            return _problem(404, "Shocker.NotFound", "Shocker not found")
        if not isinstance(body, dict) or not isinstance(body.get("pause"), bool):
            return _problem(400, "Validation.Failed", "One or more validation errors occurred.")
        shocker.paused = body["pause"]
        return _envelope(shocker.paused, message="Successfully paused shocker")

    def _own_shocker(self, user: FakeUser, shocker_id: str) -> FakeShocker | None:
        return next((s for s in self.shockers if str(s.id) == shocker_id and s.owner is user), None)

    # --- The hub -------------------------------------------------------------------------------

    async def _negotiate(self, request: web.Request) -> web.StreamResponse:
        if self._authenticate(request) is None:
            return _unauthorized()
        return web.json_response(
            {
                "connectionId": secrets.token_urlsafe(16),
                "negotiateVersion": 0,
                "availableTransports": [
                    {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}
                ],
            }
        )

    async def _hub(self, request: web.Request) -> web.StreamResponse:
        if self.hub_upgrade_status is not None:
            return _problem(self.hub_upgrade_status, "Test.InjectedFailure", "Injected failure")
        user = self._authenticate(request)
        if user is None:
            return _unauthorized()
        ws = web.WebSocketResponse()
        if not ws.can_prepare(request).ok:
            return _problem(400, "Hub.WebSocketsOnly", "WebSockets only")
        await ws.prepare(request)
        connection = FakeHubConnection(
            user=user,
            connection_id=secrets.token_urlsafe(16),
            upgrade_headers=dict(request.headers),
            ws=ws,
            request=request,
        )
        self.connections.append(connection)
        keepalive: asyncio.Task[None] | None = None
        if self.keepalive_interval:
            keepalive = asyncio.create_task(self._keepalive(connection, self.keepalive_interval))
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_text(connection, message.data)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if keepalive is not None:
                keepalive.cancel()
            connection.closed.set()
            await self._notify()
        return ws

    async def _keepalive(self, connection: FakeHubConnection, interval: float) -> None:
        while not connection.ws.closed:
            await asyncio.sleep(interval)
            await connection.send({"type": 6})
            await self._notify()

    async def _on_text(self, connection: FakeHubConnection, text: str) -> None:
        connection.raw_messages.append(text)
        for part in text.split(RECORD_SEPARATOR):
            if not part:
                continue
            try:
                record = json.loads(part)
            except ValueError:
                record = {"unparsable": part}
            connection.frames.append(record)
            if not connection.handshake_done:
                await self._on_handshake(connection, record)
            else:
                await self._on_record(connection, record)
        await self._notify()

    async def _on_handshake(self, connection: FakeHubConnection, record: dict[str, Any]) -> None:
        if record.get("protocol") != "json" or record.get("version") != 1:
            await connection.ws.send_str(
                json.dumps({"error": "Requested protocol is not available."}) + RECORD_SEPARATOR
            )
            await connection.ws.close()
            return
        await connection.ws.send_str("{}" + RECORD_SEPARATOR)
        # Welcome and the snapshot in one WebSocket message, to exercise multi-record framing.
        await connection.send(
            {"type": 1, "target": "Welcome", "arguments": [connection.connection_id]},
            {"type": 1, "target": "DeviceStatus", "arguments": [self._snapshot(connection.user)]},
        )
        connection.handshake_done = True

    async def _on_record(self, connection: FakeHubConnection, record: dict[str, Any]) -> None:
        message_type = record.get("type")
        if message_type == 6 and self.answer_pings:
            await connection.send({"type": 6})
        elif message_type == 1:
            await self._on_invocation(connection, record)
        elif message_type == 7:
            await connection.ws.close()

    async def _on_invocation(self, connection: FakeHubConnection, record: dict[str, Any]) -> None:
        target = record.get("target")
        arguments = record.get("arguments")
        invocation_id = record.get("invocationId")
        if not isinstance(target, str) or not isinstance(arguments, list):
            await connection.ws.close()  # not even an invocation: the real server drops us
            return
        self.invocations.append(HubInvocation(connection, target, arguments, invocation_id))
        await self._notify()
        if target in self.unanswered_methods:
            return

        methods: dict[str, Callable[[FakeHubConnection, list[Any]], Awaitable[None]]] = {
            "ControlV2": self._control_v2,
            "Control": self._control,
            "EmergencyStop": self._device_method("EmergencyStop", 1),
            "Reboot": self._device_method("Reboot", 1),
            "CaptivePortal": self._device_method("CaptivePortal", 2),
            "OtaInstall": self._device_method("OtaInstall", 2),
        }
        method = methods.get(target)
        error: str | None = None
        if method is None:
            error = f"Unknown hub method '{target}'"
        else:
            try:
                await method(connection, arguments)
            except _BindingError:
                error = f"Failed to invoke '{target}' due to an error on the server."
            except _HubMethodError:
                error = f"An unexpected error occurred invoking '{target}' on the server."
        if invocation_id is not None:
            completion: dict[str, Any] = {"type": 3, "invocationId": invocation_id}
            if error is not None:
                completion["error"] = error
            await connection.send(completion)

    # --- Hub methods -------------------------------------------------------------------------

    async def _control(self, connection: FakeHubConnection, arguments: list[Any]) -> None:
        _expect_argument_count(arguments, 1)
        await self._control_v2(connection, [arguments[0], None])

    async def _control_v2(self, connection: FakeHubConnection, arguments: list[Any]) -> None:
        _expect_argument_count(arguments, 2)
        controls = _bind_controls(arguments[0])
        custom_name = arguments[1]
        if custom_name is not None and not isinstance(custom_name, str):
            raise _BindingError
        sender = connection.user

        accepted: list[ExecutedControl] = []
        seen: set[str] = set()
        for control in controls:
            if control["id"] in seen:  # DistinctBy(x => x.Id): later duplicates are ignored
                continue
            seen.add(control["id"])
            shocker = next((s for s in self.shockers if str(s.id) == control["id"]), None)
            share = self._share_of(shocker, sender) if shocker is not None else None
            if shocker is None or (shocker.owner is not sender and share is None):
                return  # unknown or not accessible: the whole batch is dropped, silently
            if shocker.paused or (share is not None and share.paused):
                return
            if share is not None and not share.allows(control["type"]):
                return
            limits = (share.max_intensity, share.max_duration) if share else (None, None)
            max_intensity = 100 if limits[0] is None else limits[0]
            max_duration = 65535 if limits[1] is None else limits[1]
            accepted.append(
                ExecutedControl(
                    sender=sender,
                    shocker=shocker,
                    type=control["type"],
                    intensity=min(max(control["intensity"], 0), max_intensity),
                    duration=min(max(control["duration"], 300), max_duration),
                    exclusive=control["exclusive"],
                    custom_name=custom_name,
                )
            )
        if custom_name is not None and len(custom_name) > MAX_CUSTOM_NAME:
            raise _HubMethodError  # varchar(64): saving the control log fails, nothing is sent

        self.executed_controls.extend(accepted)
        if self.log_delay > 0:
            task = asyncio.create_task(self._late_logs_of(connection, accepted, custom_name))
            self._late_logs.add(task)
            task.add_done_callback(self._late_logs.discard)
            return
        await self._publish_logs(connection, accepted, custom_name)

    async def _late_logs_of(
        self,
        connection: FakeHubConnection,
        accepted: list[ExecutedControl],
        custom_name: str | None,
    ) -> None:
        await asyncio.sleep(self.log_delay)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._publish_logs(connection, accepted, custom_name)

    async def _publish_logs(
        self,
        connection: FakeHubConnection,
        accepted: list[ExecutedControl],
        custom_name: str | None,
    ) -> None:
        sender = connection.user
        sender_json = {
            "id": str(sender.id),
            "name": sender.name,
            "image": sender.image,
            "customName": custom_name,
            "connectionId": connection.connection_id,
            "additionalItems": {"ApiTokenId": str(sender.token_id)},
        }
        executed_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        owners = list(dict.fromkeys(c.shocker.owner for c in accepted))
        for owner in owners:
            logs = [
                {
                    "shocker": {"id": str(c.shocker.id), "name": c.shocker.name},
                    "type": c.type,
                    "intensity": c.intensity,
                    "duration": c.duration,
                    "executedAt": executed_at,
                }
                for c in accepted
                if c.shocker.owner is owner
            ]
            await self.push(owner, "Log", sender_json, logs)

    def _device_method(
        self, name: str, argument_count: int
    ) -> Callable[[FakeHubConnection, list[Any]], Awaitable[None]]:
        async def invoke(connection: FakeHubConnection, arguments: list[Any]) -> None:
            _expect_argument_count(arguments, argument_count)
            device_id = _bind_uuid(arguments[0])
            if name == "CaptivePortal" and not isinstance(arguments[1], bool):
                raise _BindingError
            if name == "OtaInstall" and not (
                isinstance(arguments[1], str) and _SEMVER.match(arguments[1])
            ):
                raise _BindingError
            device = next((d for d in self.devices if d.id == device_id), None)
            if device is None or device.owner is not connection.user:
                return  # not the owner: nothing happens, silently
            self.device_commands.append(DeviceCommand(name, device, connection.user, arguments))
            if name == "Reboot" and self.simulate_reboot and device.online:
                self._spawn(self._simulate_reboot(device))
            if name == "OtaInstall" and self.simulate_ota:
                update_id = next(self._update_ids)
                version = arguments[1]
                await self.push(
                    device.owner, "OtaInstallStarted", str(device.id), update_id, version
                )

        return invoke

    async def _simulate_reboot(self, device: FakeDevice) -> None:
        await asyncio.sleep(self.reboot_delay)
        await self.set_device_online(device, False)
        await asyncio.sleep(self.reboot_delay)
        await self.set_device_online(device, True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- Visibility --------------------------------------------------------------------------

    def _share_of(self, shocker: FakeShocker, user: FakeUser) -> FakeShare | None:
        return next((s for s in self.shares if s.shocker is shocker and s.user is user), None)

    def _watchers(self, device: FakeDevice) -> list[FakeUser]:
        """Users told about a device: its owner and everyone with a share on one of its shockers."""
        shared_with = [s.user for s in self.shares if s.shocker.device is device]
        return list(dict.fromkeys([device.owner, *shared_with]))

    def _snapshot(self, user: FakeUser) -> list[dict[str, Any]]:
        """The DeviceStatus sent on connect: online devices the user owns or has a share on."""
        return [d.status() for d in self.devices if d.online and user in self._watchers(d)]


# --- Helpers -------------------------------------------------------------------------------------


def _envelope(data: Any, message: str = "") -> web.Response:
    return web.json_response({"message": message, "data": data})


def _problem(
    status: int, problem_type: str, title: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"type": problem_type, "title": title, "status": status, "detail": None},
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


def _unauthorized() -> web.Response:
    return _problem(401, "Authentication.TokenInvalid", "The provided token is invalid")


def _shared_shocker_json(share: FakeShare) -> dict[str, Any]:
    return {
        "id": str(share.shocker.id),
        "name": share.shocker.name,
        "isPaused": share.shocker.paused or share.paused,
        "permissions": {
            "vibrate": share.vibrate,
            "sound": share.sound,
            "shock": share.shock,
            "live": share.live,
        },
        "limits": {"intensity": share.max_intensity, "duration": share.max_duration},
    }


def _expect_argument_count(arguments: list[Any], count: int) -> None:
    if len(arguments) != count:
        raise _BindingError


def _bind_uuid(value: Any) -> UUID:
    if not isinstance(value, str):
        raise _BindingError
    try:
        return UUID(value)
    except ValueError:
        raise _BindingError from None


def _bind_int(value: Any, low: int, high: int) -> int:
    """A JSON number bound to byte/ushort: integral and in the type's range, or a binding error."""
    if type(value) is not int or not low <= value <= high:
        raise _BindingError
    return value


def _bind_controls(value: Any) -> list[dict[str, Any]]:
    """Bind ``Control[]``: every field but ``exclusive`` is required (``required`` members)."""
    if not isinstance(value, list):
        raise _BindingError
    controls = []
    for item in value:
        if not isinstance(item, dict) or not {"id", "type", "intensity", "duration"} <= item.keys():
            raise _BindingError
        exclusive = item.get("exclusive", False)
        if not isinstance(exclusive, bool):
            raise _BindingError
        controls.append(
            {
                "id": str(_bind_uuid(item["id"])),
                "type": _bind_int(item["type"], -(2**31), 2**31 - 1),
                "intensity": _bind_int(item["intensity"], 0, 255),
                "duration": _bind_int(item["duration"], 0, 65535),
                "exclusive": exclusive,
            }
        )
    return controls
