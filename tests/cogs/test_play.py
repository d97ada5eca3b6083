"""/vote and /roulette end to end: interaction → access rules → (the vote's end) → the pipeline
→ ControlV2 at the fake hub, and what the channel reads."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import pytest

from bot.cogs.play import PlayCog
from bot.domain.controls import ControlKind
from bot.domain.votes import Tally
from bot.services.halts import Halt
from bot.services.votes import VoteService, timer_key
from bot.storage.models import AuditOutcome
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeDevice, FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness


def votes_of(h: Harness) -> VoteService:
    cog = h.bot.get_cog(PlayCog.__cog_name__)
    assert isinstance(cog, PlayCog)
    return cog.votes


@dataclass
class PostedVote:
    id: int
    message: dict[str, Any]

    @property
    def message_id(self) -> int:
        return int(self.message["id"])


@dataclass
class Scene:
    h: Harness
    alice: DiscordUser  # the wearer
    bob: DiscordUser  # a member with a grant
    carol: DiscordUser  # another member with a grant
    admin: DiscordUser
    alice_os: OpenShockUser
    device: FakeDevice
    collar: FakeShocker

    @property
    def collar_id(self) -> str:
        return str(self.collar.id)

    @property
    def votes(self) -> VoteService:
        return votes_of(self.h)

    async def grant(self, who: DiscordUser, **options: Any) -> None:
        payload = self.h.ix.slash(
            "permissions grant", {"who": who, **options}, user=self.admin, admin=True,
            types={"who": "mentionable"},
        )  # fmt: skip
        await self.h.run(payload)
        assert "Granted" in self.h.discord.replies_for(payload).text

    async def start_vote(self, user: DiscordUser, **options: Any) -> dict[str, Any]:
        values = {"shocker": self.collar_id, "type": "shock", "intensity": 20, "duration": 1}
        payload = self.h.ix.slash("vote", {**values, **options}, user=user)
        await self.h.run(payload)
        return payload

    async def posted_vote(self, user: DiscordUser, **options: Any) -> PostedVote:
        payload = await self.start_vote(user, **options)
        answer = self.h.discord.replies_for(payload)
        assert not answer.ephemeral, answer.text
        (message,) = answer.messages
        ids = answer.custom_ids()
        assert len(ids) == 2, ids
        vote_id = int(ids[0].split(":")[1])
        assert ids == [f"vote:{vote_id}:yes", f"vote:{vote_id}:no"]
        # As the members' clients hold it (with its buttons), whatever edits come later.
        return PostedVote(vote_id, copy.deepcopy(message))

    async def press(self, vote: PostedVote, user: DiscordUser, choice: str) -> str:
        payload = self.h.ix.button(f"vote:{vote.id}:{choice}", message=vote.message, user=user)
        await self.h.run(payload)
        answer = self.h.discord.replies_for(payload)
        assert answer.ephemeral
        return answer.text

    def text_of(self, vote: PostedVote) -> str:
        message = self.h.discord.message(vote.message_id)
        assert message is not None
        return str(message["content"])

    def time_is_up(self, vote: PostedVote) -> None:
        """The vote's time passes: its timer fires now (as it would at its end)."""
        votes = self.votes
        assert timer_key(vote.id) in self.h.bot.scheduler
        self.h.bot.scheduler.at(timer_key(vote.id), 0, lambda: votes.end(vote.id))

    async def ended(self, vote: PostedVote) -> str:
        await self.h.discord.wait_for(lambda: "Ended" in self.text_of(vote), timeout=10)
        return self.text_of(vote)

    def control_frames(self) -> list[Any]:
        return [i for i in self.h.openshock.invocations if i.target == "ControlV2"]


@pytest.fixture
async def scene(harness: Harness) -> Scene:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    device = h.openshock.add_device(alice_os, "Hub", online=True)
    collar = h.openshock.add_shocker(device, "Collar")
    alice, bob, carol = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("carol")
    admin = h.discord_user("admin")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id), max_intensity=25, max_duration_ms=3000)
    s = Scene(h, alice, bob, carol, admin, alice_os, device, collar)
    await s.grant(bob)
    await s.grant(carol)
    return s


