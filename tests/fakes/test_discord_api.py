"""The fake Discord REST API and the interaction harness, driven by a tiny real discord.py bot."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.http import Route

from tests.fakes.discord_api import FakeDiscordAPI, FakeUser, overwrite
from tests.fakes.interactions import Interactions, load_guild, run_interaction


class Seen:
    """What the tiny bot's callbacks observed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def add(self, name: str, value: Any = None) -> None:
        self.events.append((name, value))

    def get(self, name: str) -> list[Any]:
        return [v for n, v in self.events if n == name]


class ConfirmView(discord.ui.View):
    def __init__(self, seen: Seen) -> None:
        super().__init__(timeout=60)
        self.seen = seen

    @discord.ui.button(label="Confirm", custom_id="confirm", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        self.seen.add("confirm", interaction.user.id)
        await interaction.response.edit_message(content="Confirmed.", view=None)


class LinkModal(discord.ui.Modal, title="Link account"):
    api_token: discord.ui.TextInput[Any] = discord.ui.TextInput(label="API token")
    server: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Server URL", required=False)

    def __init__(self, seen: Seen) -> None:
        super().__init__()
        self.seen = seen

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.seen.add("modal", (self.api_token.value, self.server.value))
        await interaction.response.send_message("Linked.", ephemeral=True)


SHOCKERS = ["Collar", "Cuff", "Belt"]


def make_bot(seen: Seen, bot_cls: Any = commands.Bot) -> commands.Bot:
    bot: commands.Bot = bot_cls(
        command_prefix=commands.when_mentioned, intents=discord.Intents.default()
    )

    shockers = app_commands.Group(name="shockers", description="Your shockers")

    @shockers.command(name="share", description="Share a shocker")
    async def share(
        interaction: discord.Interaction,
        shocker: str,
        max_intensity: app_commands.Range[int, 1, 100] = 25,
        shock: bool = True,
    ) -> None:
        seen.add("share", (shocker, max_intensity, shock, interaction.permissions.manage_guild))
        await interaction.response.send_message(
            f"Shared {shocker} up to {max_intensity} %", ephemeral=True
        )

    @shockers.command(name="list", description="List shockers")
    async def list_(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.edit_original_response(content="3 shockers")
        await interaction.followup.send("second page", ephemeral=True)

    bot.tree.add_command(shockers)

    async def shocker_autocomplete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=s, value=s.lower())
            for s in SHOCKERS
            if current.lower() in s.lower()
        ]

    @bot.tree.command(name="grant", description="Grant control")
    @app_commands.autocomplete(shocker=shocker_autocomplete)
    async def grant(
        interaction: discord.Interaction,
        who: discord.Member | discord.Role,
        shocker: str | None = None,
    ) -> None:
        seen.add("grant", who)
        await interaction.response.send_message(f"granted {who.mention}", ephemeral=True)

    @bot.tree.command(name="reboot", description="Reboot with confirmation")
    async def reboot(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Sure?", view=ConfirmView(seen), ephemeral=True)

    @bot.tree.command(name="link", description="Link an account")
    async def link(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(LinkModal(seen))

    @bot.tree.command(name="whoami", description="Who am I")
    async def whoami(interaction: discord.Interaction) -> None:
        seen.add("whoami", (interaction.guild_id, interaction.user.id, interaction.channel))
        await interaction.response.send_message(f"you are {interaction.user.name}")

    @bot.tree.command(name="feed", description="Set a feed channel")
    async def feed(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        seen.add("feed", channel)
        await interaction.response.send_message(f"feed in {channel.mention}", ephemeral=True)

    @bot.tree.command(name="export", description="Send a file")
    async def export(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            "here", file=discord.File(io.BytesIO(b"a,b\n1,2\n"), filename="history.csv")
        )

    async def setup_hook() -> None:
        seen.add("setup_hook")

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@pytest.fixture
async def tiny(
    discord_api: FakeDiscordAPI, discord_login: Any
) -> tuple[commands.Bot, Seen, Interactions]:
    seen = Seen()
    bot = await discord_login(make_bot(seen))
    ix = Interactions(
        discord_api.app_id,
        discord_api.guild_id,
        channel=discord_api.channel(discord_api.channel_id),
        tree=bot.tree,
    )
    return bot, seen, ix


async def test_login_sets_user_application_and_owner(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, seen, _ = tiny
    assert discord_api.base_url == Route.BASE
    assert seen.get("setup_hook") == [None]
    assert bot.user is not None and bot.user.id == discord_api.bot_user.id
    assert bot.application_id == discord_api.app_id
    info = await bot.application_info()
    assert info.owner.id == discord_api.owner.id
    me = discord_api.requests_matching("GET", r"^/users/@me$")[0]
    assert me.headers["Authorization"] == "Bot test-token"


async def test_wrong_token_is_login_failure(discord_api: FakeDiscordAPI) -> None:
    discord_api.token = "right"
    client = discord.Client(intents=discord.Intents.none())
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("wrong")
    finally:
        await client.close()


async def test_slash_subcommand_reply_is_ephemeral_callback(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, seen, ix = tiny
    payload = ix.slash("shockers share", {"shocker": "abc", "max_intensity": 30}, admin=True)
    inter = await run_interaction(bot, payload)
    assert not inter.command_failed
    assert seen.get("share") == [("abc", 30, True, True)]
    (callback,) = discord_api.callbacks()
    assert callback["type"] == 4
    assert callback["data"]["flags"] == 64
    reply = discord_api.replies_for(payload)
    assert reply is discord_api.last_reply()
    assert reply.ephemeral and reply.text == "Shared abc up to 30 %"
    cb_req = discord_api.requests_matching("POST", r"/callback$")[0]
    assert cb_req.query == {"with_response": "1"}
    # ephemeral replies are not in the channel
    assert discord_api.channel_messages(discord_api.channel_id) == []


async def test_non_admin_and_public_reply(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, seen, ix = tiny
    await run_interaction(bot, ix.slash("shockers share", {"shocker": "x"}))
    assert seen.get("share") == [("x", 25, True, False)]
    bob = FakeUser.make("bob")
    payload = ix.slash("whoami", user=bob)
    await run_interaction(bot, payload)
    ((gid, uid, channel),) = seen.get("whoami")
    assert (gid, uid) == (discord_api.guild_id, bob.id)
    assert isinstance(channel, discord.TextChannel) and channel.id == discord_api.channel_id
    assert not discord_api.replies_for(payload).ephemeral
    assert [m["content"] for m in discord_api.channel_messages(discord_api.channel_id)] == [
        "you are bob"
    ]


async def test_dm_context(
    discord_api: FakeDiscordAPI,
    tiny: tuple[commands.Bot, Seen, Interactions],
    interactions: Interactions,
) -> None:
    bot, seen, _ = tiny
    ix = interactions.for_tree(bot.tree).dm()
    payload = ix.slash("whoami")
    assert "member" not in payload and payload["context"] == 1
    await run_interaction(bot, payload)
    ((gid, uid, channel),) = seen.get("whoami")
    assert gid is None and uid == ix.user.id
    assert isinstance(channel, discord.DMChannel)
    assert discord_api.replies_for(payload).text == f"you are {ix.user.username}"


async def test_deferred_command_edit_and_followup(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, ix = tiny
    payload = ix.slash("shockers list")
    await run_interaction(bot, payload)
    assert discord_api.callbacks() == [{"type": 5, "data": {"flags": 64}}]
    reply = discord_api.replies_for(payload)
    assert reply.deferred and reply.ephemeral and not reply.thinking
    assert [m["content"] for m in reply.messages] == ["3 shockers", "second page"]
    assert reply.text == "3 shockers\nsecond page"
    (followup,) = discord_api.followups()
    assert followup["content"] == "second page" and followup["flags"] & 64
    assert discord_api.requests_matching("PATCH", r"/messages/@original$")


async def test_autocomplete_choices(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, ix = tiny
    payload = ix.autocomplete("grant", focused="shocker", value="c")
    await run_interaction(bot, payload)
    (callback,) = discord_api.callbacks()
    assert callback["type"] == 8
    assert discord_api.replies_for(payload).choices == [
        {"name": "Collar", "value": "collar"},
        {"name": "Cuff", "value": "cuff"},
    ]


async def test_mentionable_option_member_and_role(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, seen, ix = tiny
    bob = FakeUser.make("bob")
    wearers = discord_api.add_role("wearers")
    ix.set_roles(bob, [wearers])
    p1 = ix.slash("grant", {"who": bob}, admin=True)
    assert p1["data"]["options"][0]["type"] == 9  # read from the tree
    await run_interaction(bot, p1)
    p2 = ix.slash("grant", {"who": wearers, "shocker": "collar"}, admin=True)
    await run_interaction(bot, p2)
    p3 = ix.slash("grant", {"who": ix.everyone}, admin=True)
    await run_interaction(bot, p3)
    member, role, everyone = seen.get("grant")
    assert isinstance(member, discord.Member) and member.id == bob.id
    assert member.roles == []  # the guild cache is empty without a gateway...
    load_guild(bot, discord_api)
    await run_interaction(bot, ix.slash("grant", {"who": bob}, admin=True))
    assert [r.name for r in seen.get("grant")[-1].roles] == ["@everyone", "wearers"]  # ...now not
    assert isinstance(role, discord.Role) and role.id == wearers.id and role.name == "wearers"
    assert isinstance(everyone, discord.Role) and everyone.is_default()
    assert discord_api.replies_for(p1).text == f"granted <@{bob.id}>"


async def test_channel_option_and_multipart_reply(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, seen, ix = tiny
    feed = discord_api.add_channel("feed")
    # a discord.TextChannel option is resolved through the guild cache, empty without a gateway
    failed = await run_interaction(bot, ix.slash("feed", {"channel": feed}, admin=True))
    assert failed.command_failed and seen.get("feed") == []
    guild = load_guild(bot, discord_api)
    assert guild.me is not None and guild.get_channel(feed.id) is not None
    await run_interaction(bot, ix.slash("feed", {"channel": feed}, admin=True))
    (channel,) = seen.get("feed")
    assert isinstance(channel, discord.TextChannel) and channel.id == feed.id
    assert channel.permissions_for(guild.me).send_messages
    payload = ix.slash("export")
    await run_interaction(bot, payload)
    cb = discord_api.requests_matching("POST", r"/callback$")[-1]
    assert cb.json["type"] == 4 and cb.json["data"]["content"] == "here"
    assert [(f[1], f[2]) for f in cb.files] == [("history.csv", b"a,b\n1,2\n")]
    (msg,) = discord_api.replies_for(payload).messages
    assert msg["attachments"][0]["filename"] == "history.csv"
    assert discord_api.replies_for(payload).files == [("history.csv", b"a,b\n1,2\n")]
    sent = await bot.get_partial_messageable(feed.id).send(
        "report", file=discord.File(io.BytesIO(b"xyz"), filename="r.txt")
    )
    assert sent.attachments[0].filename == "r.txt" and sent.attachments[0].size == 3


async def test_button_click_reaches_view(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, seen, ix = tiny
    cmd = ix.slash("reboot")
    await run_interaction(bot, cmd)
    reply = discord_api.replies_for(cmd)
    assert reply.custom_ids() == ["confirm"]
    (message,) = reply.messages
    click = ix.button("confirm", message=message)
    await run_interaction(bot, click)
    assert seen.get("confirm") == [ix.user.id]
    assert discord_api.replies_for(click).response_type == 7
    # the update edited the message holding the button
    assert discord_api.message(message["id"])["content"] == "Confirmed."  # type: ignore[index]
    assert discord_api.message(message["id"])["components"] == []  # type: ignore[index]


async def test_modal_submit_reaches_on_submit(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, seen, ix = tiny
    cmd = ix.slash("link")
    await run_interaction(bot, cmd)
    modal = discord_api.replies_for(cmd).modal
    assert modal is not None and modal["title"] == "Link account"
    submit = ix.modal_submit(modal, {"API token": "secret-token"})
    await run_interaction(bot, submit)
    assert seen.get("modal") == [("secret-token", "")]
    reply = discord_api.replies_for(submit)
    assert reply.ephemeral and reply.text == "Linked."
    with pytest.raises(KeyError):
        ix.modal_submit(modal, {"nope": "x"})


async def test_channel_message_nonce_is_idempotent(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, _ = tiny
    channel = bot.get_partial_messageable(discord_api.channel_id)
    # discord.py 2.7 always adds enforce_nonce=true when a nonce is given
    first = await channel.send(
        "event 1", nonce="evt-1", allowed_mentions=discord.AllowedMentions.none()
    )
    again = await channel.send("event 1", nonce="evt-1")
    other = await channel.send("event 2", nonce="evt-2")
    posted = discord_api.requests_matching("POST", r"/messages$")[0].json
    assert posted["nonce"] == "evt-1" and posted["enforce_nonce"] is True
    assert again.id == first.id and other.id != first.id
    msgs = discord_api.channel_messages(discord_api.channel_id)
    assert [m["content"] for m in msgs] == ["event 1", "event 2"]
    assert msgs[0]["allowed_mentions"] == {"parse": []}
    assert discord_api.nonce_dedupes == 1
    await first.edit(content="event 1 (edited)")
    assert discord_api.channel_messages(discord_api.channel_id)[0]["content"] == "event 1 (edited)"


async def test_injected_429_is_retried(
    discord_api: FakeDiscordAPI,
    tiny: tuple[commands.Bot, Seen, Interactions],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot, _, _ = tiny
    discord_api.fail_channel(discord_api.channel_id, 429, count=2, retry_after=0.05)
    with caplog.at_level(logging.WARNING, logger="discord.http"):
        msg = await bot.get_partial_messageable(discord_api.channel_id).send("hello")
    assert discord_api.count_429() == 2
    assert [m["id"] for m in discord_api.channel_messages(discord_api.channel_id)] == [str(msg.id)]
    statuses = [r.status for r in discord_api.requests_matching("POST", r"/messages$")]
    assert statuses == [429, 429, 200]


async def test_injected_403_and_404_surface(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, _ = tiny
    channel = bot.get_partial_messageable(discord_api.channel_id)
    discord_api.fail_channel(discord_api.channel_id, 403)
    with pytest.raises(discord.Forbidden) as forbidden:
        await channel.send("nope")
    assert forbidden.value.code == 50013 and forbidden.value.text == "Missing Permissions"
    discord_api.fail_channel(discord_api.channel_id, 403, code=50001)
    with pytest.raises(discord.Forbidden) as access:
        await channel.send("nope")
    assert access.value.code == 50001
    await channel.send("works again")
    gone = discord_api.add_channel("gone").id
    discord_api.delete_channel(gone)
    with pytest.raises(discord.NotFound) as nf:
        await bot.get_partial_messageable(gone).send("x")
    assert nf.value.code == 10003
    assert [m["content"] for m in discord_api.channel_messages(discord_api.channel_id)] == [
        "works again"
    ]


async def test_rate_limiter_headers_keep_discordpy_under_the_limit(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, _ = tiny
    discord_api.enable_rate_limits(messages=3, per=0.5, global_per_second=1000)
    channel = bot.get_partial_messageable(discord_api.channel_id)
    await asyncio.gather(*(channel.send(f"m{i}") for i in range(7)))
    assert len(discord_api.channel_messages(discord_api.channel_id)) == 7
    assert discord_api.limiter_429s == 0


async def test_global_limit_429s_are_retried(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, _ = tiny
    discord_api.enable_rate_limits(messages=100, per=1.0, global_per_second=3)
    channels = [discord_api.add_channel(f"c{i}").id for i in range(5)]
    await asyncio.gather(*(bot.get_partial_messageable(c).send("x") for c in channels))
    assert all(len(discord_api.channel_messages(c)) == 1 for c in channels)
    assert discord_api.limiter_429s >= 1
    assert discord_api.count_429() == discord_api.limiter_429s


async def test_rate_limiter_answers_real_429s(discord_api: FakeDiscordAPI) -> None:
    discord_api.enable_rate_limits(messages=2, per=0.3, global_per_second=1000)
    url = f"{discord_api.base_url}/channels/{discord_api.channel_id}/messages"
    async with aiohttp.ClientSession() as session:
        statuses = []
        for i in range(3):
            async with session.post(url, json={"content": str(i)}) as resp:
                statuses.append(resp.status)
                body = await resp.json(content_type=None)
                headers = resp.headers
        assert statuses == [200, 200, 429]
        assert headers["Content-Type"] == "application/json"
        assert 0 < body["retry_after"] <= 0.3 and body["global"] is False
        assert headers["X-RateLimit-Remaining"] == "0" and "Retry-After" in headers
        await asyncio.sleep(body["retry_after"])
        async with session.post(url, json={"content": "late"}) as resp:
            assert resp.status == 200
    assert discord_api.limiter_429s == 1


async def test_command_registration_is_recorded(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, _ = tiny
    synced = await bot.tree.sync()
    assert sorted(c.name for c in synced) == [
        "export",
        "feed",
        "grant",
        "link",
        "reboot",
        "shockers",
        "whoami",
    ]
    put = await discord_api.wait_for_request(
        "PUT", rf"^/applications/{discord_api.app_id}/commands$"
    )
    assert {c["name"] for c in put.json} == {c.name for c in synced}
    grant = next(c for c in discord_api.registered_commands() if c["name"] == "grant")
    assert [o["type"] for o in grant["options"]] == [9, 3]
    guild = discord.Object(discord_api.guild_id)
    bot.tree.copy_global_to(guild=guild)
    await bot.tree.sync(guild=guild)
    assert len(discord_api.registered_commands(discord_api.guild_id)) == 7


async def test_dms_guilds_channels_members(
    discord_api: FakeDiscordAPI, tiny: tuple[commands.Bot, Seen, Interactions]
) -> None:
    bot, _, _ = tiny
    bob = discord_api.add_user(FakeUser.make("bob"))
    user = await bot.fetch_user(bob.id)
    await user.send("hi bob")
    assert [m["content"] for m in discord_api.dms(bob.id)] == ["hi bob"]
    carol = discord_api.add_user(FakeUser.make("carol"))
    discord_api.close_dms(carol.id)
    with pytest.raises(discord.Forbidden) as closed:
        await (await bot.fetch_user(carol.id)).send("hi")
    assert closed.value.code == 50007

    mods = discord_api.add_role("mods", permissions=1 << 5)
    feed = discord_api.add_channel(
        "feed", permission_overwrites=[overwrite(mods, allow=1 << 11, deny=0)]
    )
    fetched = await bot.fetch_channel(feed.id)
    assert isinstance(fetched, discord.TextChannel) and fetched.name == "feed"
    assert fetched.overwrites_for(discord.Object(mods.id)).send_messages is True
    guild = await bot.fetch_guild(discord_api.guild_id)
    assert {r.name for r in guild.roles} == {"@everyone", "mods"}
    me = await guild.fetch_member(discord_api.bot_user.id)
    assert me.id == bot.user.id  # type: ignore[union-attr]
    with pytest.raises(discord.NotFound):
        await guild.fetch_member(carol.id)


async def test_auto_sharded_bot_logs_in(discord_api: FakeDiscordAPI, discord_login: Any) -> None:
    seen = Seen()
    bot = await discord_login(make_bot(seen, commands.AutoShardedBot))
    assert bot.application_id == discord_api.app_id
    ix = Interactions(discord_api.app_id, discord_api.guild_id).for_tree(bot.tree)
    payload = ix.slash("shockers share", {"shocker": "zz"})
    await run_interaction(bot, payload)
    assert discord_api.replies_for(payload).text == "Shared zz up to 25 %"


async def test_second_callback_is_rejected_like_discord(
    discord_api: FakeDiscordAPI, discord_login: Any
) -> None:
    bot = commands.Bot(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
    errors: list[BaseException] = []

    @bot.tree.command(name="twice", description="answers twice")
    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("one")
        try:
            await interaction.followup.send("two")
            await interaction.channel.send("three")  # type: ignore[union-attr]
        except discord.HTTPException as exc:  # pragma: no cover - must not happen
            errors.append(exc)

    await discord_login(bot)
    ix = Interactions(discord_api.app_id, discord_api.guild_id, channel=discord_api.channel_id)
    payload = ix.slash("twice")
    await run_interaction(bot, payload)
    assert errors == []
    assert discord_api.replies_for(payload).text == "one\ntwo"
    # A raw second callback is refused with 40060, as Discord does.
    url = f"{discord_api.base_url}/interactions/{payload['id']}/{payload['token']}/callback"
    async with aiohttp.ClientSession() as session, session.post(url, json={"type": 4}) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == 40060


async def test_wait_for_times_out_quickly(discord_api: FakeDiscordAPI) -> None:
    with pytest.raises(TimeoutError):
        await discord_api.wait_for(lambda: False, timeout=0.1)
    with pytest.raises(TimeoutError):
        await discord_api.wait_for_request("POST", r"/never$", timeout=0.1)


async def test_interaction_endpoints_are_not_bound_by_the_global_limit(
    discord_api: FakeDiscordAPI,
) -> None:
    discord_api.enable_rate_limits(messages=100, per=1.0, global_per_second=1)
    url = f"{discord_api.base_url}/webhooks/{discord_api.app_id}/no-such-token/messages/@original"
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(url) as resp:
                assert resp.status == 404  # unknown token, but never 429
    assert discord_api.limiter_429s == 0
