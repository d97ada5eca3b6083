"""/panel end to end: the real command posts a panel through the fake Discord; presses and
reactions on it go through the real control pipeline to the fake hub; the panel's message is
edited by its throttled editor; panels survive a restart and close when the share ends."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import Any

import pytest

from bot.cogs.panel import PanelCog
from bot.domain.controls import ControlKind
from bot.domain.grants import GrantTarget
from bot.storage import database
from bot.storage.models import AuditOutcome
from tests.fakes.discord_api import (
    DEFAULT_BOT_PERMISSIONS,
    FakeUser,
    InteractionRecord,
    message_text,
)
from tests.fakes.interactions import load_guild, run_reaction_add
from tests.fakes.openshock_server import FakeDevice, FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness

_EMBED_LINKS = 1 << 14
_MANAGE_MESSAGES = 1 << 13


@dataclass
class Scene:
    h: Harness
    alice: FakeUser  # the wearer
    bob: FakeUser  # granted
    carol: FakeUser  # no grant
    admin: FakeUser
    alice_os: OpenShockUser
    device: FakeDevice
    collar: FakeShocker

    @property
    def collar_id(self) -> str:
        return str(self.collar.id)

    @property
    def cog(self) -> PanelCog:
        cog = self.h.bot.get_cog("PanelCog")
        assert isinstance(cog, PanelCog)
        return cog

    def fast_edits(self) -> None:
        """Edits within 50 ms instead of seconds, so a test can wait for each one."""
        self.cog.editor.interval = 0.05

    async def post(self, user: FakeUser | None = None, **options: Any) -> dict[str, Any]:
        """/panel by `user` (the wearer by default); returns the panel message."""
        payload = self.h.ix.slash(
            "panel", {"shocker": self.collar_id, **options}, user=user or self.alice
        )
        await self.h.run(payload)
        answer = self.h.discord.replies_for(payload)
        assert answer.ephemeral and "Posted the panel" in answer.text, answer.text
        return self.h.discord.channel_messages(self.h.discord.channel_id)[-1]

    async def press(
        self, message: dict[str, Any], action: str, user: FakeUser, **kwargs: Any
    ) -> InteractionRecord:
        payload = self.h.ix.button(
            f"{custom_ids(message)[0].rsplit(':', 1)[0]}:{action}",
            message=message,
            user=user,
            **kwargs,
        )
        await self.h.run(payload)
        return self.h.discord.replies_for(payload)

    def frames(self) -> list[dict[str, Any]]:
        return [i.arguments[0][0] for i in self.h.openshock.invocations if i.target == "ControlV2"]

    async def panel_shows(self, message: dict[str, Any], text: str) -> None:
        await self.h.discord.wait_for(lambda: text in message_text(message))

    def panel_edits(self, message: dict[str, Any]) -> int:
        return len(
            self.h.discord.requests_matching("PATCH", rf"/channels/\d+/messages/{message['id']}$")
        )


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [
        button["custom_id"]
        for row in message.get("components") or []
        for button in row.get("components") or []
    ]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message.get("components") or [] for b in row.get("components") or []]


@pytest.fixture
async def scene(harness: Harness) -> Scene:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    device = h.openshock.add_device(alice_os, "Hub", online=True)
    collar = h.openshock.add_shocker(device, "Collar")
    alice, bob, carol, admin = (h.discord_user(n) for n in ("alice", "bob", "carol", "admin"))
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id), max_intensity=40, max_duration_ms=3000)
    await h.storage.grants.grant(
        guild_id=h.discord.guild_id,
        target_kind=GrantTarget.MEMBER,
        target_id=bob.id,
        shocker_id=None,
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=admin.id,
    )
    return Scene(h, alice, bob, carol, admin, alice_os, device, collar)


async def test_the_wearer_posts_a_panel_with_the_shocker_its_wearer_state_and_buttons(
    scene: Scene,
) -> None:
    message = await scene.post()
    text = message_text(message)
    assert "Control panel · Collar" in text
    assert f"<@{scene.alice.id}>" in text and "Alice" not in text  # a mention, not the OS name
    assert "🟢 online" in text and "▶️ active" in text
    assert "≤ 40 % · ≤ 3 s · shock, vibrate, sound" in text
    assert [b["label"] for b in buttons(message)] == [
        "Light",
        "Medium",
        "Strong",
        "Vibrate",
        "Sound",
        "Stop",
        "Custom…",
    ]
    (panel_id,) = {cid.split(":")[1] for cid in custom_ids(message)}
    assert all(cid == f"panel:{panel_id}:{cid.split(':')[2]}" for cid in custom_ids(message))
    panel = await scene.h.storage.panels.get(int(panel_id))
    assert panel is not None and panel.message_id == int(message["id"])
    assert message["allowed_mentions"] == {"parse": []}


async def test_the_panel_shows_its_device_going_offline(scene: Scene) -> None:
    scene.fast_edits()
    message = await scene.post()
    await scene.h.openshock.set_device_online(scene.device, False)
    await scene.panel_shows(message, "⚫ offline")


async def test_only_the_wearer_or_an_admin_may_post_a_panel(scene: Scene) -> None:
    payload = scene.h.ix.slash("panel", {"shocker": scene.collar_id}, user=scene.bob)
    await scene.h.run(payload)
    answer = scene.h.discord.replies_for(payload)
    assert answer.ephemeral and "Only the wearer" in answer.text
    assert scene.h.discord.channel_messages(scene.h.discord.channel_id) == []
    # Manage Server is read from the interaction at run time.
    admin = scene.h.ix.slash("panel", {"shocker": scene.collar_id}, user=scene.admin, admin=True)
    await scene.h.run(admin)
    assert "Posted the panel" in scene.h.discord.replies_for(admin).text


async def test_each_preset_sends_its_frame_within_the_caps(scene: Scene) -> None:
    scene.fast_edits()
    message = await scene.post()
    expected = {
        "light": (ControlKind.SHOCK, 10, 1000),  # 25 % of the 40 % cap
        "medium": (ControlKind.SHOCK, 20, 1000),
        "strong": (ControlKind.SHOCK, 40, 1000),
        "vibrate": (ControlKind.VIBRATE, 40, 1000),  # 50 % asked, capped at 40 %
        "sound": (ControlKind.SOUND, 40, 1000),
        "stop": (ControlKind.STOP, 0, 300),
    }
    for action, (kind, intensity, duration) in expected.items():
        answer = await scene.press(message, action, scene.bob)
        assert answer.ephemeral, action  # to the presser alone
        assert answer.response_type == 4  # a new message: the panel itself is not replaced
        frame = scene.frames()[-1]
        assert (frame["type"], frame["intensity"], frame["duration"]) == (
            kind,
            intensity,
            duration,
        )
    assert len(scene.frames()) == 6
    names = {i.arguments[1] for i in scene.h.openshock.invocations if i.target == "ControlV2"}
    assert names == {"bob (Discord)"}
    entries = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert {e.origin for e in entries} == {"button"}
    await scene.panel_shows(message, f"<@{scene.bob.id}> ⏹️ Stop · ✅ delivered")


async def test_a_short_duration_cap_shortens_the_shock_presets(scene: Scene) -> None:
    await scene.h.share(scene.alice, scene.collar_id, max_intensity=3, max_duration_ms=500)
    message = await scene.post()
    await scene.press(message, "light", scene.bob)
    (frame,) = scene.frames()
    assert (frame["intensity"], frame["duration"]) == (1, 500)  # at least 1 %


async def test_a_member_without_a_grant_is_refused_alone_and_nothing_is_sent(
    scene: Scene,
) -> None:
    message = await scene.post()
    answer = await scene.press(message, "strong", scene.carol)
    assert answer.ephemeral and "permission" in answer.text.lower()
    assert scene.frames() == []
    assert scene.panel_edits(message) == 0  # a refusal is not shown on the panel


async def test_a_press_on_a_share_in_approval_mode_asks_the_wearer_in_the_panels_channel(
    scene: Scene,
) -> None:
    h = scene.h
    share = h.ix.slash(
        "shockers share", {"shocker": scene.collar_id, "approval": True}, user=scene.alice
    )
    await h.run(share)
    message = await scene.post()
    answer = await scene.press(message, "light", scene.bob)
    assert answer.ephemeral and "Asked the wearer for approval" in answer.text
    assert scene.frames() == []
    (request,) = await h.storage.approvals.all()
    assert (request.requester_id, request.channel_id) == (scene.bob.id, int(message["channel_id"]))
    # The wearer's own press is never held.
    await scene.press(message, "light", scene.alice)
    await h.openshock.wait_until(lambda: len(scene.frames()) == 1, what="the wearer's control")


async def test_a_panic_between_a_press_and_its_frame_wins(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wearer's /panic (the command) lands after a press was decided and before its frame:
    the press is decided again and refused, nothing but Stop reaches the hub after it, and the
    audit rows deferred meanwhile are all kept."""
    monkeypatch.setattr(database, "GROUP_WINDOW", 60.0)  # nothing is written by the clock
    h = scene.h
    message = await scene.post()
    await scene.press(message, "light", scene.bob)
    assert len(scene.frames()) == 1
    control = h.bot.control
    original_decide = control.decide
    calls = 0

    async def decide_then_panic(order: Any) -> Any:
        nonlocal calls
        calls += 1
        prepared = await original_decide(order)
        if calls == 1:
            await h.run(h.ix.slash("panic", {}, user=scene.alice))
        return prepared

    control.decide = decide_then_panic  # type: ignore[method-assign]
    answer = await scene.press(message, "light", scene.bob)
    assert answer.ephemeral and "Not sent" in answer.text
    assert calls == 2  # decided again before the frame
    assert [f["type"] for f in scene.frames()] == [ControlKind.SHOCK, ControlKind.STOP]
    entries = await h.storage.audit.recent(h.discord.guild_id)
    presses = [e.outcome for e in reversed(entries) if e.control_type == ControlKind.SHOCK]
    assert presses == [AuditOutcome.CONFIRMED, AuditOutcome.REFUSED]  # the first one kept


