"""Feed fan-out under load, and how long the event loop stalls meanwhile (issue 7, parts 2 and 5).

The real bot (tests/harness.py: real composition root, SQLite on disk, production feed timings)
runs against the fake OpenShock server and the fake Discord REST API. 20 linked accounts receive
10,000 ``Log`` events in 10 s, pushed evenly over their hub connections; each account has 5
shockers and each shocker is shared in 3 of 50 guilds, each guild with a ``controls`` feed channel
(so every event has 3 deliveries: 30,000 in all, 600 per channel). The fake Discord enforces 5
messages per 5 s per channel and 50 requests per second overall, answering real 429s.

Printed: whether every event reached every channel it should exactly once (parsed from the posted
embeds and checked in the deliveries table), the 429s received (bar: 0), the time from the first
push to the last post, events per message, the peak RSS (VmHWM) and the event loop's longest
stall, measured by a task that sleeps 5 ms in a loop and records how late it wakes (bar: none
above 20 ms), with how many of those stalls overlapped a full (generation 2) GC pass.
``--gc-freeze`` calls ``gc.freeze()`` after set-up, as the bot could at the end of start-up.

The fakes run on their own event loop in a second thread, as Discord and OpenShock are remote in
production: the bot's loop then carries only the bot's work (they still share the GIL).

Run: ``python bench/feed_fanout.py`` (``--help`` for the knobs). About 35 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet

from bot.storage.models import FeedKind
from tests.fakes.discord_api import FakeDiscordAPI, message_text
from tests.fakes.openshock_server import FakeOpenShockServer, FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness
from tests.services.feed_helpers import log_event

T = TypeVar("T")

STALL_BAR_MS = 20.0
TICK_S = 0.005
PUSH_TICK_S = 0.01
SENDER = re.compile(r"by \*\*e(\d{6})\*\*")


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class FakeThread:
    """An event loop in a thread, for the fake servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fakes", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.submit(coro))

    async def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return await self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class StallMonitor:
    """Sleeps TICK_S in a loop on the bot's event loop and records how late each wake-up is."""

    def __init__(self) -> None:
        self.lateness_ms: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (woke at, ms late) above the bar
        self.worst_ms = 0.0
        self.worst_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._origin = 0.0

    def start(self, origin: float) -> None:
        self._origin = origin
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            woke = time.perf_counter()
            late = (woke - before - TICK_S) * 1000
            if late > STALL_BAR_MS:
                self.stalls.append((woke, late))
            if late > self.worst_ms:
                self.worst_ms, self.worst_at = late, time.perf_counter() - self._origin
            self.lateness_ms.append(late)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class GcWatch:
    """Full (generation 2) collections of the cyclic GC during the run, and how long they took:
    they stop every thread, so they are the usual cause of a long stall."""

    def __init__(self) -> None:
        self.full_ms: list[float] = []
        self.spans: list[tuple[float, float]] = []
        self._started: float | None = None

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            ended = time.perf_counter()
            self.full_ms.append((ended - self._started) * 1000)
            self.spans.append((self._started, ended))
            self._started = None

    def during(self, woke: float, late_ms: float) -> bool:
        """Whether a full collection ran while a sleeper that woke at `woke` was late."""
        since = woke - TICK_S - late_ms / 1000
        return any(start < woke and end > since for start, end in self.spans)

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


async def push_events(
    server: FakeOpenShockServer,
    plan: list[tuple[OpenShockUser, FakeShocker]],
    seconds: float,
) -> float:
    """Push plan[i] as event ``e{i}`` at i * seconds / len(plan), on the fakes' loop; returns
    how long the pushing took."""
    started = time.perf_counter()
    interval = seconds / len(plan)
    sent = 0
    while sent < len(plan):
        due = min(len(plan), int((time.perf_counter() - started) / interval) + 1)
        while sent < due:
            user, shocker = plan[sent]
            await server.push(user, "Log", *log_event(shocker, custom_name=f"e{sent:06d}"))
            sent += 1
        await asyncio.sleep(PUSH_TICK_S)
    return time.perf_counter() - started


async def wait_for(check: Callable[[], Awaitable[bool]], limit: float) -> bool:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def bench(args: argparse.Namespace) -> bool:
    fakes = FakeThread()
    discord_api = FakeDiscordAPI()
    openshock = FakeOpenShockServer()
    await fakes.run(discord_api.start())
    await fakes.run(openshock.start())
    tmp = tempfile.TemporaryDirectory(prefix="feed-fanout-")
    h = Harness(
        discord=discord_api,
        openshock=openshock,
        data_dir=Path(tmp.name) / "data",
        secret_key=Fernet.generate_key().decode(),
    )
    try:
        return await run(args, fakes, h)
    finally:
        if hasattr(h, "bot"):
            await h.stop()
        await fakes.run(openshock.stop())
        await fakes.run(discord_api.stop())
        fakes.close()
        tmp.cleanup()


