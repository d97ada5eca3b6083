"""Linking and unlinking OpenShock accounts: validate a token before anything is stored, store it
encrypted, open (or close) the account's hub connection.

The token never appears in a reply, a log line or an error message. It is registered with the
log redactor (the second line of defence) once OpenShock has accepted it, and only when it has the
shape of a real OpenShock token; it is forgotten again when the account is unlinked or re-linked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bot.errors import UserError
from bot.logs import OPENSHOCK_TOKEN, account_key, redactor
from bot.openshock.errors import OpenShockError, OpenShockUnreachable, TokenRejected
from bot.openshock.hub import HubConnection
from bot.openshock.models import OwnDevice, SelfUser, SharedOwner, ShockerDirectory, TokenInfo
from bot.openshock.rest import OpenShockRest
from bot.openshock.servers import Reach, ServerPolicy
from bot.storage import AccountLinkedElsewhere, Storage, UnlinkSummary
from bot.storage.models import Account, AccountState

log = logging.getLogger(__name__)

# What the bot needs from a token; anything more is a risk the wearer should know about.
NEEDED_PERMISSIONS = frozenset({"shockers.use", "shockers.pause"})

# Tokens are opaque, but they travel in an HTTP header: printable ASCII without spaces.
_TOKEN_SHAPE = re.compile(r"^[\x21-\x7e]{8,256}$")

ConnectAccount = Callable[[Account], Awaitable[None]]
StopAccount = Callable[[int], Awaitable[None]]
AccountGone = Callable[[Account], None]


@dataclass(frozen=True, slots=True)
class LinkResult:
    account: Account
    user: SelfUser
    own: list[OwnDevice]
    shared: list[SharedOwner]
    token: TokenInfo | None
    token_problem: str | None  # why the token's permissions could not be read
    replaced: bool  # the Discord user had a link before (its token was replaced)

    @property
    def extra_permissions(self) -> list[str]:
        if self.token is None:
            return []
        return sorted(set(self.token.permissions) - NEEDED_PERMISSIONS)

    @property
    def missing_permissions(self) -> list[str]:
        if self.token is None:
            return []
        return sorted(NEEDED_PERMISSIONS - set(self.token.permissions))


def normalize_api_url(value: str | None, default: str) -> str:
    """The server URL a wearer typed (blank: the default), checked and without a trailing slash."""
    text = (value or "").strip()
    if not text:
        return default.rstrip("/")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or any(c.isspace() for c in text)
        or (port is not None and not 0 < port < 65536)
    ):
        raise UserError(
            "That server URL is not valid: give the full address of the OpenShock API, "
            "like https://api.openshock.app (or leave it empty for the default)."
        )
    return text.rstrip("/")


def check_token_shape(token: str) -> str:
    token = token.strip()
    if not _TOKEN_SHAPE.match(token):
        raise UserError(
            "That does not look like an OpenShock API token: paste the token exactly as "
            "OpenShock showed it (Settings → API Tokens)."
        )
    return token


@dataclass(slots=True)
class _UserLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding it or waiting for it


class AccountService:
    def __init__(
        self,
        storage: Storage,
        *,
        connect: ConnectAccount,
        stop: StopAccount,
        default_api_url: str,
        servers: ServerPolicy | None = None,
        rest_timeout: float = 10.0,
        on_unlinked: AccountGone | None = None,
    ) -> None:
        self.storage = storage
        self._connect = connect
        self._stop = stop
        # Told once an account and its shares are deleted (halts what waited to fire, releases
        # what the feeds held for it).
        self._on_unlinked = on_unlinked
        self.default_api_url = default_api_url
        # Which servers may be linked (OPENSHOCK_ALLOWED_SERVERS); by default only the default.
        self.servers = servers or ServerPolicy.parse(default_api_url, "")
        self.rest_timeout = rest_timeout
        # One link at a time per Discord user: two quick submits must not race each other.
        # An entry lives only while someone holds or waits for it.
        self._locks: dict[int, _UserLock] = {}

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, discord_user_id: int) -> AsyncIterator[None]:
        entry = self._locks.get(discord_user_id)
        if entry is None:
            entry = self._locks[discord_user_id] = _UserLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[discord_user_id]

    async def link(self, discord_user_id: int, token: str, api_url: str | None) -> LinkResult:
        """Validate the token with GET /1/users/self, store it and connect. Raises `UserError`
        with one sentence for every way this can fail; nothing is stored unless it succeeds."""
        token = check_token_shape(token)
        url = normalize_api_url(api_url, self.default_api_url)
        async with self._one_at_a_time(discord_user_id):
            with self._redacted_while_linking(discord_user_id, token) as accepted:
                user, own, shared, info, problem = await self._validate(token, url, accepted)
                previous = await self.storage.accounts.by_discord_user(discord_user_id)
                try:
                    account = await self.storage.accounts.link(
                        discord_user_id=discord_user_id,
                        openshock_user_id=str(user.id),
                        openshock_name=user.name,
                        api_url=url,
                        token=token,
                    )
                except AccountLinkedElsewhere:
                    raise UserError(
                        f"The OpenShock account {user.name} is already linked by another Discord "
                        "user; they have to run `/account unlink` before you can link it."
                    ) from None
                if previous is not None and previous.id != account.id:
                    # Re-linked to a different OpenShock account: its old row and connection
                    # are gone.
                    await self._stop(previous.id)
                    redactor.forget(account_key(previous.id))
                    if self._on_unlinked is not None:
                        # Its shares went with it: what waited to fire on them ends, as on an
                        # unlink.
                        self._on_unlinked(previous)
                await self._connect(account)
        log.info(
            "Discord user %d linked OpenShock account %s (account id %d)",
            discord_user_id,
            user.name,
            account.id,
        )
        return LinkResult(account, user, own, shared, info, problem, previous is not None)

    @contextlib.contextmanager
    def _redacted_while_linking(
        self, discord_user_id: int, token: str
    ) -> Iterator[Callable[[], None]]:
        """While a link runs, the token is redacted once OpenShock accepted it (call the
        yielded function then); afterwards the account's own registration (made when its hub
        connection starts) is what keeps it redacted."""
        key = f"link by {discord_user_id}"

        def accepted() -> None:
            redactor.remember(key, token, OPENSHOCK_TOKEN)

        try:
            yield accepted
        finally:
            redactor.forget(key)

    async def _validate(
        self, token: str, url: str, accepted: Callable[[], None]
    ) -> tuple[SelfUser, list[OwnDevice], list[SharedOwner], TokenInfo | None, str | None]:
        reach = self.servers.reach(url)
        if reach is None:
            log.info("Link to %s refused: not an allowed OpenShock server", url)
            raise UserError(
                "This bot does not link accounts on that server: leave the server URL empty "
                f"for {self.default_api_url}, or ask the bot's operator which servers it accepts."
            )
        public_only = reach is Reach.PUBLIC_ONLY
        async with OpenShockRest(
            url, token, timeout=self.rest_timeout, public_only=public_only
        ) as rest:
            try:
                user = await rest.get_self()
                accepted()  # from now on a secret worth redacting
            except TokenRejected:
                raise UserError(
                    "OpenShock rejected that API token: check that you copied all of it, and "
                    "that it has not expired or been revoked."
                ) from None
            except OpenShockUnreachable as error:
                # One sentence whatever the cause (closed port, refused address, timeout):
                # the reply must not tell a prober which hosts and ports exist.
                log.info("Link to %s: server unreachable (%s)", url, error.reason)
                raise UserError(_unreachable(url)) from None
            except OpenShockError as error:
                # The server's own words (problem title and detail) go to the log only.
                log.info("Link to %s: the token check failed: %r", url, str(error))
                raise UserError(
                    f"The server at {url} did not answer like an OpenShock API server; check "
                    "the server URL."
                ) from None
            info: TokenInfo | None = None
            problem: str | None = None
            try:
                info = await rest.get_token_info()
            except OpenShockError as error:
                log.info("Link to %s: the token's permissions were not read: %r", url, str(error))
                problem = "the server did not say."
            try:
                own, shared = await asyncio.gather(
                    rest.get_own_shockers(), rest.get_shared_shockers()
                )
            except OpenShockError as error:
                log.warning("Could not read the shockers of a newly linked account: %r", str(error))
                own, shared = [], []
        return user, own, shared, info, problem

    async def unlink(self, discord_user_id: int) -> tuple[Account, UnlinkSummary]:
        """Close the connection, then delete the token, shares, blocks and pending events."""
        account = await self.storage.accounts.by_discord_user(discord_user_id)
        if account is None:
            raise UserError("You have no linked OpenShock account.")
        await self._stop(account.id)
        redactor.forget(account_key(account.id))
        summary = await self.storage.accounts.unlink(discord_user_id)
        if summary is None:  # unlinked concurrently
            raise UserError("You have no linked OpenShock account.")
        log.info("Discord user %d unlinked OpenShock account id %d", discord_user_id, account.id)
        if self._on_unlinked is not None:
            self._on_unlinked(account)
        return account, summary


def _unreachable(url: str) -> str:
    return (
        f"The OpenShock server at {url} could not be reached; check the server URL, or try "
        "again later."
    )


async def require_account(storage: Storage, discord_user_id: int) -> Account:
    """The caller's linked account, or the sentence telling them to link one."""
    account = await storage.accounts.by_discord_user(discord_user_id)
    if account is None:
        raise UserError("You have no linked OpenShock account; link one with `/account link`.")
    return account


def require_usable(account: Account) -> None:
    """Refuse when OpenShock rejected the account's token (the hub is stopped then)."""
    if account.state is AccountState.INVALID:
        raise UserError(
            "OpenShock no longer accepts your linked API token; "
            "link a new one with `/account link`."
        )


async def shocker_directory(
    hub: HubConnection | None, *, wait: float = 2.0
) -> ShockerDirectory | None:
    """The account's shocker lists: the hub's copy, else read now (bounded: autocomplete and
    replies have seconds, not minutes). None when they cannot be had."""
    if hub is None:
        return None
    if hub.shockers is not None:
        return hub.shockers
    try:
        async with asyncio.timeout(wait):  # not wait_for, which can lose a cancel on 3.11
            return await hub.refresh_shockers()
    except (OpenShockError, TimeoutError) as error:
        log.info("Could not read the shockers of %s: %s", hub.name, error)
        return None