async def test_stop_works_while_paused_and_the_panel_shows_the_pause(scene: Scene) -> None:
    scene.fast_edits()
    message = await scene.post()
    pause = scene.h.ix.slash("shockers pause", {"shocker": scene.collar_id}, user=scene.alice)
    await scene.h.run(pause)
    await scene.panel_shows(message, "⏸️ paused")
    refused = await scene.press(message, "light", scene.bob)
    assert refused.ephemeral and "paused" in refused.text.lower()
    stop = await scene.press(message, "stop", scene.bob)
    assert "⏹️ Stop" in stop.text
    assert [f["type"] for f in scene.frames()] == [ControlKind.STOP]
    # A resume shows on the panel without waiting for the next press.
    resume = scene.h.ix.slash("shockers resume", {"shocker": scene.collar_id}, user=scene.alice)
    await scene.h.run(resume)
    await scene.h.discord.wait_for(lambda: "⏸️ paused" not in message_text(message))


async def test_custom_opens_a_modal_and_its_values_are_checked_again(scene: Scene) -> None:
    message = await scene.post()
    opened = await scene.press(message, "custom", scene.bob)
    assert opened.response_type == 9 and opened.modal is not None
    modal = opened.modal
    submit = scene.h.ix.modal_submit(
        modal,
        {"Type": ["vibrate"], "Intensity (%)": "30", "Duration (seconds)": "2.5"},
        message=message,
        user=scene.bob,
    )
    await scene.h.run(submit)
    answer = scene.h.discord.replies_for(submit)
    assert answer.ephemeral and "〰️ Vibrate 30 % · 2.5 s" in answer.text
    (frame,) = scene.frames()
    assert (frame["type"], frame["intensity"], frame["duration"]) == (2, 30, 2500)

    # A forged submission outside the bounds is refused by the run-time check.
    again = await scene.press(message, "custom", scene.bob)
    assert again.modal is not None
    forged = scene.h.ix.modal_submit(
        again.modal,
        {"Type": ["shock"], "Intensity (%)": "900", "Duration (seconds)": "1"},
        message=message,
        user=scene.bob,
    )
    await scene.h.run(forged)
    answer = scene.h.discord.replies_for(forged)
    assert answer.ephemeral and "`intensity` must be between 1 and 100" in answer.text
    assert len(scene.frames()) == 1


