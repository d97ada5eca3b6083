"""/feed: which channel shows the controls, devices and updates feeds of this server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import require_manage_guild
from bot.domain.text import inert
from bot.errors import UserError
from bot.storage.models import Feed, FeedKind
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

FeedChoice = Literal["controls", "devices", "updates"]

FEED_DESCRIPTIONS = {
    FeedKind.CONTROLS: "every control of the shockers shared here, from any source",
    FeedKind.DEVICES: "devices holding a shocker shared here going online or offline, new firmware",
    FeedKind.UPDATES: "firmware updates of those devices, with their progress",
}

# What the bot needs in a feed channel, in the order they are checked.
REQUIRED_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
)

_FEED_CHANNEL_TYPES = (discord.ChannelType.text, discord.ChannelType.news)


class FeedChannel(app_commands.Transformer):
    """A text or announcement channel, taken as Discord resolved it (no cache needed)."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return list(_FEED_CHANNEL_TYPES)

    async def transform(
        self, interaction: discord.Interaction[Any], value: Any, /
    ) -> app_commands.AppCommandChannel:
        if not isinstance(value, app_commands.AppCommandChannel):
            raise UserError("Pick a text or announcement channel for a feed.")
        return value


def compute_permissions(
    *,
    guild_id: int,
    owner_id: int,
    member_id: int,
    member_role_ids: Iterable[int],
    role_permissions: Mapping[int, int],
    overwrites: Sequence[Mapping[str, Any]],
) -> discord.Permissions:
    """A member's permissions in a channel, from raw REST data (Discord's documented algorithm:
    base from @everyone and roles, administrator, then @everyone, role and member overwrites)."""
    if member_id == owner_id:
        return discord.Permissions.all()
    roles = [int(role_id) for role_id in member_role_ids]
    base = role_permissions.get(guild_id, 0)
    for role_id in roles:
        base |= role_permissions.get(role_id, 0)
    if base & discord.Permissions.administrator.flag:
        return discord.Permissions.all()
    by_target = {(int(o["id"]), _overwrite_type(o)): o for o in overwrites}

    def apply(value: int, allow: int, deny: int) -> int:
        return (value & ~deny) | allow

    everyone = by_target.get((guild_id, 0))
    if everyone is not None:
        base = apply(base, int(everyone.get("allow", 0)), int(everyone.get("deny", 0)))
    allow = deny = 0
    for role_id in roles:
        overwrite = by_target.get((role_id, 0))
        if overwrite is not None:
            allow |= int(overwrite.get("allow", 0))
            deny |= int(overwrite.get("deny", 0))
    base = apply(base, allow, deny)
    member = by_target.get((member_id, 1))
    if member is not None:
        base = apply(base, int(member.get("allow", 0)), int(member.get("deny", 0)))
    return discord.Permissions(base)


def _overwrite_type(overwrite: Mapping[str, Any]) -> int:
    kind = overwrite.get("type", 0)
    if kind in ("member", 1, "1"):
        return 1
    return 0


