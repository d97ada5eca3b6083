"""/permissions through the real command tree."""

from __future__ import annotations

from tests.harness import Harness


async def test_non_admin_cannot_grant_even_when_the_command_is_visible(harness: Harness) -> None:
    bob = harness.discord_user("bob")
    payload = harness.ix.slash(
        "permissions grant", {"who": harness.ix.everyone}, user=bob, types={"who": "mentionable"}
    )
    await harness.run(payload)
    reply = harness.discord.replies_for(payload)
    assert reply.ephemeral
    assert "Manage Server" in reply.text
    assert await harness.storage.grants.in_guild(harness.discord.guild_id) == []


async def test_admin_grants_everyone_and_lists_it(harness: Harness) -> None:
    admin = harness.discord_user("admin")
    grant = harness.ix.slash(
        "permissions grant",
        {"who": harness.ix.everyone, "max_intensity": 40, "cooldown": 5, "sound": False},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await harness.run(grant)
    assert "Granted: @everyone → all shockers: shock, vibrate, ≤ 40 %, cooldown 5 s" in (
        harness.discord.replies_for(grant).text
    )
    (stored,) = await harness.storage.grants.in_guild(harness.discord.guild_id)
    assert (stored.max_intensity, stored.cooldown_ms, stored.allow_sound) == (40, 5000, False)

    listing = harness.ix.slash("permissions list", user=admin, admin=True)
    await harness.run(listing)
    assert "@everyone → all shockers" in harness.discord.replies_for(listing).text


async def test_grant_for_an_unshared_shocker_is_refused(harness: Harness) -> None:
    admin = harness.discord_user("admin")
    payload = harness.ix.slash(
        "permissions grant",
        {"who": harness.ix.everyone, "shocker": "not-a-shocker"},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await harness.run(payload)
    assert "not a shocker shared in this server" in harness.discord.replies_for(payload).text
    assert await harness.storage.grants.in_guild(harness.discord.guild_id) == []


async def test_limits_and_revoke(harness: Harness) -> None:
    admin = harness.discord_user("admin")
    limits = harness.ix.slash(
        "permissions limits", {"max_intensity": 30, "max_duration": 2.5}, user=admin, admin=True
    )
    await harness.run(limits)
    assert "30 %, 2.5 s" in harness.discord.replies_for(limits).text
    settings = await harness.storage.guild_settings.get(harness.discord.guild_id)
    assert (settings.max_intensity, settings.max_duration_ms) == (30, 2500)

    revoke = harness.ix.slash(
        "permissions revoke",
        {"who": harness.ix.everyone},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await harness.run(revoke)
    assert "There is no such grant" in harness.discord.replies_for(revoke).text


async def test_registration_payload_of_admin_and_control_commands(harness: Harness) -> None:
    """What Discord is told (visibility is a convenience; the checks run at run time too)."""
    registered = {
        command.name: command.to_dict(harness.bot.tree)
        for command in harness.bot.tree.get_commands()
    }
    manage_guild = 1 << 5
    for admin in ("permissions", "feed"):
        assert registered[admin]["default_member_permissions"] == manage_guild
        assert registered[admin]["contexts"] == [0]  # servers only
    for name, options in {
        "shock": ["shocker", "intensity", "duration"],
        "vibrate": ["shocker", "intensity", "duration"],
        "sound": ["shocker", "duration", "intensity"],
        "stop": ["shocker"],
    }.items():
        command = registered[name]
        assert command["contexts"] == [0]
        assert [o["name"] for o in command["options"]] == options
        assert command["default_member_permissions"] is None
    intensity = next(o for o in registered["shock"]["options"] if o["name"] == "intensity")
    assert (intensity["min_value"], intensity["max_value"], intensity["required"]) == (1, 100, True)
    duration = next(o for o in registered["shock"]["options"] if o["name"] == "duration")
    assert (duration["min_value"], duration["max_value"]) == (0.3, 65.535)
    assert registered["shock"]["options"][0]["autocomplete"] is True
    grant = next(o for o in registered["permissions"]["options"] if o["name"] == "grant")
    assert [o["name"] for o in grant["options"]] == [
        "who",
        "shocker",
        "max_intensity",
        "max_duration",
        "cooldown",
        "shock",
        "vibrate",
        "sound",
        "expires",
    ]
    assert grant["options"][0]["type"] == 9  # mentionable: a role (incl. @everyone) or a member
    assert registered["panic"].get("options", []) == []