async def run(args: argparse.Namespace, fakes: FakeThread, h: Harness) -> bool:
    # -- the world: accounts, shockers, guilds and their feed channels (fakes first) -----------
    def build() -> tuple[list[OpenShockUser], list[list[FakeShocker]], list[Any], list[Any]]:
        users, shockers = [], []
        for a in range(args.accounts):
            user = h.openshock.add_user(f"Wearer{a:02d}")
            device = h.openshock.add_device(user, f"Hub{a:02d}")
            users.append(user)
            shockers.append(
                [
                    h.openshock.add_shocker(device, f"Collar{a:02d}-{s}")
                    for s in range(args.shockers)
                ]
            )
        guilds = [h.discord.add_guild(name=f"Guild {g:02d}") for g in range(args.guilds)]
        channels = [h.discord.add_channel("controls", guild_id=guild.id) for guild in guilds]
        return users, shockers, guilds, channels

    os_users, shockers, guilds, channels = await fakes.call(build)
    await h.start()
    wearers = [h.discord_user(f"wearer{a:02d}") for a in range(args.accounts)]
    for wearer, os_user in zip(wearers, os_users, strict=True):
        await h.link(wearer, os_user)
    flat = [(a, s) for a in range(args.accounts) for s in shockers[a]]
    # Shocker n is shared in guilds n*k … n*k+k-1 (mod guilds): each guild gets the same number.
    guilds_of: dict[str, list[int]] = {}
    for n, (a, shocker) in enumerate(flat):
        picks = [(n * args.share_in + j) % len(guilds) for j in range(args.share_in)]
        guilds_of[str(shocker.id)] = picks
        for g in picks:
            await h.share(wearers[a], str(shocker.id), guild_id=guilds[g].id)
    for guild, channel in zip(guilds, channels, strict=True):
        await h.storage.feeds.set(guild.id, FeedKind.CONTROLS, channel.id)
    await fakes.call(
        lambda: h.discord.enable_rate_limits(messages=5, per=5.0, global_per_second=50)
    )

    # Event i goes to account i % accounts, to its shockers in turn.
    plan = [
        (
            os_users[i % args.accounts],
            shockers[i % args.accounts][(i // args.accounts) % args.shockers],
        )
        for i in range(args.events)
    ]
    expected: dict[int, set[int]] = {channel.id: set() for channel in channels}
    for i, (_, shocker) in enumerate(plan):
        for g in guilds_of[str(shocker.id)]:
            expected[channels[g].id].add(i)
    deliveries = sum(len(events) for events in expected.values())
    print(
        f"setup: {args.accounts} accounts x {args.shockers} shockers, each shared in "
        f"{args.share_in} of {args.guilds} guilds (one controls feed channel each); "
        f"{args.events:,} Log events in {args.seconds:g} s -> {deliveries:,} deliveries "
        f"({deliveries // len(channels)} per channel)"
    )
    print("fake Discord: 5 messages / 5 s per channel, 50 requests/s overall, real 429s")
    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # what a gc.freeze() at the end of the bot's start-up would do
        print(f"gc.freeze(): {gc.get_freeze_count():,} start-up objects out of the GC's walks")
    rss_before = rss_kib("VmRSS")

    # -- the run -------------------------------------------------------------------------
    origin = time.perf_counter()
    monitor = StallMonitor()
    monitor.start(origin)
    gc_watch = GcWatch()
    gc_watch.start()
    first_request = len(h.discord.requests)
    pushed_in = await fakes.run(push_events(h.openshock, plan, args.seconds))
    push_done = time.perf_counter() - origin

    async def recorded() -> bool:
        row = await h.storage.db.fetch_one("SELECT count(*) AS n FROM hub_events")
        return row is not None and row["n"] >= args.events

    all_recorded = await wait_for(recorded, args.timeout)
    recorded_at = time.perf_counter() - origin

    async def none_pending() -> bool:
        row = await h.storage.db.fetch_one(
            "SELECT count(*) AS n FROM feed_deliveries WHERE state = 'pending'"
        )
        return row is not None and row["n"] == 0

    all_posted = all_recorded and await wait_for(none_pending, args.timeout)
    posted_at = time.perf_counter() - origin
    await monitor.stop()
    gc_watch.stop()
    peak_kib = rss_kib("VmHWM")
    await asyncio.sleep(0.5)  # anything still in flight

    # -- what Discord saw ------------------------------------------------------------------
    def discord_view() -> tuple[dict[int, list[str]], list[Any], int, int]:
        texts = {
            cid: [message_text(m) for m in h.discord.channel_messages(cid)] for cid in expected
        }
        requests = h.discord.requests[first_request:]
        return texts, requests, h.discord.count_429(), h.discord.limiter_429s

    texts, requests, count_429, limiter_429s = await fakes.call(discord_view)
    creates = [
        r for r in requests if r.method == "POST" and re.match(r"^/channels/\d+/messages$", r.path)
    ]
    ok_creates = [r for r in creates if r.status == 200]
    monotonic_offset = time.monotonic() - time.perf_counter()
    last_post = max((r.at for r in ok_creates), default=float("nan")) - monotonic_offset - origin
    messages = sum(len(t) for t in texts.values())

    missing = duplicated = extra = 0
    for cid, wanted in expected.items():
        seen = Counter(int(n) for text in texts[cid] for n in SENDER.findall(text))
        missing += len(wanted - seen.keys())
        extra += len(seen.keys() - wanted)
        duplicated += sum(c - 1 for c in seen.values() if c > 1)
    rows = await h.storage.db.fetch_all(
        "SELECT state, count(*) AS n, count(DISTINCT event_id || ':' || channel_id) AS pairs"
        " FROM feed_deliveries GROUP BY state"
    )
    by_state = {row["state"]: (row["n"], row["pairs"]) for row in rows}
    events_row = await h.storage.db.fetch_one("SELECT count(*) AS n FROM hub_events")
    stored_events = events_row["n"] if events_row is not None else 0
    posted_rows, posted_pairs = by_state.get("posted", (0, 0))
    exactly_once = (
        all_posted
        and stored_events == args.events
        and posted_rows == posted_pairs == deliveries
        and set(by_state) == {"posted"}
        and missing == duplicated == extra == 0
    )

    late = sorted(monitor.lateness_ms)
    over = sum(1 for x in late if x > STALL_BAR_MS)
    p99 = late[int(len(late) * 0.99)] if late else float("nan")

    print(
        f"pushed {args.events:,} events in {pushed_in:.1f} s; all stored by {recorded_at:.1f} s"
        f"{'' if all_recorded else ' (TIMED OUT)'}; all deliveries marked posted by "
        f"{posted_at:.1f} s{'' if all_posted else ' (TIMED OUT)'} (push done at {push_done:.1f} s)"
    )
    print(
        f"exactly once: {stored_events:,} events stored; deliveries {by_state}; parsed from "
        f"{messages} messages: {missing} missing, {duplicated} duplicated, {extra} misrouted -> "
        f"{'yes' if exactly_once else 'NO'}"
    )
    print(
        f"posts: {len(ok_creates)} messages created ({len(creates)} create requests, "
        f"{len(requests)} requests in all, {h.discord.nonce_dedupes} nonce repeats); "
        f"{deliveries / max(messages, 1):.1f} events per message; last post at {last_post:.1f} s"
    )
    print(f"429s received: {count_429} ({limiter_429s} from the limiter)")
    print(
        f"memory: RSS {rss_before / 1024:.0f} MiB before the run, peak (VmHWM) "
        f"{peak_kib / 1024:.0f} MiB"
    )
    print(
        f"event loop stalls ({len(late):,} wake-ups of a {TICK_S * 1000:g} ms sleeper): "
        f"median {statistics.median(late):.1f} ms late, p99 {p99:.1f} ms, max {late[-1]:.1f} ms "
        f"(at {monitor.worst_at:.1f} s); {over} above {STALL_BAR_MS:g} ms"
    )
    full = gc_watch.full_ms
    in_gc = sum(gc_watch.during(woke, ms) for woke, ms in monitor.stalls)
    print(
        f"full GC collections during the run: {len(full)}"
        + (f", longest {max(full):.0f} ms" if full else "")
        + f"; stalls above {STALL_BAR_MS:g} ms: {in_gc} during a full GC, "
        f"{over - in_gc} not (slow callbacks, or the thread not scheduled)"
    )
    bars = {
        "every event once in every channel it belongs to": exactly_once,
        "no 429s": count_429 == 0,
        f"no stall above {STALL_BAR_MS:g} ms": over == 0,
    }
    for name, met in bars.items():
        print(f"bar: {name}: {'PASS' if met else 'FAIL'}")
    return all(bars.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--shockers", type=int, default=5, help="shockers per account")
    parser.add_argument("--guilds", type=int, default=50)
    parser.add_argument("--share-in", type=int, default=3, help="guilds each shocker is shared in")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="spread the events over this")
    parser.add_argument("--timeout", type=float, default=90.0, help="give up waiting after this")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after set-up: exclude start-up objects from full GC passes",
    )
    args = parser.parse_args()
    if not asyncio.run(bench(args)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
