"""/random start and /random stop end to end: the command → the scheduler → the pipeline →
ControlV2 at the fake hub, the public status message and its Stop button, every way random mode
ends, a restart, and the end time."""

from __future__ import annotations

import asyncio
import copy
import random
import time
from dataclasses import dataclass
from typing import Any

import pytest

from bot.cogs.random_mode import RandomModeCog
from bot.domain.controls import ControlKind
from bot.services import random_mode as random_mode_module
from bot.services.halts import Halt
from bot.services.random_mode import RandomModeService
from bot.storage.models import AuditOutcome
from bot.storage.random_modes import RandomModeRow
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.interactions import Interactions
from tests.fakes.openshock_server import FakeDevice, FakeShocker, HubInvocation
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness

FAST = {"min_gap": 0.05, "max_gap": 0.1}  # seconds; the test floor below allows them


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

    @property
    def service(self) -> RandomModeService:
        cog = self.h.bot.get_cog(RandomModeCog.__cog_name__)
        assert isinstance(cog, RandomModeCog)
        return cog.service

    async def start(
        self, user: DiscordUser | None = None, *, public_floor: bool = False, **options: Any
    ) -> dict[str, Any]:
        """Run /random start; returns the payload (its reply is the status message). Gaps
        below the public 5 s floor are accepted unless ``public_floor``: tests run in ms."""
        self.service.min_gap_floor = 5.0 if public_floor else 0.01
        values = {"shocker": self.collar_id, "minutes": 1, **options}
        payload = self.h.ix.slash("random start", values, user=user or self.alice)
        await self.h.run(payload)
        return payload

    async def started(self, **options: Any) -> tuple[RandomModeRow, dict[str, Any]]:
        payload = await self.start(**options)
        reply = self.h.discord.replies_for(payload)
        assert "Random mode" in reply.text, reply.text
        row = await self.h.storage.random_modes.running_on(self.collar_id)
        assert row is not None
        return row, payload

    def status(self, row: RandomModeRow) -> dict[str, Any]:
        """The status message as it is now (after every edit)."""
        message = self.h.discord.message(row.message_id or 0)
        assert message is not None
        return message

    async def wait_status(self, row: RandomModeRow, text: str) -> dict[str, Any]:
        await self.h.discord.wait_for(lambda: text in self.status(row)["content"])
        return self.status(row)

    def frames(self, *kinds: ControlKind) -> list[dict[str, Any]]:
        controls = [
            control
            for invocation in self.invocations()
            for control in invocation.arguments[0]
            if not kinds or control["type"] in kinds
        ]
        return controls

    def invocations(self) -> list[HubInvocation]:
        return [i for i in self.h.openshock.invocations if i.target == "ControlV2"]

    def random_frames(self) -> list[dict[str, Any]]:
        return self.frames(ControlKind.SHOCK, ControlKind.VIBRATE)

    async def wait_frames(self, n: int) -> list[dict[str, Any]]:
        await self.h.openshock.wait_until(
            lambda: len(self.random_frames()) >= n, what=f"{n} random frames"
        )
        return self.random_frames()

    async def command(self, name: str, user: DiscordUser, **options: Any) -> str:
        payload = self.h.ix.slash(name, options, user=user)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).text

    async def press_stop(
        self, row: RandomModeRow, user: DiscordUser, message: dict[str, Any] | None = None
    ) -> Any:
        message = message if message is not None else self.status(row)
        payload = self.h.ix.button(f"random:stop:{row.id}", message=message, user=user)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload)

    async def nothing_more_fires(self, row: RandomModeRow, max_gap: float) -> None:
        """Ended: no timer armed, and no random frame comes in well over the longest gap."""
        await self.service.idle()
        assert ("random-mode", row.id) not in self.h.bot.scheduler
        before = len(self.random_frames())
        await asyncio.sleep(max_gap * 4)
        assert len(self.random_frames()) == before


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


