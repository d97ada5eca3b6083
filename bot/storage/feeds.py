"""Feed channels, stored hub events awaiting posting, and the last known device states."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from bot.storage.database import Database
from bot.storage.models import (
    DeliveryState,
    DeviceState,
    Feed,
    FeedDelivery,
    FeedKind,
    FeedSet,
    StoredHubEvent,
)


class FeedRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(self, guild_id: int, kind: FeedKind, channel_id: int) -> Feed:
        return (await self.place(guild_id, kind, channel_id)).feed

    async def place(self, guild_id: int, kind: FeedKind, channel_id: int) -> FeedSet:
        """Post the feed in this channel. A feed moved from another channel takes what it had
        pending there along (in the same transaction, so the old channel's worker never sees
        them as unwanted); their nonces are cleared, as the new channel has seen none of them."""
        async with self._db.transaction() as tx:
            before = await tx.fetch_one(
                "SELECT channel_id FROM feeds WHERE guild_id = ? AND kind = ?",
                (guild_id, kind.value),
            )
            await tx.execute(
                "INSERT INTO feeds (guild_id, kind, channel_id, enabled, created_at)"
                " VALUES (?, ?, ?, 1, ?) ON CONFLICT (guild_id, kind) DO UPDATE SET"
                " channel_id = excluded.channel_id, enabled = 1, disabled_reason = NULL",
                (guild_id, kind.value, channel_id, time.time()),
            )
            previous = int(before["channel_id"]) if before is not None else None
            carried = 0
            if previous is not None and previous != channel_id:
                carried = await tx.execute(
                    "UPDATE feed_deliveries SET channel_id = ?, nonce = NULL"
                    " WHERE guild_id = ? AND kind = ? AND channel_id = ? AND state = 'pending'",
                    (channel_id, guild_id, kind.value, previous),
                )
            row = await tx.fetch_one(
                "SELECT * FROM feeds WHERE guild_id = ? AND kind = ?", (guild_id, kind.value)
            )
        assert row is not None
        return FeedSet(feed=Feed.from_row(row), previous_channel_id=previous, carried=carried)

    async def remove(self, guild_id: int, kind: FeedKind) -> Feed | None:
        """Stop the feed and drop what it had pending; returns the feed that was removed."""
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT * FROM feeds WHERE guild_id = ? AND kind = ?", (guild_id, kind.value)
            )
            if row is None:
                return None
            await tx.execute(
                "DELETE FROM feeds WHERE guild_id = ? AND kind = ?", (guild_id, kind.value)
            )
            await tx.execute(
                "UPDATE feed_deliveries SET state = 'dropped'"
                " WHERE guild_id = ? AND kind = ? AND state = 'pending'",
                (guild_id, kind.value),
            )
        return Feed.model_validate(dict(row))

    async def channels(self) -> frozenset[int]:
        """Every channel some feed posts in (enabled or not)."""
        rows = await self._db.fetch_all("SELECT DISTINCT channel_id FROM feeds")
        return frozenset(int(row["channel_id"]) for row in rows)

    async def get(self, guild_id: int, kind: FeedKind) -> Feed | None:
        row = await self._db.fetch_one(
            "SELECT * FROM feeds WHERE guild_id = ? AND kind = ?", (guild_id, kind.value)
        )
        return Feed.from_row(row) if row is not None else None

    async def in_guild(self, guild_id: int) -> list[Feed]:
        rows = await self._db.fetch_all(
            "SELECT * FROM feeds WHERE guild_id = ? ORDER BY kind", (guild_id,)
        )
        return [Feed.from_row(row) for row in rows]

    async def enabled_in(self, kind: FeedKind, guild_ids: Iterable[int]) -> list[Feed]:
        guilds = sorted(set(guild_ids))
        if not guilds:
            return []
        marks = ",".join("?" * len(guilds))
        rows = await self._db.fetch_all(
            f"SELECT * FROM feeds WHERE kind = ? AND enabled = 1 AND guild_id IN ({marks})",
            (kind.value, *guilds),
        )
        return [Feed.from_row(row) for row in rows]

    # -- routing (read by the feed recorder and publisher, cached until `routing_version` moves)

    async def routes_of_account(self, account_id: int) -> AccountRoutes | None:
        """The account's wearer and, per shocker, the guilds where this account shared it
        (None when the account is not linked)."""
        rows = list(
            await self._db.fetch_all(
                "SELECT a.discord_user_id, s.shocker_id, s.guild_id FROM accounts a"
                " LEFT JOIN shares s ON s.account_id = a.id WHERE a.id = ?",
                (account_id,),
            )
        )
        if not rows:
            return None
        guilds: dict[str, set[int]] = {}
        for row in rows:
            if row["shocker_id"] is not None:
                guilds.setdefault(row["shocker_id"], set()).add(int(row["guild_id"]))
        return AccountRoutes(
            wearer_id=int(rows[0]["discord_user_id"]),
            guilds_of={shocker: frozenset(ids) for shocker, ids in guilds.items()},
        )

    async def enabled_channels(self, guild_ids: Iterable[int]) -> dict[int, dict[FeedKind, int]]:
        """Each guild's enabled feeds (kind -> channel); every guild asked for has an entry."""
        guilds = sorted(set(guild_ids))
        found: dict[int, dict[FeedKind, int]] = {guild_id: {} for guild_id in guilds}
        if not guilds:
            return found
        marks = ",".join("?" * len(guilds))
        rows = await self._db.fetch_all(
            "SELECT guild_id, kind, channel_id FROM feeds"
            f" WHERE enabled = 1 AND guild_id IN ({marks})",
            guilds,
        )
        for row in rows:
            found[int(row["guild_id"])][FeedKind(row["kind"])] = int(row["channel_id"])
        return found

    async def disable_channel(self, channel_id: int, reason: str) -> list[Feed]:
        """Disable every enabled feed posting to this channel; returns those that changed."""
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(
                "SELECT * FROM feeds WHERE channel_id = ? AND enabled = 1", (channel_id,)
            )
            await tx.execute(
                "UPDATE feeds SET enabled = 0, disabled_reason = ?"
                " WHERE channel_id = ? AND enabled = 1",
                (reason, channel_id),
            )
        return [Feed.from_row(row).model_copy(update={"enabled": False}) for row in rows]


