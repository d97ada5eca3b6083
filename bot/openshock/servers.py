"""Which OpenShock servers the bot may talk to on a wearer's behalf (OPENSHOCK_ALLOWED_SERVERS).

A wearer who links an account may name a server; the bot then sends their token there and reads
the answer. Left open, that is a way to make the bot reach addresses on its own network. So:

- the default server (OPENSHOCK_API_URL) and the listed base URLs are allowed, at whatever
  address they are (an operator who lists a LAN server means it);
- with ``*`` in the list, any other server is allowed only while *every* address of its host is
  public: loopback, private, link-local, unspecified, multicast and reserved addresses are
  refused. The check happens every time a connection is made (the link, every REST request,
  every hub connection), on the very addresses then connected to: aiohttp asks the resolver
  below, and the hub connects to an address from ``PublicOnlyResolver.addresses``. So a name
  that resolves differently the second time (DNS rebinding) cannot slip past it;
- anything else is refused before any request is made (and an account linked to a server
  that is no longer allowed is not connected).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = [
    "ANY_PUBLIC",
    "NotPublicAddress",
    "PublicOnlyResolver",
    "Reach",
    "ServerPolicy",
    "canonical_url",
    "is_public_address",
    "literal_address",
]

ANY_PUBLIC = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def canonical_url(url: str) -> str:
    """A base URL in one spelling, for comparing a typed URL with a listed one: lower-case
    scheme and host, no default port, no trailing slash. Raises ValueError for a URL that is
    not an http(s) URL with a host."""
    parts = urlsplit(url.strip())
    port = parts.port  # ValueError for a port that is not a number
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"a base URL has no credentials, query or fragment: {url!r}")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def is_public_address(address: str) -> bool:
    """Whether an IP address is on the public internet: not loopback, private, link-local,
    unspecified, multicast, reserved or shared, also when wrapped in an IPv6 address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


class Reach(Enum):
    """How far the bot may go for an allowed server."""

    ANY_ADDRESS = "any address"  # the default server, or listed exactly
    PUBLIC_ONLY = "public addresses only"  # allowed through "*"


@dataclass(frozen=True, slots=True)
class ServerPolicy:
    default: str  # canonical
    listed: frozenset[str]  # canonical
    any_public: bool

    @classmethod
    def parse(cls, default_url: str, allowed: str) -> ServerPolicy:
        """From OPENSHOCK_API_URL and OPENSHOCK_ALLOWED_SERVERS (comma-separated base URLs, or
        ``*``). Raises ValueError naming the first entry that is not a base URL."""
        entries = [entry.strip() for entry in allowed.split(",") if entry.strip()]
        listed = frozenset(canonical_url(entry) for entry in entries if entry != ANY_PUBLIC)
        return cls(canonical_url(default_url), listed, ANY_PUBLIC in entries)

    def reach(self, url: str) -> Reach | None:
        """How the bot may reach the server at ``url``; None when it is not allowed at all."""
        try:
            canonical = canonical_url(url)
        except ValueError:
            return None
        if canonical == self.default or canonical in self.listed:
            return Reach.ANY_ADDRESS
        if self.any_public:
            return Reach.PUBLIC_ONLY
        return None


def literal_address(url: str) -> str | None:
    """The host of ``url`` when it is an IP address (aiohttp connects to those without asking
    a resolver, so they are checked before the request)."""
    host = urlsplit(url).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


class NotPublicAddress(OSError):
    """A server that may be reached only on public addresses has another one: the connection
    fails as if the host could not be reached."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not on a public address")


class PublicOnlyResolver(AbstractResolver):
    """Resolves a host name and hands aiohttp its addresses only when every one of them is
    public; otherwise the connection fails as if the host could not be reached. aiohttp then
    connects to exactly these checked addresses."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results or not all(is_public_address(r["host"]) for r in results):
            raise NotPublicAddress(host)
        return results

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``, every one of them public, for a client
        that opens its own sockets (the hub's WebSocket): connect to one of these, never to
        the name, which a second lookup could answer differently. An IP address is checked
        as it is, without asking anyone. Raises ``NotPublicAddress`` (an ``OSError``)."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            results = await self.resolve(host, port, socket.AF_UNSPEC)
            return list(dict.fromkeys(r["host"] for r in results))
        if not is_public_address(str(literal)):
            raise NotPublicAddress(host)
        return [str(literal)]

    async def close(self) -> None:
        await self._inner.close()