async def test_random_controls_stay_within_the_ranges_and_are_audited_as_random(
    scene: Scene,
) -> None:
    scene.service.rng = random.Random(1234)
    started = time.time()
    row, payload = await scene.started(
        mode="both", min_intensity=5, max_intensity=20, max_duration=0.8, **FAST
    )
    reply = scene.h.discord.replies_for(payload)
    assert not reply.ephemeral
    assert f"<@{scene.alice.id}>" in reply.text and "**Collar**" in reply.text
    assert "shock or vibrate · 5–20 % · 0.3 s–0.8 s" in reply.text
    assert f"Ends <t:{int(row.ends_at)}:R>" in reply.text
    assert reply.custom_ids() == [f"random:stop:{row.id}"]
    assert reply.callback["data"]["allowed_mentions"]["parse"] == []  # nobody is pinged
    frames = await scene.wait_frames(6)
    for control in frames:
        assert control["type"] in (ControlKind.SHOCK, ControlKind.VIBRATE)
        assert 5 <= control["intensity"] <= 20
        assert 300 <= control["duration"] <= 800 and control["duration"] % 100 == 0
    assert {c["type"] for c in frames} == {ControlKind.SHOCK, ControlKind.VIBRATE}
    first = scene.invocations()[0]
    assert first.received_at >= started + 0.05  # not before the shortest gap
    assert first.arguments[1] == "alice (Discord)"  # the wearer's own control
    entries = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entries and all(e.origin == "random" for e in entries)
    assert all(e.member_id == scene.alice.id for e in entries)
    # The next firing is planned within the gaps, and the status message tells the last one.
    current = await scene.h.storage.random_modes.get(row.id)
    assert current is not None and 0.05 <= current.next_gap_s <= 0.1
    status = await scene.wait_status(row, "so far)")
    assert "✅ delivered" in status["content"]

    text = await scene.command("random stop", scene.alice, shocker=scene.collar_id)
    assert "Random mode ended on **Collar**" in text
    status = await scene.wait_status(row, "Ended")
    assert "the wearer used /random stop" in status["content"]
    assert status["components"] == []
    await scene.nothing_more_fires(row, 0.1)


async def test_the_first_firing_waits_at_least_the_shortest_gap(scene: Scene) -> None:
    started = time.time()
    row, _ = await scene.started(min_gap=0.6, max_gap=0.7)
    assert scene.invocations() == []  # nothing at the start
    await scene.wait_frames(1)
    assert scene.invocations()[0].received_at >= started + 0.6
    assert row.next_at - row.started_at >= 0.6
    await scene.service.stop(row.id, "test over")


async def test_defaults_are_vibrate_from_10_percent_to_the_wearers_cap_for_up_to_1_s(
    scene: Scene,
) -> None:
    row, payload = await scene.started(**FAST)
    assert "vibrate · 10–25 % · 0.3 s–1 s" in scene.h.discord.replies_for(payload).text
    for control in await scene.wait_frames(3):
        assert control["type"] == ControlKind.VIBRATE
        assert 10 <= control["intensity"] <= 25 and 300 <= control["duration"] <= 1000
    await scene.service.stop(row.id, "test over")
    # The public defaults: gaps of 30 s to 5 min.
    scene.h.openshock.invocations.clear()
    row, payload = await scene.started()
    assert "every 30 s–5 min" in scene.h.discord.replies_for(payload).text
    assert 30 <= row.next_gap_s <= 300
    await scene.service.stop(row.id, "test over")


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("panic", "the wearer used /panic"),
        ("stop", "a Stop was sent to the shocker"),
        ("pause", "the wearer paused it"),
        ("pause all", "the wearer paused it"),
        ("unshare", "the shocker is no longer shared here"),
        ("unlink", "the wearer unlinked their account"),
    ],
)
async def test_panic_stop_pause_unshare_and_unlink_end_random_mode_at_once(
    scene: Scene, how: str, reason: str
) -> None:
    row, _ = await scene.started(**FAST)
    await scene.wait_frames(1)
    if how == "panic":
        await scene.command("panic", scene.alice)
    elif how == "stop":
        assert "⏹️ Stop" in await scene.command("stop", scene.alice, shocker=scene.collar_id)
    elif how == "pause":
        await scene.command("shockers pause", scene.alice, shocker=scene.collar_id)
    elif how == "pause all":
        await scene.command("shockers pause", scene.alice)
    elif how == "unshare":
        await scene.command("shockers unshare", scene.alice, shocker=scene.collar_id)
    else:
        await scene.command("account unlink", scene.alice)
    assert not scene.service.is_running(row.id)  # ended in the same step as the command
    status = await scene.wait_status(row, "Ended")
    assert reason in status["content"] and status["components"] == []
    ended = await scene.h.storage.random_modes.get(row.id)
    assert ended is not None and not ended.running
    await scene.nothing_more_fires(row, 0.1)


