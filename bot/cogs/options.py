"""Slash-command options that validate themselves: each a discord.py `Transformer` with its
autocomplete and its refusal in one place. A typed value is never trusted: it must name (by id,
as autocomplete sends, or by exact unique name) something the caller may use.

    async def unshare(self, interaction, shocker: OwnShare)  # → Share

The numeric bounds of the options come from the domain (`bot.domain.controls`); Discord's bounds
are a convenience, so the values are checked again at run time (`check_percent`,
`seconds_to_ms`, and the decision itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import discord
from discord import app_commands

from bot.cogs.common import (
    Choices,
    member_role_ids,
    resolve_shared_shocker,
    safe_autocomplete,
    shared_shocker_choices,
)
from bot.cogs.control_reply import wearer_name
from bot.domain.controls import (
    MAX_INTENSITY,
    MAX_SECONDS,
    MIN_INTENSITY,
    MIN_SECONDS,
    ControlKind,
)
from bot.domain.decision import ShockerAccess
from bot.domain.durations import DurationError, parse_duration
from bot.errors import UserError
from bot.openshock.models import KnownShocker, ShockerDirectory
from bot.services.accounts import require_account, require_usable, shocker_directory
from bot.services.owners import owner_view
from bot.storage import Storage
from bot.storage.models import Share

if TYPE_CHECKING:
    from bot.client import OpenShockBot

    Interaction = discord.Interaction[OpenShockBot]
else:
    Interaction = discord.Interaction

Percent = app_commands.Range[int, MIN_INTENSITY, MAX_INTENSITY]
Seconds = app_commands.Range[float, MIN_SECONDS, MAX_SECONDS]


def _matches(needle: str, name: str, shocker_id: str) -> bool:
    return needle in name.casefold() or needle == shocker_id


def _guild_id(interaction: Interaction) -> int:
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


class SharedShockerTransformer(app_commands.Transformer["OpenShockBot"]):
    """Any shocker shared in this server (→ `Share`); autocomplete lists them all."""

    async def transform(self, interaction: Interaction, value: Any, /) -> Share:
        return await resolve_shared_shocker(
            interaction.client.storage, _guild_id(interaction), str(value)
        )

    @safe_autocomplete
    async def autocomplete(self, interaction: Interaction, value: Any, /) -> Choices:  # type: ignore[override]
        return await shared_shocker_choices(
            interaction.client.storage, interaction.guild_id, str(value)
        )


@dataclass(frozen=True, slots=True)
class ShockerPick:
    """A shocker option as the member gave it: the id autocomplete sent, or a typed name.

    It is not looked up here: the control pipeline reads the share by id anyway, so a lookup
    first would put one more database read on the way to the frame (bench/command_path.py).
    `resolve` is the refusal: what to do when no shocker by that id is shared here."""

    value: str
    guild_id: int

    async def resolve(self, storage: Storage) -> Share:
        """The shocker shared here by that exact unique name, else a refusal."""
        return await resolve_shared_shocker(storage, self.guild_id, self.value)


class UsableShockerTransformer(app_commands.Transformer["OpenShockBot"]):
    """A shocker shared here, offered only when the caller may use it for ``kind`` (each choice
    with its wearer and, when it cannot be used right now, why). The value is a `ShockerPick`:
    the pipeline decides on it by id, and `ShockerPick.resolve` takes a typed name or refuses."""

    def __init__(self, kind: ControlKind) -> None:
        self.kind = kind

    async def transform(self, interaction: Interaction, value: Any, /) -> ShockerPick:
        return ShockerPick(str(value).strip(), _guild_id(interaction))

    @safe_autocomplete
    async def autocomplete(self, interaction: Interaction, value: Any, /) -> Choices:  # type: ignore[override]
        choices = []
        for share, access in await matching_accesses(interaction, value):
            if self.kind in access.types:
                choices.append(await usable_choice(interaction, share, access, self.kind))
        return choices


async def matching_accesses(
    interaction: Interaction, value: Any
) -> list[tuple[Share, ShockerAccess]]:
    """The shares here whose name contains what was typed (or whose id it is), each with what
    the member may do with it: what a control option's autocomplete offers from."""
    if interaction.guild_id is None:
        return []
    bot = interaction.client
    needle = str(value).casefold()
    shares = [
        s
        for s in await bot.storage.shares.in_guild(interaction.guild_id)
        if needle in s.shocker_name.casefold() or needle == s.shocker_id
    ]
    return await bot.control.access(
        shares,
        guild_id=interaction.guild_id,
        member_id=interaction.user.id,
        role_ids=member_role_ids(interaction.user),
    )


