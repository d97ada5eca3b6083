"""The repository methods the feed publisher uses, against a real SQLite file."""

from __future__ import annotations

import json

from bot.storage import Storage
from bot.storage.models import DeliveryState, FeedKind

GUILD = 111
CHANNEL = 5
OTHER_CHANNEL = 6


async def _account(storage: Storage) -> int:
    account = await storage.accounts.link(
        discord_user_id=10,
        openshock_user_id="os-1",
        openshock_name="Alice",
        api_url="https://api.openshock.app",
        token="t" * 64,
    )
    return account.id


def _ota(update_id: int, phase: str, device: str = "d1") -> str:
    return json.dumps({"phase": phase, "device_id": device, "update_id": update_id, "at": 1.0})


async def test_pending_is_per_channel_in_order_and_drop_removes_it(storage: Storage) -> None:
    account = await _account(storage)
    first = await storage.events.store(
        account, "controls", "{}", [(GUILD, FeedKind.CONTROLS, CHANNEL)]
    )
    await storage.events.store(
        account, "controls", "{}", [(GUILD, FeedKind.CONTROLS, OTHER_CHANNEL)]
    )
    second = await storage.events.store(
        account, "controls", "{}", [(GUILD, FeedKind.CONTROLS, CHANNEL)]
    )

    assert sorted(await storage.events.pending_channels()) == [CHANNEL, OTHER_CHANNEL]
    pending = await storage.events.pending_in(CHANNEL)
    assert [event.id for _, event in pending] == [first, second]
    assert all(d.state is DeliveryState.PENDING for d, _ in pending)

    await storage.events.drop([pending[0][0].id])
    assert [event.id for _, event in await storage.events.pending_in(CHANNEL)] == [second]


async def test_an_updates_history_and_its_posted_message(storage: Storage) -> None:
    account = await _account(storage)
    feed = [(GUILD, FeedKind.UPDATES, CHANNEL)]
    started = await storage.events.store(account, "ota", _ota(7, "started"), feed)
    await storage.events.store(account, "ota", _ota(8, "started"), feed)
    await storage.events.store(account, "ota", _ota(7, "started", device="d2"), feed)
    progress = await storage.events.store(account, "ota", _ota(7, "progress"), feed)

    history = await storage.events.ota_history(account, "d1", 7)
    assert [event.id for event in history] == [started, progress]
    assert await storage.events.posted_message(CHANNEL, [started, progress]) is None

    (delivery, _), *_ = await storage.events.pending_in(CHANNEL)
    await storage.events.mark_posted([delivery.id], 4242)
    assert await storage.events.posted_message(CHANNEL, [started, progress]) == 4242
    assert await storage.events.posted_message(OTHER_CHANNEL, [started, progress]) is None
    assert await storage.events.posted_message(CHANNEL, []) is None
