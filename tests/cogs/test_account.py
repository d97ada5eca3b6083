"""/account through the real command tree, against the fake Discord API and fake OpenShock."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from typing import Any

import pytest

from bot.cogs.account import AccountCog
from bot.errors import UserError
from bot.logs import REDACTED, redactor
from bot.openshock.hub import HubState
from bot.services.accounts import AccountService
from bot.services.halts import Halt
from bot.storage.models import AccountState
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.discord_api import InteractionRecord
from tests.fakes.interactions import load_guild
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness
from tests.production_log import ProductionLog, production_log

__all__ = ["production_log"]


@pytest.fixture
def alice_os(harness: Harness) -> OpenShockUser:
    user = harness.openshock.add_user("Alice")
    hub = harness.openshock.add_device(user, "Living room hub", firmware="1.4.0")
    harness.openshock.add_shocker(hub, "Collar")
    return user


async def link_via_modal(
    h: Harness, user: DiscordUser, token: str, server: str | None = None
) -> InteractionRecord:
    command = h.ix.slash("account link", user=user)
    await h.run(command)
    modal = h.discord.replies_for(command).modal
    assert modal is not None
    values: dict[str, Any] = {"API token": token}
    if server is not None:
        values["Server URL (optional)"] = server
    submit = h.ix.modal_submit(modal, values, user=user)
    await h.run(submit)
    return h.discord.replies_for(submit)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- link ---------------------------------------------------------------------------------------


async def test_link_stores_the_token_encrypted_and_opens_the_hub_connection(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    alice = harness.discord_user("alice")
    reply = await link_via_modal(harness, alice, alice_os.token)

    assert reply.deferred and reply.ephemeral  # answered at once, then the REST calls
    assert "Linked to OpenShock as Alice" in reply.text
    assert "Collar" in reply.text and "Living room hub" in reply.text
    assert "Connected" in reply.text
    assert "Token permissions" not in reply.text  # shockers.use + shockers.pause only
    assert alice_os.token not in str(harness.discord.requests_matching())

    account = await harness.storage.accounts.by_discord_user(alice.id)
    assert account is not None and account.openshock_name == "Alice"
    assert account.api_url == harness.openshock.base_url
    assert harness.storage.accounts.token_of(account) == alice_os.token
    (connection,) = await harness.openshock.wait_for_connections(alice_os)
    assert connection.is_open
    assert [r.path for r in harness.openshock.requests][:2] == ["/1/users/self", "/2/tokens/self"]

    # Encrypted at rest: the raw token is in neither the database nor its write-ahead log.
    files = [p for p in harness.data_dir.iterdir() if p.name.startswith("bot.db")]
    assert any(p.name == "bot.db-wal" for p in files)
    for path in files:
        assert alice_os.token.encode() not in path.read_bytes(), path.name


async def test_link_warns_about_permissions_beyond_what_the_bot_needs(harness: Harness) -> None:
    admin_os = harness.openshock.add_user(
        "Root", permissions=["shockers.use", "shockers.pause", "shockers.edit", "devices.edit"]
    )
    root = harness.discord_user("root")
    reply = await link_via_modal(harness, root, admin_os.token)
    assert "Token permissions" in reply.text
    assert "`devices.edit`, `shockers.edit`" in reply.text
    assert await harness.storage.accounts.by_discord_user(root.id) is not None


async def test_link_with_a_rejected_token_stores_nothing(harness: Harness) -> None:
    alice = harness.discord_user("alice")
    bad_token = "x" * 64
    reply = await link_via_modal(harness, alice, bad_token)
    assert reply.ephemeral
    assert reply.text.startswith("OpenShock rejected that API token")
    assert bad_token not in reply.text
    assert await harness.storage.accounts.by_discord_user(alice.id) is None
    assert len(harness.bot.hubs) == 0


async def test_link_to_an_unreachable_server_stores_nothing(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    await harness.restart(openshock_allowed_servers=url)  # listed exactly: may be loopback
    alice = harness.discord_user("alice")
    reply = await link_via_modal(harness, alice, alice_os.token, server=url)
    assert reply.text == unreachable(url)
    assert await harness.storage.accounts.by_discord_user(alice.id) is None
    assert len(harness.bot.hubs) == 0


def unreachable(url: str) -> str:
    return (
        f"The OpenShock server at {url} could not be reached; check the server URL, or try "
        "again later."
    )


# -- which servers (OPENSHOCK_ALLOWED_SERVERS) ----------------------------------------------------


async def test_a_server_that_is_not_allowed_is_refused_before_any_request(
    harness: Harness, prefixed_openshock_server: Any
) -> None:
    other = prefixed_openshock_server
    carol_os = other.add_user("Carol")
    carol = harness.discord_user("carol")
    reply = await link_via_modal(harness, carol, carol_os.token, server=other.base_url)
    assert reply.text.startswith("This bot does not link accounts on that server")
    assert harness.openshock.base_url in reply.text  # where to link instead
    assert other.requests == [] and harness.openshock.requests == []
    assert await harness.storage.accounts.by_discord_user(carol.id) is None


async def test_with_star_a_server_on_a_loopback_address_is_never_reached(
    harness: Harness, prefixed_openshock_server: Any
) -> None:
    other = prefixed_openshock_server
    await harness.restart(openshock_allowed_servers="*")
    carol_os = other.add_user("Carol")
    carol = harness.discord_user("carol")
    port = other.port
    # The address itself, a name that resolves to it, and the address wrapped in IPv6.
    for url in (
        other.base_url,
        f"http://localhost:{port}/api",
        f"http://[::ffff:127.0.0.1]:{port}/api",
    ):
        reply = await link_via_modal(harness, carol, carol_os.token, server=url)
        # The same sentence as for a closed port: the reply is no port scanner.
        assert reply.text == unreachable(url)
    assert other.requests == []
    assert await harness.storage.accounts.by_discord_user(carol.id) is None


async def test_a_listed_server_on_a_loopback_address_may_be_linked(
    harness: Harness, prefixed_openshock_server: Any
) -> None:
    other = prefixed_openshock_server
    await harness.restart(openshock_allowed_servers=f"*, {other.base_url}/")
    carol_os = other.add_user("Carol")
    reply = await link_via_modal(
        harness, harness.discord_user("carol"), carol_os.token, server=other.base_url
    )
    assert "Linked to OpenShock as Carol" in reply.text


async def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(
    harness: Harness, alice_os: OpenShockUser, prefixed_openshock_server: Any
) -> None:
    elsewhere = prefixed_openshock_server.base_url + "/1/users/self"
    harness.openshock.fail_rest("/1/users/self", 307, location=elsewhere)
    alice = harness.discord_user("alice")
    reply = await link_via_modal(harness, alice, alice_os.token)
    assert "did not answer like an OpenShock API server" in reply.text
    assert prefixed_openshock_server.requests == []
    assert await harness.storage.accounts.by_discord_user(alice.id) is None


async def test_the_servers_own_words_stay_in_the_log(
    harness: Harness, alice_os: OpenShockUser, production_log: ProductionLog
) -> None:
    remote = "database at 10.1.2.3 refused"
    harness.openshock.fail_rest("/1/users/self", 500, title=remote)
    alice = harness.discord_user("alice")
    reply = await link_via_modal(harness, alice, alice_os.token)
    assert "did not answer like an OpenShock API server" in reply.text
    assert remote not in reply.text and remote in production_log.text

    harness.openshock.fail_rest("/2/tokens/self", 500, title=remote)
    reply = await link_via_modal(harness, alice, alice_os.token)
    assert "Linked to OpenShock as Alice" in reply.text
    assert "Could not read the token's permissions: the server did not say." in reply.text
    assert remote not in reply.text


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://example.org", "https://", "https://host:99999", "http://a b.org"]
)
async def test_link_with_a_malformed_url_is_refused_before_any_request(
    harness: Harness, alice_os: OpenShockUser, url: str
) -> None:
    alice = harness.discord_user("alice")
    reply = await link_via_modal(harness, alice, alice_os.token, server=url)
    assert reply.text.startswith("That server URL is not valid")
    assert harness.openshock.requests == []
    assert await harness.storage.accounts.by_discord_user(alice.id) is None


async def test_link_to_a_server_under_a_path_prefix(
    harness: Harness, prefixed_openshock_server: Any
) -> None:
    await harness.restart(openshock_allowed_servers=prefixed_openshock_server.base_url)
    carol_os = prefixed_openshock_server.add_user("Carol")
    carol = harness.discord_user("carol")
    reply = await link_via_modal(
        harness, carol, carol_os.token, server=prefixed_openshock_server.base_url + "/"
    )
    assert "Linked to OpenShock as Carol" in reply.text
    account = await harness.storage.accounts.by_discord_user(carol.id)
    assert account is not None and account.api_url == prefixed_openshock_server.base_url
    await prefixed_openshock_server.wait_for_connections(carol_os)


async def test_an_account_linked_by_someone_else_is_refused(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    bob = harness.discord_user("bob")
    await harness.link(bob, alice_os)
    alice = harness.discord_user("alice")
    reply = await link_via_modal(harness, alice, alice_os.token)
    assert "already linked by another Discord user" in reply.text
    assert await harness.storage.accounts.by_discord_user(alice.id) is None


async def test_relinking_replaces_the_token_and_reconnects_with_it(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    alice = harness.discord_user("alice")
    await link_via_modal(harness, alice, alice_os.token)
    await harness.openshock.wait_for_connections(alice_os)
    old_token, alice_os.token = alice_os.token, "n" * 64  # a new token made on OpenShock

    reply = await link_via_modal(harness, alice, alice_os.token)
    assert "Re-linked to OpenShock as Alice" in reply.text
    account = await harness.storage.accounts.by_discord_user(alice.id)
    assert account is not None
    assert harness.storage.accounts.token_of(account) == alice_os.token != old_token
    connections = await harness.openshock.wait_for_connections(alice_os, 2)
    assert connections[-1].upgrade_headers["OpenShockToken"] == alice_os.token
    await harness.openshock.wait_until(lambda: not connections[0].is_open, what="old closed")
    assert len(harness.bot.hubs) == 1


async def test_relinking_to_another_openshock_account_closes_the_old_connection(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    alice = harness.discord_user("alice")
    old = await harness.link(alice, alice_os)
    other_os = harness.openshock.add_user("Alt")
    reply = await link_via_modal(harness, alice, other_os.token)
    assert "Re-linked to OpenShock as Alt" in reply.text
    assert harness.bot.hubs.get(old.id) is None
    await harness.openshock.wait_until(
        lambda: not harness.openshock.open_connections(alice_os), what="old connection closed"
    )


# -- unlink -------------------------------------------------------------------------------------


async def test_unlink_removes_the_token_shares_blocks_and_connection(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    alice = harness.discord_user("alice")
    bob = harness.discord_user("bob")
    account = await harness.link(alice, alice_os)
    collar = harness.openshock.shockers[0]
    await harness.share(alice, str(collar.id))
    await harness.share(alice, str(collar.id), guild_id=harness.discord.guild_id + 1)
    await harness.storage.shares.block(harness.discord.guild_id, alice.id, bob.id)
    await harness.storage.shares.pause_wearer(harness.discord.guild_id, alice.id)
    halts: list[Halt] = []
    harness.bot.control.halts.subscribe(halts.append)

    unlink = harness.ix.slash("account unlink", user=alice)
    await harness.run(unlink)
    # What waited to fire on her shockers (approvals, votes, random mode) ends with the unlink.
    assert halts == [Halt("unlink", wearer_id=alice.id)]
    reply = harness.discord.replies_for(unlink)
    assert reply.ephemeral
    assert "Unlinked the OpenShock account **Alice**" in reply.text
    assert "your API token, 2 shocker shares, 1 block" in reply.text

    assert await harness.storage.accounts.by_discord_user(alice.id) is None
    assert await harness.storage.shares.of_wearer(alice.id) == []
    assert not await harness.storage.shares.is_blocked(harness.discord.guild_id, alice.id, bob.id)
    assert not await harness.storage.shares.is_wearer_paused(harness.discord.guild_id, alice.id)
    assert harness.bot.hubs.get(account.id) is None
    await harness.openshock.wait_until(
        lambda: not harness.openshock.open_connections(alice_os), what="connection closed"
    )


async def test_unlink_without_an_account_says_so(harness: Harness) -> None:
    alice = harness.discord_user("alice")
    unlink = harness.ix.slash("account unlink", user=alice)
    await harness.run(unlink)
    assert harness.discord.replies_for(unlink).text == "You have no linked OpenShock account."


# -- status -------------------------------------------------------------------------------------


async def test_status_shows_connection_devices_and_where_shockers_are_shared(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    alice = harness.discord_user("alice")
    await harness.link(alice, alice_os)
    collar = harness.openshock.shockers[0]
    spare = harness.openshock.add_shocker(harness.openshock.devices[0], "Spare")
    await harness.bot.hubs.get(  # type: ignore[union-attr]
        (await harness.storage.accounts.by_discord_user(alice.id)).id  # type: ignore[union-attr]
    ).refresh_shockers()
    await harness.share(alice, str(collar.id))
    elsewhere = harness.discord.guild_id + 1
    await harness.share(alice, str(collar.id), guild_id=elsewhere)

    status = harness.ix.slash("account status", user=alice)
    await harness.run(status)
    text = harness.discord.replies_for(status).text
    assert "OpenShock account Alice" in text
    assert f"Server: {harness.openshock.base_url}" in text
    assert "🟢 Connected since <t:" in text
    assert "🟢 **Living room hub**: online, firmware 1.4.0" in text
    assert f"shared in server {harness.discord.guild_id}, server {elsewhere}" in text
    assert f"**{spare.name}** (Living room hub): not shared in any server" in text

    # With the guild in the cache (as the gateway fills it), its name is shown instead.
    load_guild(harness.bot, harness.discord)
    guild_name = harness.discord.guild().name
    status = harness.ix.slash("account status", user=alice)
    await harness.run(status)
    assert f"shared in {guild_name}, server {elsewhere}" in harness.discord.replies_for(status).text


async def test_status_without_an_account_points_to_link(harness: Harness) -> None:
    alice = harness.discord_user("alice")
    status = harness.ix.slash("account status", user=alice)
    await harness.run(status)
    assert "`/account link`" in harness.discord.replies_for(status).text


# -- a token revoked while running --------------------------------------------------------------


async def test_a_token_revoked_at_openshock_gets_the_wearer_exactly_one_dm(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    alice = harness.discord_user("alice")
    account = await harness.link(alice, alice_os)
    hub = harness.bot.hubs.get(account.id)
    assert hub is not None

    harness.openshock.revoke_token(alice_os)
    await harness.openshock.drop_connections(alice_os)  # the hub reconnects and gets 401
    await harness.discord.wait_for(lambda: harness.discord.dms(alice.id))
    await harness.openshock.wait_until(lambda: hub.state is HubState.INVALID, what="invalid")

    stored = await harness.storage.accounts.get(account.id)
    assert stored is not None and stored.state is AccountState.INVALID
    # Another failure report (e.g. a second connection attempt) does not DM again.
    await harness.bot._on_account_invalid(account.id, "again")
    (dm,) = harness.discord.dms(alice.id)
    assert "Alice" in dm["content"] and "`/account link`" in dm["content"]

    status = harness.ix.slash("account status", user=alice)
    await harness.run(status)
    assert "⛔ Token invalid" in harness.discord.replies_for(status).text


# -- registration -------------------------------------------------------------------------------


def options_of(harness: Harness, name: str) -> dict[str, Any]:
    command = harness.bot.tree.get_command(name)
    assert command is not None
    payload = command.to_dict(harness.bot.tree)
    return {
        "dm_permission": payload["dm_permission"],
        "subcommands": {
            sub["name"]: [
                (
                    option["name"],
                    option["type"],
                    option["required"],
                    option.get("autocomplete", False),
                    option.get("min_value"),
                    option.get("max_value"),
                )
                for option in sub["options"]
            ]
            for sub in payload["options"]
        },
    }


async def test_account_commands_registration(harness: Harness) -> None:
    assert options_of(harness, "account") == {
        "dm_permission": True,
        "subcommands": {"link": [], "unlink": [], "status": []},
    }
    payload = harness.bot.tree.get_command("account").to_dict(harness.bot.tree)  # type: ignore[union-attr]
    assert payload["contexts"] == [0, 1]  # servers and DMs with the bot, never other DMs
    assert payload["integration_types"] == [0]  # installed to servers only


def account_service(h: Harness) -> AccountService:
    cog = h.bot.get_cog("AccountCog")
    assert isinstance(cog, AccountCog)
    return cog.accounts


async def test_only_a_token_openshock_accepted_is_registered_for_redaction(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    rejected = secrets.token_hex(32)
    reply = await link_via_modal(harness, harness.discord_user("mallory"), rejected)
    assert reply.text.startswith("OpenShock rejected that API token")
    assert redactor.redact(f"t={rejected}") == f"t={rejected}"  # not kept: no unbounded growth

    reply = await link_via_modal(harness, harness.discord_user("alice"), alice_os.token)
    assert "Linked to OpenShock as Alice" in reply.text
    assert redactor.redact(f"t={alice_os.token}") == f"t={REDACTED}"


async def test_the_per_user_link_lock_is_dropped_when_nobody_holds_or_waits_for_it(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    accounts = account_service(harness)
    alice = harness.discord_user("alice")
    first = asyncio.create_task(accounts.link(alice.id, alice_os.token, None))
    second = asyncio.create_task(accounts.link(alice.id, alice_os.token, None))
    for _ in range(5):
        await asyncio.sleep(0)
    assert accounts._locks[alice.id].users == 2  # one holds it, one waits
    results = await asyncio.gather(first, second)
    assert [r.replaced for r in results] == [False, True]  # one after the other
    assert accounts._locks == {}
    with pytest.raises(UserError):
        await accounts.link(alice.id, "y" * 64, None)
    assert accounts._locks == {}


async def test_a_token_that_does_not_look_like_one_cannot_poison_the_redactor(
    harness: Harness, production_log: ProductionLog
) -> None:
    # A self-hosted server may accept anything as a token; only real-looking ones are redacted.
    for name, token in (("Mallory", "Traceback"), ("Eve", "123456789012345678")):
        harness.openshock.add_user(name, token=token)
        reply = await link_via_modal(harness, harness.discord_user(name.lower()), token)
        assert f"Linked to OpenShock as {name}" in reply.text
    logging.getLogger("tests").warning("Traceback from member 123456789012345678")
    assert "Traceback from member 123456789012345678" in production_log.text
    assert REDACTED not in production_log.text


async def test_unlink_and_relink_forget_the_old_token(
    harness: Harness, alice_os: OpenShockUser
) -> None:
    alice = harness.discord_user("alice")
    await link_via_modal(harness, alice, alice_os.token)
    first = alice_os.token
    assert redactor.redact(first) == REDACTED

    alice_os.token = "N" * 64  # a new token made on OpenShock
    reply = await link_via_modal(harness, alice, alice_os.token)
    assert "Re-linked to OpenShock as Alice" in reply.text
    assert redactor.redact(first) == first
    assert redactor.redact(alice_os.token) == REDACTED

    other_os = harness.openshock.add_user("Alt")  # re-linked to another OpenShock account
    await link_via_modal(harness, alice, other_os.token)
    assert redactor.redact(alice_os.token) == alice_os.token
    assert redactor.redact(other_os.token) == REDACTED

    unlink = harness.ix.slash("account unlink", user=alice)
    await harness.run(unlink)
    assert "Unlinked" in harness.discord.replies_for(unlink).text
    assert redactor.redact(other_os.token) == other_os.token
