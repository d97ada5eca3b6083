"""/account: link an OpenShock account with an API token, unlink it, and see how it is doing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import report_component_error
from bot.domain.text import inert
from bot.openshock.errors import OpenShockError
from bot.openshock.hub import HubConnection, HubState
from bot.openshock.models import ShockerDirectory, TokenInfo
from bot.services.accounts import (
    NEEDED_PERMISSIONS,
    AccountService,
    LinkResult,
    require_account,
)
from bot.services.control.facts import token_limits
from bot.storage.models import Account, AccountState, Share
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot


FIELD_LIMIT = 1024  # Discord's limit for one embed field value
STATUS_READ_WAIT = 3.0  # how long /account status waits for a fresh read of the lists


def clip_lines(lines: Sequence[str], empty: str, limit: int = FIELD_LIMIT) -> str:
    """Join lines for an embed field, ending in "… and N more" when they do not all fit."""
    if not lines:
        return empty
    out: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        more = f"… and {len(lines) - index} more"
        if used + len(line) + 1 + len(more) > limit and index < len(lines) - 1:
            out.append(more)
            break
        out.append(line[:limit])
        used += len(line) + 1
    return "\n".join(out)[:limit]


def timestamp(dt_or_seconds: float) -> str:
    """A Discord timestamp: shown in each reader's own time zone."""
    return f"<t:{int(dt_or_seconds)}:R>"


def describe_connection(
    account: Account, hub: HubConnection | None, *, server_allowed: bool = True
) -> str:
    if account.state is AccountState.INVALID:
        reason = account.state_reason or "OpenShock rejected the token"
        return f"⛔ Token invalid: {reason} Link a new token with `/account link`."
    if hub is None and not server_allowed:
        return (
            "⛔ Not connected: this bot no longer allows your account's server. Link an account "
            "on an allowed server with `/account link`, or ask the bot's operator."
        )
    if hub is None:
        return "⚫ Not connected."
    status = hub.status
    since = timestamp(status.since.timestamp())
    if status.state is HubState.CONNECTED:
        return f"🟢 Connected since {since}."
    if status.state is HubState.CONNECTING:
        error = f" Last error: {status.last_error}." if status.last_error else ""
        return f"🟡 Connecting (since {since}).{error}"
    if status.state is HubState.INVALID:
        return "⛔ OpenShock rejected the token. Link a new one with `/account link`."
    return "⚫ Not connected."


def device_line(hub: HubConnection | None, device_id: Any, name: str, owner: str | None) -> str:
    state = hub.device_state(device_id) if hub is not None and hub.connected else None
    whose = f" (shared by {inert(owner)})" if owner else ""
    if state is None:
        return f"❔ **{inert(name)}**{whose}: state unknown (not connected)"
    firmware = f", firmware {inert(state.firmware_version)}" if state.firmware_version else ""
    if state.online:
        return f"🟢 **{inert(name)}**{whose}: online{firmware}"
    return f"⚫ **{inert(name)}**{whose}: offline{firmware}"


def _guild_names(bot: discord.Client, guild_ids: Iterable[int]) -> str:
    names = []
    for guild_id in sorted(set(guild_ids)):
        guild = bot.get_guild(guild_id)
        names.append(inert(guild.name) if guild is not None else f"server {guild_id}")
    return ", ".join(names)


def shocker_lines(
    bot: discord.Client, directory: ShockerDirectory | None, shares: Sequence[Share]
) -> list[str]:
    by_shocker: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for share in shares:
        by_shocker.setdefault(share.shocker_id, []).append(share.guild_id)
        names[share.shocker_id] = share.shocker_name
    lines = []
    known = directory.all() if directory is not None else []
    for shocker in known:
        guilds = by_shocker.pop(str(shocker.id), [])
        where = f"shared in {_guild_names(bot, guilds)}" if guilds else "not shared in any server"
        origin = inert(shocker.device_name)
        if not shocker.is_own:
            origin += f", shared with you by {inert(shocker.owner_name or '?')}"
        paused = " · paused on OpenShock" if shocker.is_paused else ""
        lines.append(f"**{inert(shocker.name)}** ({origin}){paused}: {where}")
    for shocker_id, guilds in by_shocker.items():
        state = "no longer on your account" if directory is not None else "list not loaded"
        lines.append(
            f"**{inert(names[shocker_id])}** ({state}): shared in {_guild_names(bot, guilds)}"
        )
    return lines


