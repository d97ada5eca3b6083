"""Pytest fixtures for the fake Discord REST API (registered as a plugin by tests/conftest.py).

- ``discord_api``: a running :class:`FakeDiscordAPI`; ``discord.http.Route.BASE`` points at it for
  the test and is restored afterwards.
- ``discord_login``: ``await discord_login(bot)`` logs a ``discord.Client`` / ``commands.Bot`` /
  ``AutoShardedBot`` in against the fake without a gateway (runs ``setup_hook``; sets
  ``bot.user`` and ``bot.application_id``) and closes it after the test.
- ``interactions``: an :class:`Interactions` builder for the fake's application, guild and
  channel (pass ``tree=`` yourself, or use ``ix = interactions.for_tree(bot.tree)``).
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import discord
import pytest
from discord.http import Route

from tests.fakes.discord_api import FakeDiscordAPI
from tests.fakes.interactions import Interactions

ClientT = TypeVar("ClientT", bound=discord.Client)

__all__ = ["discord_api", "discord_login", "interactions"]


@pytest.fixture
async def discord_api() -> AsyncIterator[FakeDiscordAPI]:
    api = FakeDiscordAPI()
    await api.start()
    old_base = Route.BASE
    Route.BASE = api.base_url
    try:
        yield api
    finally:
        Route.BASE = old_base
        await api.stop()
    if api.unhandled:
        seen = sorted({f"{r.method} {r.path}" for r in api.unhandled})
        warnings.warn(f"fake Discord API got requests it does not serve: {seen}", stacklevel=1)


@pytest.fixture
async def discord_login(
    discord_api: FakeDiscordAPI,
) -> AsyncIterator[Callable[..., Awaitable[discord.Client]]]:
    bots: list[discord.Client] = []

    async def login(bot: ClientT, token: str = "test-token") -> ClientT:  # noqa: S107
        bots.append(bot)
        await bot.login(token)
        assert bot.user is not None and bot.application_id == discord_api.app_id
        return bot

    yield login
    for bot in reversed(bots):
        if not bot.is_closed():
            await bot.close()


@pytest.fixture
def interactions(discord_api: FakeDiscordAPI) -> Interactions:
    return Interactions(
        discord_api.app_id,
        discord_api.guild_id,
        channel=discord_api.channel(discord_api.channel_id),
    )
