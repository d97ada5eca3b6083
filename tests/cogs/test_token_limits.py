"""The wearer's API token's own limits, end to end: OpenShock's hub does not apply them, so the
bot reads them (`GET /2/tokens/self`) and makes them hold on the frame it sends."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.openshock.models import ShockersRefreshed
from tests.cogs.test_account import link_via_modal
from tests.fakes.openshock_server import FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness


async def _scene(h: Harness, alice_os: OpenShockUser) -> tuple[Any, Any, FakeShocker]:
    device = h.openshock.add_device(alice_os, "Hub", online=True)
    collar = h.openshock.add_shocker(device, "Collar")
    alice, bob, admin = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("admin")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id), max_intensity=100, max_duration_ms=10_000)
    grant = h.ix.slash(
        "permissions grant",
        {"who": h.ix.everyone},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await h.run(grant)
    assert "Granted" in h.discord.replies_for(grant).text
    return alice, bob, collar


def _frames(h: Harness) -> list[Any]:
    return [i for i in h.openshock.invocations if i.target == "ControlV2"]


async def _shock(h: Harness, user: Any, collar: FakeShocker, **values: Any) -> str:
    payload = h.ix.slash(
        "shock", {"shocker": str(collar.id), "intensity": 100, "duration": 1, **values}, user=user
    )
    await h.run(payload)
    return h.discord.replies_for(payload).text


async def test_a_shock_at_100_percent_reaches_the_hub_at_the_tokens_limit(harness: Harness) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice_os.limit_token(intensity=(0, 30, "Clamp"))
    _, bob, collar = await _scene(h, alice_os)

    text = await _shock(h, bob, collar)

    (frame,) = _frames(h)
    assert frame.arguments[0][0]["intensity"] == 30
    assert "capped at 30 % (token limit)" in text
    assert h.openshock.requests_to("/2/tokens/self")


async def test_lerp_scales_on_the_frame_like_openshock_does_for_rest(harness: Harness) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice_os.limit_token(intensity=(0, 30, "Lerp"), duration=(300, 2000, "Clamp"))
    _, bob, collar = await _scene(h, alice_os)

    text = await _shock(h, bob, collar, intensity=50, duration=5)

    (frame,) = _frames(h)
    assert (frame.arguments[0][0]["intensity"], frame.arguments[0][0]["duration"]) == (15, 2000)
    assert "scaled to 15 % (token limit)" in text
    assert "capped at 2 s (token limit)" in text


async def test_a_paused_token_lets_only_stop_through(harness: Harness) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice_os.limit_token(paused=True)
    _, bob, collar = await _scene(h, alice_os)

    text = await _shock(h, bob, collar)
    assert "token is paused" in text
    assert _frames(h) == []

    stop = h.ix.slash("stop", {"shocker": str(collar.id)}, user=bob)
    await h.run(stop)
    (frame,) = _frames(h)
    assert frame.arguments[0][0]["type"] == 0


async def test_a_token_minimum_above_the_cap_is_refused_and_nothing_is_sent(
    harness: Harness,
) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice_os.limit_token(intensity=(40, 80, "Clamp"))
    alice, bob, collar = await _scene(h, alice_os)
    await h.share(alice, str(collar.id), max_intensity=25, max_duration_ms=3000)

    text = await _shock(h, bob, collar)

    assert "at least 40 %" in text
    assert _frames(h) == []


async def test_the_limits_are_read_again_after_a_reconnect(harness: Harness) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice, bob, collar = await _scene(h, alice_os)
    account = await h.storage.accounts.by_discord_user(alice.id)
    assert account is not None
    hub = h.bot.hubs.get(account.id)
    assert hub is not None

    alice_os.limit_token(intensity=(0, 10, "Clamp"))
    refreshed = hub.expect(
        ShockersRefreshed,
        lambda e: (
            e.shockers.token is not None
            and e.shockers.token.shocker_control is not None
            and e.shockers.token.shocker_control.intensity is not None
            and e.shockers.token.shocker_control.intensity.max == 10
        ),
    )
    await h.openshock.drop_connections(alice_os)
    await asyncio.wait_for(refreshed, 5)

    await _shock(h, bob, collar)
    (frame,) = _frames(h)
    assert frame.arguments[0][0]["intensity"] == 10


async def test_an_older_server_without_token_limits_falls_back_to_v1(harness: Harness) -> None:
    h = harness
    h.openshock.serve_tokens_v2 = False
    alice_os = h.openshock.add_user("Alice")
    _, bob, collar = await _scene(h, alice_os)

    text = await _shock(h, bob, collar, intensity=60)

    (frame,) = _frames(h)
    assert frame.arguments[0][0]["intensity"] == 60
    assert "token limit" not in text
    assert h.openshock.requests_to("/1/tokens/self")


# -- what the wearer is shown ------------------------------------------------------------------


async def test_the_link_reply_shows_scopes_and_recommends_a_limited_token(
    harness: Harness,
) -> None:

    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice = h.discord_user("alice")
    reply = await link_via_modal(h, alice, alice_os.token)
    assert "API token" in reply.text
    assert "`shockers.pause`, `shockers.use`" in reply.text
    assert "Control limits: none" in reply.text
    assert "low intensity limit" in reply.text

    bob_os = h.openshock.add_user("Bob")
    bob_os.limit_token(intensity=(0, 30, "Lerp"), paused=True)
    bob = h.discord_user("bob")
    reply = await link_via_modal(h, bob, bob_os.token)
    assert "intensity 0–30 % (scaled)" in reply.text
    assert "paused" in reply.text
    assert bob_os.token not in reply.text


async def test_status_reads_the_token_again_and_shows_its_limits(harness: Harness) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice = h.discord_user("alice")
    await h.link(alice, alice_os)
    alice_os.limit_token(intensity=(0, 20, "Clamp"), duration=(300, 2000, "Clamp"))

    status = h.ix.slash("account status", user=alice)
    await h.run(status)
    text = h.discord.replies_for(status).text
    assert "intensity 0–20 % (clamped), duration 0.3–2 s (clamped)" in text
    account = await h.storage.accounts.by_discord_user(alice.id)
    assert account is not None
    limits = h.bot.control.facts.token_limits(h.bot.hubs.get(account.id))
    assert limits is not None and limits.intensity.maximum == 20


async def test_an_older_server_says_it_has_no_token_limits(harness: Harness) -> None:

    h = harness
    h.openshock.serve_tokens_v2 = False
    alice_os = h.openshock.add_user("Alice")
    reply = await link_via_modal(h, h.discord_user("alice"), alice_os.token)
    assert "does not support limits on a token" in reply.text


async def test_controls_wait_for_limits_that_are_known(harness: Harness) -> None:
    """A failed read of the token fails the whole refresh: no shocker list (so no control)
    until the token's limits are known; the refresh is retried until it succeeds."""
    h = harness
    alice_os = h.openshock.add_user("Alice")
    alice_os.limit_token(intensity=(0, 10, "Clamp"))
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub", online=True), "Collar")
    h.openshock.fail_rest("/2/tokens/self", 500, times=3)
    alice = h.discord_user("alice")
    account = await h.link(alice, alice_os, wait=False)
    hub = h.bot.hubs.get(account.id)
    assert hub is not None
    refreshed = hub.expect(ShockersRefreshed)
    # The first list the bot ever has already carries the token's limits.
    directory = (await asyncio.wait_for(refreshed, 10)).shockers
    assert directory.get(collar.id) is not None
    assert directory.token is not None and directory.token.shocker_control is not None
    limits = h.bot.control.facts.token_limits(hub)
    assert limits is not None and limits.intensity.maximum == 10
    assert len(h.openshock.requests_to("/2/tokens/self")) >= 4