async def test_a_firing_already_on_its_way_is_not_sent_after_a_halt(scene: Scene) -> None:
    """/panic lands between a firing's decision and its frame: the guard holds it back."""
    control = scene.h.bot.control
    original_decide = control.decide
    halted = asyncio.Event()

    async def decide_then_halt(order: Any) -> Any:
        prepared = await original_decide(order)
        if not halted.is_set():
            halted.set()
            control.halts.announce(Halt("panic", wearer_id=scene.alice.id))
        return prepared

    control.decide = decide_then_halt  # type: ignore[method-assign]
    row, _ = await scene.started(**FAST)
    await asyncio.wait_for(halted.wait(), 5)
    await scene.wait_status(row, "Ended")
    await scene.nothing_more_fires(row, 0.1)
    assert scene.invocations() == []
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entry.outcome is AuditOutcome.REFUSED and entry.origin == "random"
    control.decide = original_decide  # type: ignore[method-assign]


async def test_stop_button_for_the_wearer_and_members_who_may_stop_only(scene: Scene) -> None:
    row, _ = await scene.started(**FAST)
    stale = copy.deepcopy(scene.status(row))  # as a client that has not seen the edit shows it
    refused = await scene.press_stop(row, scene.bob)  # no grant: may not Stop this shocker
    assert refused.ephemeral and "Only the wearer and members who may Stop" in refused.text
    assert scene.service.is_running(row.id)
    grant = scene.h.ix.slash(
        "permissions grant",
        {"who": scene.h.ix.everyone},
        user=scene.admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await scene.h.run(grant)
    pressed = await scene.press_stop(row, scene.bob)
    assert "⏹️ Stop → Collar" in pressed.text
    assert not scene.service.is_running(row.id)
    status = await scene.wait_status(row, "Ended")
    assert f"<@{scene.bob.id}> pressed Stop" in status["content"]
    stops = scene.frames(ControlKind.STOP)
    assert len(stops) == 1
    assert scene.invocations()[-1].arguments[1] == "bob (Discord)"
    await scene.nothing_more_fires(row, 0.1)
    again = await scene.press_stop(row, scene.alice, stale)
    assert again.ephemeral and "already ended" in again.text


async def test_a_forged_stop_button_from_another_server_is_refused(scene: Scene) -> None:
    row, _ = await scene.started(**FAST)
    other_guild = scene.h.discord.add_guild(name="Other").id
    other = Interactions(scene.h.discord.app_id, other_guild, tree=scene.h.bot.tree)
    forged = copy.deepcopy(scene.status(row))  # the same button, pressed in another server
    payload = other.button(f"random:stop:{row.id}", message=forged, user=scene.alice)
    await scene.h.run(payload)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral and "not from this server" in reply.text
    assert scene.service.is_running(row.id)
    await scene.service.stop(row.id, "test over")


async def test_random_mode_resumes_after_a_restart_and_its_button_still_works(
    scene: Scene,
) -> None:
    row, _ = await scene.started(min_gap=0.2, max_gap=0.3)
    await scene.wait_frames(1)
    await scene.h.restart()
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    await scene.h.ready(account.id)
    assert scene.service.is_running(row.id)
    before = len(scene.random_frames())
    await scene.wait_frames(before + 1)  # fires again after the restart
    await scene.wait_status(row, "so far)")
    pressed = await scene.press_stop(row, scene.alice)
    assert "⏹️ Stop" in pressed.text
    status = await scene.wait_status(row, "Ended")
    assert "the wearer pressed Stop" in status["content"]
    await scene.nothing_more_fires(row, 0.3)


async def test_random_mode_ends_at_its_end_time(scene: Scene) -> None:
    row, _ = await scene.started(**FAST)
    await scene.wait_frames(1)
    # A minute passes: the next due firing finds the end time reached.
    scene.service.clock = lambda: time.time() + 61
    status = await scene.wait_status(row, "Ended")
    assert "its time is up" in status["content"] and status["components"] == []
    await scene.nothing_more_fires(row, 0.1)


async def test_a_random_mode_that_ended_while_the_bot_was_down_says_so_and_never_fires(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    row, _ = await scene.started(min_gap=30, max_gap=60)
    await scene.h.stop()
    monkeypatch.setattr(random_mode_module, "now", lambda: time.time() + 3600)
    await scene.h.start()
    status = await scene.wait_status(row, "Ended")
    assert "its time is up" in status["content"]
    ended = await scene.h.storage.random_modes.get(row.id)
    assert ended is not None and not ended.running
    assert ("random-mode", row.id) not in scene.h.bot.scheduler
    assert scene.random_frames() == []


async def test_an_offline_device_skips_the_firing_and_the_status_says_so(scene: Scene) -> None:
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    hub = scene.h.bot.hubs.get(account.id)
    assert hub is not None
    await scene.h.openshock.set_device_online(scene.device, False)
    await scene.h.openshock.wait_until(
        lambda: not hub.device_state(scene.device.id).online, what="offline seen"
    )
    row, _ = await scene.started(**FAST)
    await scene.wait_status(row, "skipped: device offline")
    assert scene.service.is_running(row.id) and scene.invocations() == []
    await scene.h.openshock.set_device_online(scene.device, True)
    await scene.wait_frames(1)  # carries on once the device is back
    await scene.service.stop(row.id, "test over")


async def test_one_random_mode_per_shocker(scene: Scene) -> None:
    row, _ = await scene.started(**FAST)
    payload = await scene.start(**FAST)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral and "already running on this shocker" in reply.text
    await scene.service.stop(row.id, "test over")
    # Ended, a new one may start.
    row, _ = await scene.started(**FAST)
    await scene.service.stop(row.id, "test over")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"minutes": 0}, "`minutes` must be between 1 and 240"),
        ({"minutes": 241}, "`minutes` must be between 1 and 240"),
        ({"min_gap": 1}, "`min_gap` must be between"),
        ({"min_gap": 20, "max_gap": 10}, "`min_gap` (20 s) is above `max_gap` (10 s)"),
        ({"min_intensity": 20, "max_intensity": 10}, "`min_intensity` (20 %) is above"),
        ({"max_intensity": 50}, "`max_intensity` must be between 1 and 25 %"),
        ({"max_duration": 0.1}, "`max_duration` must be between 0.3 s and 3 s"),
        ({"max_duration": 10}, "`max_duration` must be between 0.3 s and 3 s"),
        ({"min_gap": float("nan")}, "`min_gap` must be between"),
        ({"mode": "sound"}, "`mode` must be shock, vibrate or both."),
    ],
)
async def test_values_are_checked_again_at_run_time(
    scene: Scene, options: dict[str, Any], expected: str
) -> None:
    payload = await scene.start(public_floor=True, **options)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral and expected in reply.text, reply.text
    assert await scene.h.storage.random_modes.running_on(scene.collar_id) is None


