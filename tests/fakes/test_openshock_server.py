"""The fake OpenShock server behaves like the real one, checked with a bare-bones raw client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import aiohttp
import pytest

from tests.fakes.openshock_server import (
    RECORD_SEPARATOR,
    FakeDevice,
    FakeOpenShockServer,
    FakeShocker,
    FakeUser,
)


class RawHubClient:
    """The SignalR JSON protocol by hand, so the fake is tested independently of the bot."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._buffer: list[dict[str, Any]] = []
        self.connection_id = ""
        self.snapshot: list[dict[str, Any]] = []

    async def send(self, *records: dict[str, Any]) -> None:
        await self.ws.send_str("".join(json.dumps(r) + RECORD_SEPARATOR for r in records))

    async def receive(self, timeout: float = 2.0) -> dict[str, Any]:  # noqa: ASYNC109
        while not self._buffer:
            message = await self.ws.receive(timeout)
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"connection ended: {message.type!r}")
            self._buffer += [json.loads(p) for p in message.data.split(RECORD_SEPARATOR) if p]
        return self._buffer.pop(0)

    async def receive_until(self, matches: Any, timeout: float = 2.0) -> dict[str, Any]:  # noqa: ASYNC109
        while True:
            record = await self.receive(timeout)
            if matches(record):
                return record

    async def event(self, target: str) -> list[Any]:
        record = await self.receive_until(lambda r: r.get("type") == 1 and r["target"] == target)
        arguments: list[Any] = record["arguments"]
        return arguments

    async def invoke(self, target: str, *arguments: Any, invocation_id: str | None = "1") -> None:
        record: dict[str, Any] = {"type": 1, "target": target, "arguments": list(arguments)}
        if invocation_id is not None:
            record["invocationId"] = invocation_id
        await self.send(record)

    async def completion(self, invocation_id: str = "1") -> dict[str, Any]:
        return await self.receive_until(
            lambda r: r.get("type") == 3 and r.get("invocationId") == invocation_id
        )

    async def assert_silent(self, seconds: float = 0.1) -> None:
        """Nothing but pings arrives for a moment (to show that an event was *not* sent)."""
        try:
            record = await self.receive_until(lambda r: r.get("type") != 6, timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {record}")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def hub_connect(openshock_server: FakeOpenShockServer, http: aiohttp.ClientSession) -> Any:
    async def connect(user: FakeUser) -> RawHubClient:
        ws = await http.ws_connect(openshock_server.hub_url, headers={"OpenShockToken": user.token})
        client = RawHubClient(ws)
        await client.send({"protocol": "json", "version": 1})
        assert await client.receive() == {}
        (client.connection_id,) = await client.event("Welcome")
        (client.snapshot,) = await client.event("DeviceStatus")
        return client

    return connect


class World:
    """Alice owns a hub with two shockers; one is shared with Bob (limited), one with nobody."""

    def __init__(self, server: FakeOpenShockServer) -> None:
        self.alice = server.add_user("Alice")
        self.bob = server.add_user("Bob")
        self.carol = server.add_user("Carol")
        self.hub: FakeDevice = server.add_device(self.alice, "Alice's hub")
        self.offline_hub = server.add_device(self.alice, "Drawer", online=False)
        self.collar: FakeShocker = server.add_shocker(self.hub, "Collar")
        self.cuff = server.add_shocker(self.hub, "Cuff")
        self.share = server.share_shocker(
            self.collar, self.bob, shock=False, max_intensity=30, max_duration=1000
        )


@pytest.fixture
def world(openshock_server: FakeOpenShockServer) -> World:
    return World(openshock_server)


def control(shocker: FakeShocker, type_: int = 2, intensity: int = 50, duration: int = 1000) -> Any:
    return {"id": str(shocker.id), "type": type_, "intensity": intensity, "duration": duration}


# --- REST ---------------------------------------------------------------------------------------


async def test_users_self_has_envelope_and_records_user_agent(
    openshock_server: FakeOpenShockServer, world: World, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        openshock_server.base_url + "/1/users/self",
        headers={"OpenShockToken": world.alice.token, "User-Agent": "probe/1"},
    ) as response:
        body = await response.json()
    assert response.status == 200
    assert body["data"]["id"] == str(world.alice.id)
    assert body["data"]["name"] == "Alice"
    assert "message" in body
    assert openshock_server.requests_to("/1/users/self")[0].user_agent == "probe/1"


@pytest.mark.parametrize("headers", [{}, {"OpenShockToken": "wrong"}])
async def test_bad_or_missing_token_gets_401_problem_json(
    openshock_server: FakeOpenShockServer,
    world: World,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
) -> None:
    async with http.get(openshock_server.base_url + "/1/shockers/own", headers=headers) as response:
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert (await response.json(content_type=None))["status"] == 401


async def test_own_shared_and_token_endpoints(
    openshock_server: FakeOpenShockServer, world: World, http: aiohttp.ClientSession
) -> None:
    async def get(path: str, user: FakeUser) -> Any:
        headers = {"OpenShockToken": user.token}
        async with http.get(openshock_server.base_url + path, headers=headers) as response:
            return await response.json()

    own = (await get("/1/shockers/own", world.alice))["data"]
    assert [d["name"] for d in own] == ["Alice's hub", "Drawer"]
    assert [s["name"] for s in own[0]["shockers"]] == ["Collar", "Cuff"]
    shared = (await get("/1/shockers/shared", world.bob))["data"]
    assert shared[0]["name"] == "Alice"
    shocker = shared[0]["devices"][0]["shockers"][0]
    assert shocker["permissions"] == {"vibrate": True, "sound": True, "shock": False, "live": True}
    assert shocker["limits"] == {"intensity": 30, "duration": 1000}
    token = await get("/1/tokens/self", world.bob)
    assert "data" not in token
    assert token["permissions"] == ["shockers.use", "shockers.pause"]


async def test_pause_endpoint_pauses_own_shocker_only(
    openshock_server: FakeOpenShockServer, world: World, http: aiohttp.ClientSession
) -> None:
    url = f"{openshock_server.base_url}/1/shockers/{world.collar.id}/pause"
    async with http.post(
        url, json={"pause": True}, headers={"OpenShockToken": world.bob.token}
    ) as response:
        assert response.status == 404
    async with http.post(
        url, json={"pause": True}, headers={"OpenShockToken": world.alice.token}
    ) as response:
        assert response.status == 200
    assert world.collar.paused


async def test_injected_rest_failures_are_used_up(
    openshock_server: FakeOpenShockServer, world: World, http: aiohttp.ClientSession
) -> None:
    openshock_server.fail_rest("/1/users/self", 429, times=2, retry_after=3)
    statuses = []
    for _ in range(3):
        async with http.get(
            openshock_server.base_url + "/1/users/self",
            headers={"OpenShockToken": world.alice.token},
        ) as response:
            statuses.append((response.status, response.headers.get("Retry-After")))
    assert statuses == [(429, "3"), (429, "3"), (200, None)]


async def test_prefix_mounts_everything_under_it(
    prefixed_openshock_server: FakeOpenShockServer, http: aiohttp.ClientSession
) -> None:
    user = prefixed_openshock_server.add_user("Alice")
    assert prefixed_openshock_server.base_url.endswith("/api")
    headers = {"OpenShockToken": user.token}
    async with http.get(prefixed_openshock_server.base_url + "/1/users/self", headers=headers) as r:
        assert r.status == 200
    root = prefixed_openshock_server.base_url.removesuffix("/api")
    async with http.get(root + "/1/users/self", headers=headers) as r:
        assert r.status == 404


# --- Hub: connecting -----------------------------------------------------------------------------


async def test_hub_upgrade_needs_a_valid_token(
    openshock_server: FakeOpenShockServer, world: World, http: aiohttp.ClientSession
) -> None:
    for headers in ({}, {"OpenShockToken": "wrong"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as error:
            await http.ws_connect(openshock_server.hub_url, headers=headers)
        assert error.value.status == 401


async def test_hub_upgrade_status_can_be_forced(
    openshock_server: FakeOpenShockServer, world: World, http: aiohttp.ClientSession
) -> None:
    openshock_server.hub_upgrade_status = 500
    with pytest.raises(aiohttp.WSServerHandshakeError) as error:
        await http.ws_connect(
            openshock_server.hub_url, headers={"OpenShockToken": world.alice.token}
        )
    assert error.value.status == 500


async def test_welcome_then_snapshot_of_visible_online_devices(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    bob = await hub_connect(world.bob)
    assert bob.connection_id == openshock_server.connections_of(world.bob)[0].connection_id
    assert bob.snapshot == [
        {"device": str(world.hub.id), "online": True, "firmwareVersion": "1.4.0"}
    ]
    # Welcome and DeviceStatus travel in one WebSocket message.
    assert len(openshock_server.connections_of(world.bob)[0].sent) == 2

    carol = await hub_connect(world.carol)
    assert carol.snapshot == []


async def test_pings_are_answered_and_frames_recorded(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    await alice.send({"type": 6})
    await alice.receive_until(lambda r: r.get("type") == 6)
    connection = openshock_server.connections_of(world.alice)[0]
    assert connection.frames[0] == {"protocol": "json", "version": 1}
    assert connection.frames_of_type(6) == [{"type": 6}]
    assert connection.upgrade_headers["OpenShockToken"] == world.alice.token


async def test_negotiate_is_optional_but_answered(
    openshock_server: FakeOpenShockServer, world: World, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        openshock_server.hub_url + "/negotiate", headers={"OpenShockToken": world.alice.token}
    ) as response:
        assert response.status == 200
        assert "connectionId" in await response.json()


async def test_revoked_token_keeps_open_connection_but_not_new_ones(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    openshock_server.revoke_token(world.alice)
    await openshock_server.push(world.alice, "DeviceUpdate", str(world.hub.id), 1)
    assert await alice.event("DeviceUpdate") == [str(world.hub.id), 1]
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await hub_connect(world.alice)


# --- Hub: ControlV2 ------------------------------------------------------------------------------


async def test_control_sends_log_to_owner_only_with_sender_details(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    bob = await hub_connect(world.bob)
    await bob.invoke("ControlV2", [control(world.collar, type_=2)], "Discord: Dan")
    assert "error" not in await bob.completion()
    sender, logs = await alice.event("Log")
    assert sender["id"] == str(world.bob.id)
    assert sender["customName"] == "Discord: Dan"
    assert sender["connectionId"] == openshock_server.connections_of(world.bob)[0].connection_id
    assert set(sender) == {"id", "name", "image", "customName", "connectionId", "additionalItems"}
    assert logs[0]["shocker"] == {"id": str(world.collar.id), "name": "Collar"}
    await bob.assert_silent()  # the sender is not the owner: no Log for it


async def test_share_limits_are_clamped(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    bob = await hub_connect(world.bob)
    await bob.invoke("ControlV2", [control(world.collar, intensity=90, duration=5000)], None)
    _, logs = await alice.event("Log")
    assert (logs[0]["intensity"], logs[0]["duration"]) == (30, 1000)
    assert openshock_server.executed_controls[0].intensity == 30


@pytest.mark.parametrize(
    "case", ["paused_shocker", "paused_share", "type_not_permitted", "not_accessible", "unknown"]
)
async def test_batch_is_dropped_silently_at_first_refused_shocker(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any, case: str
) -> None:
    alice = await hub_connect(world.alice)
    bob = await hub_connect(world.bob)
    refused: dict[str, Any] = {
        "paused_shocker": control(world.collar),
        "paused_share": control(world.collar),
        "type_not_permitted": control(world.collar, type_=1),  # Bob may not shock
        "not_accessible": control(world.cuff),  # not shared with Bob
        "unknown": {**control(world.collar), "id": str(uuid4())},
    }
    if case == "paused_shocker":
        world.collar.paused = True
    if case == "paused_share":
        world.share.paused = True
    # An acceptable control first, where the refused one is another shocker: all or nothing.
    batch = [control(world.collar)] if case in ("not_accessible", "unknown") else []
    batch.append(refused[case])
    await bob.invoke("ControlV2", batch, None)
    assert "error" not in await bob.completion()
    await alice.assert_silent()
    assert openshock_server.executed_controls == []


async def test_old_control_method_works_like_controlv2_without_name(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    await alice.invoke("Control", [control(world.cuff, type_=1)])
    sender, logs = await alice.event("Log")  # the owner controlling its own shocker
    assert sender["customName"] is None
    assert logs[0]["type"] == 1


async def test_too_long_custom_name_fails_the_whole_call(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    await alice.invoke("ControlV2", [control(world.cuff)], "x" * 65)
    assert "An unexpected error occurred" in (await alice.completion())["error"]
    await alice.assert_silent()


@pytest.mark.parametrize(
    "arguments",
    [
        [[{"id": "x", "type": 1, "intensity": 1, "duration": 300}], None],
        [[{"type": 1, "intensity": 1, "duration": 300}], None],
        [[{"id": str(uuid4()), "type": 1, "intensity": "1", "duration": 300}], None],
        [[{"id": str(uuid4()), "type": 1, "intensity": 1, "duration": 70000}], None],
        [[]],
    ],
)
async def test_binding_errors_complete_with_the_servers_message(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any, arguments: list[Any]
) -> None:
    alice = await hub_connect(world.alice)
    await alice.invoke("ControlV2", *arguments)
    completion = await alice.completion()
    assert completion["error"] == "Failed to invoke 'ControlV2' due to an error on the server."


async def test_no_completion_without_invocation_id(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    await alice.invoke("ControlV2", [control(world.cuff)], None, invocation_id=None)
    await alice.event("Log")
    await alice.assert_silent()


# --- Hub: device methods -------------------------------------------------------------------------


async def test_device_methods_are_recorded_for_the_owner_only(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    openshock_server.simulate_reboot = False
    bob = await hub_connect(world.bob)
    await bob.invoke("EmergencyStop", str(world.hub.id))
    await bob.completion()
    alice = await hub_connect(world.alice)
    await alice.invoke("EmergencyStop", str(world.hub.id), invocation_id="a")
    await alice.invoke("CaptivePortal", str(world.hub.id), True, invocation_id="b")
    await alice.invoke("Reboot", str(world.hub.id), invocation_id="c")
    await alice.completion("c")
    assert [(c.method, c.user) for c in openshock_server.device_commands] == [
        ("EmergencyStop", world.alice),
        ("CaptivePortal", world.alice),
        ("Reboot", world.alice),
    ]


async def test_reboot_takes_device_offline_and_back_for_all_watchers(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    bob = await hub_connect(world.bob)
    await alice.invoke("Reboot", str(world.hub.id))
    for client in (alice, bob):
        assert (await client.event("DeviceStatus"))[0][0]["online"] is False
        assert (await client.event("DeviceStatus"))[0][0]["online"] is True


async def test_ota_install_emits_started_and_checks_the_version(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    await alice.invoke("OtaInstall", str(world.hub.id), "1.5.0")
    device_id, update_id, version = await alice.event("OtaInstallStarted")
    assert (device_id, version) == (str(world.hub.id), "1.5.0")
    assert isinstance(update_id, int)
    await alice.invoke("OtaInstall", str(world.hub.id), "latest", invocation_id="2")
    assert "error" in await alice.completion("2")


# --- Hub: test controls --------------------------------------------------------------------------


async def test_set_device_online_reaches_owner_and_share_recipients(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    clients = [await hub_connect(u) for u in (world.alice, world.bob, world.carol)]
    await openshock_server.set_device_online(world.hub, False)
    for client in clients[:2]:
        assert await client.event("DeviceStatus") == [
            [{"device": str(world.hub.id), "online": False, "firmwareVersion": "1.4.0"}]
        ]
    await clients[2].assert_silent()


async def test_drop_connections_cuts_without_close_frame(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    await openshock_server.drop_connections(world.alice)
    message = await alice.ws.receive(2)
    assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert alice.ws.close_code in (None, 1006)
    assert openshock_server.open_connections(world.alice) == []


@pytest.mark.parametrize("error", [None, "Server shutting down"])
async def test_close_connections_sends_close_message(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any, error: str | None
) -> None:
    alice = await hub_connect(world.alice)
    await openshock_server.close_connections(world.alice, error=error, allow_reconnect=True)
    close = await alice.receive_until(lambda r: r.get("type") == 7)
    assert close.get("error") == error
    assert close["allowReconnect"] is True


async def test_stop_and_restart_on_the_same_port(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    port = openshock_server.port
    await hub_connect(world.alice)
    await openshock_server.stop()
    assert openshock_server.open_connections() == []
    with pytest.raises(aiohttp.ClientConnectionError):
        await hub_connect(world.alice)
    await openshock_server.start()
    assert openshock_server.port == port
    await hub_connect(world.alice)
    assert len(await openshock_server.wait_for_connections(world.alice, 2)) == 2


async def test_wait_for_invocation_returns_each_invocation_once(
    openshock_server: FakeOpenShockServer, world: World, hub_connect: Any
) -> None:
    alice = await hub_connect(world.alice)
    waiter = asyncio.create_task(openshock_server.wait_for_invocation("ControlV2"))
    await alice.invoke("ControlV2", [control(world.cuff, intensity=1)], None)
    await alice.invoke("ControlV2", [control(world.cuff, intensity=2)], None, invocation_id="2")
    first = await waiter
    second = await openshock_server.wait_for_invocation("ControlV2")
    assert [first.arguments[0][0]["intensity"], second.arguments[0][0]["intensity"]] == [1, 2]
    with pytest.raises(AssertionError, match="timed out"):
        await openshock_server.wait_for_invocation("ControlV2", timeout=0.05)
