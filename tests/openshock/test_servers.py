"""Which addresses a server allowed through OPENSHOCK_ALLOWED_SERVERS=* may have."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.openshock.servers import PublicOnlyResolver, Reach, ServerPolicy, is_public_address
from tests.fakes.openshock_server import FakeOpenShockServer


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 - an address to refuse, nothing binds it
        "224.0.1.1",  # multicast
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "not an address",
    ],
)
def test_addresses_that_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(address)


def test_the_default_and_listed_servers_go_anywhere_and_star_only_to_public_ones() -> None:
    policy = ServerPolicy.parse("http://127.0.0.1:8080", "http://lan.example:9000/api")
    assert policy.reach("http://127.0.0.1:8080/") is Reach.ANY_ADDRESS
    assert policy.reach("HTTP://LAN.example:9000/api") is Reach.ANY_ADDRESS
    assert policy.reach("http://lan.example:9001/api") is None  # another port: not listed
    assert policy.reach("http://lan.example:9000") is None  # another path: not listed
    assert ServerPolicy.parse("http://127.0.0.1:8080", "*").reach("http://x.org") is (
        Reach.PUBLIC_ONLY
    )


class StaticResolver(AbstractResolver):
    """A DNS that answers every name with fixed addresses."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_every_address_of_a_name_is_checked() -> None:
    mixed = PublicOnlyResolver(StaticResolver("8.8.8.8", "127.0.0.1"))
    with pytest.raises(OSError, match="not on a public address"):
        await mixed.resolve("rebind.example", 443)
    public = PublicOnlyResolver(StaticResolver("8.8.8.8", "2606:4700:4700::1111"))
    assert [r["host"] for r in await public.resolve("ok.example", 443)] == [
        "8.8.8.8",
        "2606:4700:4700::1111",
    ]


async def test_a_name_that_resolves_to_loopback_is_not_connected_to(
    openshock_server: FakeOpenShockServer,
) -> None:
    # The check runs in the resolver that supplies the addresses aiohttp connects to: the
    # answer that was checked is the one used, so a second, different answer cannot slip in.
    dns = StaticResolver("127.0.0.1")
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(dns))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://rebind.example:{openshock_server.port}/1/users/self")
    assert dns.asked == ["rebind.example"]
    assert openshock_server.requests == []
