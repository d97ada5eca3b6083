"""Recording: each hub event becomes a stored event with one delivery per feed channel that
should see it, before anything is posted; then the publisher is woken.

Routing reads only memory once known (`FeedRoutes`): an event no feed shows (the bot's own
controls where no controls feed is set) is dropped with no I/O. Storing is batched: events wait
in arrival order for one writer task, which stores what has queued up in transactions of at most
`_BATCH` events (a burst of a thousand events a second costs tens of transactions a second, not
one per event), letting the loop run other work between two (a transaction runs on the loop's
thread, about 0.1 ms per event with its deliveries: a hundred events piled up by a hiccup would
hold the loop for 10 ms in one). While
`_BACKLOG` events wait, `record` waits too, so the hub connections stop reading (they bound their
own queues) and a flood cannot exhaust memory.

What is stored is a versioned payload (`bot.storage.feed_payloads`), decided when the event
arrives: which guilds may see which shocker (the shares at that moment), whether a control came
from this bot's own connection (its id changes on reconnect), the device's name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from bot.openshock.hub import HubConnection
from bot.openshock.models import (
    ControlLogEvent,
    DeviceSnapshotApplied,
    DeviceState,
    DeviceStatusChanged,
    HubEvent,
    OtaInstallFailed,
    OtaInstallProgress,
    OtaInstallStarted,
    OtaInstallSucceeded,
    OtaRollback,
    ShockerDirectory,
    ShockersRefreshed,
)
from bot.services.feed_routes import FeedRoutes
from bot.services.feed_timings import FeedTimings
from bot.storage import Storage
from bot.storage.feed_payloads import (
    StoredControlsV1,
    StoredControlsV2,
    StoredControlV1,
    StoredDeviceChangeV1,
    StoredEventKind,
    StoredOtaPhase,
    StoredOtaV1,
    StoredPayload,
)
from bot.storage.feeds import DeliveryTarget, NewEvent
from bot.storage.models import FeedKind

__all__ = ["FeedRecorder", "HubLookup"]

log = logging.getLogger(__name__)

HubLookup = Callable[[int], HubConnection | None]
StoredCallback = Callable[[set[int]], None]

OtaHubEvent = (
    OtaInstallStarted | OtaInstallProgress | OtaInstallFailed | OtaRollback | OtaInstallSucceeded
)


# How many controls the recorder routes before it lets the loop run something else (each takes
# some tens of microseconds).
_ROUTED_BETWEEN_YIELDS = 16


@dataclass(frozen=True, slots=True)
class _DevicePost:
    """The last device change routed to a guild: what, when, and which account reported it."""

    state: tuple[bool, str | None]
    at: float
    account_id: int


class FeedRecorder:
    """Hub event → stored event with its deliveries, before anything is posted."""

    def __init__(
        self,
        storage: Storage,
        hub_of: HubLookup,
        timings: FeedTimings,
        *,
        on_stored: StoredCallback,
        routes: FeedRoutes | None = None,
    ) -> None:
        self.storage = storage
        self._hub_of = hub_of
        self._timings = timings
        self._on_stored = on_stored
        self._routes = routes or FeedRoutes(storage)
        # Events to store, oldest first, and the task storing them (see the module docstring).
        self._queue: list[NewEvent] = []
        self._writer: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        # (guild, device) -> the last device change routed there (see _not_yet_posted).
        self._recent_device_posts: dict[tuple[int, str], _DevicePost] = {}
        self._routed = 0  # controls routed (see record)

    def wants(self, account_id: int, event: HubEvent) -> bool:
        """Whether `record` would do anything with the event, as far as memory says: a control
        no controls feed can show is turned away before it is queued."""
        return not isinstance(event, ControlLogEvent) or self._routes.may_show(
            account_id, FeedKind.CONTROLS
        )

    async def record(self, account_id: int, event: HubEvent) -> None:
        if isinstance(event, ControlLogEvent):
            await self._record_controls(account_id, event)
            # Routing a control reads only memory: without a yield now and then, a connection's
            # queued events would all be recorded in one go, holding the event loop meanwhile.
            # Not after every event: a turn of the loop per control costs more than routing it.
            self._routed += 1
            if self._routed % _ROUTED_BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)
        elif isinstance(event, DeviceStatusChanged):
            await self._record_device(account_id, event)
        elif isinstance(event, DeviceSnapshotApplied):
            await self._record_absent_devices(account_id, event)
        elif isinstance(
            event,
            OtaInstallStarted
            | OtaInstallProgress
            | OtaInstallFailed
            | OtaRollback
            | OtaInstallSucceeded,
        ):
            await self._record_ota(account_id, event)

    # -- what is kept in memory -----------------------------------------------------------------

    def forget_guild(self, guild_id: int) -> None:
        """The bot left the guild, or its devices feed was removed."""
        for key in [key for key in self._recent_device_posts if key[0] == guild_id]:
            del self._recent_device_posts[key]

    def forget_account(self, account_id: int) -> None:
        """The account was unlinked: its devices are gone from every guild."""
        self._routes.forget_account(account_id)
        for key, post in list(self._recent_device_posts.items()):
            if post.account_id == account_id:
                del self._recent_device_posts[key]

    def forget_expired(self) -> None:
        """A device change older than the dedupe window suppresses nothing: let it go."""
        now = time.monotonic()
        for key, post in list(self._recent_device_posts.items()):
            if now - post.at >= self._timings.device_dedupe:
                del self._recent_device_posts[key]

    def accounts_in_memory(self) -> set[int]:
        return {post.account_id for post in self._recent_device_posts.values()}

    def remembered_device_posts(self) -> set[tuple[int, str]]:
        """(guild, device) pairs whose last change is remembered (for tests and the sweep)."""
        return set(self._recent_device_posts)

    # -- storing ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Store what is queued; from now on each event is stored before `record` returns."""
        self._closed = True
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def flushed(self) -> None:
        """Wait until every event recorded so far is stored."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _store(
        self, account_id: int, payload: StoredPayload, targets: Sequence[DeliveryTarget]
    ) -> None:
        event = NewEvent(
            account_id, _kind_of(payload), payload.model_dump_json(), time.time(), tuple(targets)
        )
        if self._closed:
            await self._write([event])
            return
        self._queue.append(event)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="feed-recorder")
        if len(self._queue) >= _BACKLOG:
            self._room.clear()
            await self._room.wait()

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:_BATCH]
                del self._queue[:_BATCH]
                if len(self._queue) < _BACKLOG:
                    self._room.set()
                await self._write(batch)
                if self._queue:
                    await asyncio.sleep(0)  # the rest after whatever else is waiting
        finally:
            self._writer = None
            self._room.set()

    async def _write(self, batch: list[NewEvent]) -> None:
        try:
            await self.storage.events.store_many(batch)
        except Exception:
            if len(batch) > 1:  # one bad event (its account just unlinked) spoils no other
                for event in batch:
                    await self._write([event])
                return
            log.exception("A hub event of account %d could not be stored", batch[0].account_id)
            return
        channels = {target.channel_id for event in batch for target in event.deliveries}
        if channels:
            self._on_stored(channels)

    async def _feeds(self, kind: FeedKind, guild_ids: set[int]) -> list[DeliveryTarget]:
        if not guild_ids:
            return []
        channels = await self._routes.channels(guild_ids)
        return [
            DeliveryTarget(guild_id, kind, feeds[kind])
            for guild_id, feeds in sorted(channels.items())
            if kind in feeds
        ]

    # -- controls -------------------------------------------------------------------------------

    async def _record_controls(self, account_id: int, event: ControlLogEvent) -> None:
        hub = self._hub_of(account_id)
        # Our own controls come from this account's connection (the id changes on reconnect, so
        # it is decided now, not when posting).
        from_bot = (
            hub is not None
            and hub.connection_id is not None
            and event.sender.connection_id == hub.connection_id
        )
        routes = await self._routes.of_account(account_id)
        if routes is None:
            return  # unlinked meanwhile
        by_guild: dict[int, list[str]] = {}
        for shocker_id in dict.fromkeys(str(log_.shocker.id) for log_ in event.logs):
            for guild_id in routes.guilds_of.get(shocker_id, ()):
                by_guild.setdefault(guild_id, []).append(shocker_id)
        deliveries = await self._feeds(FeedKind.CONTROLS, set(by_guild))
        if not deliveries:
            return  # no controls feed shows these shockers: nothing to post, nothing to keep
        # Public posts name the sender by the Discord user who linked the sending account.
        entry = StoredControlsV2(
            sender_discord_id=await self._routes.discord_user_of(str(event.sender.id)),
            sender_name=event.sender.name,
            custom_name=event.sender.custom_name,
            from_bot=from_bot,
            wearer_id=routes.wearer_id,
            controls=[
                StoredControlV1(
                    shocker_id=str(log_.shocker.id),
                    shocker_name=log_.shocker.name,
                    type=int(log_.type),
                    intensity=log_.intensity,
                    duration_ms=log_.duration,
                    executed_at=log_.executed_at.timestamp(),
                )
                for log_ in event.logs
            ],
            shockers_by_guild=by_guild,
        )
        await self._store(account_id, entry, deliveries)

    # -- devices --------------------------------------------------------------------------------

    async def _record_device(self, account_id: int, event: DeviceStatusChanged) -> None:
        device_id = str(event.device_id)
        known = (await self.storage.device_states.of_account(account_id)).get(device_id)
        hub = self._hub_of(account_id)
        directory = hub.shockers if hub is not None else None
        name = _device_name(directory, event.device_id) or (known.device_name if known else None)

        if known is not None:
            online_before: bool | None = known.online
            firmware_before = known.firmware_version
        elif event.from_snapshot:
            # First sighting (just linked): nothing to compare with, nothing to post.
            online_before, firmware_before = None, None
        elif event.previous is not None:
            online_before = event.previous.online
            firmware_before = event.previous.firmware_version
        else:
            # A live status for a device never seen: the server only sends those on a change.
            online_before, firmware_before = not event.current.online, None
        # Offline reports may carry no firmware: keep the one we know.
        firmware = event.current.firmware_version or firmware_before
        await self.storage.device_states.save(
            account_id,
            device_id,
            online=event.current.online,
            firmware_version=firmware,
            device_name=name,
        )
        change = StoredDeviceChangeV1(
            device_id=device_id,
            device_name=name,
            online_before=online_before,
            online=event.current.online,
            firmware_before=firmware_before,
            firmware=firmware,
            at=time.time(),
        )
        shown = change.to_render()
        if not (shown.online_changed or shown.firmware_changed):
            return
        if directory is None:  # right after a start: the lists may still be loading
            directory = await self._directory(account_id)
            if name is None and (name := _device_name(directory, event.device_id)) is not None:
                change = change.model_copy(update={"device_name": name})
        guilds = await self._guilds_of_device(account_id, directory, event.device_id)
        guilds = self._not_yet_posted(
            guilds, device_id, (change.online, change.firmware), account_id
        )
        deliveries = await self._feeds(FeedKind.DEVICES, guilds)
        await self._store(account_id, change, deliveries)

    async def _record_absent_devices(self, account_id: int, event: DeviceSnapshotApplied) -> None:
        """After a connection's snapshot: a device stored online that the snapshot left out went
        offline while we were not listening. The hub reports that only for devices it saw online
        on an earlier connection of this process; after a restart it knows none, so compare with
        what is stored (those the hub did report are stored offline by now: nothing to do)."""
        stored = await self.storage.device_states.of_account(account_id)
        online = {str(device_id) for device_id in event.online}
        for device_id, state in stored.items():
            if state.online and device_id not in online:
                await self._record_device(
                    account_id,
                    DeviceStatusChanged(
                        device_id=UUID(device_id),
                        previous=None,
                        current=DeviceState(online=False),
                        from_snapshot=True,
                    ),
                )

    def _not_yet_posted(
        self, guilds: set[int], device_id: str, state: tuple[bool, str | None], account_id: int
    ) -> set[int]:
        """A device shared with two linked accounts reports each change to both; post once."""
        now = time.monotonic()
        fresh = set()
        for guild_id in guilds:
            seen = self._recent_device_posts.get((guild_id, device_id))
            if (
                seen is not None
                and seen.state == state
                and now - seen.at < self._timings.device_dedupe
            ):
                continue
            self._recent_device_posts[(guild_id, device_id)] = _DevicePost(state, now, account_id)
            fresh.add(guild_id)
        return fresh

    # -- firmware updates -----------------------------------------------------------------------

    async def _record_ota(self, account_id: int, event: OtaHubEvent) -> None:
        directory = await self._directory(account_id)
        ota = StoredOtaV1(
            phase=_ota_phase(event),
            device_id=str(event.device_id),
            device_name=_device_name(directory, event.device_id),
            update_id=event.update_id,
            version=event.version if isinstance(event, OtaInstallStarted) else None,
            task=int(event.task) if isinstance(event, OtaInstallProgress) else None,
            percent=event.percent if isinstance(event, OtaInstallProgress) else None,
            fatal=event.fatal if isinstance(event, OtaInstallFailed) else None,
            message=event.message if isinstance(event, OtaInstallFailed) else None,
            at=time.time(),
        )
        guilds = await self._guilds_of_device(account_id, directory, event.device_id)
        deliveries = await self._feeds(FeedKind.UPDATES, guilds)
        await self._store(account_id, ota, deliveries)

    # -- helpers --------------------------------------------------------------------------------

    async def _directory(self, account_id: int) -> ShockerDirectory | None:
        """The account's shocker lists; right after a (re)start wait briefly for the first load
        (the device status snapshot arrives before the lists)."""
        hub = self._hub_of(account_id)
        if hub is None:
            return None
        if hub.shockers is not None:
            return hub.shockers
        waiter = hub.expect(ShockersRefreshed)
        try:
            if hub.shockers is not None:  # loaded meanwhile
                return hub.shockers
            async with asyncio.timeout(self._timings.directory_wait):  # not 3.11's wait_for
                refreshed = await waiter
            return refreshed.shockers
        except TimeoutError:
            log.warning("Shocker list of account %d not loaded; feed routing skipped", account_id)
            return None
        finally:
            waiter.cancel()

    async def _guilds_sharing(self, account_id: int, shocker_id: str) -> set[int]:
        """The guilds where the receiving account itself shared the shocker.

        Sharing in a guild is its wearer's consent to that guild's feeds. A shocker can also be
        shared in a guild by another linked account that it reached through an OpenShock share:
        what this account receives about it must not appear there, as its owner never agreed.
        """
        routes = await self._routes.of_account(account_id)
        return set(routes.guilds_of.get(shocker_id, ())) if routes is not None else set()

    async def _guilds_of_device(
        self, account_id: int, directory: ShockerDirectory | None, device_id: UUID
    ) -> set[int]:
        """The guilds where the account shared a shocker of the device (see _guilds_sharing);
        a guild where another account shared one gets that account's own reports."""
        if directory is None:
            return set()
        guilds: set[int] = set()
        for shocker in directory.all():
            if shocker.device_id == device_id:
                guilds |= await self._guilds_sharing(account_id, str(shocker.id))
        return guilds


# Events stored per transaction at most, and how many may wait before `record` waits for room.
_BATCH = 32
_BACKLOG = 5_000


def _device_name(directory: ShockerDirectory | None, device_id: UUID) -> str | None:
    if directory is None:
        return None
    for device in directory.own:
        if device.id == device_id:
            return device.name
    for owner in directory.shared:
        for shared in owner.devices:
            if shared.id == device_id:
                return shared.name
    return None


def _ota_phase(event: OtaHubEvent) -> StoredOtaPhase:
    if isinstance(event, OtaInstallStarted):
        return "started"
    if isinstance(event, OtaInstallProgress):
        return "progress"
    if isinstance(event, OtaInstallFailed):
        return "failed"
    if isinstance(event, OtaRollback):
        return "rollback"
    return "succeeded"


def _kind_of(payload: StoredPayload) -> StoredEventKind:
    if isinstance(payload, StoredControlsV1):
        return StoredEventKind.CONTROLS
    if isinstance(payload, StoredDeviceChangeV1):
        return StoredEventKind.DEVICE
    return StoredEventKind.OTA