@pytest.mark.parametrize("case", ["paused", "type not allowed", "not the wearer"])
async def test_random_mode_starts_only_on_the_wearers_usable_share(scene: Scene, case: str) -> None:
    guild = scene.h.discord.guild_id
    user = scene.alice
    if case == "paused":
        await scene.h.storage.shares.set_paused(guild, scene.alice.id, scene.collar_id, True)
        expected = "Random mode cannot start: You paused this shocker here"
    elif case == "type not allowed":
        await scene.h.share(scene.alice, scene.collar_id, shock=False)
        expected = "shock is not allowed on this shocker here"
    else:
        user = scene.bob
        expected = "You have not shared that shocker in this server"
    payload = await scene.start(user, mode="shock", **FAST)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral and expected in reply.text, reply.text
    assert await scene.h.storage.random_modes.running_on(scene.collar_id) is None


async def test_random_stop_with_nothing_running_says_so(scene: Scene) -> None:
    text = await scene.command("random stop", scene.alice)
    assert "No random mode is running on your shockers here" in text


async def test_random_mode_needs_a_channel_the_bot_can_see(scene: Scene) -> None:
    blind = Interactions(
        scene.h.discord.app_id,
        scene.h.discord.guild_id,
        channel=scene.h.discord.channel(scene.h.discord.channel_id),
        tree=scene.h.bot.tree,
        app_permissions=0,
    )
    payload = blind.slash(
        "random start", {"shocker": scene.collar_id, "minutes": 1}, user=scene.alice
    )
    await scene.h.run(payload)
    reply = scene.h.discord.replies_for(payload)
    assert reply.ephemeral and "I cannot see this channel" in reply.text
    assert await scene.h.storage.random_modes.running_on(scene.collar_id) is None


