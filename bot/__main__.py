"""Command line: `python -m bot [run|migrate|sync|check]`.

Each sub-command prints one clear line on a configuration problem and exits with status 2; no
traceback reaches the operator for a mistake in their settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot.config import ConfigError, Settings, load_settings, remember_secrets
from bot.crypto import EncryptionKeyError, TokenCipher, load_or_create_key
from bot.logs import setup_logging
from bot.storage import Database, MigrationError, Storage

log = logging.getLogger("bot")

EXIT_CONFIG = 2


class StartupError(Exception):
    """Something the operator must fix before the bot can start; the message says what."""


def _cipher(settings: Settings) -> TokenCipher:
    return TokenCipher(load_or_create_key(settings))


async def open_storage(settings: Settings) -> Storage:
    """Open the database (migrating it) with the configured key, or explain why not."""
    try:
        return await Storage.open(settings.database_path, _cipher(settings))
    except (MigrationError, EncryptionKeyError) as error:
        raise StartupError(str(error)) from None


async def cmd_migrate(settings: Settings) -> int:
    db = await Database.open(settings.database_path, migrate=False)
    try:
        try:
            applied = await db.migrate()
        except MigrationError as error:
            raise StartupError(str(error)) from None
        version = await db.user_version()
    finally:
        await db.close()
    names = ", ".join(migration.name for migration in applied) or "nothing to apply"
    print(f"Database {settings.database_path} is at version {version} ({names}).")
    return 0


async def cmd_run(settings: Settings) -> int:
    from bot.app import run_bot  # discord.py is only imported by the commands that need it

    storage = await open_storage(settings)
    return await run_bot(settings, storage)


async def cmd_sync(settings: Settings) -> int:
    from bot.app import sync_commands

    storage = await open_storage(settings)
    return await sync_commands(settings, storage)


async def cmd_check(settings: Settings) -> int:
    from bot.app import check_tokens

    return await check_tokens(settings)


COMMANDS: dict[str, Callable[[Settings], Coroutine[Any, Any, int]]] = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "sync": cmd_sync,
    "check": cmd_check,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="The OpenShock Discord bot.")
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=sorted(COMMANDS),
        help="run (default): start the bot; migrate: apply database migrations; "
        "sync: register the slash commands; check: validate configuration and tokens",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level)
    remember_secrets(settings)
    try:
        return asyncio.run(COMMANDS[args.command](settings))
    except (StartupError, EncryptionKeyError, MigrationError) as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
