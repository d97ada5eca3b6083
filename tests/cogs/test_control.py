"""/shock, /vibrate, /sound, /stop and /panic end to end: interaction → decision →
ControlV2 at the fake hub → Log → the edited reply, and the audit trail."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bot.cogs import control_reply
from bot.domain.controls import ControlKind
from bot.domain.grants import GrantTarget
from bot.services.control import ControlOrder, ControlOutcome, Sender
from bot.storage.models import AuditOutcome
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.interactions import Interactions
from tests.fakes.openshock_server import FakeDevice, FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness


@dataclass
class Scene:
    h: Harness
    alice: DiscordUser  # the wearer
    bob: DiscordUser  # a member
    admin: DiscordUser
    alice_os: OpenShockUser
    device: FakeDevice
    collar: FakeShocker

    @property
    def collar_id(self) -> str:
        return str(self.collar.id)

    async def grant_everyone(self, **options: Any) -> None:
        payload = self.h.ix.slash(
            "permissions grant",
            {"who": self.h.ix.everyone, **options},
            user=self.admin,
            admin=True,
            types={"who": "mentionable"},
        )
        await self.h.run(payload)
        assert "Granted" in self.h.discord.replies_for(payload).text

    async def add_guild_with_cooldown_grant(self, guild_id: int) -> None:
        """Another guild where the collar is shared and @everyone may control it every 600 s."""
        self.h.discord.add_member(guild_id, self.alice)
        await self.h.share(self.alice, self.collar_id, guild_id=guild_id)
        await self.h.storage.grants.grant(
            guild_id=guild_id,
            target_kind=GrantTarget.ROLE,
            target_id=guild_id,
            shocker_id=None,
            max_intensity=None,
            max_duration_ms=None,
            cooldown_ms=600_000,
            allow_shock=True,
            allow_vibrate=True,
            allow_sound=True,
            created_by=self.admin.id,
        )

    async def command(self, name: str, user: DiscordUser, **options: Any) -> str:
        payload = self.h.ix.slash(name, {"shocker": self.collar_id, **options}, user=user)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).text

    def control_frames(self) -> list[Any]:
        return [i for i in self.h.openshock.invocations if i.target == "ControlV2"]


@pytest.fixture
async def scene(harness: Harness) -> Scene:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    device = h.openshock.add_device(alice_os, "Hub", online=True)
    collar = h.openshock.add_shocker(device, "Collar")
    alice, bob, admin = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("admin")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id), max_intensity=25, max_duration_ms=3000)
    return Scene(h, alice, bob, admin, alice_os, device, collar)


async def test_allowed_shock_reaches_the_hub_as_one_control_v2_and_is_confirmed(
    scene: Scene,
) -> None:
    await scene.grant_everyone()
    payload = scene.h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 20, "duration": 1.5}, user=scene.bob
    )
    await scene.h.run(payload)
    text = scene.h.discord.replies_for(payload).text
    (frame,) = scene.control_frames()
    controls, custom_name = frame.arguments
    assert controls == [
        {
            "id": scene.collar_id,
            "type": 1,
            "intensity": 20,
            "duration": 1500,
            "exclusive": False,
        }
    ]
    assert custom_name == "bob (Discord)"
    assert f"⚡ Shock 20 % · 1.5 s → Collar (<@{scene.alice.id}>)" in text
    assert "✅ delivered" in text
    # One public answer, sent once OpenShock's Log confirmed it: no edit needed.
    assert not scene.h.discord.replies_for(payload).ephemeral
    assert len(scene.h.discord.replies_for(payload).callbacks) == 1
    edits = scene.h.discord.requests_matching("PATCH", rf"/webhooks/\d+/{payload['token']}/")
    assert edits == []
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entry.outcome is AuditOutcome.CONFIRMED
    assert (entry.effective_intensity, entry.effective_duration_ms) == (20, 1500)


async def test_a_slow_log_is_answered_at_once_and_the_answer_edited_when_it_comes(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    await scene.grant_everyone()
    monkeypatch.setattr(control_reply, "ANSWER_WAIT", 0.05)
    scene.h.openshock.log_delay = 0.3  # OpenShock's Log comes after the first answer's wait
    payload = scene.h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 20, "duration": 1}, user=scene.bob
    )
    await scene.h.run(payload)
    record = scene.h.discord.replies_for(payload)
    (callback,) = record.callbacks
    assert callback["data"]["content"] == (
        f"⚡ Shock 20 % · 1 s → Collar (<@{scene.alice.id}>) · sent, waiting for OpenShock…"
    )
    assert not record.ephemeral
    edits = scene.h.discord.requests_matching("PATCH", rf"/webhooks/\d+/{payload['token']}/")
    assert len(edits) == 1
    assert "✅ delivered" in record.text
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entry.outcome is AuditOutcome.CONFIRMED


async def test_capped_request_arrives_capped_and_the_reply_says_so(scene: Scene) -> None:
    await scene.grant_everyone(max_duration=2)
    text = await scene.command("vibrate", scene.bob, intensity=80, duration=10)
    (frame,) = scene.control_frames()
    control = frame.arguments[0][0]
    assert (control["type"], control["intensity"], control["duration"]) == (2, 25, 2000)
    assert "capped at 25 % (wearer's limit)" in text
    assert "capped at 2 s (your permission's limit)" in text


async def test_sound_uses_its_default_intensity(scene: Scene) -> None:
    await scene.grant_everyone()
    await scene.command("sound", scene.bob, duration=1)
    (frame,) = scene.control_frames()
    assert frame.arguments[0][0]["type"] == 3
    assert frame.arguments[0][0]["intensity"] == 25  # 50 % asked, the wearer's cap is 25 %


@pytest.mark.parametrize("case", ["no grant", "blocked", "paused share", "wearer paused"])
async def test_refused_controls_send_nothing_and_say_why(scene: Scene, case: str) -> None:
    guild = scene.h.discord.guild_id
    if case != "no grant":
        await scene.grant_everyone()
    if case == "blocked":
        await scene.h.storage.shares.block(guild, scene.alice.id, scene.bob.id)
    elif case == "paused share":
        await scene.h.storage.shares.set_paused(guild, scene.alice.id, scene.collar_id, True)
    elif case == "wearer paused":
        await scene.h.storage.shares.pause_wearer(guild, scene.alice.id)
    payload = scene.h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=scene.bob
    )
    await scene.h.run(payload)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral
    expected = {
        "no grant": "permission",
        "blocked": "blocked",
        "paused share": "paused",
        "wearer paused": "paused",
    }[case]
    assert expected in reply.text.lower()
    assert scene.control_frames() == []
    (entry,) = await scene.h.storage.audit.recent(guild)
    assert entry.outcome is AuditOutcome.REFUSED and entry.reason


async def test_cooldown_refuses_the_second_control_and_survives_a_restart(scene: Scene) -> None:
    await scene.grant_everyone(cooldown=600)
    await scene.command("shock", scene.bob, intensity=10, duration=1)
    assert len(scene.control_frames()) == 1
    assert (
        "cooling down"
        in (await scene.command("shock", scene.bob, intensity=10, duration=1)).lower()
    )
    await scene.h.restart()
    await scene.h.ready((await scene.h.storage.accounts.by_discord_user(scene.alice.id)).id)  # type: ignore[union-attr]
    text = await scene.command("vibrate", scene.bob, intensity=10, duration=1)
    assert "cooling down" in text.lower()
    assert len(scene.control_frames()) == 1
    # Stop is never held back by a cooldown.
    assert "⏹️ Stop → Collar" in await scene.command("stop", scene.bob)


async def test_stop_works_while_paused_and_blocked(scene: Scene) -> None:
    guild = scene.h.discord.guild_id
    await scene.grant_everyone()
    await scene.h.storage.shares.set_paused(guild, scene.alice.id, scene.collar_id, True)
    await scene.h.storage.shares.block(guild, scene.alice.id, scene.bob.id)
    text = await scene.command("stop", scene.bob)
    (frame,) = scene.control_frames()
    assert frame.arguments[0][0]["type"] == ControlKind.STOP
    assert frame.arguments[0][0]["intensity"] == 0
    assert f"⏹️ Stop → Collar (<@{scene.alice.id}>)" in text


async def test_wearer_controls_their_own_shocker_without_a_grant(scene: Scene) -> None:
    text = await scene.command("shock", scene.alice, intensity=50, duration=1)
    assert "capped at 25 %" in text
    assert len(scene.control_frames()) == 1


async def test_a_silently_dropped_control_is_reported_not_confirmed(scene: Scene) -> None:
    await scene.grant_everyone()
    scene.collar.paused = True  # paused on OpenShock behind the bot's back: the hub drops it
    text = await scene.command("shock", scene.bob, intensity=10, duration=1)
    assert len(scene.control_frames()) == 1
    assert "did not confirm" in text
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entry.outcome is AuditOutcome.NOT_CONFIRMED


async def test_offline_device_is_refused_and_nothing_sent(scene: Scene) -> None:
    await scene.grant_everyone()
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    hub = scene.h.bot.hubs.get(account.id)
    assert hub is not None
    await scene.h.openshock.set_device_online(scene.device, False)
    await scene.h.openshock.wait_until(
        lambda: not hub.device_state(scene.device.id).online, what="offline seen"
    )
    text = await scene.command("shock", scene.bob, intensity=10, duration=1)
    assert "offline" in text.lower()
    assert scene.control_frames() == []


async def test_hub_down_is_said_at_once_and_nothing_is_queued(scene: Scene) -> None:
    await scene.grant_everyone()
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    await scene.h.bot.hubs.stop(account.id)
    text = await scene.command("shock", scene.bob, intensity=10, duration=1)
    assert "connection is down" in text
    await scene.h.bot.connect_account(account)
    await scene.h.ready(account.id)
    assert scene.control_frames() == []


async def test_forged_shocker_value_is_refused(scene: Scene) -> None:
    await scene.grant_everyone()
    payload = scene.h.ix.slash(
        "shock",
        {"shocker": "00000000-0000-0000-0000-000000000001", "intensity": 10, "duration": 1},
        user=scene.bob,
    )
    await scene.h.run(payload)
    assert "not a shocker shared in this server" in scene.h.discord.replies_for(payload).text
    assert scene.control_frames() == []


async def test_out_of_range_values_are_rechecked_at_run_time(scene: Scene) -> None:
    await scene.grant_everyone()
    text = await scene.command("shock", scene.bob, intensity=150, duration=1)
    assert "between 1 and 100" in text
    text = await scene.command("shock", scene.bob, intensity=10, duration=0.1)
    assert "between 0.3 s and" in text
    assert scene.control_frames() == []


async def test_autocomplete_lists_only_usable_shockers(scene: Scene) -> None:
    carol = scene.h.discord_user("carol")
    payload = scene.h.ix.autocomplete("shock", "shocker", "", user=carol)
    await scene.h.run(payload)
    assert scene.h.discord.replies_for(payload).choices == []
    await scene.grant_everyone(shock=False)
    for command, expected in (("shock", []), ("vibrate", ["Collar (alice)"])):
        payload = scene.h.ix.autocomplete(command, "shocker", "col", user=carol)
        await scene.h.run(payload)
        names = [c["name"] for c in scene.h.discord.replies_for(payload).choices]
        assert names == expected


async def test_panic_stops_everything_and_pauses_every_share(scene: Scene) -> None:
    other_guild = 4242
    await scene.h.share(scene.alice, scene.collar_id, guild_id=other_guild)
    payload = scene.h.ix.slash("panic", user=scene.alice)
    await scene.h.run(payload)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral and "Stop was sent" in reply.text
    (frame,) = scene.control_frames()
    assert [(c["id"], c["type"]) for c in frame.arguments[0]] == [(scene.collar_id, 0)]
    shares = await scene.h.storage.shares.of_wearer(scene.alice.id)
    assert len(shares) == 2 and all(share.paused for share in shares)
    assert await scene.h.storage.shares.is_wearer_paused(other_guild, scene.alice.id)


async def test_two_quick_commands_cannot_both_pass_a_cooldown(scene: Scene) -> None:
    import asyncio

    await scene.grant_everyone(cooldown=600)
    payloads = [
        scene.h.ix.slash(
            "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=scene.bob
        )
        for _ in range(5)
    ]
    await asyncio.gather(*(scene.h.run(payload) for payload in payloads))
    assert len(scene.control_frames()) == 1
    texts = [scene.h.discord.replies_for(p).text.lower() for p in payloads]
    assert sum("cooling down" in text for text in texts) == 4


async def test_an_unacknowledged_control_says_so_and_keeps_the_cooldown(scene: Scene) -> None:
    await scene.grant_everyone(cooldown=600)
    scene.h.openshock.unanswered_methods.add("ControlV2")  # recorded, never completed
    scene.h.bot.control.send_timeout = 0.2
    text = await scene.command("shock", scene.bob, intensity=10, duration=1)
    assert "did not answer ControlV2" in text and "may or may not have been delivered" in text
    scene.h.openshock.unanswered_methods.clear()
    assert "cooling down" in (await scene.command("shock", scene.bob, intensity=10, duration=1))
    assert len(scene.control_frames()) == 1


async def test_a_control_that_could_not_be_sent_gives_the_cooldown_back(scene: Scene) -> None:
    await scene.grant_everyone(cooldown=600)
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    hub = scene.h.bot.hubs.get(account.id)
    assert hub is not None
    # The hub drops between the decision and the send.
    original_decide = scene.h.bot.control.decide

    async def decide_then_drop(order: Any) -> Any:
        prepared = await original_decide(order)
        await scene.h.bot.hubs.stop(account.id)
        return prepared

    scene.h.bot.control.decide = decide_then_drop  # type: ignore[method-assign]
    payload = scene.h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=scene.bob
    )
    await scene.h.run(payload)
    reply = scene.h.discord.replies_for(payload)
    assert "connection is down" in reply.text and "Not sent" in reply.text
    assert reply.ephemeral  # a failure concerns the sender alone
    scene.h.bot.control.decide = original_decide  # type: ignore[method-assign]
    await scene.h.bot.connect_account(account)
    await scene.h.ready(account.id)
    assert "✅ delivered" in await scene.command("shock", scene.bob, intensity=10, duration=1)
    guild = scene.h.discord.guild_id
    assert await scene.h.storage.cooldowns.last_control(guild, scene.bob.id, scene.collar_id)


@pytest.mark.parametrize("restriction", ["panic", "pause", "block", "revoke"])
async def test_a_restriction_written_after_the_decision_stops_the_control(
    scene: Scene, restriction: str
) -> None:
    """The wearer's /panic (or a pause, block or revoke) lands between Bob's decision and his
    frame: the control is decided again, refused, and never reaches the hub."""
    await scene.grant_everyone()
    guild = scene.h.discord.guild_id
    storage = scene.h.storage
    original_decide = scene.h.bot.control.decide
    calls = 0

    async def decide_then_restrict(order: Any) -> Any:
        nonlocal calls
        calls += 1
        prepared = await original_decide(order)
        if calls == 1:
            if restriction == "panic":
                await scene.h.bot.control.panic(
                    wearer_id=scene.alice.id,
                    account=await storage.accounts.by_discord_user(scene.alice.id),
                    display_name="alice",
                )
            elif restriction == "pause":
                await storage.shares.set_paused(guild, scene.alice.id, scene.collar_id, True)
            elif restriction == "block":
                await storage.shares.block(guild, scene.alice.id, scene.bob.id)
            else:
                await storage.grants.revoke(guild, GrantTarget.ROLE, guild, None)
        return prepared

    scene.h.bot.control.decide = decide_then_restrict  # type: ignore[method-assign]
    payload = scene.h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=scene.bob
    )
    await scene.h.run(payload)
    reply = scene.h.discord.replies_for(payload)
    assert "Not sent" in reply.text and reply.ephemeral
    sent_types = [c["type"] for frame in scene.control_frames() for c in frame.arguments[0]]
    assert ControlKind.SHOCK not in sent_types
    assert sent_types == ([ControlKind.STOP] if restriction == "panic" else [])
    assert calls == 2  # decided again before sending
    (entry, *_) = await storage.audit.recent(guild)
    assert entry.outcome is AuditOutcome.REFUSED


# What the wearer or an admin does right after a control, through the commands themselves:
# the next control's decision must not come from what was kept in memory for the last one.
AFTER_A_CONTROL = {
    "pause": ("shockers pause", "alice", {"shocker": None}),
    "pause all": ("shockers pause", "alice", {}),
    "panic": ("panic", "alice", {}),
    "block": ("shockers block", "alice", {"member": "bob"}),
    "unshare": ("shockers unshare", "alice", {"shocker": None}),
    "revoke": ("permissions revoke", "admin", {"who": "everyone"}),
}


@pytest.mark.parametrize("restriction", list(AFTER_A_CONTROL))
async def test_a_restriction_right_after_a_control_refuses_the_next_one(
    scene: Scene, restriction: str
) -> None:
    await scene.grant_everyone()
    assert "delivered" in await scene.command("shock", scene.bob, intensity=10, duration=1)
    command, who, raw = AFTER_A_CONTROL[restriction]
    users = {"alice": scene.alice, "bob": scene.bob}
    options: dict[str, Any] = {}
    types = {}
    for name, value in raw.items():
        if value is None:
            options[name] = scene.collar_id
        elif value == "everyone":
            options[name], types[name] = scene.h.ix.everyone, "mentionable"
        else:
            options[name] = users[value]
    user = scene.admin if who == "admin" else users[who]
    payload = scene.h.ix.slash(command, options, user=user, admin=who == "admin", types=types)
    await scene.h.run(payload)
    frames = len(scene.control_frames())

    text = await scene.command("shock", scene.bob, intensity=10, duration=1)
    assert "delivered" not in text
    shocks = [
        c for frame in scene.control_frames()[frames:] for c in frame.arguments[0]
        if c["type"] != ControlKind.STOP
    ]  # fmt: skip
    assert shocks == []


async def test_a_cooldown_holds_across_guilds(scene: Scene) -> None:
    other_guild_id = scene.h.discord.add_guild(name="Other").id
    await scene.grant_everyone(cooldown=600)
    await scene.add_guild_with_cooldown_grant(other_guild_id)
    await scene.command("shock", scene.bob, intensity=10, duration=1)
    other = Interactions(scene.h.discord.app_id, other_guild_id, tree=scene.h.bot.tree)
    payload = other.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=scene.bob
    )
    await scene.h.run(payload)
    assert "cooling down" in scene.h.discord.replies_for(payload).text.lower()
    assert len(scene.control_frames()) == 1


async def test_panic_sends_each_stop_on_its_own(scene: Scene) -> None:
    """One shocker OpenShock would refuse must not sink the Stop of the others."""
    cuff = scene.h.openshock.add_shocker(scene.device, "Cuff")
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    hub = scene.h.bot.hubs.get(account.id)
    assert hub is not None
    await hub.refresh_shockers()
    scene.h.openshock.shockers.remove(cuff)  # deleted on OpenShock since the lists were read
    payload = scene.h.ix.slash("panic", user=scene.alice)
    await scene.h.run(payload)
    frames = scene.control_frames()
    assert sorted(f.arguments[0][0]["id"] for f in frames) == sorted(
        [scene.collar_id, str(cuff.id)]
    )
    assert all(len(f.arguments[0]) == 1 for f in frames)
    # The collar's Stop was carried out although the cuff's was dropped.
    assert [c.shocker for c in scene.h.openshock.executed_controls] == [scene.collar]


async def test_a_connection_lost_after_sending_is_not_called_not_sent(scene: Scene) -> None:
    await scene.grant_everyone(cooldown=600)
    scene.h.openshock.unanswered_methods.add("ControlV2")  # recorded, never completed
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None

    async def drop_when_the_frame_arrives() -> None:
        await scene.h.openshock.wait_for_invocation("ControlV2")
        await scene.h.openshock.drop_connections(scene.alice_os)

    dropper = asyncio.create_task(drop_when_the_frame_arrives())
    text = await scene.command("shock", scene.bob, intensity=10, duration=1)
    await dropper
    assert "may or may not have been carried out" in text
    assert "Not sent" not in text
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entry.outcome is AuditOutcome.NOT_CONFIRMED
    scene.h.openshock.unanswered_methods.clear()
    await scene.h.ready(account.id)
    assert "cooling down" in (await scene.command("shock", scene.bob, intensity=10, duration=1))


async def test_a_hub_closing_before_the_log_still_answers_and_audits_not_confirmed(
    scene: Scene,
) -> None:
    await scene.grant_everyone()
    scene.collar.paused = True  # OpenShock drops it silently: no Log will come
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None

    async def stop_the_hub_when_the_frame_arrives() -> None:
        await scene.h.openshock.wait_for_invocation("ControlV2")
        await scene.h.bot.hubs.stop(account.id)  # e.g. the wearer re-links meanwhile

    stopper = asyncio.create_task(stop_the_hub_when_the_frame_arrives())
    text = await scene.command("shock", scene.bob, intensity=10, duration=1)
    await stopper
    assert "did not confirm" in text
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entry.outcome is AuditOutcome.NOT_CONFIRMED
    assert entry.reason == "the connection to OpenShock closed before it confirmed"


async def test_a_share_withdrawn_before_the_frame_is_refused_and_audited(scene: Scene) -> None:
    await scene.grant_everyone()
    guild = scene.h.discord.guild_id
    original_decide = scene.h.bot.control.decide
    calls = 0

    async def decide_then_unshare(order: Any) -> Any:
        nonlocal calls
        calls += 1
        prepared = await original_decide(order)
        if calls == 1:
            await scene.h.storage.shares.unshare(guild, scene.alice.id, scene.collar_id)
        return prepared

    scene.h.bot.control.decide = decide_then_unshare  # type: ignore[method-assign]
    payload = scene.h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=scene.bob
    )
    await scene.h.run(payload)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral and "not shared here any more" in reply.text
    assert scene.control_frames() == []
    (entry,) = await scene.h.storage.audit.recent(guild)
    assert entry.outcome is AuditOutcome.REFUSED and entry.shocker_name == "Collar"


async def test_giving_back_a_cooldown_never_removes_another_controls_reservation(
    scene: Scene,
) -> None:
    guild = scene.h.discord.guild_id
    strict_guild = scene.h.discord.add_guild(name="Strict").id
    await scene.grant_everyone()  # no cooldown here
    await scene.add_guild_with_cooldown_grant(strict_guild)
    control = scene.h.bot.control
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    original_decide = control.decide
    order = ControlOrder(
        sender=Sender(scene.bob.id, frozenset(), "bob"),
        guild_id=guild,
        shocker_id=scene.collar_id,
        kind=ControlKind.SHOCK,
        intensity=10,
        duration_ms=1000,
    )

    async def decide_twice_then_drop(order: Any) -> Any:
        first = await original_decide(order)
        await original_decide(order)  # a second control reserves the cooldown again
        await scene.h.bot.hubs.stop(account.id)
        return first

    control.decide = decide_twice_then_drop  # type: ignore[method-assign]
    ticket = await control.submit(order)
    control.decide = original_decide  # type: ignore[method-assign]
    # Nothing went out: the first control gives its cooldown back...
    assert (await ticket.outcome()).outcome is ControlOutcome.FAILED
    # ...but the second control's reservation still holds in the strict guild.
    third = await control.submit(replace(order, guild_id=strict_guild))
    assert third.refused and "cooling down" in (third.report.reason or "").lower()


async def test_outside_names_in_a_control_reply_are_inert(harness: Harness) -> None:
    h = harness
    wearer_os = h.openshock.add_user("@everyone")
    odd = h.openshock.add_shocker(h.openshock.add_device(wearer_os, "Hub"), "**Loud** @here")
    wearer = h.discord_user("wearer")
    account = await h.link(wearer, wearer_os)
    await h.share(wearer, str(odd.id))
    payload = h.ix.slash(
        "shock", {"shocker": str(odd.id), "intensity": 5, "duration": 1}, user=wearer
    )
    await h.run(payload)
    text = h.discord.replies_for(payload).text
    assert "\\*\\*Loud\\*\\* @\u200bhere" in text  # no bold, no mention
    # The wearer by mention, never by their OpenShock account name.
    assert f"(<@{wearer.id}>)" in text and "everyone" not in text
    assert account.openshock_name == "@everyone"


async def test_a_long_display_name_is_cut_so_the_custom_name_fits_openshock(scene: Scene) -> None:
    await scene.grant_everyone()
    long_named = scene.h.discord_user("x" * 80)
    await scene.command("shock", long_named, intensity=10, duration=1)
    (frame,) = scene.control_frames()
    custom_name = frame.arguments[1]
    assert len(custom_name) == 64 and custom_name == "x" * 54 + " (Discord)"
    assert "✅" in scene.h.discord.last_reply().text  # OpenShock accepted it (a longer one fails)
