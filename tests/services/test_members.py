"""The member directory: answers at most `max_age` old, refreshed in the background past
`refresh_after`, one request per member at a time, and "not known" when Discord fails."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.services.members import MemberDirectory, NotAMember, display_name_of

GUILD, ALICE, BOB = 1, 10, 20


class FakeEndpoint:
    def __init__(self) -> None:
        self.members: dict[int, dict[str, Any]] = {
            ALICE: {"nick": None, "user": {"username": "alice", "global_name": "Alice W."}}
        }
        self.calls: list[int] = []
        self.failing = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, guild_id: int, user_id: int) -> dict[str, Any]:
        self.calls.append(user_id)
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise OSError("Discord is down")
        if user_id not in self.members:
            raise NotAMember()
        return self.members[user_id]


def directory(endpoint: FakeEndpoint, now: list[float]) -> MemberDirectory:
    return MemberDirectory(endpoint, clock=lambda: now[0])


async def test_answers_are_cached_for_up_to_a_minute_then_asked_again() -> None:
    endpoint, now = FakeEndpoint(), [0.0]
    members = directory(endpoint, now)
    assert await members.is_member(GUILD, ALICE) is True
    now[0] = 20
    assert await members.is_member(GUILD, ALICE) is True
    assert endpoint.calls == [ALICE]
    del endpoint.members[ALICE]
    now[0] = 61
    assert await members.is_member(GUILD, ALICE) is False
    assert endpoint.calls == [ALICE, ALICE]
    await members.close()


async def test_an_answer_past_refresh_after_is_served_and_refreshed_in_the_background() -> None:
    endpoint, now = FakeEndpoint(), [0.0]
    members = directory(endpoint, now)
    await members.is_member(GUILD, ALICE)
    del endpoint.members[ALICE]
    now[0] = 45
    assert await members.is_member(GUILD, ALICE) is True  # still fresh enough; refresh started
    for _ in range(5):
        await asyncio.sleep(0)
    cached = members.cached(GUILD, ALICE)
    assert cached is not None and cached.present is False
    assert await members.is_member(GUILD, ALICE) is False
    await members.close()


async def test_concurrent_askers_share_one_request() -> None:
    endpoint, now = FakeEndpoint(), [0.0]
    endpoint.gate = asyncio.Event()
    members = directory(endpoint, now)
    asks = [asyncio.create_task(members.is_member(GUILD, ALICE)) for _ in range(5)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    assert await asyncio.gather(*asks) == [True] * 5
    assert endpoint.calls == [ALICE]
    await members.close()


async def test_a_failure_is_not_known_and_not_remembered() -> None:
    endpoint, now = FakeEndpoint(), [0.0]
    endpoint.failing = True
    members = directory(endpoint, now)
    assert await members.is_member(GUILD, ALICE) is None
    endpoint.failing = False
    assert await members.is_member(GUILD, ALICE) is True
    await members.close()


async def test_a_member_seen_in_an_interaction_needs_no_request() -> None:
    endpoint, now = FakeEndpoint(), [0.0]
    members = directory(endpoint, now)
    members.note(GUILD, BOB, "Bobby")
    assert await members.is_member(GUILD, BOB) is True
    assert await members.display_name(GUILD, BOB) == "Bobby"
    assert endpoint.calls == []
    await members.close()


async def test_display_names_come_from_the_member_payload() -> None:
    endpoint, now = FakeEndpoint(), [0.0]
    members = directory(endpoint, now)
    assert await members.display_name(GUILD, ALICE) == "Alice W."
    assert await members.display_name(GUILD, BOB) is None  # not a member
    assert display_name_of({"nick": "Al", "user": {"username": "alice"}}) == "Al"
    assert display_name_of({"user": {"username": "alice", "global_name": None}}) == "alice"
    await members.close()
