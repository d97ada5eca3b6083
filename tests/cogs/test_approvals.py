"""Approval mode end to end: /shockers share approval:True, a member's /shock becomes a request in
the channel that pings the wearer alone, the wearer's Approve (decided again, sent within caps) or
Deny, expiry, halts (pause, Stop) and restarts."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
from dataclasses import dataclass
from typing import Any

import pytest

from bot.cogs.approvals import ApprovalsCog
from bot.domain.controls import ControlKind
from bot.services.control import ControlOrder, ControlOutcome, Origin, Sender
from bot.storage.models import ApprovalState, AuditOutcome
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeShocker
from tests.harness import Harness


@dataclass
class Scene:
    h: Harness
    alice: DiscordUser  # the wearer
    bob: DiscordUser  # a member with a grant
    carol: DiscordUser  # another member with a grant
    collar: FakeShocker

    @property
    def collar_id(self) -> str:
        return str(self.collar.id)

    @property
    def channel_id(self) -> int:
        return self.h.discord.channel_id

    async def slash(self, name: str, user: DiscordUser, **options: Any) -> dict[str, Any]:
        payload = self.h.ix.slash(name, options, user=user)
        await self.h.run(payload)
        return payload

    async def ask(self, user: DiscordUser, intensity: int = 20, duration: float = 1.0) -> Any:
        """`user` shocks the collar; returns their interaction payload."""
        return await self.slash(
            "shock", user, shocker=self.collar_id, intensity=intensity, duration=duration
        )

    def requests(self) -> list[dict[str, Any]]:
        """The request messages posted in the channel, oldest first."""
        return [
            m
            for m in self.h.discord.channel_messages(self.channel_id)
            if any(
                c.get("custom_id", "").startswith("approval:")
                for row in m.get("components") or []
                for c in row.get("components") or []
            )
            or "request" in m["content"]
        ]

    async def posted(self, count: int = 1) -> dict[str, Any]:
        """Wait until `count` requests are posted; the last one, as posted (with its buttons,
        for presses after it was edited)."""
        await self.h.discord.wait_for(lambda: len(self.requests()) >= count)
        return copy.deepcopy(self.requests()[count - 1])

    def content(self, message: dict[str, Any]) -> str:
        current = self.h.discord.message(message["id"])
        assert current is not None
        return str(current["content"])

    async def press(self, message: dict[str, Any], action: str, user: DiscordUser) -> Any:
        (custom_id,) = [
            c["custom_id"]
            for row in message["components"]
            for c in row["components"]
            if c["custom_id"].endswith(f":{action}")
        ]
        payload = self.h.ix.button(custom_id, message=message, user=user)
        await self.h.run(payload)
        return payload

    async def forgotten(self) -> None:
        """Once the cog's clean-up ran, no request is pending or keeps an interaction token
        (an approved one is deleted; the others stay a while, counting against the requester's
        limit)."""
        cog = self.h.bot.get_cog(ApprovalsCog.__cog_name__)
        assert isinstance(cog, ApprovalsCog)
        async with asyncio.timeout(5):
            await cog.idle()
        for request in await self.h.storage.approvals.all():
            assert request.state is not ApprovalState.PENDING
            assert request.state is not ApprovalState.APPROVED
            assert request.reply_token is None

    def reply_text(self, payload: dict[str, Any]) -> str:
        return self.h.discord.replies_for(payload).text

    def frames(self) -> list[Any]:
        return [i for i in self.h.openshock.invocations if i.target == "ControlV2"]


@pytest.fixture
async def scene(harness: Harness) -> Scene:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub"), "Collar")
    alice, bob, carol = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("carol")
    admin = h.discord_user("admin")
    await h.link(alice, alice_os)
    scene = Scene(h, alice, bob, carol, collar)
    share = await scene.slash("shockers share", alice, shocker=scene.collar_id, approval=True)
    assert "Approval mode is on" in scene.reply_text(share)
    grant = h.ix.slash(
        "permissions grant",
        {"who": h.ix.everyone},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await h.run(grant)
    assert "Granted" in scene.reply_text(grant)
    return scene


async def test_approve_sends_the_control_decided_again_within_the_caps(scene: Scene) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob, intensity=80, duration=2)  # the share caps at 25 %
    answer = h.discord.replies_for(asked)
    assert answer.ephemeral
    assert (
        f"Asked the wearer for approval: ⚡ Shock 25 % · 2 s → Collar (<@{scene.alice.id}>)"
        in answer.text
    )
    request = await scene.posted()
    assert request["content"].startswith(f"🙋 <@{scene.alice.id}>, <@{scene.bob.id}> asks")
    assert "⚡ Shock 25 % · 2 s → Collar" in request["content"]
    # The wearer is pinged, nobody else.
    mentions = request["allowed_mentions"]
    assert mentions["parse"] == []
    assert [int(user) for user in mentions["users"]] == [scene.alice.id]
    assert scene.frames() == []  # nothing is sent while it waits
    assert await h.storage.audit.recent(h.discord.guild_id) == []

    pressed = await scene.press(request, "approve", scene.alice)
    await h.discord.wait_for(lambda: "✅ delivered" in scene.content(request))
    (frame,) = scene.frames()
    control = frame.arguments[0][0]
    assert (control["type"], control["intensity"], control["duration"]) == (1, 25, 2000)
    assert frame.arguments[1] == "bob (Discord)"  # sent as the requester's control
    text = scene.content(request)
    assert text.startswith(f"✅ <@{scene.alice.id}> approved <@{scene.bob.id}>'s request: ⚡")
    assert h.discord.replies_for(pressed).custom_ids() == []  # buttons gone
    await h.discord.wait_for(lambda: "approved" in scene.reply_text(asked))
    assert scene.reply_text(asked).startswith(f"✅ <@{scene.alice.id}> approved: ⚡ Shock 25 %")
    (entry,) = await h.storage.audit.recent(h.discord.guild_id)
    assert (entry.member_id, entry.origin, entry.outcome) == (
        scene.bob.id,
        "approval",
        AuditOutcome.CONFIRMED,
    )
    await scene.forgotten()  # answered and told


async def test_deny_sends_nothing_and_says_so_to_both(scene: Scene) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    await scene.press(request, "deny", scene.alice)
    assert scene.content(request).startswith(f"✖ <@{scene.alice.id}> denied <@{scene.bob.id}>'s")
    await h.discord.wait_for(lambda: "denied your request" in scene.reply_text(asked))
    assert "Nothing was sent" in scene.reply_text(asked)
    again = await scene.press(request, "approve", scene.alice)  # a late press does nothing
    assert scene.reply_text(again) == "This request is no longer open."
    assert scene.frames() == []


async def test_only_the_wearer_can_answer(scene: Scene) -> None:
    h = scene.h
    await scene.ask(scene.bob)
    request = await scene.posted()
    for user in (scene.bob, scene.carol):
        pressed = await scene.press(request, "approve", user)
        answer = h.discord.replies_for(pressed)
        assert answer.ephemeral
        assert answer.text == f"Only <@{scene.alice.id}> can answer this request."
    assert scene.frames() == []
    assert "asks to send" in scene.content(request)  # still open
    await scene.press(request, "approve", scene.alice)
    await h.openshock.wait_for_invocation("ControlV2")
    assert len(scene.frames()) == 1


async def test_an_unanswered_request_expires_and_nothing_is_sent(scene: Scene) -> None:
    h = scene.h
    h.bot.control.approval_timeout = 0.2
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    await h.discord.wait_for(lambda: "expired" in scene.content(request))
    assert scene.content(request).startswith(f"⌛ <@{scene.bob.id}>'s request expired")
    await h.discord.wait_for(lambda: "expired" in scene.reply_text(asked))
    late = await scene.press(request, "approve", scene.alice)
    assert scene.reply_text(late) == "This request is no longer open."
    assert scene.frames() == []
    await scene.forgotten()


async def test_a_pause_during_the_wait_ends_the_request(scene: Scene) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    await scene.slash("shockers pause", scene.alice)
    await h.discord.wait_for(lambda: "ended" in scene.content(request))
    assert "because the wearer paused it" in scene.content(request)
    await h.discord.wait_for(lambda: "ended" in scene.reply_text(asked))
    late = await scene.press(request, "approve", scene.alice)
    assert scene.reply_text(late) == "This request is no longer open."
    assert scene.frames() == []


async def test_a_pause_no_halt_announced_is_still_decided_on_approve(scene: Scene) -> None:
    """Approve decides again with the facts of that moment: a pause written meanwhile wins even
    if no halt reached the request (here written straight to storage)."""
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    await h.storage.shares.pause_wearer(h.discord.guild_id, scene.alice.id)
    pressed = await scene.press(request, "approve", scene.alice)
    assert "not sent" in scene.content(request)
    assert "paused" in scene.reply_text(pressed)  # the reason, to the wearer alone
    assert h.discord.replies_for(pressed).followups[0]["flags"] & 64
    await h.discord.wait_for(lambda: "Not sent" in scene.reply_text(asked))
    assert "paused" in scene.reply_text(asked)
    assert scene.frames() == []
    (entry,) = await h.storage.audit.recent(h.discord.guild_id)
    assert (entry.outcome, entry.origin) == (AuditOutcome.REFUSED, "approval")


async def test_a_stop_during_the_wait_ends_the_request(scene: Scene) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    stop = await scene.slash("stop", scene.carol, shocker=scene.collar_id)  # Stop is never held
    assert "Stop" in scene.reply_text(stop)
    await h.discord.wait_for(lambda: "ended" in scene.content(request))
    assert "because a Stop was sent to the shocker" in scene.content(request)
    await h.discord.wait_for(lambda: "ended" in scene.reply_text(asked))
    late = await scene.press(request, "approve", scene.alice)
    assert scene.reply_text(late) == "This request is no longer open."
    (frame,) = scene.frames()
    assert frame.arguments[0][0]["type"] == int(ControlKind.STOP)


async def test_a_request_survives_a_restart_and_can_be_approved_after_it(scene: Scene) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    await h.restart()
    await h.openshock.wait_for_connections(h.openshock.users[0])
    account = await h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    await h.ready(account.id)
    await scene.press(request, "approve", scene.alice)
    await h.discord.wait_for(lambda: "✅ delivered" in scene.content(request))
    assert len(scene.frames()) == 1
    await h.discord.wait_for(lambda: "approved" in scene.reply_text(asked))


async def test_a_request_that_expired_while_the_bot_was_down_is_ended_at_start(
    scene: Scene,
) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    await h.stop()
    with sqlite3.connect(h.settings.database_path) as db:
        db.execute("UPDATE approval_requests SET expires_at = 0")
    await h.start()
    await h.discord.wait_for(lambda: "expired" in scene.content(request))
    await h.discord.wait_for(lambda: "expired" in scene.reply_text(asked))
    await scene.forgotten()
    assert scene.frames() == []


async def test_many_requests_are_each_their_own_message_up_to_a_few_per_member(
    scene: Scene,
) -> None:
    h = scene.h
    for _ in range(3):
        await scene.ask(scene.bob)
    await scene.ask(scene.carol)
    await scene.posted(4)
    too_many = await scene.ask(scene.bob)
    assert "asked the wearer 3 times in the last ten minutes" in scene.reply_text(too_many)
    assert h.discord.replies_for(too_many).ephemeral
    pending = await h.storage.approvals.all()
    assert [r.requester_id for r in pending] == [scene.bob.id] * 3 + [scene.carol.id]
    assert {r.state for r in pending} == {ApprovalState.PENDING}
    assert len({m["id"] for m in scene.requests()}) == 4
    assert scene.frames() == []


async def test_the_wearer_and_stop_are_never_held(scene: Scene) -> None:
    h = scene.h
    own = await scene.ask(scene.alice)
    assert "✅ delivered" in scene.reply_text(own)
    stop = await scene.slash("stop", scene.bob, shocker=scene.collar_id)
    assert "Stop" in scene.reply_text(stop)
    assert [f.arguments[0][0]["type"] for f in scene.frames()] == [1, 0]
    assert scene.requests() == []
    assert await h.storage.approvals.all() == []


async def test_an_order_with_no_channel_cannot_ask_and_is_refused(scene: Scene) -> None:
    h = scene.h
    order = ControlOrder(
        sender=Sender(scene.bob.id, frozenset(), "bob"),
        guild_id=h.discord.guild_id,
        shocker_id=scene.collar_id,
        kind=ControlKind.SHOCK,
        intensity=10,
        duration_ms=1000,
        origin=Origin.BUTTON,
    )
    report = await (await h.bot.control.submit(order)).outcome()
    assert report.outcome is ControlOutcome.REFUSED
    assert report.reason is not None and "nothing was sent" in report.reason
    assert scene.frames() == []
    with_channel = await h.bot.control.submit(
        ControlOrder(**{**_fields(order), "channel_id": scene.channel_id})
    )
    assert with_channel.report.outcome is ControlOutcome.AWAITING_APPROVAL
    assert with_channel.report.approval_id is not None
    await scene.posted()


def _fields(order: ControlOrder) -> dict[str, Any]:
    return {name: getattr(order, name) for name in order.__dataclass_fields__}


async def test_a_request_that_cannot_be_posted_ends_and_the_requester_is_told(
    scene: Scene,
) -> None:
    h = scene.h
    h.discord.fail_channel(scene.channel_id, 403, method="POST")  # no right to post there
    asked = await scene.ask(scene.bob)
    # Told either way, whichever came first: the failed post or the reply's own check.
    await h.discord.wait_for(
        lambda: any(
            words in scene.reply_text(asked)
            for words in ("could not be posted", "answered or ended already")
        )
    )
    await scene.forgotten()
    assert scene.requests() == []
    assert scene.frames() == []


async def test_requests_hold_no_cooldown_and_a_cooldown_in_between_wins(scene: Scene) -> None:
    h = scene.h
    regrant = h.ix.slash(
        "permissions grant",
        {"who": h.ix.everyone, "cooldown": 600.0},
        user=scene.alice,
        admin=True,
        types={"who": "mentionable"},
    )
    await h.run(regrant)
    first = await scene.ask(scene.bob)
    second = await scene.ask(scene.bob)  # not refused: a request sends nothing
    assert "Asked the wearer for approval" in scene.reply_text(second)
    one, two = await scene.posted(1), await scene.posted(2)
    await scene.press(one, "approve", scene.alice)
    await h.discord.wait_for(lambda: "✅ delivered" in scene.content(one))
    pressed = await scene.press(two, "approve", scene.alice)
    assert "not sent" in scene.content(two)
    assert "cooling down" in scene.reply_text(pressed)
    await h.discord.wait_for(lambda: "cooling down" in scene.reply_text(second))
    await h.discord.wait_for(lambda: "delivered" in scene.reply_text(first))
    assert len(scene.frames()) == 1


async def test_list_says_the_shocker_asks_its_wearer_first(scene: Scene) -> None:
    h = scene.h
    listing = h.ix.slash("shockers list", user=scene.bob)
    await h.run(listing)
    (embed,) = h.discord.replies_for(listing).embeds
    assert "🙋 asks the wearer first" in embed["description"]


async def test_a_requester_cannot_ping_the_wearer_again_and_again_by_ending_requests_with_stop(
    scene: Scene,
) -> None:
    """A requester may end their own request with /stop (allowed to anyone who may control),
    and a request reserves no cooldown: the limit counts every request the wearer did not approve
    in the last ten minutes, so /shock, /stop, /shock, ... pings the wearer three times at most."""
    rounds = 8
    answers = []
    for _ in range(rounds):
        answers.append(await scene.ask(scene.bob, intensity=10, duration=1))
        await scene.slash("stop", scene.bob, shocker=scene.collar_id)
    await scene.posted(3)
    # Each request message is posted pinging the wearer (test_approvals checks its
    # allowed_mentions at creation; the later edits carry none). One member, seconds apart:
    posted = len(scene.requests())
    assert posted <= 3, f"the wearer was pinged {posted} times by one requester"
    # The fourth and later ones were refused with a sentence, and nothing was sent.
    assert "asked the wearer 3 times in the last ten minutes" in scene.reply_text(answers[3])
    assert [f for f in scene.frames() if f.arguments[0][0]["type"] != 0] == []


async def test_relinking_to_another_account_ends_what_waited_on_the_old_shares(
    scene: Scene,
) -> None:
    """/account link with a different OpenShock account deletes the old account's shares, as an
    unlink does, and announces the same halt: the pending request ends and loses its buttons."""
    from bot.cogs.approvals import ApprovalsCog
    from tests.cogs.test_account import link_via_modal

    h = scene.h
    await scene.ask(scene.bob, intensity=10, duration=1)
    await scene.posted()
    other_os = h.openshock.add_user("Alt")
    reply = await link_via_modal(h, scene.alice, other_os.token)
    assert "Re-linked" in reply.text
    assert await h.storage.shares.in_guild(h.discord.guild_id) == []  # the share is gone
    cog = h.bot.get_cog(ApprovalsCog.__cog_name__)
    assert isinstance(cog, ApprovalsCog)
    await cog.idle()
    (request,) = scene.requests()
    assert "approval:" not in str(request.get("components")), "the request still shows its buttons"


async def _grant_by_role_only(scene: Scene, who: DiscordUser) -> Any:
    """`who` may control the collar only through a role (the @everyone grant is withdrawn)."""
    h = scene.h
    admin = h.discord_user("admin2")
    revoke = h.ix.slash(
        "permissions revoke",
        {"who": h.ix.everyone},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await h.run(revoke)
    role = h.discord.add_role("controllers")
    h.discord.add_member(None, who, [role])
    h.ix.set_roles(who, [role])
    grant = h.ix.slash(
        "permissions grant", {"who": role}, user=admin, admin=True, types={"who": "mentionable"}
    )
    await h.run(grant)
    assert "Granted" in scene.reply_text(grant)
    return role


async def test_approve_decides_with_the_requesters_roles_of_that_moment(scene: Scene) -> None:
    """The requester's role (their only grant) is taken away while the request waits: the
    approved control is decided with the roles Discord gives now, not those of the request."""
    h = scene.h
    await _grant_by_role_only(scene, scene.bob)
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    h.discord.add_member(None, scene.bob, [])  # the admins take the role away
    h.ix.set_roles(scene.bob, [])
    pressed = await scene.press(request, "approve", scene.alice)
    assert "not sent" in scene.content(request)
    (why,) = h.discord.replies_for(pressed).followups  # to the wearer alone
    assert (
        why["content"]
        == "It was not sent: You do not have permission to control this shocker here."
    )
    await h.discord.wait_for(lambda: "Not sent" in scene.reply_text(asked))
    assert scene.frames() == []
    await scene.forgotten()


async def test_approve_sends_nothing_when_the_requester_left_the_server(scene: Scene) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    h.discord.guild(None).members.pop(scene.bob.id)  # bob left
    await scene.press(request, "approve", scene.alice)
    assert "no longer a member of this server; nothing was sent" in scene.content(request)
    await h.discord.wait_for(lambda: "no longer a member" in scene.reply_text(asked))
    assert scene.frames() == []
    await scene.forgotten()


async def test_approve_sends_nothing_when_discord_cannot_say_the_requesters_roles(
    scene: Scene,
) -> None:
    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    h.discord.fail(500, method="GET", path=rf"/members/{scene.bob.id}$", count=None)
    await scene.press(request, "approve", scene.alice)
    assert "couldn't check" in scene.content(request)
    assert "nothing was sent" in scene.content(request)
    h.discord.clear_faults()
    await h.discord.wait_for(lambda: "couldn't check your roles" in scene.reply_text(asked))
    assert scene.frames() == []
    await scene.forgotten()


async def test_a_request_ended_by_a_stop_just_before_shutdown_stays_ended_after_restart(
    scene: Scene,
) -> None:
    """A Stop ends a request and the process is asked to stop in the same moment: the shutdown
    waits for the ending to be stored, so the restart does not bring the request back."""
    from bot.services.halts import Halt

    h = scene.h
    asked = await scene.ask(scene.bob)
    request = await scene.posted()
    cog = h.bot.get_cog(ApprovalsCog.__cog_name__)
    assert isinstance(cog, ApprovalsCog)
    # The disk is slow: the ending's write completes only once the shutdown has begun.
    repo = h.storage.approvals
    real_settle = repo.settle
    shutting_down = asyncio.Event()

    async def slow_settle(request_id: int, state: ApprovalState) -> bool:
        await shutting_down.wait()
        return await real_settle(request_id, state)

    real_unload = cog.cog_unload

    async def unload() -> None:
        shutting_down.set()
        await real_unload()

    repo.settle = slow_settle  # type: ignore[method-assign]
    cog.cog_unload = unload  # type: ignore[method-assign]
    h.bot.control.halts.announce(Halt("stop", shocker_id=scene.collar_id))
    await h.restart()
    account = await h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    await h.ready(account.id)
    assert [r.state for r in await h.storage.approvals.all()] == [ApprovalState.ENDED]
    assert cog is not h.bot.get_cog(ApprovalsCog.__cog_name__)
    new_cog = h.bot.get_cog(ApprovalsCog.__cog_name__)
    assert isinstance(new_cog, ApprovalsCog)
    assert new_cog._open == {}  # not re-armed
    assert "ended" in scene.content(request)
    assert "ended" in scene.reply_text(asked)
    late = await scene.press(request, "approve", scene.alice)
    assert scene.reply_text(late) == "This request is no longer open."
    assert scene.frames() == []