# -- /vote --------------------------------------------------------------------------------------


async def test_a_vote_yes_wins_sends_one_frame_as_the_starter_within_caps(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob, intensity=80, duration=10)
    text = scene.text_of(vote)
    # The proposal as it would be capped for the starter, the wearer by mention, a countdown.
    assert f"<@{scene.bob.id}>" in text and f"(<@{scene.alice.id}>)" in text
    assert "⚡ Shock 25 % · 3 s → Collar" in text
    assert "<t:" in text and ":R>" in text
    assert scene.control_frames() == []

    assert "You voted ✅ Yes" in await scene.press(vote, scene.bob, "yes")
    assert "Yes 2 · ❌ No 0" in await scene.press(vote, scene.carol, "yes")
    assert "Yes 3" in await scene.press(vote, scene.alice, "yes")  # the wearer votes too
    # The running tally shows on the message.
    await scene.h.discord.wait_for(lambda: "✅ Yes 3 · ❌ No 0" in scene.text_of(vote))
    assert scene.control_frames() == []  # nothing before the end

    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "✅ Yes 3 · ❌ No 0" in text
    assert "Yes won" in text and "✅ delivered" in text
    (frame,) = scene.control_frames()
    controls, custom_name = frame.arguments
    assert [(c["id"], c["type"], c["intensity"], c["duration"]) for c in controls] == [
        (scene.collar_id, 1, 25, 3000)
    ]
    assert custom_name == "bob (Discord)"
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert (entry.member_id, entry.origin, entry.outcome) == (
        scene.bob.id,
        "vote",
        AuditOutcome.CONFIRMED,
    )
    # The buttons are gone, and a late press is refused.
    message = scene.h.discord.message(vote.message_id)
    assert message is not None and message["components"] == []
    assert "has ended" in await scene.press(vote, scene.carol, "no")


@pytest.mark.parametrize(("yes", "no", "said"), [(1, 2, "No won"), (1, 1, "A tie"), (0, 0, "tie")])
async def test_no_win_or_a_tie_sends_nothing(scene: Scene, yes: int, no: int, said: str) -> None:
    dave = scene.h.discord_user("dave")
    await scene.grant(dave)
    vote = await scene.posted_vote(scene.bob)
    voters = [scene.bob, scene.carol, dave]
    for voter in voters[:yes]:
        await scene.press(vote, voter, "yes")
    for voter in voters[yes : yes + no]:
        await scene.press(vote, voter, "no")
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert f"✅ Yes {yes} · ❌ No {no}" in text
    assert said in text and "nothing was sent" in text
    assert scene.control_frames() == []
    assert await scene.h.storage.audit.recent(scene.h.discord.guild_id) == []


async def test_the_ballot_of_a_member_the_wearer_blocked_meanwhile_does_not_count(
    scene: Scene,
) -> None:
    dave = scene.h.discord_user("dave")
    await scene.grant(dave)
    vote = await scene.posted_vote(scene.bob)
    await scene.press(vote, scene.bob, "yes")
    await scene.press(vote, scene.carol, "yes")
    await scene.press(vote, dave, "no")
    block = scene.h.ix.slash("shockers block", {"member": scene.carol}, user=scene.alice)
    await scene.h.run(block)
    assert "blocked" in scene.h.discord.replies_for(block).text.lower()
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "✅ Yes 1 · ❌ No 1" in text and "A tie" in text
    assert scene.control_frames() == []


async def test_a_vote_ends_by_its_own_timer(scene: Scene) -> None:
    scene.votes.min_seconds = 1  # the public floor is 15 s
    vote = await scene.posted_vote(scene.bob, seconds=1)
    text = await scene.ended(vote)
    assert "A tie: nothing was sent" in text
    assert scene.votes.running(vote.id) is None
    assert await scene.h.storage.votes.running() == []


