"""Small pieces every cog uses: admin checks and autocomplete that never fails loudly."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec

import discord
from discord import app_commands

from bot.domain.controls import MAX_INTENSITY, MIN_INTENSITY, format_duration
from bot.errors import UserError
from bot.services.control import Sender
from bot.storage import Storage
from bot.storage.models import Share
from bot.tree import describe_error, reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

P = ParamSpec("P")
Choices = list[app_commands.Choice[str]]

# Discord allows at most 25 autocomplete choices, each name at most 100 characters.
MAX_CHOICES = 25


def safe_autocomplete(
    func: Callable[P, Coroutine[Any, Any, Choices]],
) -> Callable[P, Coroutine[Any, Any, Choices]]:
    """An autocomplete that fails shows an empty list, never "loading options failed"."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Choices:
        try:
            choices = await func(*args, **kwargs)
        except Exception:
            log.exception("Autocomplete %s failed", func.__qualname__)
            return []
        return [
            app_commands.Choice(name=choice.name[:100], value=choice.value)
            for choice in choices[:MAX_CHOICES]
        ]

    return wrapper


def is_admin(interaction: discord.Interaction[OpenShockBot]) -> bool:
    """Manage Server in this guild, from the permissions Discord sent with the interaction."""
    return interaction.guild_id is not None and bool(interaction.permissions.manage_guild)


def require_manage_guild(interaction: discord.Interaction[OpenShockBot]) -> None:
    """The run-time half of an admin group (use in the GroupCog's `interaction_check`, with
    `default_permissions=discord.Permissions(manage_guild=True)` on the class)."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if not interaction.permissions.manage_guild:
        raise app_commands.MissingPermissions(["manage_guild"])


def seconds_to_ms(seconds: float, *, option: str, minimum_ms: int, maximum_ms: int) -> int:
    """A duration option in seconds, re-checked at run time (Discord's bounds are a convenience)."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        raise UserError(f"`{option}` must be a number of seconds.")
    scaled = seconds * 1000  # a forged 1e308 becomes inf here: out of range, not an error
    ms = round(scaled) if scaled not in (float("inf"), float("-inf")) else None
    if ms is None or not minimum_ms <= ms <= maximum_ms:
        raise UserError(
            f"`{option}` must be between {format_duration(minimum_ms)} and "
            f"{format_duration(maximum_ms)}."
        )
    return ms


def optional_seconds_to_ms(
    seconds: float | None, *, option: str, minimum_ms: int, maximum_ms: int
) -> int | None:
    """`seconds_to_ms` for an option that may be left empty."""
    if seconds is None:
        return None
    return seconds_to_ms(seconds, option=option, minimum_ms=minimum_ms, maximum_ms=maximum_ms)


def types_text(shock: bool, vibrate: bool, sound: bool) -> str:
    """The control types a share or grant allows, as a member reads them."""
    allowed = [
        name for name, ok in (("shock", shock), ("vibrate", vibrate), ("sound", sound)) if ok
    ]
    return ", ".join(allowed) or "stop only"


def check_percent(value: int, *, option: str, maximum: int = MAX_INTENSITY) -> int:
    if not MIN_INTENSITY <= value <= maximum:
        raise UserError(f"`{option}` must be between {MIN_INTENSITY} and {maximum} %.")
    return value


def sender_of(interaction: discord.Interaction[OpenShockBot]) -> Sender:
    """The member who used the interaction, as the control pipeline sees them."""
    user = interaction.user
    return Sender(
        member_id=user.id,
        role_ids=frozenset(member_role_ids(user)),
        display_name=user.display_name,
    )


def member_role_ids(member: object) -> list[int]:
    """The role ids Discord sent with the member. `Member.roles` needs the guild cache to map ids
    to Role objects; the ids themselves always come with the interaction (`_roles`)."""
    return [int(role_id) for role_id in getattr(member, "_roles", ())]


async def shared_shocker_choices(storage: Storage, guild_id: int | None, current: str) -> Choices:
    """Autocomplete over every shocker shared in the guild, named with its wearer's account."""
    if guild_id is None:
        return []
    needle = current.casefold()
    choices = []
    for share in await storage.shares.in_guild(guild_id):
        if needle in share.shocker_name.casefold() or needle == share.shocker_id:
            choices.append(app_commands.Choice(name=share.shocker_name, value=share.shocker_id))
    return choices


async def resolve_shared_shocker(storage: Storage, guild_id: int, value: str) -> Share:
    """A shocker shared in this guild, by id (what autocomplete sends) or by its exact name.
    Anything else is refused: typed values are never trusted."""
    share = await storage.shares.get(guild_id, value.strip())
    if share is not None:
        return share
    named = [
        s
        for s in await storage.shares.in_guild(guild_id)
        if s.shocker_name.casefold() == value.strip().casefold()
    ]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise UserError("Several shockers here have that name; pick one from the list.")
    raise UserError("That is not a shocker shared in this server; pick one from the list.")


async def report_component_error(
    interaction: discord.Interaction[OpenShockBot], error: Exception, what: str
) -> None:
    """Modals and buttons bypass the tree's error handler: answer their errors the same way (one
    ephemeral sentence for the expected, an apology and a logged traceback for the rest)."""
    message, expected = describe_error(error)
    if expected:
        log.info("%s by %s refused: %s", what, interaction.user.id, message)
    else:
        log.error("%s by %s failed", what, interaction.user.id, exc_info=error)
    try:
        await reply(interaction, message)
    except discord.HTTPException:
        log.warning("Could not send the error reply for %s", what, exc_info=True)
