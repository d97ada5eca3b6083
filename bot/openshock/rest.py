"""The OpenShock REST API: the few endpoints the bot needs, returning pydantic models."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import aiohttp
from aiohttp.abc import AbstractResolver
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from bot.openshock.errors import (
    OpenShockApiError,
    OpenShockUnreachable,
    RateLimited,
    TokenRejected,
)
from bot.openshock.models import OwnDevice, SelfUser, SharedOwner, TokenInfo
from bot.openshock.servers import PublicOnlyResolver, is_public_address, literal_address

__all__ = ["USER_AGENT", "OpenShockRest", "client_session", "join_url"]

USER_AGENT = "openshock-discord-bot/0.1 (+https://github.com/openshock-discord-bot)"
TOKEN_HEADER = "OpenShockToken"  # noqa: S105 - a header name, not a secret

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
# How a server without an API version 2 of an endpoint answers it (no route; unsupported
# version; method not allowed on a catch-all).
_NO_SUCH_VERSION = frozenset({400, 404, 405})
# Logged validation errors never show the response body (/1/users/self holds the email).
_NO_INPUT_IN_ERRORS = ConfigDict(hide_input_in_errors=True)


def join_url(base_url: str, path: str) -> str:
    """Append ``path`` to the base URL, keeping any path prefix (``https://host/api``)."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# Sessions made by client_session(public_only=True): the only shared ones a public-only client
# may use.
_PUBLIC_ONLY_SESSIONS: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()


def client_session(
    *, public_only: bool = False, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """An HTTP session for OpenShock requests. It keeps no cookies, so a session shared by many
    accounts never carries one account's cookies into another's requests. With
    ``public_only``, it connects only to hosts whose every address (as ``resolver`` answers,
    by default the system's) is public."""
    if not public_only:
        return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(resolver))
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    _PUBLIC_ONLY_SESSIONS.add(session)
    return session


class OpenShockRest:
    """REST client for one account (one token).

    Pass a shared ``session`` (from ``client_session``) when many accounts are served (the
    caller then closes it); without one, the client makes its own on first use and closes it in
    ``close()``. ``public_only`` refuses hosts on non-public addresses, as for a server allowed
    through OPENSHOCK_ALLOWED_SERVERS=*; a shared session must then come from
    ``client_session(public_only=True)``. Redirects are never followed.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        max_rate_limit_waits: int = 3,
        max_retry_after: float = 60.0,
        user_agent: str = USER_AGENT,
        public_only: bool = False,
    ) -> None:
        if public_only and session is not None and session not in _PUBLIC_ONLY_SESSIONS:
            raise ValueError("public_only needs a session from client_session(public_only=True)")
        self.base_url = base_url.rstrip("/")
        self._public_only = public_only
        self._headers = {
            TOKEN_HEADER: token,
            "User-Agent": user_agent,
            "Accept": "application/json",
        }
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_rate_limit_waits = max_rate_limit_waits
        self._max_retry_after = max_retry_after

    def __repr__(self) -> str:  # the default would not show the token either; keep it that way
        return f"OpenShockRest(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- Endpoints ---------------------------------------------------------------------------

    async def get_self(self) -> SelfUser:
        """The token's account. Also the cheapest way to check that a token works."""
        return await self._get_data("/1/users/self", SelfUser)

    async def get_own_shockers(self) -> list[OwnDevice]:
        return await self._get_data("/1/shockers/own", list[OwnDevice])

    async def get_shared_shockers(self) -> list[SharedOwner]:
        return await self._get_data("/1/shockers/shared", list[SharedOwner])

    async def get_token_info(self) -> TokenInfo:
        """The token's own name, permissions (scopes) and, on newer servers, its control scope
        (``shockerControl``: limits and a paused flag). Reads ``/2/tokens/self`` and falls back
        to ``/1/tokens/self`` on a server without it (then ``shocker_control`` is None: no
        limits). Not wrapped in an envelope."""
        try:
            body = await self._request("GET", "/2/tokens/self")
        except OpenShockApiError as error:
            if error.status not in _NO_SUCH_VERSION:
                raise
            body = await self._request("GET", "/1/tokens/self")
            info = self._validate(TokenInfo, body)
            return info.model_copy(update={"shocker_control": None})
        return self._validate(TokenInfo, body)

    async def set_shocker_paused(self, shocker_id: UUID, paused: bool) -> None:
        """Pause or resume one of the account's own shockers (needs the shockers.pause scope)."""
        await self._request("POST", f"/1/shockers/{shocker_id}/pause", json={"pause": paused})

    # --- Plumbing ----------------------------------------------------------------------------

    async def _get_data(self, path: str, model: type[_T]) -> _T:
        body = await self._request("GET", path)
        if not isinstance(body, dict) or "data" not in body:
            raise OpenShockApiError(200, title="The server sent a response of an unexpected shape")
        return self._validate(model, body["data"])

    @staticmethod
    def _validate(model: type[_T], data: Any) -> _T:
        try:
            if isinstance(model, type) and issubclass(model, BaseModel):
                return model.model_validate(data)
            # A list of models: without this config the list's errors would echo the input.
            return TypeAdapter(model, config=_NO_INPUT_IN_ERRORS).validate_python(data)
        except ValidationError as e:
            _log.warning("Unexpected OpenShock response: %s", e)
            raise OpenShockApiError(
                200, title="The server sent a response of an unexpected shape"
            ) from None

    def _session_for_request(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = client_session(public_only=self._public_only)
        return self._session

    async def _request(self, method: str, path: str, *, json: Any = None) -> Any:
        url = join_url(self.base_url, path)
        waits_left = self._max_rate_limit_waits
        while True:
            _log.debug("OpenShock %s %s", method, path)
            status, retry_after, body = await self._send(method, url, json)
            if status != 429:
                return self._interpret(status, body)
            if waits_left <= 0 or retry_after is None or retry_after > self._max_retry_after:
                raise self._api_error(status, body, error=RateLimited)
            waits_left -= 1
            _log.info("OpenShock rate limit on %s; retrying in %.1f s", path, retry_after)
            await asyncio.sleep(retry_after)

    async def _send(self, method: str, url: str, json: Any) -> tuple[int, float | None, Any]:
        """One HTTP exchange: (status, Retry-After seconds, decoded body or None)."""
        address = literal_address(url)
        if self._public_only and address is not None and not is_public_address(address):
            # aiohttp asks no resolver for an IP address: check it here, before connecting.
            raise OpenShockUnreachable(f"{address} is not a public address")
        session = self._session_for_request()
        try:
            async with session.request(
                method,
                url,
                headers=self._headers,
                json=json,
                timeout=self._timeout,
                allow_redirects=False,  # the token must not follow a redirect anywhere else
            ) as response:
                retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                body: Any = None
                if "json" in response.content_type:
                    try:
                        body = await response.json(content_type=None)
                    except ValueError:
                        body = None
                return response.status, retry_after, body
        except TimeoutError:
            raise OpenShockUnreachable(
                f"no answer within {self._timeout.total:g} seconds"
            ) from None
        except aiohttp.ClientError as e:
            raise OpenShockUnreachable(_describe_client_error(e)) from None

    def _interpret(self, status: int, body: Any) -> Any:
        if 200 <= status < 300:
            return body
        if 300 <= status < 400:
            raise OpenShockApiError(status, title="The server answered with a redirect")
        if status == 401:
            raise TokenRejected()
        raise self._api_error(status, body)

    @staticmethod
    def _api_error(
        status: int,
        body: Any,
        error: Callable[..., OpenShockApiError] = OpenShockApiError,
    ) -> OpenShockApiError:
        problem = body if isinstance(body, dict) else {}
        return error(
            status,
            problem_type=_str_or_none(problem.get("type")),
            title=_str_or_none(problem.get("title")) or _default_title(status),
            detail=_str_or_none(problem.get("detail")),
        )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _default_title(status: int) -> str:
    if status == 429:
        return "Too many requests, try again later"
    if status >= 500:
        return f"The server had an internal error (HTTP {status})"
    return f"HTTP {status}"


def _describe_client_error(error: aiohttp.ClientError) -> str:
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {error.host}:{error.port}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(error, aiohttp.InvalidURL):
        return "the configured API URL is not valid"
    return type(error).__name__