async def test_no_random_mode_runs_without_its_status_message(scene: Scene) -> None:
    # Discord refuses the answer that would carry the status message (and every other answer).
    scene.h.discord.fail(403, count=None, path=r"/interactions/\d+/[^/]+/callback")
    await scene.start(**FAST)
    await scene.service.idle()
    assert await scene.h.storage.random_modes.running() == []
    ended = await scene.h.storage.random_modes.get(1)  # the first row of a new database
    assert ended is not None and ended.end_reason == "its status message could not be posted"
    await asyncio.sleep(0.3)  # three times the longest gap
    assert scene.random_frames() == []


def test_the_registered_options_of_random_start(harness: Harness) -> None:
    (group,) = [c for c in harness.bot.tree.get_commands() if c.name == "random"]
    payload = group.to_dict(harness.bot.tree)
    assert payload["contexts"] == [0]  # servers only
    start = next(o for o in payload["options"] if o["name"] == "start")
    options = {o["name"]: o for o in start["options"]}
    assert list(options) == [
        "shocker",
        "minutes",
        "mode",
        "min_intensity",
        "max_intensity",
        "max_duration",
        "min_gap",
        "max_gap",
    ]
    assert (options["minutes"]["min_value"], options["minutes"]["max_value"]) == (1, 240)
    assert [c["value"] for c in options["mode"]["choices"]] == ["vibrate", "shock", "both"]
    assert [c["name"] for c in options["mode"]["choices"]][:2] == ["vibrate", "shock"]
    assert options["min_gap"]["min_value"] == 5
    assert [o["name"] for o in payload["options"]] == ["start", "stop"]


async def test_a_pause_the_service_was_not_told_about_still_ends_it_at_the_next_firing(
    scene: Scene,
) -> None:
    row, _ = await scene.started(**FAST)
    await scene.wait_frames(1)
    # Written without its halt (as if the bot had stopped between the write and the halt).
    guild = scene.h.discord.guild_id
    await scene.h.storage.shares.set_paused(guild, scene.alice.id, scene.collar_id, True)
    before = len(scene.random_frames())
    status = await scene.wait_status(row, "Ended")
    assert "the shocker is paused" in status["content"]
    await scene.nothing_more_fires(row, 0.1)
    assert len(scene.random_frames()) == before


async def test_an_ending_right_before_shutdown_is_kept_after_the_restart(scene: Scene) -> None:
    row, _ = await scene.started(min_gap=30, max_gap=60)
    scene.h.bot.control.halts.announce(Halt("panic", wearer_id=scene.alice.id))
    await scene.h.restart()  # at once: the ending is still being written
    ended = await scene.h.storage.random_modes.get(row.id)
    assert ended is not None and ended.end_reason == "the wearer used /panic"
    assert not scene.service.is_running(row.id)