def missing_permissions(permissions: discord.Permissions) -> list[str]:
    return [label for name, label in REQUIRED_PERMISSIONS if not getattr(permissions, name)]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class FeedCog(commands.GroupCog, group_name="feed", description="Where the feeds are posted"):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        # (the overridden signatures take any client; the commands below take this bot's)
        # default_permissions only hides the commands; admins can change that, so check here too.
        require_manage_guild(interaction)
        return True

    @app_commands.command(name="set", description="Post a feed in a channel")
    @app_commands.describe(
        kind="controls: every control; devices: online/offline and firmware; updates: firmware "
        "updates",
        channel="A text channel where I can view, send messages and embed links",
    )
    async def set_(
        self,
        interaction: discord.Interaction[OpenShockBot],
        kind: FeedChoice,
        channel: app_commands.Transform[app_commands.AppCommandChannel, FeedChannel],
    ) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        feed_kind = FeedKind(kind)
        if channel.guild_id != guild_id or channel.type not in _FEED_CHANNEL_TYPES:
            raise UserError("Pick a text or announcement channel of this server.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        permissions = await self.bot_permissions_in(guild_id, channel.id)
        missing = missing_permissions(permissions)
        if missing:
            raise UserError(
                f"I can't post the {kind} feed in {channel.mention}: I need the "
                f"{' and '.join(missing)} permission there."
            )
        result = await self.bot.feeds.set_feed(guild_id, feed_kind, channel.id)
        note = ""
        if result.moved and result.previous_channel_id is not None:
            carried = (
                f" {_count(result.carried, 'event')} not yet posted there will be posted here."
                if result.carried
                else ""
            )
            note += f" It moved from <#{result.previous_channel_id}>.{carried}"
        if feed_kind is FeedKind.CONTROLS:
            note += (
                " Every control of a shocker shared here, from any app, will be shown there "
                "(sharing a shocker here is the wearer's consent to that)."
            )
        await reply(
            interaction,
            f"The **{kind}** feed ({FEED_DESCRIPTIONS[feed_kind]}) will be posted in "
            f"{channel.mention}.{note}",
        )

    @app_commands.command(name="remove", description="Stop posting a feed")
    @app_commands.describe(kind="The feed to stop")
    async def remove(
        self, interaction: discord.Interaction[OpenShockBot], kind: FeedChoice
    ) -> None:
        assert interaction.guild_id is not None
        if await self.bot.feeds.remove_feed(interaction.guild_id, FeedKind(kind)) is None:
            raise UserError(f"The {kind} feed is not set in this server.")
        await reply(interaction, f"The **{kind}** feed is stopped.")

    @app_commands.command(name="list", description="Show where each feed is posted")
    async def list_(self, interaction: discord.Interaction[OpenShockBot]) -> None:
        assert interaction.guild_id is not None
        feeds = {
            feed.kind: feed for feed in await self.storage.feeds.in_guild(interaction.guild_id)
        }
        embed = discord.Embed(title="Feeds")
        for kind in FeedKind:
            embed.add_field(
                name=kind.value, value=describe_feed(feeds.get(kind), kind), inline=False
            )
        await reply(interaction, embed=embed)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.bot.feeds.forget_guild(guild.id)

    # -- the bot's permissions in a channel ----------------------------------------------------

    async def bot_permissions_in(self, guild_id: int, channel_id: int) -> discord.Permissions:
        return await bot_permissions_in(self.bot, guild_id, channel_id)


async def bot_permissions_in(
    bot: OpenShockBot, guild_id: int, channel_id: int
) -> discord.Permissions:
    """The bot's permissions in a channel: from the guild cache when the gateway filled it, else
    over REST."""
    guild = bot.get_guild(guild_id)
    if guild is not None and guild.me is not None:
        cached = guild.get_channel(channel_id)
        if cached is not None:
            return cached.permissions_for(guild.me)
    return await _fetch_permissions(bot, guild_id, channel_id)


async def _fetch_permissions(
    bot: OpenShockBot, guild_id: int, channel_id: int
) -> discord.Permissions:
    assert bot.user is not None
    http = bot.http
    try:
        channel: dict[str, Any] = dict(await http.get_channel(channel_id))
    except (discord.Forbidden, discord.NotFound):
        return discord.Permissions.none()  # the bot cannot even see it
    if int(channel.get("guild_id") or 0) != guild_id:
        raise UserError("Pick a text or announcement channel of this server.")
    guild = await http.get_guild(guild_id)
    member = await http.get_member(guild_id, bot.user.id)
    return compute_permissions(
        guild_id=guild_id,
        owner_id=int(guild["owner_id"]),
        member_id=bot.user.id,
        member_role_ids=[int(role_id) for role_id in member.get("roles", [])],
        role_permissions={
            int(role["id"]): int(role.get("permissions", 0)) for role in guild.get("roles", [])
        },
        overwrites=list(channel.get("permission_overwrites", [])),
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def describe_feed(feed: Feed | None, kind: FeedKind) -> str:
    if feed is None:
        return f"Off. ({FEED_DESCRIPTIONS[kind]})"
    if not feed.enabled:
        reason = inert(feed.disabled_reason or "no access")
        return f"Stopped: I lost access to <#{feed.channel_id}> ({reason}). Set it again."
    return f"<#{feed.channel_id}>"
