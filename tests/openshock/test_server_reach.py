"""After the link: every connection of an account reaches its server only as
OPENSHOCK_ALLOWED_SERVERS allows. A server allowed through ``*`` is reached on public addresses
only, checked on each connection, hub WebSocket and REST alike (so a name that later resolves to
loopback, DNS rebinding, gets nothing); a server no longer allowed is not connected at all."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.openshock.errors import OpenShockUnreachable
from bot.openshock.hub import HubConnection, HubState
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.rest import OpenShockRest, client_session
from bot.openshock.servers import Reach
from bot.storage.models import Account
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeOpenShockServer
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness
from tests.openshock.conftest import FAST, World, eventually
from tests.production_log import ProductionLog, production_log

__all__ = ["production_log"]

NOT_PUBLIC = "not connecting: the server's address is not public"
PUBLIC = "93.184.215.14"  # a public address; the tests' network (below) decides where it leads


class SwitchingDNS(AbstractResolver):
    """A DNS server the attacker runs: it answers ``address`` for every name, and the test
    changes the answer whenever it likes (DNS rebinding)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": socket.AF_INET6 if ":" in self.address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


class Network:
    """Stands in for the network under the WebSocket client (``loop.create_connection``, where
    websockets opens its TCP connections): records where each connection was asked to go, and
    carries a connection to an address in ``routes`` to that port on 127.0.0.1 (the fake
    server standing for a public one); every other destination is refused, so nothing here
    leaves the machine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, routes: dict[str, int]) -> None:
        self.routes = routes
        self.calls: list[dict[str, Any]] = []
        self.seen = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._real = loop.create_connection
        monkeypatch.setattr(loop, "create_connection", self.create_connection)

    async def create_connection(self, factory: Callable[[], Any], **kwargs: Any) -> Any:
        if kwargs.get("sock") is not None:
            # aiohttp (REST) connects a socket itself and hands it over: not the WebSocket.
            return await self._real(factory, **kwargs)
        self.calls.append(kwargs)
        self.seen.set()
        host = kwargs.get("host")
        if host not in self.routes:
            raise ConnectionRefusedError(111, f"test network: no route to {host}")
        return await self._real(factory, **{**kwargs, "host": "127.0.0.1"})

    @property
    def hosts(self) -> list[Any]:
        return [call.get("host") for call in self.calls]


@pytest.fixture
async def manager() -> AsyncIterator[HubManager]:
    manager = HubManager(timings=FAST)
    yield manager
    await manager.stop_all()


async def refused_for_address(hub: HubConnection) -> None:
    await eventually(lambda: hub.status.last_error == NOT_PUBLIC, what="the address refusal")
    assert hub.state is HubState.CONNECTING  # retrying with backoff, like an unreachable server


# -- the hub and the manager ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",  # a name that resolves to loopback
        "127.0.0.1",  # the address itself: checked as it is, nobody asked
        "[::ffff:127.0.0.1]",  # the address wrapped in IPv6
    ],
)
async def test_an_account_allowed_through_star_never_reaches_a_loopback_server(
    openshock_server: FakeOpenShockServer, world: World, manager: HubManager, host: str
) -> None:
    url = f"http://{host}:{openshock_server.port}"
    hub = await manager.start(HubAccount(1, url, world.alice.token, Reach.PUBLIC_ONLY))
    await refused_for_address(hub)
    with pytest.raises(OpenShockUnreachable):  # the REST side: the manager's shared session
        await hub.refresh_shockers()
    assert openshock_server.requests == []  # neither the hub's upgrade nor a REST request


async def test_the_same_loopback_server_listed_exactly_is_connected(
    openshock_server: FakeOpenShockServer, world: World, manager: HubManager
) -> None:
    url = f"http://localhost:{openshock_server.port}"
    hub = await manager.start(HubAccount(1, url, world.alice.token, Reach.ANY_ADDRESS))
    await hub.wait_connected(5)
    directory = await hub.refresh_shockers()
    assert sorted(s.name for s in directory.all()) == ["Collar", "Cuff"]
    assert openshock_server.requests_to("/1/hubs/user") != []


async def test_a_name_that_rebinds_to_loopback_is_never_connected_to(
    openshock_server: FakeOpenShockServer,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The name answers a public address first (the check passes), loopback afterwards. Had the
    # check resolved the name and websockets resolved it again to connect, the second answer
    # would reach the fake on 127.0.0.1.
    dns = SwitchingDNS(PUBLIC)
    network = Network(monkeypatch, routes={})  # the public address is not reachable here
    manager = HubManager(timings=FAST, resolver=dns)
    try:
        url = f"http://rebind.example:{openshock_server.port}"
        hub = await manager.start(HubAccount(1, url, world.alice.token, Reach.PUBLIC_ONLY))
        await asyncio.wait_for(network.seen.wait(), 5)  # the first attempt, to the public one
        dns.address = "127.0.0.1"
        await refused_for_address(hub)
        attempts = len(dns.asked)
        await eventually(lambda: len(dns.asked) >= attempts + 2, what="more attempts")
    finally:
        await manager.stop_all()
    assert set(network.hosts) == {PUBLIC}  # only ever the checked address, never the name
    assert openshock_server.requests == []


async def test_the_hub_connects_to_the_checked_address_and_keeps_the_name(
    openshock_server: FakeOpenShockServer,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Here the public address leads to the fake: the connection works, its upgrade names the
    # server by its host name, and once the name rebinds to loopback no new connection is made.
    dns = SwitchingDNS(PUBLIC)
    network = Network(monkeypatch, routes={PUBLIC: openshock_server.port})
    url = f"http://osh.example:{openshock_server.port}"
    hub = HubConnection(
        url,
        world.alice.token,
        # The REST side has its own tests above; this client goes straight to the fake.
        rest=OpenShockRest(openshock_server.base_url, world.alice.token),
        timings=FAST,
        public_only=True,
        resolver=dns,
        name="test",
    )
    hub.start()
    try:
        await hub.wait_connected(5)
        (upgrade,) = openshock_server.requests_to("/1/hubs/user")
        assert upgrade.headers["Host"] == f"osh.example:{openshock_server.port}"
        assert set(network.hosts) == {PUBLIC}

        dns.address = "127.0.0.1"
        await openshock_server.drop_connections(world.alice)
        await refused_for_address(hub)
    finally:
        await hub.stop()
        await hub.rest.close()
    assert set(network.hosts) == {PUBLIC}
    assert len(openshock_server.requests_to("/1/hubs/user")) == 1


async def test_tls_checks_the_host_name_while_connecting_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    network = Network(monkeypatch, routes={})
    hub = HubConnection(
        "https://osh.example/api",
        "token",
        timings=FAST,
        public_only=True,
        resolver=SwitchingDNS(PUBLIC),
        name="test",
    )
    hub.start()
    try:
        await asyncio.wait_for(network.seen.wait(), 5)
    finally:
        await hub.stop()
    call = network.calls[0]
    assert (call["host"], call["port"]) == (PUBLIC, 443)
    assert call["server_hostname"] == "osh.example" and call["ssl"]


async def test_a_redirect_of_the_hub_upgrade_is_not_followed(
    openshock_server: FakeOpenShockServer,
    prefixed_openshock_server: FakeOpenShockServer,
    world: World,
    manager: HubManager,
) -> None:
    # The upgrade carries the token: a redirect must not take it anywhere else.
    elsewhere = prefixed_openshock_server.hub_url.replace("http://", "ws://")
    openshock_server.fail_rest("/1/hubs/user", 307, location=elsewhere)
    hub = await manager.start(HubAccount(1, openshock_server.base_url, world.alice.token))
    await hub.wait_connected(5)  # the next attempt, after the refused redirect
    assert prefixed_openshock_server.requests == []


async def test_a_public_only_client_shares_only_a_public_only_session() -> None:
    async with client_session() as plain:
        with pytest.raises(ValueError, match="public_only"):
            OpenShockRest("https://osh.example", "token", session=plain, public_only=True)
    async with client_session(public_only=True) as checked:
        OpenShockRest("https://osh.example", "token", session=checked, public_only=True)


# -- the bot ------------------------------------------------------------------------------------


async def link_in_storage(
    harness: Harness, user: DiscordUser, os_user: OpenShockUser, url: str
) -> Account:
    """An account as a link long ago left it (the link's own checks have their tests)."""
    return await harness.storage.accounts.link(
        discord_user_id=user.id,
        openshock_user_id=str(os_user.id),
        openshock_name=os_user.name,
        api_url=url,
        token=os_user.token,
    )


async def account_status(harness: Harness, user: DiscordUser) -> str:
    status = harness.ix.slash("account status", user=user)
    await harness.run(status)
    return harness.discord.replies_for(status).text


async def test_the_bot_reaches_a_server_allowed_through_star_on_public_addresses_only(
    harness: Harness, prefixed_openshock_server: FakeOpenShockServer
) -> None:
    other = prefixed_openshock_server
    carol_os = other.add_user("Carol")
    carol = harness.discord_user("carol")
    url = f"http://localhost:{other.port}/api"
    account = await link_in_storage(harness, carol, carol_os, url)

    await harness.restart(openshock_allowed_servers="*")
    hub = harness.bot.hubs.get(account.id)
    assert hub is not None
    await refused_for_address(hub)
    assert f"Last error: {NOT_PUBLIC}." in await account_status(harness, carol)
    assert other.requests == []

    # The same server listed exactly: the operator means it, loopback or not.
    await harness.restart(openshock_allowed_servers=f"*, {url}")
    await harness.ready(account.id)
    assert other.requests_to("/1/hubs/user") != []


async def test_an_account_on_a_server_no_longer_allowed_is_not_connected(
    harness: Harness,
    prefixed_openshock_server: FakeOpenShockServer,
    production_log: ProductionLog,
) -> None:
    other = prefixed_openshock_server
    carol_os = other.add_user("Carol")
    carol = harness.discord_user("carol")
    account = await link_in_storage(harness, carol, carol_os, other.base_url)
    await harness.restart(openshock_allowed_servers=other.base_url)
    await harness.ready(account.id)
    await harness.storage.shares.share(
        guild_id=harness.discord.guild_id,
        account_id=account.id,
        wearer_id=carol.id,
        shocker_id="7f8e1c53-9d42-4a8b-b6c2-2f4f7c3d1a10",
        shocker_name="Collar",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
    )

    await harness.stop()
    before = len(other.requests)
    await harness.start()  # the operator narrowed OPENSHOCK_ALLOWED_SERVERS to the default
    assert harness.bot.hubs.get(account.id) is None
    assert (
        f"OpenShock account id {account.id} is not connected: its server {other.base_url} is "
        "no longer allowed by OPENSHOCK_ALLOWED_SERVERS"
    ) in production_log.text
    assert "no longer allows your account's server" in await account_status(harness, carol)
    assert len(other.requests) == before  # the status asked nothing of the server either
    # Nothing was deleted: the account and its share are still there.
    assert await harness.storage.accounts.get(account.id) is not None
    assert len(await harness.storage.shares.of_account(account.id)) == 1