async def test_a_non_controller_cannot_vote_and_is_told_alone(scene: Scene) -> None:
    eve = scene.h.discord_user("eve")  # no grant
    vote = await scene.posted_vote(scene.bob)
    assert "Only members who may control this shocker" in await scene.press(vote, eve, "yes")
    # Blocked by the wearer: no vote either.
    await scene.h.storage.shares.block(scene.h.discord.guild_id, scene.alice.id, scene.carol.id)
    assert "Only members who may control" in await scene.press(vote, scene.carol, "yes")
    assert await scene.h.storage.votes.tally(vote.id) == Tally(yes=0, no=0)


async def test_a_press_on_a_vote_that_is_not_running_is_refused(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob)
    message = json.loads(json.dumps(vote.message).replace(f"vote:{vote.id}:", "vote:999999:"))
    forged = PostedVote(999999, message)
    assert "has ended" in await scene.press(forged, scene.carol, "yes")


async def test_changing_a_vote_counts_once(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob)
    assert "Yes 0 · ❌ No 1" in await scene.press(vote, scene.carol, "no")
    assert "Yes 1 · ❌ No 0" in await scene.press(vote, scene.carol, "yes")
    assert "Yes 1 · ❌ No 0" in await scene.press(vote, scene.carol, "yes")
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "✅ Yes 1 · ❌ No 0" in text and "Yes won" in text
    assert len(scene.control_frames()) == 1


async def test_a_starter_who_may_not_send_it_cannot_start_a_vote(scene: Scene) -> None:
    eve = scene.h.discord_user("eve")
    payload = await scene.start_vote(eve)
    answer = scene.h.discord.replies_for(payload)
    assert answer.ephemeral and "permission" in answer.text
    await scene.h.storage.shares.set_paused(
        scene.h.discord.guild_id, scene.alice.id, scene.collar_id, True
    )
    payload = await scene.start_vote(scene.bob)
    answer = scene.h.discord.replies_for(payload)
    assert answer.ephemeral and "paused" in answer.text
    assert await scene.h.storage.votes.running() == []


async def test_vote_values_are_rechecked_at_run_time(scene: Scene) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"seconds": 5}, "between 15 and 600"),
        ({"seconds": 601}, "between 15 and 600"),
        ({"intensity": 0}, "between 1 and 100"),
        ({"duration": 100}, "must be between"),
        ({"type": "stop"}, "shock, vibrate or sound"),
    ]
    for options, expected in cases:
        payload = await scene.start_vote(scene.bob, **options)
        answer = scene.h.discord.replies_for(payload)
        assert answer.ephemeral and expected in answer.text, (options, answer.text)
    assert await scene.h.storage.votes.running() == []


@pytest.mark.parametrize("halt", ["pause", "stop", "panic", "unshare", "unlink"])
async def test_a_halt_during_the_vote_ends_it_and_nothing_is_sent(scene: Scene, halt: str) -> None:
    vote = await scene.posted_vote(scene.bob)
    await scene.press(vote, scene.bob, "yes")
    await scene.press(vote, scene.carol, "yes")
    if halt == "pause":
        command, options = "shockers pause", {"shocker": scene.collar_id}
    elif halt == "stop":
        command, options = "stop", {"shocker": scene.collar_id}
    elif halt == "panic":
        command, options = "panic", {}
    elif halt == "unshare":
        command, options = "shockers unshare", {"shocker": scene.collar_id}
    else:
        command, options = "account unlink", {}
    user = scene.carol if halt == "stop" else scene.alice
    await scene.h.run(scene.h.ix.slash(command, options, user=user))
    text = await scene.ended(vote)
    assert f"Ended early: {Halt(halt).sentence}. Nothing was sent." in text
    assert timer_key(vote.id) not in scene.h.bot.scheduler
    assert await scene.h.storage.votes.running() == []
    frames = scene.control_frames()
    assert all(c["type"] == ControlKind.STOP for f in frames for c in f.arguments[0])
    assert "has ended" in await scene.press(vote, scene.bob, "yes")


