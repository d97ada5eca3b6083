"""Secrets never reach a log line: checked through the production log handler and redactor."""

from __future__ import annotations

import logging

from bot.logs import DISCORD_TOKEN, REDACTED, SecretRedactor, redactor
from bot.storage.models import FeedKind
from tests.harness import Harness
from tests.production_log import ProductionLog, production_log
from tests.services.feed_helpers import feed_channel, linked_wearer, log_event

__all__ = ["production_log"]

# The shape of a real bot token (base64 user id . timestamp . HMAC); not a real one.
BOT_TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0MzI.GhIjKl.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_Ab"


async def test_a_redirect_loop_at_discord_puts_no_bot_token_in_the_log(
    harness: Harness, production_log: ProductionLog
) -> None:
    h = harness
    await h.restart(discord_token=BOT_TOKEN)
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    # DISCORD_API_BASE_URL answers every post in the channel with a redirect to itself.
    h.discord.fail_channel(channel, 307, count=None, method="POST")

    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name="Bob"))

    await h.discord.wait_for(lambda: "network error: TooManyRedirects" in production_log.text)
    posts = h.discord.requests_matching("POST", rf"^/channels/{channel}/messages$")
    assert posts and posts[0].headers["Authorization"] == f"Bot {BOT_TOKEN}"  # it was sent
    assert BOT_TOKEN not in production_log.text
    assert REDACTED not in production_log.text  # kept out by the message itself, not redacted
    h.discord.clear_faults()


async def test_the_bot_registers_its_discord_token_with_the_redactor(harness: Harness) -> None:
    redactor.forget("discord token")
    assert BOT_TOKEN in redactor.redact(BOT_TOKEN)
    await harness.restart(discord_token=BOT_TOKEN)
    assert redactor.redact(f"Authorization: Bot {BOT_TOKEN}") == f"Authorization: Bot {REDACTED}"


def test_only_strings_shaped_like_a_secret_are_redacted() -> None:
    local = SecretRedactor()
    assert local.remember("discord token", BOT_TOKEN, DISCORD_TOKEN)
    for word in ("Traceback", "123456789012345678", "test-token", "a.b.c"):
        assert not local.remember("other", word, DISCORD_TOKEN)
        assert local.redact(f"{word} here") == f"{word} here"
    assert local.redact(BOT_TOKEN) == REDACTED


def test_a_record_is_redacted_in_message_arguments_and_traceback(
    production_log: ProductionLog,
) -> None:
    redactor.remember("test secret", BOT_TOKEN, DISCORD_TOKEN)
    try:
        try:
            raise RuntimeError(f"boom {BOT_TOKEN}")
        except RuntimeError:
            logging.getLogger("tests").exception("failed with %s", BOT_TOKEN)
    finally:
        redactor.forget("test secret")
    assert "failed with [redacted]" in production_log.text
    assert "RuntimeError: boom [redacted]" in production_log.text
    assert BOT_TOKEN not in production_log.text
