"""The repository methods the feed publisher uses, against a real SQLite file."""

from __future__ import annotations

import json

import pytest

from bot.domain.feed_render import ControlsEntry, OtaPhase
from bot.storage import Storage
from bot.storage.feed_payloads import (
    StoredControlsV1,
    StoredControlsV2,
    StoredDeviceChangeV1,
    StoredOtaV1,
    UnreadablePayload,
    read_payload,
)
from bot.storage.feeds import DeliveryTarget, NewEvent
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


async def test_moving_a_feed_moves_only_its_pending_deliveries_and_clears_their_nonce(
    storage: Storage,
) -> None:
    account = await _account(storage)
    await storage.feeds.set(GUILD, FeedKind.CONTROLS, CHANNEL)
    await storage.feeds.set(GUILD, FeedKind.DEVICES, CHANNEL)  # same channel, stays
    posted = await storage.events.store(
        account, "controls", "{}", [DeliveryTarget(GUILD, FeedKind.CONTROLS, CHANNEL)]
    )
    waiting = await storage.events.store(
        account, "controls", "{}", [DeliveryTarget(GUILD, FeedKind.CONTROLS, CHANNEL)]
    )
    device = await storage.events.store(
        account, "device", "{}", [DeliveryTarget(GUILD, FeedKind.DEVICES, CHANNEL)]
    )
    by_event = {event.id: d for d, event in await storage.events.pending_in(CHANNEL)}
    await storage.events.mark_posted([by_event[posted].id], 99)
    await storage.events.set_nonce([by_event[waiting].id], "n1")  # created before a crash?

    moved = await storage.feeds.place(GUILD, FeedKind.CONTROLS, OTHER_CHANNEL)

    assert moved.moved and moved.previous_channel_id == CHANNEL and moved.carried == 1
    ((delivery, event),) = await storage.events.pending_in(OTHER_CHANNEL)
    assert event.id == waiting and delivery.nonce is None  # the new channel has seen none
    assert [e.id for _, e in await storage.events.pending_in(CHANNEL)] == [device]
    again = await storage.feeds.place(GUILD, FeedKind.CONTROLS, OTHER_CHANNEL)
    assert not again.moved and again.carried == 0


async def test_removing_a_feed_drops_only_its_pending_deliveries(storage: Storage) -> None:
    account = await _account(storage)
    await storage.feeds.set(GUILD, FeedKind.CONTROLS, CHANNEL)
    await storage.feeds.set(GUILD, FeedKind.DEVICES, CHANNEL)
    await storage.events.store(
        account, "controls", "{}", [DeliveryTarget(GUILD, FeedKind.CONTROLS, CHANNEL)]
    )
    device = await storage.events.store(
        account, "device", "{}", [DeliveryTarget(GUILD, FeedKind.DEVICES, CHANNEL)]
    )

    removed = await storage.feeds.remove(GUILD, FeedKind.CONTROLS)

    assert removed is not None and removed.channel_id == CHANNEL
    assert [e.id for _, e in await storage.events.pending_in(CHANNEL)] == [device]
    assert await storage.feeds.remove(GUILD, FeedKind.CONTROLS) is None
    assert await storage.feeds.channels() == {CHANNEL}


# -- stored payloads ------------------------------------------------------------------------------

# Exactly what the bot wrote before stored payloads had a version (no "v").
OLD_CONTROLS = (
    '{"sender_name":"Alice","custom_name":"Bob","from_bot":false,"wearer_id":42,"controls":'
    '[{"shocker_id":"s1","shocker_name":"Collar","type":1,"intensity":30,"duration_ms":1000,'
    '"executed_at":1700000000.5}],"shockers_by_guild":{"111":["s1"]}}'
)
OLD_DEVICE = (
    '{"device_id":"d1","device_name":"Hub","online_before":true,"online":false,'
    '"firmware_before":"1.4.0","firmware":"1.4.0","at":1700000001.0}'
)
OLD_OTA = (
    '{"phase":"progress","device_id":"d1","device_name":"Hub","update_id":7,"version":null,'
    '"task":2,"percent":40.0,"fatal":null,"message":null,"at":1700000002.0}'
)


def test_payloads_written_before_versions_read_as_version_1() -> None:
    controls = read_payload("controls", OLD_CONTROLS)
    assert isinstance(controls, StoredControlsV1) and controls.v == 1
    entry = controls.to_render()
    assert isinstance(entry, ControlsEntry)
    assert [c.shocker_name for c in entry.for_guild(111)] == ["Collar"]
    assert entry.who == "**Bob**" and entry.wearer_id == 42

    device = read_payload("device", OLD_DEVICE)
    assert isinstance(device, StoredDeviceChangeV1)
    change = device.to_render()
    assert change.online_changed and not change.firmware_changed

    ota = read_payload("ota", OLD_OTA)
    assert isinstance(ota, StoredOtaV1)
    assert ota.to_render().phase is OtaPhase.PROGRESS and ota.to_render().percent == 40.0