async def usable_choice(
    interaction: Interaction, share: Share, access: ShockerAccess, kind: ControlKind
) -> app_commands.Choice[str]:
    """One choice: the shocker with its wearer and, when it can't take `kind` now, why."""
    name = f"{share.shocker_name} ({await wearer_name(interaction, share)})"
    note = availability_note(access, kind)
    return app_commands.Choice(name=f"{name}{note}", value=share.shocker_id)


def availability_note(access: ShockerAccess, kind: ControlKind) -> str:
    if kind in access.usable_now:
        return ""
    if access.undeliverable is not None:
        return " · unavailable"
    if access.hold is not None:
        return " · paused"
    if access.cooldown_remaining_ms > 0:
        return f" · cooldown {access.cooldown_remaining_ms / 1000:.0f} s"
    return ""


class OwnShareTransformer(app_commands.Transformer["OpenShockBot"]):
    """One of the caller's own shares in this server (→ `Share`)."""

    async def transform(self, interaction: Interaction, value: Any, /) -> Share:
        shares = await interaction.client.storage.shares.of_wearer(
            interaction.user.id, _guild_id(interaction)
        )
        return find_own_share(shares, str(value))

    @safe_autocomplete
    async def autocomplete(self, interaction: Interaction, value: Any, /) -> Choices:  # type: ignore[override]
        if interaction.guild_id is None:
            return []
        needle = str(value).strip().casefold()
        return [
            app_commands.Choice(name=share.shocker_name, value=share.shocker_id)
            for share in await interaction.client.storage.shares.of_wearer(
                interaction.user.id, interaction.guild_id
            )
            if _matches(needle, share.shocker_name, share.shocker_id)
        ]


def find_own_share(shares: list[Share], value: str) -> Share:
    """One of the caller's shares in this guild, by id or exact unique name."""
    value = value.strip()
    for share in shares:
        if share.shocker_id == value:
            return share
    named = [s for s in shares if s.shocker_name.casefold() == value.casefold()]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise UserError("Several of your shockers here have that name; pick one from the list.")
    raise UserError("You have not shared that shocker in this server; pick one from the list.")


class RuledShareTransformer(app_commands.Transformer["OpenShockBot"]):
    """A share in this server the caller rules (→ `Share`): one they made, or one of a shocker
    their OpenShock account owns, whoever made it (the owner rules their shocker)."""

    async def transform(self, interaction: Interaction, value: Any, /) -> Share:
        return find_own_share(await ruled_shares(interaction), str(value))

    @safe_autocomplete
    async def autocomplete(self, interaction: Interaction, value: Any, /) -> Choices:  # type: ignore[override]
        if interaction.guild_id is None:
            return []
        needle = str(value).strip().casefold()
        return [
            app_commands.Choice(
                name=share.shocker_name
                if share.wearer_id == interaction.user.id
                else f"{share.shocker_name} (yours, shared here by another member)",
                value=share.shocker_id,
            )
            for share in await ruled_shares(interaction)
            if _matches(needle, share.shocker_name, share.shocker_id)
        ]


