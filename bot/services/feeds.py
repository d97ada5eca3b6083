"""Feeds: hub events are written to SQLite on receipt and posted to feed channels from there.

`FeedRecorder` turns each hub event into a stored event with one delivery per feed channel that
should see it (one transaction), then wakes the publisher. `FeedPublisher` posts pending
deliveries channel by channel and marks them posted, so a Discord outage or a restart delays
posts and never drops them:

- each channel has its own worker, so a slow or broken channel never holds up the others;
- a worker waits a short batching window, then combines consecutive events of one kind into one
  message (an update's progress edits one message instead);
- before creating a message the nonce is stored with its deliveries, and the message is created
  with that nonce (discord.py sets ``enforce_nonce``): when the process died between Discord
  creating it and us recording it, the retry returns the first message instead of a second one;
- 429s are waited out (discord.py honours ``retry_after``; we back off if it gives up), 5xx and
  network errors are retried with backoff, forever;
- a channel answering 403/404 stops its feeds (``disable_channel``), its pending deliveries are
  dropped, and the guild owner gets one DM (the server's system channel when DMs are closed).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import aiohttp
import discord

from bot.domain.feed_render import (
    COLOUR_CONTROLS,
    COLOUR_DEVICES,
    ControlsEntry,
    DeviceChange,
    LoggedControl,
    OtaEvent,
    OtaPhase,
    Post,
    fold_ota,
    inert,
    pack_lines,
    render_controls,
    render_device_change,
    render_ota,
)
from bot.logs import describe_network_error
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
from bot.storage import Storage
from bot.storage.feeds import Delivery
from bot.storage.models import FeedDelivery, FeedKind
from bot.storage.models import HubEvent as StoredEvent

if TYPE_CHECKING:
    from bot.client import OpenShockBot

__all__ = ["DEFAULT_TIMINGS", "FeedPublisher", "FeedRecorder", "FeedService", "FeedTimings"]

log = logging.getLogger(__name__)

# Stored event kinds (hub_events.kind).
KIND_CONTROLS = "controls"
KIND_DEVICE = "device"
KIND_OTA = "ota"

OtaHubEvent = (
    OtaInstallStarted | OtaInstallProgress | OtaInstallFailed | OtaRollback | OtaInstallSucceeded
)


@dataclass(frozen=True)
class FeedTimings:
    """Every delay the feeds use, so tests can shrink them."""

    batch_window: float = 1.5  # wait this long for more events before a channel's next post
    edit_interval: float = 2.0  # at most one edit of an update message per interval
    retry_initial: float = 2.0  # backoff after a 5xx, a network error or a 429 that got through
    retry_max: float = 60.0
    poll_interval: float = 30.0  # look for pending deliveries even without a wake-up
    prune_interval: float = 3600.0
    directory_wait: float = 5.0  # how long to wait for an account's shocker list to load
    device_dedupe: float = 60.0  # same device change seen through two accounts: post it once

    def backoff(self, failures: int) -> float:
        ceiling = min(self.retry_max, self.retry_initial * 2.0 ** max(0, failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


# Tests replace this (before the bot is built) to make the feeds fast.
DEFAULT_TIMINGS = FeedTimings()

ALLOWED_MENTIONS = discord.AllowedMentions.none()


def _new_nonce() -> str:
    return secrets.token_hex(10)  # Discord allows 25 characters


class FeedService:
    """The feeds of one bot: `on_hub_event` is its hub listener; `start`/`stop` its lifecycle."""

    def __init__(self, bot: OpenShockBot, timings: FeedTimings | None = None) -> None:
        self.timings = timings or DEFAULT_TIMINGS
        self.publisher = FeedPublisher(bot, bot.storage, self.timings, bot.settings)
        self.recorder = FeedRecorder(
            bot.storage, bot.hubs.get, self.timings, on_stored=self.publisher.wake
        )

    async def on_hub_event(self, account_id: int, event: HubEvent) -> None:
        await self.recorder.record(account_id, event)

    def start(self) -> None:
        self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()


# --- Recording ---------------------------------------------------------------------------------


class FeedRecorder:
    """Hub event → stored event with its deliveries, before anything is posted."""

    def __init__(
        self,
        storage: Storage,
        hub_of: _HubLookup,
        timings: FeedTimings,
        *,
        on_stored: _Callback,
    ) -> None:
        self.storage = storage
        self._hub_of = hub_of
        self._timings = timings
        self._on_stored = on_stored
        # (guild, device) -> (state, when) of the last device change routed there.
        self._recent_device_posts: dict[tuple[int, str], tuple[tuple[bool, str | None], float]] = {}

    async def record(self, account_id: int, event: HubEvent) -> None:
        if isinstance(event, ControlLogEvent):
            await self._record_controls(account_id, event)
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

    async def _store(
        self, account_id: int, kind: str, payload: str, deliveries: Sequence[Delivery]
    ) -> None:
        await self.storage.events.store(account_id, kind, payload, deliveries)
        if deliveries:
            self._on_stored({channel_id for _, _, channel_id in deliveries})

    async def _feeds(self, kind: FeedKind, guild_ids: set[int]) -> list[Delivery]:
        feeds = await self.storage.feeds.enabled_in(kind, guild_ids)
        return [(feed.guild_id, feed.kind, feed.channel_id) for feed in feeds]

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
        by_guild: dict[int, list[str]] = {}
        for shocker_id in dict.fromkeys(str(log_.shocker.id) for log_ in event.logs):
            for guild_id in await self._guilds_sharing(account_id, shocker_id):
                by_guild.setdefault(guild_id, []).append(shocker_id)
        deliveries = await self._feeds(FeedKind.CONTROLS, set(by_guild)) if by_guild else []
        if not deliveries:
            return  # no controls feed shows these shockers: nothing to post, nothing to keep
        account = await self.storage.accounts.get(account_id)
        entry = ControlsEntry(
            sender_name=event.sender.name,
            custom_name=event.sender.custom_name,
            from_bot=from_bot,
            wearer_id=account.discord_user_id if account is not None else None,
            controls=[
                LoggedControl(
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
        await self._store(account_id, KIND_CONTROLS, entry.model_dump_json(), deliveries)

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
        change = DeviceChange(
            device_id=device_id,
            device_name=name,
            online_before=online_before,
            online=event.current.online,
            firmware_before=firmware_before,
            firmware=firmware,
            at=time.time(),
        )
        if not (change.online_changed or change.firmware_changed):
            return
        if directory is None:  # right after a start: the lists may still be loading
            directory = await self._directory(account_id)
            if name is None and (name := _device_name(directory, event.device_id)) is not None:
                change = change.model_copy(update={"device_name": name})
        guilds = await self._guilds_of_device(account_id, directory, event.device_id)
        guilds = self._not_yet_posted(guilds, device_id, (change.online, change.firmware))
        deliveries = await self._feeds(FeedKind.DEVICES, guilds)
        await self._store(account_id, KIND_DEVICE, change.model_dump_json(), deliveries)

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
        self, guilds: set[int], device_id: str, state: tuple[bool, str | None]
    ) -> set[int]:
        """A device shared with two linked accounts reports each change to both; post once."""
        now = time.monotonic()
        fresh = set()
        for guild_id in guilds:
            seen = self._recent_device_posts.get((guild_id, device_id))
            if (
                seen is not None
                and seen[0] == state
                and now - seen[1] < self._timings.device_dedupe
            ):
                continue
            self._recent_device_posts[(guild_id, device_id)] = (state, now)
            fresh.add(guild_id)
        return fresh

    # -- firmware updates -----------------------------------------------------------------------

    async def _record_ota(self, account_id: int, event: OtaHubEvent) -> None:
        directory = await self._directory(account_id)
        ota = OtaEvent(
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
        await self._store(account_id, KIND_OTA, ota.model_dump_json(), deliveries)

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
            refreshed = await asyncio.wait_for(waiter, self._timings.directory_wait)
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
        return {
            share.guild_id
            for share in await self.storage.shares.of_shocker(shocker_id)
            if share.account_id == account_id
        }

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


def _ota_phase(event: OtaHubEvent) -> OtaPhase:
    if isinstance(event, OtaInstallStarted):
        return OtaPhase.STARTED
    if isinstance(event, OtaInstallProgress):
        return OtaPhase.PROGRESS
    if isinstance(event, OtaInstallFailed):
        return OtaPhase.FAILED
    if isinstance(event, OtaRollback):
        return OtaPhase.ROLLBACK
    return OtaPhase.SUCCEEDED


# --- Publishing --------------------------------------------------------------------------------


class _RetryLater(Exception):
    """Discord is unavailable or rate limiting: keep the deliveries, try again after a pause."""


class _ChannelGone(Exception):
    """The channel was deleted or the bot lost access: stop its feeds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _UnknownMessage(Exception):
    """The message to edit was deleted."""


