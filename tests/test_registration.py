"""What Discord is told about every command: installed to servers only, never to users."""

from __future__ import annotations

from tests.harness import Harness

GUILD_INSTALL = 0  # integration type
GUILD, BOT_DM = 0, 1  # interaction context types


async def test_every_command_is_guild_install_only(harness: Harness) -> None:
    registered = {
        command.name: command.to_dict(harness.bot.tree)
        for command in harness.bot.tree.get_commands()
    }
    assert registered
    for name, payload in registered.items():
        # Enabling user installs in the developer portal changes nothing.
        assert payload["integration_types"] == [GUILD_INSTALL], name
        # Never a group DM or another user's DM (the private-channel context, which only a
        # user install could reach); unset means Discord's default for a guild install.
        assert set(payload.get("contexts") or [GUILD, BOT_DM]) <= {GUILD, BOT_DM}, name
        if not payload.get("dm_permission", True):
            assert payload["contexts"] == [GUILD], name
    # Linking also works in a DM with the bot.
    assert registered["account"]["contexts"] == [GUILD, BOT_DM]
