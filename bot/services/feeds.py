"""Feeds, publishing: pending deliveries are posted to feed channels from the store.

`FeedService` (`feed_service.py`) ties the feeds together; `FeedRecorder` (`feed_recorder.py`)
stores each hub event with one delivery per feed channel that should see it, then wakes the
publisher. `FeedPublisher` (here) posts pending deliveries channel by channel and marks them
posted, so a Discord outage or a restart delays posts and never drops them:

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
import contextlib
import functools
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp
import discord

from bot.domain.feed_render import (
    COLOUR_CONTROLS,
    COLOUR_DEVICES,
    ControlsEntry,
    DeviceChange,
    OtaEvent,
    Post,
    fold_ota,
    pack_lines,
    render_controls,
    render_device_change,
    render_ota,
)
from bot.logs import describe_network_error
from bot.services.feed_discord import ALLOWED_MENTIONS, DiscordPort, tell_admins
from bot.services.feed_routes import FeedRoutes
from bot.services.feed_timings import FeedTimings
from bot.storage import Storage
from bot.storage.feed_payloads import StoredOtaV1, UnreadablePayload, read_payload
from bot.storage.models import FeedDelivery, FeedKind, StoredHubEvent

__all__ = ["FeedPublisher"]

log = logging.getLogger(__name__)


def _new_nonce() -> str:
    return secrets.token_hex(10)  # Discord allows 25 characters


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


Pending = tuple[FeedDelivery, StoredHubEvent]
Rendered = tuple[FeedDelivery, StoredHubEvent, str]  # with the lines it shows


@dataclass(slots=True)
class _Edit:
    """The last write of an update's message: when (loop time), where, for which account."""

    at: float
    channel_id: int
    account_id: int


