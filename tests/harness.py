"""The whole bot, built by the real composition root, against both local fakes.

`harness` gives a logged-in `OpenShockBot` (setup_hook ran: cogs, storage, hub connections) whose
Discord REST calls go to the fake Discord API and whose OpenShock calls go to the fake OpenShock
server. Tests drive it with real interaction payloads:

    alice_os = h.openshock.add_user("Alice")
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub"), "Collar")
    alice = h.discord_user("alice")
    await h.link(alice, alice_os)
    await h.run(h.ix.slash("shock", {...}, user=bob))
    assert h.discord.last_reply().text == ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import pytest
from cryptography.fernet import Fernet

from bot.app import create_bot
from bot.client import OpenShockBot
from bot.config import Settings
from bot.crypto import TokenCipher
from bot.openshock.hub import HubConnection, HubTimings
from bot.storage import Storage
from bot.storage.models import Account
from tests.fakes.discord_api import FakeDiscordAPI
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.interactions import Interactions, run_interaction
from tests.fakes.openshock_server import FakeOpenShockServer
from tests.fakes.openshock_server import FakeUser as OpenShockUser

FAST_HUB = HubTimings(
    backoff_initial=0.02,
    backoff_max=0.2,
    stable_after=1.0,
    ping_interval=1.0,
    server_timeout=5.0,
    connect_timeout=3.0,
    invoke_timeout=3.0,
)


@dataclass
class Harness:
    discord: FakeDiscordAPI
    openshock: FakeOpenShockServer
    data_dir: Path
    secret_key: str
    bot: OpenShockBot = field(init=False)
    storage: Storage = field(init=False)
    ix: Interactions = field(init=False)
    confirm_timeout: float = 1.0

    @property
    def settings(self) -> Settings:
        return self.make_settings()

    def make_settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "discord_token": "test-token",
            "data_dir": self.data_dir,
            "secret_key": self.secret_key,
            "openshock_api_url": self.openshock.base_url,
            "discord_api_base_url": self.discord.base_url,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    async def start(self, **overrides: Any) -> OpenShockBot:
        """Build and log in a bot on the data dir (again, after `stop`, to test restarts)."""
        settings = self.make_settings(**overrides)
        self.storage = await Storage.open(
            settings.database_path, TokenCipher(self.secret_key.encode())
        )
        # Test timings: reconnects in milliseconds, confirmations within a second.
        self.bot = create_bot(
            settings, self.storage, hub_timings=FAST_HUB, confirm_timeout=self.confirm_timeout
        )
        await self.bot.login(settings.discord_token.get_secret_value())
        self.ix = Interactions(
            self.discord.app_id,
            self.discord.guild_id,
            channel=self.discord.channel(self.discord.channel_id),
            tree=self.bot.tree,
        )
        return self.bot

    async def stop(self) -> None:
        if not self.bot.is_closed():
            await self.bot.close()
        await self.storage.close()

    async def restart(self, **overrides: Any) -> OpenShockBot:
        await self.stop()
        return await self.start(**overrides)

    # -- helpers --------------------------------------------------------------------------------

    def discord_user(self, name: str, *, member: bool = True) -> DiscordUser:
        """A Discord user, by default a member of the test guild (a share works only while its
        wearer is a member: the bot asks the member endpoint)."""
        user = DiscordUser.make(name)
        if member:
            self.discord.add_member(None, user)
        else:
            self.discord.add_user(user)
        return user

    async def run(self, payload: dict[str, Any], timeout: float = 5.0) -> discord.Interaction:  # noqa: ASYNC109
        return await run_interaction(self.bot, payload, timeout=timeout)

    async def link(
        self, user: DiscordUser, os_user: OpenShockUser, *, wait: bool = True
    ) -> Account:
        """Link directly through storage (the /account link command has its own tests) and
        wait until the hub is connected and the shocker lists are loaded."""
        account = await self.storage.accounts.link(
            discord_user_id=user.id,
            openshock_user_id=str(os_user.id),
            openshock_name=os_user.name,
            api_url=self.openshock.base_url,
            token=os_user.token,
        )
        await self.bot.connect_account(account)
        if wait:
            await self.ready(account.id)
        return account

    async def ready(self, account_id: int) -> HubConnection:
        hub = self.bot.hubs.get(account_id)
        assert hub is not None
        await hub.wait_connected(timeout=5)
        if hub.shockers is None:
            await hub.refresh_shockers()
        return hub

    async def share(
        self,
        wearer: DiscordUser,
        shocker_id: str,
        *,
        max_intensity: int = 25,
        max_duration_ms: int = 3000,
        shock: bool = True,
        vibrate: bool = True,
        sound: bool = True,
        guild_id: int | None = None,
    ) -> None:
        account = await self.storage.accounts.by_discord_user(wearer.id)
        assert account is not None
        hub = self.bot.hubs.get(account.id)
        name = "?"
        if hub is not None and hub.shockers is not None:
            known = next((s for s in hub.shockers.all() if str(s.id) == shocker_id), None)
            name = known.name if known else name
        await self.storage.shares.share(
            guild_id=guild_id or self.discord.guild_id,
            account_id=account.id,
            wearer_id=wearer.id,
            shocker_id=shocker_id,
            shocker_name=name,
            max_intensity=max_intensity,
            max_duration_ms=max_duration_ms,
            allow_shock=shock,
            allow_vibrate=vibrate,
            allow_sound=sound,
        )


@pytest.fixture
async def harness(
    discord_api: FakeDiscordAPI, openshock_server: FakeOpenShockServer, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = Harness(
        discord=discord_api,
        openshock=openshock_server,
        data_dir=tmp_path / "data",
        secret_key=Fernet.generate_key().decode(),
    )
    await h.start()
    try:
        yield h
    finally:
        await h.stop()