async def test_a_press_on_an_old_panel_works_after_a_restart(scene: Scene) -> None:
    message = await scene.post()
    await scene.h.restart()
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    await scene.h.ready(account.id)
    answer = await scene.press(message, "medium", scene.bob)
    assert "⚡ Shock 20 % · 1 s" in answer.text and "delivered" in answer.text
    assert len(scene.frames()) == 1


async def test_after_unshare_the_buttons_are_disabled_and_a_press_says_so(scene: Scene) -> None:
    scene.fast_edits()
    message = await scene.post()
    unshare = scene.h.ix.slash("shockers unshare", {"shocker": scene.collar_id}, user=scene.alice)
    await scene.h.run(unshare)
    await scene.h.discord.wait_for(lambda: all(b.get("disabled") for b in buttons(message)))
    assert "This panel is closed: the shocker is no longer shared here" in message_text(message)
    # A press that was already on its way (or a stale client) is told so.
    stale = copy.deepcopy(message)
    for button in buttons(stale):
        button["disabled"] = False
    answer = await scene.press(stale, "light", scene.bob)
    assert answer.ephemeral and "no longer shared here" in answer.text
    assert scene.frames() == []
    # Shared again later: a new share, the old panel stays closed.
    await scene.h.share(scene.alice, scene.collar_id)
    answer = await scene.press(stale, "light", scene.bob)
    assert "no longer works" in answer.text and scene.frames() == []


