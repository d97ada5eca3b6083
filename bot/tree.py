"""The command tree and its one error handler: each failure becomes one clear ephemeral sentence."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.errors import UserError
from bot.openshock.errors import OpenShockError

if TYPE_CHECKING:
    from bot.client import OpenShockBot

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on our side. It has been logged for the bot's operator."


def describe_error(error: BaseException) -> tuple[str, bool]:
    """The sentence for the user, and whether the error was expected (no traceback needed)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, app_commands.TransformerError) and isinstance(
        error.__cause__, UserError | OpenShockError
    ):
        error = error.__cause__  # an option's own refusal (a Transformer raising UserError)
    if isinstance(error, UserError):
        return error.message, True
    if isinstance(error, OpenShockError):
        return str(error), True
    if isinstance(error, app_commands.MissingPermissions):
        missing = ", ".join(
            p.replace("_", " ").replace("guild", "server") for p in error.missing_permissions
        )
        return f"You need the {missing.title()} permission to use this command.", True
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server.", True
    if isinstance(error, app_commands.TransformerError):
        return f"{error.value!r} is not a valid value for this option.", True
    if isinstance(error, app_commands.CheckFailure):
        return "You are not allowed to use this command here.", True
    return APOLOGY, False


async def reply(
    interaction: discord.Interaction[OpenShockBot],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer the interaction, whether or not it was already answered or deferred."""
    kwargs: dict[str, Any] = {
        "content": content,
        "ephemeral": ephemeral,
        "allowed_mentions": discord.AllowedMentions.none(),
    }
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if interaction.response.is_done():
        await interaction.followup.send(**kwargs)
    else:
        await interaction.response.send_message(**kwargs)


class BotTree(app_commands.CommandTree["OpenShockBot"]):
    async def on_error(
        self, interaction: discord.Interaction[OpenShockBot], error: app_commands.AppCommandError
    ) -> None:
        message, expected = describe_error(error)
        name = interaction.command.qualified_name if interaction.command else "?"
        if expected:
            log.info("/%s by %s refused: %s", name, interaction.user.id, message)
        else:
            log.error(
                "/%s by %s in guild %s failed",
                name,
                interaction.user.id,
                interaction.guild_id,
                exc_info=error,
            )
        try:
            await reply(interaction, message)
        except discord.HTTPException:
            log.warning("Could not send the error reply for /%s", name, exc_info=True)
