"""HubConnection against the fake server: connecting, staying connected, and giving up on 401."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.openshock.errors import HubNotConnected, TokenRejected
from bot.openshock.hub import HubState, HubTimings
from bot.openshock.models import Control, ControlType, HubConnected, HubDisconnected
from bot.openshock.rest import USER_AGENT
from tests.fakes.openshock_server import HUB_PATH, FakeOpenShockServer
from tests.openshock.conftest import FAST, MakeHub, Recorder, World, eventually


async def test_token_is_on_the_first_upgrade_and_in_no_frame(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = make_hub(world.alice)
    await hub.wait_connected(5)
    await hub.control(
        [Control(id=world.cuff.id, type=ControlType.VIBRATE, intensity=5, duration=300)]
    )
    await hub.emergency_stop(world.hub.id)

    (connection,) = openshock_server.connections_of(world.alice)
    assert connection.upgrade_headers["OpenShockToken"] == world.alice.token
    assert connection.upgrade_headers["User-Agent"] == USER_AGENT
    assert "Sec-WebSocket-Extensions" not in connection.upgrade_headers  # no compression
    assert len(openshock_server.requests_to(HUB_PATH)) == 1  # no failed first attempt
    invocations = [f for f in connection.frames if f.get("type") == 1]
    assert [f["target"] for f in invocations] == ["ControlV2", "EmergencyStop"]
    assert all("headers" not in f for f in invocations)
    assert all(world.alice.token not in raw for raw in connection.raw_messages)


async def test_pings_are_sent(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    make_hub(world.alice, timings=HubTimings(ping_interval=0.02))
    (connection,) = await openshock_server.wait_for_connections(world.alice)
    await openshock_server.wait_until(lambda: len(connection.frames_of_type(6)) >= 2, what="pings")


async def test_a_silent_server_is_treated_as_dead(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    openshock_server.answer_pings = False
    hub = make_hub(world.alice, timings=HubTimings(backoff_initial=0.005, server_timeout=0.2))
    await openshock_server.wait_for_connections(world.alice, 2)
    await eventually(lambda: hub.status.last_error is not None, what="the reason noted")
    assert "no message from the server for 0.2 s" in (hub.status.last_error or "")


async def test_server_keepalive_keeps_a_quiet_connection_alive(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    openshock_server.answer_pings = False
    openshock_server.keepalive_interval = 0.05
    hub = make_hub(world.alice, timings=HubTimings(server_timeout=0.3))
    await hub.wait_connected(5)
    (connection,) = openshock_server.connections_of(world.alice)
    # Several server timeouts' worth of server pings, and still the same connection.
    await openshock_server.wait_until(lambda: len(connection.sent) >= 2 + 15, what="pings")
    assert connection.is_open and hub.connected


async def test_recovers_from_25_abrupt_drops_in_a_row(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = make_hub(world.alice)
    hub.subscribe(recorder)
    await openshock_server.wait_for_connections(world.alice, 1)
    for drops in range(1, 26):
        await openshock_server.drop_connections(world.alice)
        await openshock_server.wait_for_connections(world.alice, drops + 1)
    await hub.wait_connected(5)
    assert hub.connection_id == openshock_server.connections_of(world.alice)[-1].connection_id
    await eventually(lambda: len(recorder.of_type(HubConnected)) == 26, what="26 connects")
    assert len(recorder.of_type(HubDisconnected)) == 25


@pytest.mark.parametrize(
    ("error", "allow_reconnect"),
    [("Server is shutting down", True), (None, None), ("Connection closed with an error.", False)],
)
async def test_recovers_from_a_close_message(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    error: str | None,
    allow_reconnect: bool | None,
) -> None:
    hub = make_hub(world.alice)
    await hub.wait_connected(5)
    await openshock_server.close_connections(
        world.alice, error=error, allow_reconnect=allow_reconnect
    )
    await openshock_server.wait_for_connections(world.alice, 2)
    await hub.wait_connected(5)
    assert hub.status.last_error is not None
    assert "closed the connection" in hub.status.last_error


async def test_connects_once_a_server_that_was_down_at_start_up_comes_up(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    await openshock_server.stop()
    hub = make_hub(world.alice)
    await eventually(lambda: hub.status.last_error is not None, what="a failed attempt")
    assert "cannot connect" in (hub.status.last_error or "")
    assert hub.state is HubState.CONNECTING
    await openshock_server.start()
    await hub.wait_connected(5)


async def test_server_restart_is_recovered(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = make_hub(world.alice)
    await hub.wait_connected(5)
    await openshock_server.restart()
    await openshock_server.wait_for_connections(world.alice, 2)
    await hub.wait_connected(5)


async def test_http_500_on_upgrade_is_retried(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    openshock_server.hub_upgrade_status = 500
    hub = make_hub(world.alice)
    await openshock_server.wait_until(
        lambda: len(openshock_server.requests_to(HUB_PATH)) >= 3, what="3 attempts"
    )
    assert "HTTP 500" in (hub.status.last_error or "")
    openshock_server.hub_upgrade_status = None
    await hub.wait_connected(5)


async def test_401_stops_retrying_and_calls_on_invalid(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    reasons: list[str] = []
    invalid = asyncio.Event()

    async def on_invalid(reason: str) -> None:
        reasons.append(reason)
        invalid.set()

    hub = make_hub("not-a-valid-token", on_invalid=on_invalid)
    await asyncio.wait_for(invalid.wait(), 5)
    assert hub.state is HubState.INVALID
    assert reasons == [hub.status.last_error]
    assert "rejected the API token" in reasons[0]
    with pytest.raises(TokenRejected):
        await hub.wait_connected(1)
    # Ten backoff periods later there has still been only the one attempt.
    await asyncio.sleep(FAST.backoff_max * 10)
    assert len(openshock_server.requests_to(HUB_PATH)) == 1


async def test_token_revoked_while_connected_is_noticed_on_reconnect(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    invalid = asyncio.Event()

    async def on_invalid(reason: str) -> None:
        invalid.set()

    hub = make_hub(world.alice, on_invalid=on_invalid)
    await hub.wait_connected(5)
    openshock_server.revoke_token(world.alice)
    await openshock_server.drop_connections(world.alice)
    await asyncio.wait_for(invalid.wait(), 5)
    assert hub.state is HubState.INVALID


async def test_a_401_on_a_refresh_while_connected_marks_the_token_invalid(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    reasons: list[str] = []

    async def on_invalid(reason: str) -> None:
        reasons.append(reason)

    hub = make_hub(world.alice, on_invalid=on_invalid, start=False)
    hub.subscribe(recorder)
    hub.start()
    await hub.wait_connected(5)
    await eventually(lambda: hub.shockers is not None, what="the first refresh")
    (connection,) = openshock_server.connections_of(world.alice)
    # Revoked while the hub stays open (the server checks tokens only on connect); the
    # DeviceUpdate makes the hub re-read its lists over REST, which now answers 401.
    openshock_server.revoke_token(world.alice)
    await openshock_server.push_device_update(world.hub)
    await eventually(lambda: hub.state is HubState.INVALID, what="the invalid state")
    await asyncio.wait_for(connection.closed.wait(), 5)
    assert reasons == [hub.status.last_error]
    assert "rejected the API token" in reasons[0]
    await eventually(lambda: len(recorder.of_type(HubDisconnected)) == 1, what="the drop")
    with pytest.raises(TokenRejected):
        await hub.wait_connected(1)
    # Neither reconnects nor refresh retries follow, and on_invalid came once.
    refreshes = len(openshock_server.requests_to("/1/shockers/own"))
    await openshock_server.push_device_update(world.hub)
    await asyncio.sleep(FAST.backoff_max * 10)
    assert len(openshock_server.requests_to(HUB_PATH)) == 1
    assert len(openshock_server.requests_to("/1/shockers/own")) == refreshes
    assert len(reasons) == 1


async def test_a_401_on_an_on_demand_refresh_also_marks_the_token_invalid(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    invalid = asyncio.Event()

    async def on_invalid(reason: str) -> None:
        invalid.set()

    hub = make_hub(world.alice, on_invalid=on_invalid)
    await hub.wait_connected(5)
    await eventually(lambda: hub.shockers is not None, what="the first refresh")
    openshock_server.revoke_token(world.alice)
    with pytest.raises(TokenRejected):
        await hub.refresh_shockers()
    await asyncio.wait_for(invalid.wait(), 5)
    assert hub.state is HubState.INVALID


async def test_token_never_logged(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = make_hub(world.alice)
    await hub.wait_connected(5)
    await hub.control(
        [Control(id=world.cuff.id, type=ControlType.SOUND, intensity=5, duration=300)]
    )
    await openshock_server.drop_connections(world.alice)
    await openshock_server.wait_for_connections(world.alice, 2)
    await hub.wait_connected(5)
    assert world.alice.token not in caplog.text
    assert world.alice.token not in repr(hub)


async def test_wait_connected_times_out_with_the_last_error(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    await openshock_server.stop()
    hub = make_hub(world.alice)
    await eventually(lambda: hub.status.last_error is not None, what="a failed attempt")
    with pytest.raises(HubNotConnected, match="cannot connect"):
        await hub.wait_connected(0.05)


async def test_stop_ends_everything_and_cannot_restart(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = make_hub(world.alice)
    await hub.wait_connected(5)
    await hub.stop()
    assert hub.state is HubState.STOPPED
    (connection,) = openshock_server.connections_of(world.alice)
    await asyncio.wait_for(connection.closed.wait(), 5)
    with pytest.raises(RuntimeError):
        hub.start()
    with pytest.raises(HubNotConnected):
        await hub.emergency_stop(world.hub.id)


async def test_path_prefixed_base_url_works(
    prefixed_openshock_server: FakeOpenShockServer, make_hub: MakeHub
) -> None:
    alice = prefixed_openshock_server.add_user("Alice")
    device = prefixed_openshock_server.add_device(alice, "Hub")
    prefixed_openshock_server.add_shocker(device, "Collar")
    hub = make_hub(alice, base_url=prefixed_openshock_server.base_url + "/")
    await hub.wait_connected(5)
    directory = await hub.refresh_shockers()
    assert [s.name for s in directory.all()] == ["Collar"]
    assert prefixed_openshock_server.connections_of(alice)[0].request.path == "/api/1/hubs/user"