async def test_unlinking_the_account_closes_its_panels(scene: Scene) -> None:
    scene.fast_edits()
    message = await scene.post()
    unlink = scene.h.ix.slash("account unlink", user=scene.alice)
    await scene.h.run(unlink)
    await scene.h.discord.wait_for(lambda: all(b.get("disabled") for b in buttons(message)))


async def test_fifty_presses_in_a_second_make_a_few_edits_and_no_429(scene: Scene) -> None:
    scene.h.discord.enable_rate_limits()
    message = await scene.post()
    await asyncio.gather(*(scene.press(message, "stop", scene.bob) for _ in range(50)))
    assert len(scene.frames()) == 50
    await scene.panel_shows(message, f"<@{scene.bob.id}> ⏹️ Stop · ✅ delivered")
    await scene.cog.editor.idle()
    assert 1 <= scene.panel_edits(message) <= 3
    assert scene.h.discord.count_429() == 0


@pytest.mark.parametrize(
    "forge",
    ["other guild", "malformed", "unknown panel", "unknown action", "other message"],
)
async def test_forged_custom_ids_are_refused(scene: Scene, forge: str) -> None:
    message = await scene.post()
    panel_id = int(custom_ids(message)[0].split(":")[1])
    forged = copy.deepcopy(message)
    custom_id = {
        "other guild": f"panel:{panel_id}:light",
        "malformed": "panel:12x:light",
        "unknown panel": f"panel:{panel_id + 1000}:light",
        "unknown action": f"panel:{panel_id}:zap",
        "other message": f"panel:{panel_id}:light",
    }[forge]
    buttons(forged)[0]["custom_id"] = custom_id
    kwargs: dict[str, Any] = {}
    if forge == "other guild":
        other = scene.h.discord.add_guild(name="Other")
        await scene.h.share(scene.alice, scene.collar_id, guild_id=other.id)
        ix = copy.copy(scene.h.ix)
        ix.guild_id = other.id
        payload = ix.button(custom_id, message=forged, user=scene.bob)
    else:
        if forge == "other message":
            forged["id"] = str(int(forged["id"]) + 1)
        payload = scene.h.ix.button(custom_id, message=forged, user=scene.bob, **kwargs)
    await scene.h.run(payload)
    answer = scene.h.discord.replies_for(payload)
    assert answer.ephemeral and "not from a panel of this server" in answer.text
    assert scene.frames() == []


async def test_a_panel_is_only_posted_where_the_bot_can_embed(scene: Scene) -> None:
    ix = copy.copy(scene.h.ix)
    ix.app_permissions = DEFAULT_BOT_PERMISSIONS & ~_EMBED_LINKS
    payload = ix.slash("panel", {"shocker": scene.collar_id}, user=scene.alice)
    await scene.h.run(payload)
    answer = scene.h.discord.replies_for(payload)
    assert answer.ephemeral and "I need the Embed Links permission here" in answer.text
    assert scene.h.discord.channel_messages(scene.h.discord.channel_id) == []
    assert await scene.h.storage.panels.state(1) is None


