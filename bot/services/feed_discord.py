"""The feeds' side of Discord: what they need from it (`DiscordPort`) and the one notice they
send themselves, when a feed channel is lost."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import discord

from bot.domain.feed_render import inert
from bot.storage.models import FeedKind

__all__ = ["ALLOWED_MENTIONS", "DiscordPort", "tell_admins"]

log = logging.getLogger(__name__)

ALLOWED_MENTIONS = discord.AllowedMentions.none()


@dataclass(frozen=True)
class DiscordPort:
    """What the feeds need from Discord: a channel to post in, a guild's raw data (its name,
    owner and system channel), a user to DM. `of(client)` takes them from a discord.py client."""

    channel: Callable[[int], discord.PartialMessageable]
    guild: Callable[[int], Awaitable[Mapping[str, Any]]]
    user: Callable[[int], Awaitable[discord.abc.Messageable]]

    @classmethod
    def of(cls, client: discord.Client) -> DiscordPort:
        return cls(
            channel=client.get_partial_messageable,
            guild=client.http.get_guild,
            user=client.fetch_user,
        )


async def tell_admins(
    discord_: DiscordPort, guild_id: int, channel_id: int, kinds: list[FeedKind], reason: str
) -> None:
    """One notice per disabled feed channel: a DM to the guild owner, or the server's system
    channel when the owner takes no DMs."""
    names = " and ".join(f"`{kind.value}`" for kind in kinds)
    feeds = "feed" if len(kinds) == 1 else "feeds"
    try:
        guild = await discord_.guild(guild_id)
    except discord.HTTPException as error:
        log.warning("Cannot tell guild %d about its lost feed channel: %s", guild_id, error)
        return
    text = (
        f"I can no longer post in <#{channel_id}> on **{inert(guild['name'])}** "
        f"({inert(reason, 500)}), so I stopped the {names} {feeds} there. "
        "Give me View Channel, Send Messages and Embed Links in a channel and run "
        "`/feed set` again to turn it back on."
    )
    try:
        owner = await discord_.user(int(guild["owner_id"]))
        await owner.send(text, allowed_mentions=ALLOWED_MENTIONS)
        return
    except discord.HTTPException as error:
        log.info("Could not DM the owner of guild %d: %s", guild_id, error)
    system = guild.get("system_channel_id")
    if system is not None and int(system) != channel_id:
        try:
            await discord_.channel(int(system)).send(text, allowed_mentions=ALLOWED_MENTIONS)
        except discord.HTTPException as error:
            log.warning("Could not tell guild %d about its feed channel: %s", guild_id, error)