RECOMMENDATION = (
    "Recommended: a token with only `shockers.use` and `shockers.pause` and a low intensity "
    "limit (OpenShock → Settings → API Tokens). OpenShock does not apply a token's limits over "
    "the live connection the bot uses, so the bot applies them itself: that limit holds for "
    "everything sent through this bot."
)


def token_text(info: TokenInfo) -> str:
    """The token's scopes and control limits, for its owner only (link reply, status)."""
    permissions = ", ".join(f"`{p}`" for p in sorted(info.permissions)) or "none"
    lines = [f"**{inert(info.name)}** · scopes: {permissions}"]
    limits = token_limits(info)
    if limits is None:
        lines.append(
            "Control limits: this OpenShock server does not support limits on a token, so "
            "only your share caps (`/shockers share`) apply."
        )
    else:
        if limits.paused:
            lines.append(
                "⏸️ This token is **paused** on OpenShock: only Stop is sent until you resume it."
            )
        if limits.limits_anything:
            lines.append(
                f"Control limits: {limits.describe().removesuffix('; paused')}. The bot applies "
                "them to everything it sends, as OpenShock does for its own API."
            )
        else:
            lines.append(f"Control limits: none. {RECOMMENDATION}")
    return clip_lines(lines, "")


def link_embed(result: LinkResult, connection: str) -> discord.Embed:
    account = result.account
    verb = "Re-linked" if result.replaced else "Linked"
    embed = discord.Embed(
        title=f"{verb} to OpenShock as {inert(result.user.name)}",
        description=(
            f"Your Discord account is linked to the OpenShock account **{inert(result.user.name)}**"
            f" on {account.api_url}."
            + (" The previous token was replaced." if result.replaced else "")
        ),
    )
    own = [
        f"**{inert(device.name)}**: "
        + (", ".join(inert(s.name) for s in device.shockers) or "no shockers")
        for device in result.own
    ]
    embed.add_field(
        name="Your shockers", value=clip_lines(own, "None on this account yet."), inline=False
    )
    shared = [
        f"{inert(owner.name)} · **{inert(device.name)}**: "
        + ", ".join(inert(s.name) for s in device.shockers)
        for owner in result.shared
        for device in owner.devices
    ]
    if shared:
        embed.add_field(name="Shared with you", value=clip_lines(shared, ""), inline=False)
    warnings = []
    if result.extra_permissions:
        warnings.append(
            "This token can also do "
            + ", ".join(f"`{p}`" for p in result.extra_permissions)
            + ". The bot only needs "
            + " and ".join(f"`{p}`" for p in sorted(NEEDED_PERMISSIONS))
            + ": consider a token with just those (OpenShock → Settings → API Tokens)."
        )
    if result.missing_permissions:
        warnings.append(
            "This token lacks "
            + ", ".join(f"`{p}`" for p in result.missing_permissions)
            + ": some of what the bot does may not work."
        )
    if result.token_problem:
        warnings.append(f"Could not read the token's permissions: {result.token_problem}")
    if warnings:
        embed.add_field(name="⚠️ Token permissions", value=clip_lines(warnings, ""), inline=False)
    if result.token is not None:
        embed.add_field(name="API token", value=token_text(result.token), inline=False)
    embed.add_field(name="Connection", value=connection, inline=False)
    embed.set_footer(text="Next: make a shocker usable in a server with /shockers share.")
    return embed


class LinkModal(discord.ui.Modal, title="Link your OpenShock account"):
    def __init__(self, cog: AccountCog) -> None:
        super().__init__(timeout=600)
        self.cog = cog
        self.token: discord.ui.TextInput[LinkModal] = discord.ui.TextInput(
            label="API token",
            placeholder="OpenShock → Settings → API Tokens",
            min_length=8,
            max_length=256,
        )
        self.server: discord.ui.TextInput[LinkModal] = discord.ui.TextInput(
            label="Server URL (optional)",
            placeholder=cog.accounts.default_api_url,
            required=False,
            max_length=300,
        )
        self.add_item(self.token)
        self.add_item(self.server)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        # The checks below talk to OpenShock: answer Discord within its 3 s first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.cog.finish_link(interaction, self.token.value, self.server.value)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception
    ) -> None:
        await report_component_error(interaction, error, "/account link")