async def test_reactions_send_as_the_member_and_are_removed(scene: Scene) -> None:
    scene.fast_edits()
    guild = scene.h.discord.guild()
    # The bot may manage messages here (a role with the permission), so it removes reactions.
    role = scene.h.discord.add_role("bot", permissions=DEFAULT_BOT_PERMISSIONS | _MANAGE_MESSAGES)
    scene.h.discord.add_member(guild.id, scene.h.discord.bot_user, [role])
    load_guild(scene.h.bot, scene.h.discord)
    message = await scene.post(reactions=True)
    assert set(scene.h.discord.reactions(message["id"])) == {"⚡", "〰️", "🔊"}
    for emoji, kind in (("⚡", ControlKind.SHOCK), ("〰️", ControlKind.VIBRATE)):
        event = scene.h.discord.reaction_add_payload(message, scene.bob, emoji)
        await run_reaction_add(scene.h.bot, event)
        frame = scene.frames()[-1]
        assert frame["type"] == kind and frame["intensity"] == (10 if emoji == "⚡" else 40)
        await scene.h.discord.wait_for(
            lambda e=emoji: scene.bob.id not in scene.h.discord.reactions(message["id"])[e]  # type: ignore[misc]
        )
    entries = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert {e.origin for e in entries} == {"reaction"}
    await scene.panel_shows(message, f"<@{scene.bob.id}> 〰️ Vibrate 40 % · 1 s")
    # The bot's own reactions and other emoji do nothing.
    bot_event = scene.h.discord.reaction_add_payload(message, scene.h.discord.bot_user, "⚡")
    await run_reaction_add(scene.h.bot, bot_event)
    other = scene.h.discord.reaction_add_payload(message, scene.bob, "👍")
    await run_reaction_add(scene.h.bot, other)
    assert len(scene.frames()) == 2


async def test_a_refused_reaction_is_told_by_dm_only_if_dms_are_open(scene: Scene) -> None:
    load_guild(scene.h.bot, scene.h.discord)
    message = await scene.post(reactions=True)
    await run_reaction_add(
        scene.h.bot, scene.h.discord.reaction_add_payload(message, scene.carol, "🔊")
    )
    (dm,) = scene.h.discord.dms(scene.carol.id)
    assert "Sound reaction" in dm["content"] and "permission" in dm["content"].lower()
    # Without Manage Messages the reaction stays.
    assert scene.carol.id in scene.h.discord.reactions(message["id"])["🔊"]
    dave = scene.h.discord_user("dave")
    scene.h.discord.close_dms(dave.id)
    await run_reaction_add(scene.h.bot, scene.h.discord.reaction_add_payload(message, dave, "⚡"))
    assert scene.h.discord.dms(dave.id) == []
    assert scene.frames() == []
    (refused, _) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert refused.outcome is AuditOutcome.REFUSED


async def test_reactions_on_a_panel_without_them_do_nothing(scene: Scene) -> None:
    load_guild(scene.h.bot, scene.h.discord)
    message = await scene.post()
    assert scene.h.discord.reactions(message["id"]) == {}
    await run_reaction_add(
        scene.h.bot, scene.h.discord.reaction_add_payload(message, scene.bob, "⚡")
    )
    assert scene.frames() == []


async def test_a_reaction_without_the_guild_cache_reads_the_member_from_discord(
    scene: Scene,
) -> None:
    """With no cached guild discord.py gives no member with the event: the member and roles
    are read over REST, and a bot account is still ignored."""
    message = await scene.post(reactions=True)
    scene.h.discord.add_member(scene.h.discord.guild_id, scene.bob)
    await run_reaction_add(
        scene.h.bot, scene.h.discord.reaction_add_payload(message, scene.bob, "🔊")
    )
    (frame,) = scene.frames()
    assert frame["type"] == ControlKind.SOUND
    robot = FakeUser.make("robot", bot=True)
    scene.h.discord.add_member(scene.h.discord.guild_id, robot)
    await run_reaction_add(scene.h.bot, scene.h.discord.reaction_add_payload(message, robot, "⚡"))
    assert len(scene.frames()) == 1
