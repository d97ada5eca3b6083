"""The votes repository against a real SQLite file: one ballot per member, settled once."""

from __future__ import annotations

import asyncio
import time

from bot.domain.controls import ControlKind
from bot.domain.votes import Tally
from bot.storage import Storage
from bot.storage.votes import NewVote


def new_vote(**changes: object) -> NewVote:
    values: dict[str, object] = {
        "guild_id": 111,
        "channel_id": 222,
        "shocker_id": "s1",
        "shocker_name": "Collar",
        "wearer_id": 10,
        "starter_id": 20,
        "starter_name": "bob",
        "starter_role_ids": frozenset({5, 6}),
        "control_type": ControlKind.VIBRATE,
        "intensity": 40,
        "duration_ms": 1500,
        "shown_intensity": 25,
        "shown_duration_ms": 1500,
        "ends_at": time.time() + 60,
        **changes,
    }
    return NewVote.model_validate(values)


async def test_a_vote_round_trips_with_its_starter_roles(storage: Storage) -> None:
    vote = await storage.votes.create(new_vote())
    assert vote.message_id is None
    assert await storage.votes.set_message(vote.id, 999)
    (stored,) = await storage.votes.running()
    assert stored.message_id == 999
    assert stored.starter_role_ids == frozenset({5, 6})
    assert stored.control_type is ControlKind.VIBRATE
    assert (stored.intensity, stored.shown_intensity) == (40, 25)


async def test_one_ballot_per_member_and_a_changed_vote_replaces_it(storage: Storage) -> None:
    vote = await storage.votes.create(new_vote())
    assert await storage.votes.cast(vote.id, 1, True) == Tally(1, 0)
    assert await storage.votes.cast(vote.id, 2, False) == Tally(1, 1)
    assert await storage.votes.cast(vote.id, 2, True) == Tally(2, 0)
    assert await storage.votes.cast(vote.id, 2, True) == Tally(2, 0)
    assert await storage.votes.tally(vote.id) == Tally(2, 0)


async def test_a_vote_is_settled_once_and_takes_no_ballot_after(storage: Storage) -> None:
    vote = await storage.votes.create(new_vote())
    other = await storage.votes.create(new_vote(shocker_id="s2"))
    await storage.votes.cast(vote.id, 1, True)
    await storage.votes.cast(other.id, 1, False)
    results = await asyncio.gather(*(storage.votes.finish(vote.id) for _ in range(3)))
    settled = [r for r in results if r is not None]
    assert len(settled) == 1
    assert settled[0][0].id == vote.id and settled[0][1] == Tally(1, 0)
    assert await storage.votes.cast(vote.id, 2, True) is None
    assert await storage.votes.tally(vote.id) == Tally()  # its ballots went with it
    assert [v.id for v in await storage.votes.running()] == [other.id]
    assert await storage.votes.tally(other.id) == Tally(0, 1)
