"""The REST client against the fake server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.openshock.errors import (
    OpenShockApiError,
    OpenShockUnreachable,
    RateLimited,
    TokenRejected,
)
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.rest import USER_AGENT, OpenShockRest, join_url
from tests.fakes.openshock_server import FakeOpenShockServer, FakeUser
from tests.openshock.conftest import FAST, World

MakeRest = Callable[..., OpenShockRest]


@pytest.fixture
async def make_rest(openshock_server: FakeOpenShockServer) -> AsyncIterator[MakeRest]:
    clients: list[OpenShockRest] = []

    def make(user: FakeUser | str, base_url: str | None = None, **options: Any) -> OpenShockRest:
        token = user if isinstance(user, str) else user.token
        client = OpenShockRest(base_url or openshock_server.base_url, token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.openshock.app", "https://api.openshock.app/1/hubs/user"),
        ("https://example.org/api/", "https://example.org/api/1/hubs/user"),
        ("https://example.org/api", "https://example.org/api/1/hubs/user"),
    ],
)
def test_join_url_appends_to_the_base_path(base: str, expected: str) -> None:
    assert join_url(base, "/1/hubs/user") == expected


async def test_get_self_sends_token_and_user_agent(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    me = await make_rest(world.alice).get_self()
    assert (me.id, me.name) == (world.alice.id, "Alice")
    (request,) = openshock_server.requests_to("/1/users/self")
    assert request.headers["OpenShockToken"] == world.alice.token
    assert request.user_agent == USER_AGENT


async def test_shocker_lists_and_token_info(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    alice, bob = make_rest(world.alice), make_rest(world.bob)
    (device,) = await alice.get_own_shockers()
    assert device.id == world.hub.id
    assert [s.name for s in device.shockers] == ["Collar", "Cuff"]
    (owner,) = await bob.get_shared_shockers()
    shocker = owner.devices[0].shockers[0]
    assert shocker.limits.intensity == 30 and shocker.limits.duration == 1000
    assert not shocker.permissions.shock
    token = await bob.get_token_info()
    assert token.permissions == ["shockers.use", "shockers.pause"]


async def test_pause_a_shocker(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    await make_rest(world.alice).set_shocker_paused(world.cuff.id, True)
    assert world.cuff.paused
    with pytest.raises(OpenShockApiError, match=r"Shocker not found \[Shocker.NotFound\]") as e:
        await make_rest(world.bob).set_shocker_paused(world.cuff.id, True)
    assert e.value.status == 404 and e.value.problem_type == "Shocker.NotFound"


async def test_a_path_prefixed_base_url_works(
    prefixed_openshock_server: FakeOpenShockServer, make_rest: MakeRest
) -> None:
    alice = prefixed_openshock_server.add_user("Alice")
    me = await make_rest(alice, prefixed_openshock_server.base_url).get_self()
    assert me.name == "Alice"
    assert prefixed_openshock_server.requests[0].path == "/api/1/users/self"


async def test_401_raises_token_rejected(world: World, make_rest: MakeRest) -> None:
    with pytest.raises(TokenRejected) as error:
        await make_rest("revoked-token").get_self()
    assert str(error.value) == (
        "OpenShock rejected the API token (it is invalid, expired or was revoked)."
    )


async def test_429_waits_for_retry_after_and_retries(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    openshock_server.fail_rest("/1/users/self", 429, times=2, retry_after=0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    me = await make_rest(world.alice).get_self()
    assert me.name == "Alice"
    assert len(openshock_server.requests_to("/1/users/self")) == 3
    assert loop.time() - started >= 0.2  # asyncio.sleep never returns early


async def test_429_gives_up_after_a_bounded_number_of_retries(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    openshock_server.fail_rest("/1/shockers/own", 429, times=10, retry_after=0)
    with pytest.raises(RateLimited):
        await make_rest(world.alice, max_rate_limit_waits=2).get_own_shockers()
    assert len(openshock_server.requests_to("/1/shockers/own")) == 3


async def test_a_retry_after_longer_than_allowed_is_not_waited_for(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    openshock_server.fail_rest("/1/users/self", 429, retry_after=3600)
    with pytest.raises(RateLimited, match="Injected failure"):
        await make_rest(world.alice).get_self()


async def test_a_server_error_carries_problem_type_and_title(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    openshock_server.fail_rest("/1/shockers/{shocker_id}/pause", 500)
    with pytest.raises(OpenShockApiError) as error:
        await make_rest(world.alice).set_shocker_paused(world.cuff.id, True)
    assert error.value.status == 500
    assert error.value.problem_type == "Test.InjectedFailure"
    assert str(error.value) == (
        "OpenShock refused the request: Injected failure [Test.InjectedFailure]."
    )


async def test_connection_refused_is_unreachable(
    openshock_server: FakeOpenShockServer, world: World, make_rest: MakeRest
) -> None:
    await openshock_server.stop()
    with pytest.raises(OpenShockUnreachable, match="could not be reached"):
        await make_rest(world.alice).get_self()


async def test_a_server_that_never_answers_times_out(world: World, make_rest: MakeRest) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the request
        await reader.read()  # then nothing, until the client gives up and hangs up
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(OpenShockUnreachable, match=r"no answer within 0\.1 seconds"):
            await make_rest(world.alice, f"http://127.0.0.1:{port}", timeout=0.1).get_self()
    finally:
        server.close()
        await server.wait_closed()


async def test_the_token_is_not_logged_or_shown(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_rest: MakeRest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_rest(world.alice)
    openshock_server.fail_rest("/1/users/self", 429, retry_after=0)
    await client.get_self()
    assert world.alice.token not in caplog.text
    assert world.alice.token not in repr(client)


async def test_a_shared_session_is_left_open(
    openshock_server: FakeOpenShockServer, world: World
) -> None:
    async with aiohttp.ClientSession() as session:
        rest = OpenShockRest(openshock_server.base_url, world.alice.token, session=session)
        async with rest:
            await rest.get_self()
        assert not session.closed


@pytest.fixture
async def malformed_server() -> AsyncIterator[str]:
    """A server whose answers are well-formed envelopes around bodies of the wrong shape."""
    email = "alice.secret@example.org"

    async def users_self(request: web.Request) -> web.Response:
        # No id, a name of the wrong type: the model's errors would show the whole body.
        return web.json_response({"message": "", "data": {"name": 7, "email": email}})

    async def shockers_own(request: web.Request) -> web.Response:
        return web.json_response({"message": "", "data": [{"name": "Hub", "owner": email}]})

    app = web.Application()
    app.router.add_get("/1/users/self", users_self)
    app.router.add_get("/1/shockers/own", shockers_own)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_malformed_body_is_logged_without_its_content(
    malformed_server: str, make_rest: MakeRest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_rest("a-token-for-the-test", malformed_server)
    with pytest.raises(OpenShockApiError, match="unexpected shape"):
        await client.get_self()
    with pytest.raises(OpenShockApiError, match="unexpected shape"):
        await client.get_own_shockers()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("Unexpected OpenShock response" in w for w in warnings)
    assert "Field required" in warnings[0]  # still says what was wrong
    assert "alice.secret@example.org" not in caplog.text
    assert "input_value" not in caplog.text


async def test_accounts_sharing_the_managers_session_never_carry_each_others_cookies(
    openshock_server: FakeOpenShockServer, world: World
) -> None:
    openshock_server.session_cookies = True
    # A host name: a cookie jar never keeps cookies for a bare IP address.
    base = f"http://localhost:{openshock_server.port}"
    manager = HubManager(timings=FAST)
    try:
        alice = await manager.start(HubAccount(1, base, world.alice.token))
        bob = await manager.start(HubAccount(2, base, world.bob.token))
        for rest in (alice.rest, bob.rest, alice.rest):
            await rest.get_self()
    finally:
        await manager.stop_all()
    calls = openshock_server.requests_to("/1/users/self")
    assert len(calls) == 3
    assert [r.headers.get("Cookie") for r in calls] == [None, None, None]