async def test_a_halt_while_the_vote_is_ending_sends_nothing(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob)
    await scene.press(vote, scene.carol, "yes")
    running = scene.votes.running(vote.id)
    assert running is not None
    ending = asyncio.create_task(scene.votes.end(vote.id))
    await asyncio.sleep(0)  # the end has begun (and awaits its first read)…
    assert running.settling
    scene.h.bot.control.halts.announce(Halt("stop", shocker_id=scene.collar_id))
    assert not running.still_wanted()  # the guard the pipeline checks before the frame
    await ending
    text = scene.text_of(vote)
    assert "Ended early: a Stop was sent to the shocker" in text
    assert scene.control_frames() == []


async def test_a_vote_survives_a_restart_and_takes_votes_after_it(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    await scene.h.restart()
    account = await scene.h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    await scene.h.ready(account.id)
    assert scene.votes.running(vote.id) is not None
    assert "✅ Yes 1 · ❌ No 1" in await scene.press(vote, scene.bob, "no")
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "✅ Yes 1 · ❌ No 1" in text and "tie" in text.lower()
    assert scene.control_frames() == []


async def test_a_vote_won_before_a_restart_sends_after_it(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    await scene.h.restart()
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "Yes won" in text and "✅ delivered" in text
    (frame,) = scene.control_frames()
    assert frame.arguments[1] == "bob (Discord)"
    assert frame.arguments[0][0]["intensity"] == 10


async def _end_while_down(scene: Scene, vote: PostedVote, ended_ago: float) -> None:
    await scene.h.stop()
    with sqlite3.connect(scene.h.settings.database_path) as db:
        db.execute("UPDATE votes SET ends_at = ? WHERE id = ?", (time.time() - ended_ago, vote.id))
    await scene.h.start()


async def test_a_vote_that_ended_while_the_bot_was_down_is_settled_at_start(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    await _end_while_down(scene, vote, ended_ago=5)
    text = await scene.ended(vote)  # nobody waits for the hub: the vote's end does
    assert "Yes won" in text and "✅ delivered" in text
    assert len(scene.control_frames()) == 1


async def test_a_vote_that_ended_long_before_the_start_sends_nothing(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    await _end_while_down(scene, vote, ended_ago=3600)
    text = await scene.ended(vote)
    assert "while the bot was offline" in text and "nothing was sent" in text
    assert scene.control_frames() == []
    assert await scene.h.storage.votes.running() == []


async def test_a_vote_won_is_decided_again_as_the_starter_at_the_end(scene: Scene) -> None:
    vote = await scene.posted_vote(scene.bob)
    await scene.press(vote, scene.carol, "yes")
    # The wearer blocks the starter meanwhile: the control is refused at the end.
    await scene.h.storage.shares.block(scene.h.discord.guild_id, scene.alice.id, scene.bob.id)
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "Yes won, but it was not sent" in text and "may no longer send it" in text
    assert "blocked" not in text  # who blocked whom is not the channel's business
    assert scene.control_frames() == []
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert (entry.origin, entry.outcome) == ("vote", AuditOutcome.REFUSED)


# -- /roulette ----------------------------------------------------------------------------------


async def test_roulette_never_picks_a_paused_offline_blocked_or_unshared_shocker(
    scene: Scene,
) -> None:
    h = scene.h
    guild = h.discord.guild_id
    # Dora's shockers: one she paused here, one on an offline device.
    dora, dora_os = h.discord_user("dora"), h.openshock.add_user("Dora")
    dora_hub = h.openshock.add_device(dora_os, "Dora hub", online=True)
    paused = h.openshock.add_shocker(dora_hub, "Paused")
    offline = h.openshock.add_shocker(
        h.openshock.add_device(dora_os, "Off", online=False), "Offline"
    )
    unshared = h.openshock.add_shocker(dora_hub, "Unshared")
    await h.link(dora, dora_os)
    for shocker in (paused, offline, unshared):
        await h.share(dora, str(shocker.id))
    await h.storage.shares.set_paused(guild, dora.id, str(paused.id), True)
    await h.storage.shares.unshare(guild, dora.id, str(unshared.id))
    # Fay blocked bob.
    fay, fay_os = h.discord_user("fay"), h.openshock.add_user("Fay")
    blocked = h.openshock.add_shocker(h.openshock.add_device(fay_os, "Fay hub"), "Blocked")
    await h.link(fay, fay_os)
    await h.share(fay, str(blocked.id))
    await h.storage.shares.block(guild, fay.id, scene.bob.id)

    for _ in range(8):
        payload = h.ix.slash("roulette", {"type": "vibrate"}, user=scene.bob)
        await h.run(payload)
        text = h.discord.replies_for(payload).text
        assert "🎲 The roulette picked **Collar**" in text and f"<@{scene.alice.id}>" in text
    frames = scene.control_frames()
    assert len(frames) == 8
    for frame in frames:
        ((control,), custom_name) = frame.arguments
        assert control["id"] == scene.collar_id and control["type"] == 2
        assert 1 <= control["intensity"] <= 25 and control["duration"] == 1000
        assert custom_name == "bob (Discord)"
    origins = {e.origin for e in await h.storage.audit.recent(guild)}
    assert origins == {"roulette"}


async def test_roulette_with_nothing_available_says_so_and_sends_nothing(scene: Scene) -> None:
    eve = scene.h.discord_user("eve")  # no grant anywhere
    payload = scene.h.ix.slash("roulette", user=eve)
    await scene.h.run(payload)
    answer = scene.h.discord.replies_for(payload)
    assert answer.ephemeral and "No shocker here can take a shock from you right now" in answer.text
    await scene.h.storage.shares.pause_wearer(scene.h.discord.guild_id, scene.alice.id)
    payload = scene.h.ix.slash("roulette", {"type": "sound"}, user=scene.bob)
    await scene.h.run(payload)
    answer = scene.h.discord.replies_for(payload)
    assert answer.ephemeral and "take a sound" in answer.text
    assert scene.control_frames() == []


async def test_roulette_respects_the_grant_cap_and_a_shorter_duration_cap(scene: Scene) -> None:
    eve = scene.h.discord_user("eve")
    await scene.grant(eve, max_intensity=5, max_duration=0.5)
    for _ in range(5):
        await scene.h.run(scene.h.ix.slash("roulette", user=eve))
    for frame in scene.control_frames():
        control = frame.arguments[0][0]
        assert 1 <= control["intensity"] <= 5 and control["duration"] == 500
    assert len(scene.control_frames()) == 5


async def test_vote_autocomplete_offers_shockers_the_member_may_put_to_a_vote(
    scene: Scene,
) -> None:
    eve = scene.h.discord_user("eve")
    for user, expected in ((scene.bob, ["Collar (alice)"]), (eve, [])):
        payload = scene.h.ix.autocomplete("vote", "shocker", "", {"type": "sound"}, user=user)
        await scene.h.run(payload)
        assert [c["name"] for c in scene.h.discord.replies_for(payload).choices] == expected


async def test_a_stop_while_the_won_vote_is_being_decided_is_caught_by_the_guard(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vote's control is already in the pipeline when a Stop comes in: the guard checked
    right before the frame (`still_wanted`) calls it off."""
    vote = await scene.posted_vote(scene.bob)
    await scene.press(vote, scene.carol, "yes")
    shares = scene.h.storage.shares
    read_context = shares.decision_inputs

    async def then_a_stop(*args: Any, **kwargs: Any) -> Any:
        context = await read_context(*args, **kwargs)
        scene.h.bot.control.halts.announce(Halt("stop", shocker_id=scene.collar_id))
        return context

    monkeypatch.setattr(shares, "decision_inputs", then_a_stop)
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "Ended early: a Stop was sent to the shocker. Nothing was sent." in text
    assert scene.control_frames() == []
    (entry,) = await scene.h.storage.audit.recent(scene.h.discord.guild_id)
    assert entry.origin == "vote" and entry.outcome is AuditOutcome.REFUSED
    assert entry.reason is not None and "called off" in entry.reason


async def test_a_vote_won_on_a_share_in_approval_mode_asks_the_wearer(scene: Scene) -> None:
    """The vote's control goes through the approval gate like any other: the wearer is asked in
    the vote's channel, and nothing fires unless they approve."""
    h = scene.h
    share = h.ix.slash(
        "shockers share", {"shocker": scene.collar_id, "approval": True}, user=scene.alice
    )
    await h.run(share)
    vote = await scene.posted_vote(scene.bob)
    await scene.press(vote, scene.bob, "yes")
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "Yes won" in text and "the wearer was asked to approve it" in text
    assert scene.control_frames() == []
    (request,) = await h.storage.approvals.all()
    assert request.requester_id == scene.bob.id
    assert request.channel_id == int(vote.message["channel_id"])


async def test_a_vote_fires_with_the_starters_roles_from_its_start(scene: Scene) -> None:
    """The starter's controller role is taken away during the vote; at the end the control is
    'decided again as the starter' with the roles stored at the start, and is sent."""
    h = scene.h
    role = h.discord.add_role("controllers")
    dave = h.discord_user("dave")
    h.discord.add_member(None, dave, [role])
    h.ix.set_roles(dave, [role])
    await scene.grant(role)  # type: ignore[arg-type]
    vote = await scene.posted_vote(dave, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    # The admins take dave's role away (and he may even leave the server) before the end.
    h.discord.add_member(None, dave, [])
    h.ix.set_roles(dave, [])
    # Dave, as he is now, may not control the collar:
    payload = h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=dave
    )
    await h.run(payload)
    assert h.discord.replies_for(payload).ephemeral
    assert scene.control_frames() == []
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    # Decided as dave is now (no role, no grant): refused, nothing sent.
    assert scene.control_frames() == [], text
    assert "Yes won, but it was not sent: the member who started the vote may no longer" in text


async def test_a_vote_halted_by_a_stop_just_before_shutdown_fires_after_the_restart(
    scene: Scene,
) -> None:
    """A Stop halts a won vote; the process is asked to stop right then (SIGTERM in the same
    moment). VoteService.close cancels the halted vote's clean-up before it deleted the row, a
    Stop writes nothing durable, so the next start re-arms the vote and sends it."""
    h = scene.h
    vote = await scene.posted_vote(scene.bob, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    # The disk is slow for a moment: the halted vote's row write has not happened yet when the
    # shutdown comes (a wait on an event, so the window is held open deterministically).
    votes_repo = h.storage.votes
    real_finish = votes_repo.finish
    slow = asyncio.Event()

    async def slow_finish(vote_id: int) -> Any:
        await slow.wait()
        return await real_finish(vote_id)

    votes_repo.finish = slow_finish  # type: ignore[method-assign]
    scene.votes.close_wait = 0.2  # the shutdown gives up on the stuck write sooner (default 5 s)
    # What the pipeline announces for an allowed Stop, before the Stop's frame:
    h.bot.control.halts.announce(Halt("stop", shocker_id=scene.collar_id))
    await h.restart()
    account = await h.storage.accounts.by_discord_user(scene.alice.id)
    assert account is not None
    await h.ready(account.id)
    assert scene.votes.running(vote.id) is None  # not re-armed
    async with asyncio.timeout(5):
        await scene.votes.idle()
    assert await h.storage.votes.running() == []
    assert "Ended early" in scene.text_of(vote)
    assert "Nothing was sent" in scene.text_of(vote)
    # Nothing may fire after the Stop.
    assert scene.control_frames() == []


async def test_a_won_vote_sends_nothing_when_the_starter_left_the_server(scene: Scene) -> None:
    h = scene.h
    vote = await scene.posted_vote(scene.bob, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    h.discord.guild(None).members.pop(scene.bob.id)  # bob left
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    assert "Yes won, but the member who started it is no longer in this server" in text
    assert "nothing was sent" in text
    assert scene.control_frames() == []


async def test_a_won_vote_sends_nothing_when_discord_cannot_say_the_starters_roles(
    scene: Scene,
) -> None:
    h = scene.h
    vote = await scene.posted_vote(scene.bob, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    h.discord.fail(500, method="GET", path=rf"/members/{scene.bob.id}$", count=None)
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    h.discord.clear_faults()
    assert "couldn't check the roles of the member who started it" in text
    assert "nothing was sent" in text
    assert scene.control_frames() == []