@app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
class AccountCog(commands.GroupCog, group_name="account", description="Your OpenShock account"):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        self.accounts = AccountService(
            bot.storage,
            connect=bot.connect_account,
            stop=bot.hubs.stop,
            default_api_url=bot.settings.api_url,
            servers=bot.settings.server_policy,
            on_unlinked=bot.account_unlinked,
        )
        # How long the link reply waits to say whether the live connection came up.
        self.connect_wait = 5.0
        super().__init__()

    async def finish_link(
        self, interaction: discord.Interaction[Any], token: str, server: str | None
    ) -> None:
        result = await self.accounts.link(interaction.user.id, token, server)
        hub = self.bot.hubs.get(result.account.id)
        if hub is not None:
            # Either way the reply describes the connection from the hub's status.
            with contextlib.suppress(OpenShockError):
                await hub.wait_connected(self.connect_wait)
        await reply(interaction, embed=link_embed(result, describe_connection(result.account, hub)))

    @app_commands.command(name="link", description="Link your OpenShock account with an API token")
    async def link(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_modal(LinkModal(self))

    @app_commands.command(
        name="unlink", description="Forget your token and stop sharing your shockers everywhere"
    )
    async def unlink(self, interaction: discord.Interaction[Any]) -> None:
        account, summary = await self.accounts.unlink(interaction.user.id)
        removed = [
            "your API token",
            _count(summary.shares, "shocker share", "shocker shares"),
            _count(summary.blocks, "block", "blocks"),
        ]
        if summary.pending_events:
            removed.append(
                _count(summary.pending_events, "feed event", "feed events") + " not yet posted"
            )
        text = (
            f"Unlinked the OpenShock account **{inert(account.openshock_name)}** and closed its "
            f"connection. Deleted, in every server: {', '.join(removed)}."
        )
        if account.is_operator:
            text += (
                " This was the operator's account (OPENSHOCK_TOKEN): it is linked again at the "
                "next start unless that setting is removed."
            )
        await reply(interaction, text)

    @app_commands.command(name="status", description="Your account, its connection and devices")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        account = await require_account(self.storage, interaction.user.id)
        await interaction.response.defer(ephemeral=True, thinking=True)
        hub = self.bot.hubs.get(account.id)
        directory = None
        if hub is not None and hub.connected:
            # Read again now: a wearer who just changed their token's limits on OpenShock sees
            # (and gets) them at once.
            try:
                async with asyncio.timeout(STATUS_READ_WAIT):  # (not 3.11's wait_for)
                    directory = await hub.refresh_shockers()
            except (OpenShockError, TimeoutError):
                directory = None
        if directory is None and hub is not None:
            directory = hub.shockers
        shares = await self.storage.shares.of_account(account.id)
        embed = discord.Embed(title=f"OpenShock account {inert(account.openshock_name)}")
        embed.add_field(name="Server", value=account.api_url, inline=True)
        embed.add_field(name="Linked", value=timestamp(account.linked_at), inline=True)
        allowed = self.bot.settings.server_policy.reach(account.api_url) is not None
        connection = describe_connection(account, hub, server_allowed=allowed)
        embed.add_field(name="Connection", value=connection, inline=False)
        if directory is not None and directory.token is not None:
            embed.add_field(name="API token", value=token_text(directory.token), inline=False)
        devices: list[str] = []
        if directory is not None:
            devices += [device_line(hub, d.id, d.name, None) for d in directory.own]
            devices += [
                device_line(hub, d.id, d.name, owner.name)
                for owner in directory.shared
                for d in owner.devices
            ]
        embed.add_field(
            name="Devices",
            value=clip_lines(
                devices, "None." if directory is not None else "Not known (not connected)."
            ),
            inline=False,
        )
        embed.add_field(
            name="Shockers",
            value=clip_lines(shocker_lines(self.bot, directory, shares), "None."),
            inline=False,
        )
        await reply(interaction, embed=embed)


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"