class AccountRoutes(NamedTuple):
    """Where a linked account's shockers are shared (see `FeedRepository.routes_of_account`)."""

    wearer_id: int
    guilds_of: dict[str, frozenset[int]]


class DeliveryTarget(NamedTuple):
    """Where a stored event is to be posted: one feed of one guild."""

    guild_id: int
    kind: FeedKind
    channel_id: int


class NewEvent(NamedTuple):
    """A hub event to store (`EventRepository.store_many`)."""

    account_id: int
    kind: str
    payload: str
    received_at: float
    deliveries: tuple[DeliveryTarget, ...]


class EventRepository:
    """Hub events are stored on receipt with one delivery row per feed channel; the publisher
    posts pending deliveries and marks them, so a crash or restart resumes where it was."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def store(
        self, account_id: int, kind: str, payload: str, deliveries: Sequence[DeliveryTarget]
    ) -> int:
        [event_id] = await self.store_many(
            [NewEvent(account_id, kind, payload, time.time(), tuple(deliveries))]
        )
        return event_id

    async def store_many(self, events: Sequence[NewEvent]) -> list[int]:
        """Store events with their deliveries, in this order, in one transaction (a burst costs
        a handful of statements, not a handful per event); returns their ids."""
        if not events:
            return []
        now = time.time()
        async with self._db.transaction() as tx:
            # The write lock and BEGIN IMMEDIATE keep every other writer out: the ids SQLite
            # would give these rows one by one are known beforehand.
            row = await tx.fetch_one("SELECT coalesce(max(id), 0) AS last FROM hub_events")
            first = int(row["last"]) + 1 if row is not None else 1
            ids = list(range(first, first + len(events)))
            await tx.executemany(
                "INSERT INTO hub_events (id, account_id, kind, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (event_id, event.account_id, event.kind, event.payload, event.received_at)
                    for event_id, event in zip(ids, events, strict=True)
                ],
            )
            await tx.executemany(
                "INSERT INTO feed_deliveries (event_id, guild_id, kind, channel_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (event_id, guild_id, feed_kind.value, channel_id, now)
                    for event_id, event in zip(ids, events, strict=True)
                    for guild_id, feed_kind, channel_id in event.deliveries
                ],
            )
        return ids

    async def pending(self, limit: int = 500) -> list[tuple[FeedDelivery, StoredHubEvent]]:
        rows = await self._db.fetch_all(
            "SELECT d.*, e.account_id, e.kind AS event_kind, e.payload, e.received_at"
            " FROM feed_deliveries d JOIN hub_events e ON e.id = d.event_id"
            " WHERE d.state = 'pending' ORDER BY d.id LIMIT ?",
            (limit,),
        )
        return self._deliveries(rows)

    async def pending_in(
        self, channel_id: int, limit: int = 500
    ) -> list[tuple[FeedDelivery, StoredHubEvent]]:
        """One channel's pending deliveries, oldest first (a channel posts in order)."""
        rows = await self._db.fetch_all(
            "SELECT d.*, e.account_id, e.kind AS event_kind, e.payload, e.received_at"
            " FROM feed_deliveries d JOIN hub_events e ON e.id = d.event_id"
            " WHERE d.state = 'pending' AND d.channel_id = ? ORDER BY d.id LIMIT ?",
            (channel_id, limit),
        )
        return self._deliveries(rows)

    async def pending_channels(self) -> list[int]:
        rows = await self._db.fetch_all(
            "SELECT DISTINCT channel_id FROM feed_deliveries WHERE state = 'pending'"
        )
        return [row["channel_id"] for row in rows]

    async def drop(self, delivery_ids: Sequence[int]) -> None:
        """Give up on these deliveries (their feed was removed or moved, or Discord refused
        them for good)."""
        for chunk in _chunks(delivery_ids):
            await self._db.execute(
                "UPDATE feed_deliveries SET state = 'dropped'"
                f" WHERE id IN ({_marks(chunk)}) AND state = 'pending'",
                chunk,
            )

    async def ota_history(
        self, account_id: int, device_id: str, update_id: int
    ) -> list[StoredHubEvent]:
        """Every stored event of one firmware update (kind ``ota``), in the order received."""
        rows = await self._db.fetch_report(
            "SELECT * FROM hub_events WHERE account_id = ? AND kind = 'ota'"
            " AND json_extract(payload, '$.device_id') = ?"
            " AND json_extract(payload, '$.update_id') = ? ORDER BY id",
            (account_id, device_id, update_id),
        )
        return [StoredHubEvent.from_row(row) for row in rows]

    async def posted_message(self, channel_id: int, event_ids: Sequence[int]) -> int | None:
        """The latest message posted in the channel for any of these events."""
        if not event_ids:
            return None
        marks = ",".join("?" * len(event_ids))
        row = await self._db.fetch_one(
            "SELECT message_id FROM feed_deliveries WHERE channel_id = ? AND state = 'posted'"
            f" AND message_id IS NOT NULL AND event_id IN ({marks})"
            " ORDER BY posted_at DESC, id DESC LIMIT 1",
            (channel_id, *event_ids),
        )
        return int(row["message_id"]) if row is not None else None

    @staticmethod
    def _deliveries(rows: Iterable[Any]) -> list[tuple[FeedDelivery, StoredHubEvent]]:
        """Rows of our own schema (STRICT tables, CHECKed states): built without validating
        each field again (`model_construct`), only the enums made from their values."""
        result = []
        for row in rows:
            event = StoredHubEvent.model_construct(
                id=row["event_id"],
                account_id=row["account_id"],
                kind=row["event_kind"],
                payload=row["payload"],
                received_at=row["received_at"],
            )
            delivery = FeedDelivery.model_construct(
                id=row["id"],
                event_id=row["event_id"],
                guild_id=row["guild_id"],
                kind=FeedKind(row["kind"]),
                channel_id=row["channel_id"],
                state=DeliveryState(row["state"]),
                nonce=row["nonce"],
                message_id=row["message_id"],
                created_at=row["created_at"],
                posted_at=row["posted_at"],
            )
            result.append((delivery, event))
        return result

    async def set_nonce(self, delivery_ids: Sequence[int], nonce: str) -> None:
        """Remember the nonce before posting, so a retry after a crash reuses it."""
        for chunk in _chunks(delivery_ids):
            await self._db.execute(
                f"UPDATE feed_deliveries SET nonce = ? WHERE id IN ({_marks(chunk)})",
                (nonce, *chunk),
            )

    async def mark_posted(self, delivery_ids: Sequence[int], message_id: int) -> None:
        now = time.time()
        for chunk in _chunks(delivery_ids):
            await self._db.execute(
                "UPDATE feed_deliveries SET state = 'posted', message_id = ?, posted_at = ?"
                f" WHERE id IN ({_marks(chunk)})",
                (message_id, now, *chunk),
            )

    async def drop_guild(self, guild_id: int) -> int:
        """Give up on a guild's pending deliveries (the bot left it)."""
        return await self._db.execute(
            "UPDATE feed_deliveries SET state = 'dropped' WHERE guild_id = ? AND state = 'pending'",
            (guild_id,),
            long=True,
        )

    async def drop_channel(self, channel_id: int) -> int:
        """Give up on a channel's pending deliveries (the feed lost its channel)."""
        return await self._db.execute(
            "UPDATE feed_deliveries SET state = 'dropped'"
            " WHERE channel_id = ? AND state = 'pending'",
            (channel_id,),
            long=True,
        )

    async def prune(self, older_than: float) -> int:
        """Delete events received before `older_than` whose deliveries are all finished."""
        return await self._db.execute(
            "DELETE FROM hub_events WHERE received_at < ? AND NOT EXISTS ("
            " SELECT 1 FROM feed_deliveries d WHERE d.event_id = hub_events.id"
            " AND d.state = 'pending')",
            (older_than,),
            long=True,
        )


def _chunks(ids: Sequence[int], size: int = 500) -> list[Sequence[int]]:
    """Ids in groups small enough for one statement's parameters."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _marks(ids: Sequence[int]) -> str:
    return ",".join("?" * len(ids))


class DeviceStateRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def of_account(self, account_id: int) -> dict[str, DeviceState]:
        rows = await self._db.fetch_all(
            "SELECT * FROM device_states WHERE account_id = ?", (account_id,)
        )
        return {row["device_id"]: DeviceState.from_row(row) for row in rows}

    async def save(
        self,
        account_id: int,
        device_id: str,
        *,
        online: bool,
        firmware_version: str | None,
        device_name: str | None,
    ) -> None:
        await self._db.execute(
            "INSERT INTO device_states (account_id, device_id, device_name, online,"
            " firmware_version, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (account_id, device_id) DO UPDATE SET"
            " device_name = coalesce(excluded.device_name, device_name),"
            " online = excluded.online, firmware_version = excluded.firmware_version,"
            " updated_at = excluded.updated_at",
            (account_id, device_id, device_name, int(online), firmware_version, time.time()),
        )