class FeedPublisher:
    """Posts pending deliveries from the store, one worker task per channel."""

    def __init__(
        self,
        discord_: DiscordPort,
        storage: Storage,
        timings: FeedTimings,
        *,
        retention_days: int,
        on_sweep: Callable[[], Awaitable[None]] | None = None,
        routes: FeedRoutes | None = None,
    ) -> None:
        self.discord = discord_
        self.storage = storage
        self._routes = routes or FeedRoutes(storage)
        self.timings = timings
        self.retention_days = retention_days
        self._on_sweep = on_sweep
        self._wakeup = asyncio.Event()
        # What the next round looks at: every channel with pending deliveries (a query), or
        # just the channels the recorder named (no query: it runs once per stored event).
        self._rescan = True
        self._woken: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        # One worker per channel with something pending, and the lock it holds while it reads
        # and posts (a feed moving away waits for it); both leave when the worker ends.
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._last_edit: dict[int, _Edit] = {}  # update message id -> its last write
        # One channel at a time reads its page and renders its post (a few ms): a burst wakes
        # every channel's worker at once, and their preparations would otherwise all run in
        # the same turn of the event loop, holding it for the sum of them. The reads run on the
        # loop's thread without yielding, so the holder yields once before it lets go: the
        # next one prepares in the next turn.
        self._preparing = asyncio.Semaphore(1)
        # Per channel, how many deliveries its last post held: the next page reads about that.
        self._fits: dict[int, int] = {}
        # Event id -> (payload, what it shows), the last _PARSED_KEPT read (see _shown).
        self._parsed: dict[int, tuple[str, ControlsEntry | DeviceChange]] = {}
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
                    if self._on_sweep is not None:
                        await self._on_sweep()
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
                # Not `wait_for`: on Python 3.11 it swallows a cancellation that arrives as the
                # event is set, and `stop()` would then wait for this loop forever.
                async with asyncio.timeout(self.timings.poll_interval):
                    await self._wakeup.wait()
            except TimeoutError:
                self._rescan = True

    async def prune(self) -> int:
        older_than = time.time() - self.retention_days * 86_400
        pruned = await self.storage.events.prune(older_than)
        if pruned:
            log.info("Pruned %d feed events older than %d days", pruned, self.retention_days)
        return pruned

    # -- what is kept in memory -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def posting_in(self, channel_id: int) -> AsyncIterator[None]:
        """Hold the channel's worker between two posts (it holds this while it reads and posts),
        so its pending deliveries can be moved without one being posted here meanwhile."""
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if channel_id not in self._workers and not lock.locked():
                self._locks.pop(channel_id, None)

    def release(self, channel_ids: Iterable[int]) -> None:
        """These channels carry no feed any more: end their workers and forget their update
        messages. A worker between posts stops now; one posting stops after this post, as it
        then finds nothing pending (what the feed had pending is dropped or moved first)."""
        for channel_id in channel_ids:
            worker = self._workers.get(channel_id)
            lock = self._locks.get(channel_id)
            if worker is not None and not (lock is not None and lock.locked()):
                worker.cancel()
            self.forget_edits(channel_id=channel_id)

    def forget_edits(self, *, channel_id: int | None = None, account_id: int | None = None) -> None:
        for message_id, edit in list(self._last_edit.items()):
            if edit.channel_id == channel_id or edit.account_id == account_id:
                del self._last_edit[message_id]

    def forget_expired(self) -> None:
        """An edit older than the edit interval throttles nothing: let it go (an update that
        never finished, e.g. its device went away, would otherwise stay here)."""
        now = asyncio.get_running_loop().time()
        for message_id, edit in list(self._last_edit.items()):
            if now - edit.at >= self.timings.edit_interval:
                del self._last_edit[message_id]

    def in_memory(self) -> tuple[set[int], set[int], set[int]]:
        """Channels with a worker, channels with a lock, update messages with an edit time."""
        return set(self._workers), set(self._locks), set(self._last_edit)

    def accounts_in_memory(self) -> set[int]:
        return {edit.account_id for edit in self._last_edit.values()}

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
                    async with self.posting_in(channel_id):  # not released halfway through
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
            if self._workers.get(channel_id) is asyncio.current_task():
                del self._workers[channel_id]
                self._fits.pop(channel_id, None)
                lock = self._locks.get(channel_id)
                if lock is not None and not lock.locked():
                    del self._locks[channel_id]
            # Whatever arrived while this worker was finishing gets a new worker.
            self.wake()

    async def _post_pending(self, channel_id: int) -> bool:
        """Post the channel's next message (False when nothing is pending). The page read is
        dropped on return, so the worker holds no rows while it waits for its next post."""
        async with self.posting_in(channel_id):
            fit = self._fits.get(channel_id)
            page = _PENDING_PAGE if fit is None else min(_PENDING_PAGE, max(_MIN_PAGE, 2 * fit))
            async with self._preparing:
                try:
                    pending = await self.storage.events.pending_in(channel_id, page)
                    if not pending:
                        return False
                    # Reading a page and rendering a post take a few milliseconds each on a
                    # busy loop: not both in one turn of it.
                    await asyncio.sleep(0)
                    post = await self._prepare(channel_id, pending)
                finally:
                    await asyncio.sleep(0)
            if post is not None:
                await post()
            return True

    async def _prepare(
        self, channel_id: int, pending: list[Pending]
    ) -> Callable[[], Awaitable[None]] | None:
        """The channel's next post, read and rendered (None: nothing left to post)."""
        pending = await self._still_wanted(channel_id, pending)
        if not pending:
            return None
        head, _ = pending[0]
        if head.kind is FeedKind.UPDATES:
            return functools.partial(self._post_update, channel_id, pending)
        if head.nonce is not None:
            # A message we may already have created before a crash: same deliveries, same
            # nonce, so Discord hands back that message if it exists.
            batch = [(d, e, self._lines(d, e)) for d, e in pending if d.nonce == head.nonce]
        else:
            batch = self._next_batch(pending)
            self._fits[channel_id] = len(batch)
        return functools.partial(
            self._create, channel_id, batch, self._embed_for(batch), head.nonce
        )

    async def _still_wanted(self, channel_id: int, pending: list[Pending]) -> list[Pending]:
        """Drop deliveries whose feed is no longer here (removed, or disabled since). A feed
        moved to another channel took its pending deliveries along (`FeedRepository.set`)."""
        channels = await self._routes.channels({d.guild_id for d, _ in pending})
        wanted = {
            (guild_id, kind)
            for guild_id, feeds in channels.items()
            for kind, feed_channel in feeds.items()
            if feed_channel == channel_id
        }
        keep = [p for p in pending if (p[0].guild_id, p[0].kind) in wanted]
        unwanted = [p[0].id for p in pending if (p[0].guild_id, p[0].kind) not in wanted]
        if unwanted:
            await self.storage.events.drop(unwanted)
        return keep

    def _next_batch(self, pending: list[Pending]) -> list[Rendered]:
        """Consecutive deliveries of the head's kind (without a nonce) that fit in one post,
        with their text (rendered once: the post is made of it)."""
        kind = pending[0][0].kind
        batch: list[Rendered] = []
        size = 0
        for delivery, event in pending:
            if delivery.kind is not kind or delivery.nonce is not None:
                break
            text = self._lines(delivery, event)
            if batch and size + len(text) + 1 > _POST_BUDGET:
                break
            batch.append((delivery, event, text))
            size += len(text) + 1
        return batch

    def _lines(self, delivery: FeedDelivery, event: StoredHubEvent) -> str:
        shown = self._shown(event)
        if isinstance(shown, ControlsEntry):
            return pack_lines(render_controls(shown, delivery.guild_id), _ENTRY_BUDGET)
        if isinstance(shown, DeviceChange):
            return pack_lines(render_device_change(shown), _ENTRY_BUDGET)
        return ""

    def _shown(self, event: StoredHubEvent) -> ControlsEntry | DeviceChange | None:
        """The renderer's input of a stored controls or device event. An event goes to one
        channel per guild that shows it: the last few read are kept, so each is parsed once."""
        kept = self._parsed.get(event.id)
        if kept is not None and kept[0] == event.payload:
            return kept[1]
        try:
            shown = read_payload(event.kind, event.payload).to_render()
        except UnreadablePayload:
            log.exception("Stored feed event %d is unreadable; skipping it", event.id)
            return None
        if not isinstance(shown, ControlsEntry | DeviceChange):
            return None
        self._parsed[event.id] = (event.payload, shown)
        if len(self._parsed) > _PARSED_KEPT:
            del self._parsed[next(iter(self._parsed))]
        return shown

    def _embed_for(self, batch: list[Rendered]) -> discord.Embed | None:
        lines = [text for _, _, text in batch if text]
        if not lines:
            return None
        colour = COLOUR_CONTROLS if batch[0][0].kind is FeedKind.CONTROLS else COLOUR_DEVICES
        return discord.Embed(description="\n".join(lines)[:4096], colour=colour)

    async def _create(
        self,
        channel_id: int,
        batch: list[Rendered],
        embed: discord.Embed | None,
        nonce: str | None,
    ) -> None:
        ids = [d.id for d, _, _ in batch]
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
            last = self._last_edit.get(message_id)
            since = loop.time() - last.at if last is not None else float("inf")
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
                    self._last_edit[message_id] = _Edit(loop.time(), channel_id, account_id)
                return
        nonce = next((d.nonce for d, _ in group if d.nonce is not None), None)
        if nonce is None:
            nonce = _new_nonce()
            await self.storage.events.set_nonce(ids, nonce)
        message = await self._send(channel_id, embed, nonce, ids)
        if message is not None:
            now = asyncio.get_running_loop().time()
            self._last_edit[message.id] = _Edit(now, channel_id, account_id)
            await self.storage.events.mark_posted(ids, message.id)

    # -- Discord --------------------------------------------------------------------------------

    async def _send(
        self, channel_id: int, embed: discord.Embed, nonce: str, ids: list[int]
    ) -> discord.Message | None:
        channel = self.discord.channel(channel_id)
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
        message = self.discord.channel(channel_id).get_partial_message(message_id)
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
            await tell_admins(self.discord, guild_id, channel_id, kinds, reason)


def _read_ota(event: StoredHubEvent) -> OtaEvent | None:
    try:
        stored = read_payload(event.kind, event.payload)
    except UnreadablePayload:
        log.exception("Stored update event %d is unreadable; skipping it", event.id)
        return None
    if not isinstance(stored, StoredOtaV1):
        log.error("Stored event %d is not an update (%s); skipping it", event.id, event.kind)
        return None
    return stored.to_render()


def _embed(post: Post) -> discord.Embed:
    return discord.Embed(title=post.title, description=post.description, colour=post.colour)


# One post's text budget (embed description is 4096), and one event's share of it.
_POST_BUDGET = 3900
_ENTRY_BUDGET = 1500
# Pending deliveries read per post: one post holds at most ~100 entries (the shortest line is
# about 40 characters); reading more only makes objects the garbage collector has to walk. After
# a post, twice what it held (at least _MIN_PAGE): lines of one channel are alike.
_PENDING_PAGE = 100
_MIN_PAGE = 40
# Parsed stored events kept for the other channels that show them.
_PARSED_KEPT = 512