Pending = tuple[FeedDelivery, StoredEvent]


class FeedPublisher:
    """Posts pending deliveries from the store, one worker task per channel."""

    def __init__(
        self,
        bot: discord.Client,
        storage: Storage,
        timings: FeedTimings,
        settings: _RetentionSettings,
    ) -> None:
        self.bot = bot
        self.storage = storage
        self.timings = timings
        self.retention_days = settings.feed_retention_days
        self._wakeup = asyncio.Event()
        # What the next round looks at: every channel with pending deliveries (a query), or
        # just the channels the recorder named (no query: it runs once per stored event).
        self._rescan = True
        self._woken: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._last_edit: dict[int, float] = {}  # message id -> loop time of its last write
        self._next_prune = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feed-publisher")

    def wake(self, channel_ids: Iterable[int] | None = None) -> None:
        """Post what is pending: in these channels (just stored there), or anywhere."""
        if channel_ids is None:
            self._rescan = True
        else:
            self._woken.update(channel_ids)
        self._wakeup.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._workers.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            rescan, self._rescan = self._rescan, False
            woken, self._woken = self._woken, set()
            try:
                if loop.time() >= self._next_prune:
                    self._next_prune = loop.time() + self.timings.prune_interval
                    await self.prune()
                # A running worker reads its channel again before it stops, and a stopping
                # worker asks for a rescan, so a named channel only needs a worker if it has
                # none; the query runs at start, on a poll and when a worker stops.
                channels = await self.storage.events.pending_channels() if rescan else woken
                for channel_id in channels:
                    worker = self._workers.get(channel_id)
                    if worker is None or worker.done():
                        self._workers[channel_id] = asyncio.create_task(
                            self._work(channel_id), name=f"feed-channel {channel_id}"
                        )
            except Exception:
                log.exception("The feed publisher failed to look for pending posts")
                self._rescan = True
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.timings.poll_interval)
            except TimeoutError:
                self._rescan = True

    async def prune(self) -> int:
        older_than = time.time() - self.retention_days * 86_400
        pruned = await self.storage.events.prune(older_than)
        if pruned:
            log.info("Pruned %d feed events older than %d days", pruned, self.retention_days)
        return pruned

    # -- one channel ----------------------------------------------------------------------------

    async def _work(self, channel_id: int) -> None:
        failures = 0
        try:
            # A burst wakes many channels at once: spread their posts a little.
            await asyncio.sleep(self.timings.batch_window * random.uniform(1.0, 1.25))
            while True:
                try:
                    if not await self._post_pending(channel_id):
                        return
                    failures = 0
                except _ChannelGone as gone:
                    await self._disable(channel_id, gone.reason)
                    return
                except _RetryLater as error:
                    failures += 1
                    delay = self.timings.backoff(failures)
                    log.warning("Feed channel %d: %s; retrying in %.1f s", channel_id, error, delay)
                    await asyncio.sleep(delay)
                    continue
                if self.timings.batch_window:
                    await asyncio.sleep(self.timings.batch_window)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Feed channel %d: unexpected failure; will retry", channel_id)
            await asyncio.sleep(self.timings.backoff(1))
        finally:
            # Whatever arrived while this worker was finishing gets a new worker.
            self.wake()

    async def _post_pending(self, channel_id: int) -> bool:
        """Post the channel's next message (False when nothing is pending). The page read is
        dropped on return, so the worker holds no rows while it waits for its next post."""
        pending = await self.storage.events.pending_in(channel_id, _PENDING_PAGE)
        if not pending:
            return False
        await self._post_next(channel_id, pending)
        return True

    async def _post_next(self, channel_id: int, pending: list[Pending]) -> None:
        pending = await self._still_wanted(channel_id, pending)
        if not pending:
            return
        head, _ = pending[0]
        if head.kind is FeedKind.UPDATES:
            await self._post_update(channel_id, pending)
        elif head.nonce is not None:
            # A message we may already have created before a crash: same deliveries, same
            # nonce, so Discord hands back that message if it exists.
            batch = [p for p in pending if p[0].nonce == head.nonce]
            await self._create(channel_id, batch, head.nonce)
        else:
            await self._create(channel_id, self._next_batch(pending), None)

    async def _still_wanted(self, channel_id: int, pending: list[Pending]) -> list[Pending]:
        """Drop deliveries whose feed was removed, moved to another channel, or disabled."""
        guilds = {d.guild_id for d, _ in pending}
        wanted: set[tuple[int, FeedKind]] = set()
        for guild_id in guilds:
            for feed in await self.storage.feeds.in_guild(guild_id):
                if feed.enabled and feed.channel_id == channel_id:
                    wanted.add((guild_id, feed.kind))
        keep = [p for p in pending if (p[0].guild_id, p[0].kind) in wanted]
        unwanted = [p[0].id for p in pending if (p[0].guild_id, p[0].kind) not in wanted]
        if unwanted:
            await self.storage.events.drop(unwanted)
        return keep

    def _next_batch(self, pending: list[Pending]) -> list[Pending]:
        """Consecutive deliveries of the head's kind (without a nonce) that fit in one post."""
        kind = pending[0][0].kind
        batch: list[Pending] = []
        size = 0
        for delivery, event in pending:
            if delivery.kind is not kind or delivery.nonce is not None:
                break
            text = self._lines(delivery, event)
            if batch and size + len(text) + 1 > _POST_BUDGET:
                break
            batch.append((delivery, event))
            size += len(text) + 1
        return batch

    def _lines(self, delivery: FeedDelivery, event: StoredEvent) -> str:
        try:
            if event.kind == KIND_CONTROLS:
                entry = ControlsEntry.model_validate_json(event.payload)
                return pack_lines(render_controls(entry, delivery.guild_id), _ENTRY_BUDGET)
            if event.kind == KIND_DEVICE:
                change = DeviceChange.model_validate_json(event.payload)
                return pack_lines(render_device_change(change), _ENTRY_BUDGET)
        except ValueError:
            log.exception("Stored feed event %d is unreadable; skipping it", event.id)
        return ""

    def _embed_for(self, batch: list[Pending]) -> discord.Embed | None:
        lines = [text for d, e in batch if (text := self._lines(d, e))]
        if not lines:
            return None
        colour = COLOUR_CONTROLS if batch[0][0].kind is FeedKind.CONTROLS else COLOUR_DEVICES
        return discord.Embed(description="\n".join(lines)[:4096], colour=colour)

    async def _create(self, channel_id: int, batch: list[Pending], nonce: str | None) -> None:
        ids = [d.id for d, _ in batch]
        embed = self._embed_for(batch)
        if embed is None:  # nothing to show in this guild (e.g. unreadable): done with them
            await self.storage.events.drop(ids)
            return
        if nonce is None:
            nonce = _new_nonce()
            await self.storage.events.set_nonce(ids, nonce)
        message = await self._send(channel_id, embed, nonce, ids)
        if message is not None:
            await self.storage.events.mark_posted(ids, message.id)

    async def _post_update(self, channel_id: int, pending: list[Pending]) -> None:
        """All pending events of the head's firmware update: one message, edited (throttled)."""
        head = _read_ota(pending[0][1])
        account_id = pending[0][1].account_id
        if head is None:
            await self.storage.events.drop([pending[0][0].id])
            return

        def same_update(item: Pending) -> bool:
            delivery, event = item
            if delivery.kind is not FeedKind.UPDATES or event.account_id != account_id:
                return False
            other = _read_ota(event)
            return other is not None and (other.device_id, other.update_id) == (
                head.device_id,
                head.update_id,
            )

        group = [p for p in pending if same_update(p)]
        ids = [d.id for d, _ in group]
        history = await self.storage.events.ota_history(account_id, head.device_id, head.update_id)
        view = fold_ota(e for e in map(_read_ota, history) if e is not None)
        embed = _embed(render_ota(view))
        message_id = await self.storage.events.posted_message(channel_id, [e.id for e in history])
        if message_id is not None:
            loop = asyncio.get_running_loop()
            since = loop.time() - self._last_edit.get(message_id, float("-inf"))
            if not view.finished and since < self.timings.edit_interval:
                # Let more progress arrive; the next round folds it into one edit.
                await asyncio.sleep(self.timings.edit_interval - since)
                return
            try:
                await self._edit(channel_id, message_id, embed)
            except _UnknownMessage:
                message_id = None  # someone deleted it: post a new one
            else:
                await self.storage.events.mark_posted(ids, message_id)
                if view.finished:
                    self._last_edit.pop(message_id, None)
                else:
                    self._last_edit[message_id] = loop.time()
                return
        nonce = next((d.nonce for d, _ in group if d.nonce is not None), None)
        if nonce is None:
            nonce = _new_nonce()
            await self.storage.events.set_nonce(ids, nonce)
        message = await self._send(channel_id, embed, nonce, ids)
        if message is not None:
            self._last_edit[message.id] = asyncio.get_running_loop().time()
            await self.storage.events.mark_posted(ids, message.id)

    # -- Discord --------------------------------------------------------------------------------

    async def _send(
        self, channel_id: int, embed: discord.Embed, nonce: str, ids: list[int]
    ) -> discord.Message | None:
        channel = self.bot.get_partial_messageable(channel_id)
        try:
            return await channel.send(embed=embed, nonce=nonce, allowed_mentions=ALLOWED_MENTIONS)
        except discord.HTTPException as error:
            self._classify(error)
            # Any other 4xx: this post can never be accepted; don't block the channel on it.
            log.error(
                "Discord refused a feed post in channel %d (%s); dropping it", channel_id, error
            )
            await self.storage.events.drop(ids)
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise _RetryLater(f"network error: {describe_network_error(error)}") from error

    async def _edit(self, channel_id: int, message_id: int, embed: discord.Embed) -> None:
        message = self.bot.get_partial_messageable(channel_id).get_partial_message(message_id)
        try:
            await message.edit(embed=embed, allowed_mentions=ALLOWED_MENTIONS)
        except discord.NotFound as error:
            if error.code == 10008:
                raise _UnknownMessage() from error
            self._classify(error)
        except discord.HTTPException as error:
            self._classify(error)
            log.error("Discord refused a feed edit in channel %d (%s)", channel_id, error)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise _RetryLater(f"network error: {describe_network_error(error)}") from error

    @staticmethod
    def _classify(error: discord.HTTPException) -> None:
        """Raise what the publisher does about a Discord error (returns for other 4xx)."""
        if isinstance(error, discord.Forbidden):
            raise _ChannelGone(error.text or "Missing Permissions") from error
        if isinstance(error, discord.NotFound):
            raise _ChannelGone(error.text or "Unknown Channel") from error
        if error.status == 429 or error.status >= 500:
            raise _RetryLater(f"Discord answered {error.status}") from error

    # -- a channel that is gone -----------------------------------------------------------------

    async def _disable(self, channel_id: int, reason: str) -> None:
        feeds = await self.storage.feeds.disable_channel(channel_id, reason)
        dropped = await self.storage.events.drop_channel(channel_id)
        log.warning(
            "Feed channel %d is gone (%s): %d feed(s) disabled, %d post(s) dropped",
            channel_id,
            reason,
            len(feeds),
            dropped,
        )
        by_guild: dict[int, list[FeedKind]] = {}
        for feed in feeds:
            by_guild.setdefault(feed.guild_id, []).append(feed.kind)
        for guild_id, kinds in by_guild.items():
            await self._tell_admins(guild_id, channel_id, kinds, reason)

    async def _tell_admins(
        self, guild_id: int, channel_id: int, kinds: list[FeedKind], reason: str
    ) -> None:
        """One notice per disabled feed channel: a DM to the guild owner, or the server's system
        channel when the owner takes no DMs."""
        names = " and ".join(f"`{kind.value}`" for kind in kinds)
        feeds = "feed" if len(kinds) == 1 else "feeds"
        try:
            guild = await self.bot.http.get_guild(guild_id)
        except discord.HTTPException as error:
            log.warning("Cannot tell guild %d about its lost feed channel: %s", guild_id, error)
            return
        text = (
            f"I can no longer post in <#{channel_id}> on **{inert(guild['name'])}** "
            f"({inert(reason, 500)}), so I stopped the {names} {feeds} there. "
            "Give me View Channel, Send Messages and Embed Links in a channel and run "
            "`/feed set` again to turn it back on."
        )
        try:
            owner = await self.bot.fetch_user(int(guild["owner_id"]))
            await owner.send(text, allowed_mentions=ALLOWED_MENTIONS)
            return
        except discord.HTTPException as error:
            log.info("Could not DM the owner of guild %d: %s", guild_id, error)
        system = guild.get("system_channel_id")
        if system is not None and int(system) != channel_id:
            try:
                await self.bot.get_partial_messageable(int(system)).send(
                    text, allowed_mentions=ALLOWED_MENTIONS
                )
            except discord.HTTPException as error:
                log.warning("Could not tell guild %d about its feed channel: %s", guild_id, error)


def _read_ota(event: StoredEvent) -> OtaEvent | None:
    try:
        return OtaEvent.model_validate_json(event.payload)
    except ValueError:
        log.exception("Stored update event %d is unreadable; skipping it", event.id)
        return None


def _embed(post: Post) -> discord.Embed:
    return discord.Embed(title=post.title, description=post.description, colour=post.colour)


# One post's text budget (embed description is 4096), and one event's share of it.
_POST_BUDGET = 3900
_ENTRY_BUDGET = 1500
# Pending deliveries read per post: one post holds at most ~100 entries (the shortest line is
# about 40 characters); reading more only makes objects the garbage collector has to walk.
_PENDING_PAGE = 100


# Small protocol-like aliases, kept loose to avoid importing the bot at run time.
if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.config import Settings

    _HubLookup = Callable[[int], HubConnection | None]
    _Callback = Callable[[set[int]], None]
    _RetentionSettings = Settings
