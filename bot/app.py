"""The composition root: settings → storage → OpenShock connections → Discord bot.

`python -m bot` calls these; tests build the same bot with `create_bot` against the local fakes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress

import aiohttp
import discord
import discord.http

from bot.client import OpenShockBot
from bot.config import Settings
from bot.openshock.errors import OpenShockError
from bot.openshock.hub import HubTimings
from bot.openshock.rest import OpenShockRest
from bot.storage import Storage

log = logging.getLogger(__name__)


def point_discord_at(settings: Settings) -> None:
    """discord.py reads its REST base from a class attribute; DISCORD_API_BASE_URL sets it."""
    discord.http.Route.BASE = settings.discord_api_url


def create_bot(
    settings: Settings,
    storage: Storage,
    *,
    hub_timings: HubTimings | None = None,
    confirm_timeout: float = 3.0,
) -> OpenShockBot:
    point_discord_at(settings)
    return OpenShockBot(settings, storage, hub_timings=hub_timings, confirm_timeout=confirm_timeout)


async def run_bot(settings: Settings, storage: Storage) -> int:
    """Run until SIGINT/SIGTERM, then close connections and the database cleanly."""
    bot = create_bot(settings, storage)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stopping.set)
    runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
    stop_wait = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({runner, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            log.info("Shutting down")
        elif (error := runner.exception()) is not None:
            if isinstance(error, discord.LoginFailure):
                print(f"Cannot start: DISCORD_TOKEN was rejected by Discord ({error}).")
                return 2
            if isinstance(error, aiohttp.ClientError | OSError):
                print(
                    f"Cannot start: Discord is unreachable at {settings.discord_api_url} "
                    f"({type(error).__name__})."
                )
                return 1
            if isinstance(error, discord.GatewayNotFound | discord.HTTPException):
                print(f"Cannot start: Discord's gateway could not be reached ({error}).")
                return 1
            raise error
    finally:
        stop_wait.cancel()
        await bot.close()
        runner.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await runner
        await storage.close()
    return 0


async def sync_commands(settings: Settings, storage: Storage) -> int:
    """Register the slash commands: to SYNC_GUILD_ID only when set (instant), else globally."""
    bot = create_bot(settings, storage)
    bot.connect_hubs = False  # registering commands needs no OpenShock connection
    try:
        await bot.login(settings.discord_token.get_secret_value())
        guild = discord.Object(settings.sync_guild_id) if settings.sync_guild_id else None
        if guild is not None:
            bot.tree.copy_global_to(guild=guild)
        synced = await bot.tree.sync(guild=guild)
    except discord.LoginFailure as error:
        print(f"Cannot sync: DISCORD_TOKEN was rejected by Discord ({error}).")
        return 2
    except (aiohttp.ClientError, OSError) as error:
        print(
            f"Cannot sync: Discord is unreachable at {settings.discord_api_url} "
            f"({type(error).__name__})."
        )
        return 1
    finally:
        await bot.close()
        await storage.close()
    where = f"guild {settings.sync_guild_id}" if guild is not None else "all guilds (global)"
    print(f"Registered {len(synced)} commands for {where}.")
    return 0


async def check_tokens(settings: Settings) -> int:
    """Validate both tokens and print what was found; exit 1 when either is unusable."""
    point_discord_at(settings)
    ok = True
    http = discord.http.HTTPClient(discord.utils.MISSING)
    try:
        me = await http.static_login(settings.discord_token.get_secret_value())
        print(f"Discord: OK, logged in as {me['username']} (id {me['id']}).")
    except discord.LoginFailure:
        ok = False
        print("Discord: DISCORD_TOKEN was rejected (401).")
    except (discord.HTTPException, OSError) as error:
        ok = False
        print(f"Discord: could not reach {settings.discord_api_url} ({type(error).__name__}).")
    finally:
        await http.close()
    if settings.openshock_token is None:
        print("OpenShock: no OPENSHOCK_TOKEN set (optional); wearers link their own accounts.")
    else:
        async with OpenShockRest(
            settings.api_url, settings.openshock_token.get_secret_value()
        ) as rest:
            try:
                user = await rest.get_self()
                print(f"OpenShock: OK, token of {user.name} at {settings.api_url}.")
            except OpenShockError as error:
                ok = False
                print(f"OpenShock: {error}")
    print(
        f"Database: {settings.database_path}; operator caps {settings.max_intensity} %, "
        f"{settings.max_duration_ms / 1000:g} s."
    )
    return 0 if ok else 1