async def ruled_shares(interaction: Interaction) -> list[Share]:
    bot = interaction.client
    view = await owner_view(bot.storage, bot.hubs, interaction.user.id)
    return await bot.storage.shares.ruled_in(
        _guild_id(interaction),
        interaction.user.id,
        view.owner if view is not None else None,
        view.own if view is not None else (),
    )


class OwnShockerTransformer(app_commands.Transformer["OpenShockBot"]):
    """One of the caller's shockers on OpenShock, own or shared with their account
    (→ `KnownShocker`). Reading the lists may wait on OpenShock, so it answers Discord first
    (an ephemeral "thinking…")."""

    async def transform(self, interaction: Interaction, value: Any, /) -> KnownShocker:
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)
        bot = interaction.client
        account = await require_account(bot.storage, interaction.user.id)
        require_usable(account)
        directory = await shocker_directory(bot.hubs.get(account.id))
        if directory is None:
            raise UserError(
                "Your shockers could not be read from OpenShock right now; "
                "`/account status` shows the connection. Try again in a moment."
            )
        return find_known_shocker(directory, str(value))

    @safe_autocomplete
    async def autocomplete(self, interaction: Interaction, value: Any, /) -> Choices:  # type: ignore[override]
        bot = interaction.client
        account = await bot.storage.accounts.by_discord_user(interaction.user.id)
        if account is None:
            return []
        directory = await shocker_directory(bot.hubs.get(account.id))
        if directory is None:
            return []
        needle = str(value).strip().casefold()
        return [
            app_commands.Choice(name=_known_choice_name(known), value=str(known.id))
            for known in directory.all()
            if _matches(needle, known.name, str(known.id))
        ]


def _known_choice_name(known: KnownShocker) -> str:
    if known.is_own:
        return f"{known.name} · {known.device_name}"
    return f"{known.name} · {known.device_name} (shared with you by {known.owner_name or '?'})"


def find_known_shocker(directory: ShockerDirectory, value: str) -> KnownShocker:
    """One of the caller's shockers, by id (what autocomplete sends) or exact unique name.
    Anything else is refused: typed values are never trusted."""
    value = value.strip()
    try:
        known = directory.get(UUID(value))
    except ValueError:
        known = None
    if known is not None:
        return known
    named = [s for s in directory.all() if s.name.casefold() == value.casefold()]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise UserError("Several of your shockers have that name; pick one from the list.")
    raise UserError(
        "That is not one of your shockers (or one shared with your OpenShock account); "
        "pick one from the list."
    )


class ExpiryTransformer(app_commands.Transformer["OpenShockBot"]):
    """How long something lasts, as typed (`30m`, `2h`, `1d`, `1w`, `1h30m`) → seconds; at least
    a minute, at most a year (`bot.domain.durations`). Anything else is refused in one sentence."""

    async def transform(self, interaction: Interaction, value: Any, /) -> int:
        try:
            return parse_duration(str(value))
        except DurationError as error:
            raise UserError(f"`expires`: {error.message}") from None


SharedShocker = app_commands.Transform[Share, SharedShockerTransformer]
OwnShare = app_commands.Transform[Share, OwnShareTransformer]
RuledShare = app_commands.Transform[Share, RuledShareTransformer]
OwnShocker = app_commands.Transform[KnownShocker, OwnShockerTransformer]
Expiry = app_commands.Transform[int, ExpiryTransformer]


# A shocker option offered for one kind of control (→ `ShockerPick`).
ShockableShocker = app_commands.Transform[ShockerPick, UsableShockerTransformer(ControlKind.SHOCK)]
VibratableShocker = app_commands.Transform[
    ShockerPick, UsableShockerTransformer(ControlKind.VIBRATE)
]
SoundableShocker = app_commands.Transform[ShockerPick, UsableShockerTransformer(ControlKind.SOUND)]
StoppableShocker = app_commands.Transform[ShockerPick, UsableShockerTransformer(ControlKind.STOP)]