def test_payloads_are_written_with_their_version_and_read_back() -> None:
    written = StoredDeviceChangeV1(
        device_id="d1",
        device_name=None,
        online_before=False,
        online=True,
        firmware_before=None,
        firmware="1.5.0",
        at=2.0,
    ).model_dump_json()

    assert json.loads(written)["v"] == 1
    assert read_payload("device", written) == StoredDeviceChangeV1.model_validate_json(written)


def test_an_unreadable_payload_or_kind_is_refused_as_such() -> None:
    with pytest.raises(UnreadablePayload):
        read_payload("controls", "{}")
    with pytest.raises(UnreadablePayload):
        read_payload("device", '{"v": 9, "device_id": "d1"}')
    with pytest.raises(UnreadablePayload):
        read_payload("weather", "{}")


def test_controls_version_2_carries_the_senders_discord_identity() -> None:
    written = StoredControlsV2.model_validate_json(OLD_CONTROLS).model_copy(
        update={"sender_discord_id": 77}
    )
    text = written.model_dump_json()
    assert json.loads(text)["v"] == 2
    read = read_payload("controls", text)
    assert isinstance(read, StoredControlsV2) and read.sender_discord_id == 77
    assert read.to_render().who == "**Bob** (through <@77>'s OpenShock account)"
    # Version 1 stays version 1.
    assert type(read_payload("controls", OLD_CONTROLS)) is StoredControlsV1


async def test_a_burst_is_stored_in_one_go_in_order_with_its_deliveries(storage: Storage) -> None:
    account = await _account(storage)
    before = await storage.events.store(
        account, "controls", "{}", [(GUILD, FeedKind.CONTROLS, CHANNEL)]
    )
    here = (DeliveryTarget(GUILD, FeedKind.CONTROLS, CHANNEL),)
    both = (*here, DeliveryTarget(GUILD + 1, FeedKind.CONTROLS, OTHER_CHANNEL))
    burst = [
        NewEvent(account, "controls", json.dumps({"n": n}), 100.0 + n, both if n % 2 else here)
        for n in range(5)
    ]

    ids = await storage.events.store_many(burst)

    assert ids == list(range(before + 1, before + 6))
    pending = await storage.events.pending_in(CHANNEL)
    assert [(e.id, e.payload, e.received_at) for _, e in pending[1:]] == [
        (event_id, event.payload, event.received_at)
        for event_id, event in zip(ids, burst, strict=True)
    ]
    assert [e.id for _, e in await storage.events.pending_in(OTHER_CHANNEL)] == [ids[1], ids[3]]


async def test_the_routing_version_moves_after_writes_that_change_feed_routing(
    storage: Storage,
) -> None:
    """Shares, feeds and accounts, whichever repository writes them (cascades too); nothing
    else (a pause, a stored event)."""
    db = storage.db
    seen = db.routing_version
    account = await _account(storage)
    assert db.routing_version > seen

    changes = {
        "share": storage.shares.share(
            guild_id=GUILD,
            account_id=account,
            wearer_id=10,
            shocker_id="s-1",
            shocker_name="Collar",
            max_intensity=25,
            max_duration_ms=3000,
            allow_shock=True,
            allow_vibrate=True,
            allow_sound=True,
        ),
        "feed set": storage.feeds.set(GUILD, FeedKind.CONTROLS, CHANNEL),
        "feed disabled": storage.feeds.disable_channel(CHANNEL, "gone"),
        "feed removed": storage.feeds.remove(GUILD, FeedKind.CONTROLS),
        "unshare": storage.shares.unshare(GUILD, 10, "s-1"),
    }
    for what, change in changes.items():
        seen = db.routing_version
        await change
        assert db.routing_version > seen, what

    seen = db.routing_version
    await storage.events.store(account, "controls", "{}", [])
    await db.execute("UPDATE shares SET paused = 1")
    assert db.routing_version == seen

    await storage.shares.share(
        guild_id=GUILD,
        account_id=account,
        wearer_id=10,
        shocker_id="s-1",
        shocker_name="Collar",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
    )
    routes = await storage.feeds.routes_of_account(account)
    assert routes is not None and routes.guilds_of == {"s-1": frozenset({GUILD})}
    seen = db.routing_version
    await db.execute("DELETE FROM accounts WHERE id = ?", (account,))  # shares cascade
    assert db.routing_version > seen
    assert await storage.feeds.routes_of_account(account) is None
