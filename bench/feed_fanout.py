"""Feed fan-out under load, and how long the event loop stalls meanwhile (issue 7, parts 2 and 5).

The real bot (``bot.app.create_bot`` with ``Settings`` pointing at the fakes, as the tests'
harness builds it: SQLite on disk, production feed timings) runs against the fake OpenShock server
and the fake Discord REST API. 20 linked accounts receive 10,000 ``Log`` events in 10 s, pushed
evenly over their hub connections; each account has 5 shockers and each shocker is shared in 3 of
50 guilds, each guild with a ``controls`` feed channel (so every event has 3 deliveries: 30,000 in
all, 600 per channel). The fake Discord enforces 5 messages per 5 s per channel and 50 requests
per second overall, answering real 429s.

Both fakes run in a separate process (``spawn``, see ``bench/_fakes_process.py``), as Discord and
OpenShock are remote in production: this process holds only the bot's heap (the fakes' records of
every request, body and frame are not walked by its garbage collector) and shares no GIL with
them. The fakes' process builds the accounts, shockers, guilds and channels and reports them over
a pipe; this process links the accounts, shares the shockers and sets the feeds through storage,
then starts the bot, whose start-up connects every linked account (and ends with ``gc.freeze()``,
as in production). This process pushes nothing: it asks the fakes' process to push the events at
the set rate and, at the end, for the posted messages and the 429s it answered.

Before the bot starts, the same events are pushed at the same rate to **the floor**: what any bot
of this architecture must do per event, and nothing else. One bare ``pysignalr`` client per
account (the same hub connections, so the same WebSocket reads and SignalR JSON parsing), and per
``Log`` event: route it (a dict lookup, shocker -> its feed channels, built beforehand) and store
it durably with its deliveries in one transaction (one event row with the raw ``Log`` arguments
as JSON, one row per delivery; the ``sqlite3`` module on the loop's thread, WAL and
``synchronous = NORMAL`` as the bot's database). It posts nothing: posting is per message (37.5
events each here), not per event. Its CPU per event (this process, from the first push until all
are stored) is the floor; the bot's CPU per event (from the first push to the last post) divided
by it is the machine-independent figure: on a slower or busier machine both grow together.

Printed: whether every event reached every channel it should exactly once (parsed from the posted
embeds and checked in the deliveries table), the 429s received (bar: 0), the time from the first
push until all are stored and to the last post, events per message, the bot's and the floor's CPU
per event and their ratio, the bot process's RSS before the run and its peak RSS (VmHWM), its full
(generation 2) GC passes during the run and the longest, and the event loop's longest stall,
measured by a task that sleeps 5 ms in a loop and records how late it wakes (bar: none above
20 ms); each stall above 20 ms is listed with the GC pass it overlapped, if any. All times are
``time.monotonic()`` (``CLOCK_MONOTONIC``, one clock for both processes). ``--census`` also
prints, right after the last push, which types the objects the garbage collector tracks are
(what its full passes walk).

Run: ``python bench/feed_fanout.py`` (``--help`` for the knobs; ``--quick`` for a fifth of the
events over a fifth of the time). About 45 s. ``--profile FILE`` / ``--py-spy FILE`` profile the
bot's run (see ``bench/_profile.py``; a profiled run's figures are slowed down).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet
from pysignalr.client import SignalRClient

from bench._fakes_process import Fakes, cpu_seconds, fakes_process, quiet_logging, serve_commands
from bench._profile import profiled
from bot.app import create_bot
from bot.client import OpenShockBot
from bot.config import Settings
from bot.crypto import TokenCipher
from bot.storage import Storage
from bot.storage.models import FeedKind
from tests.fakes.discord_api import FakeDiscordAPI, FakeUser, message_text
from tests.fakes.openshock_server import HUB_PATH, FakeOpenShockServer, FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import FAST_HUB
from tests.services.feed_helpers import log_event

STALL_BAR_MS = 20.0
TICK_S = 0.005
PUSH_TICK_S = 0.01
CONFIRM_TIMEOUT = 1.0  # as the tests' harness
SENDER = re.compile(r"by \*\*e(\d{6})\*\*")
CREATE = re.compile(r"^/channels/\d+/messages$")


def status_kib(field: str) -> int:
    """A field of this process's /proc status (VmRSS, VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Shape:
    """The world to build (from the command line)."""

    accounts: int
    shockers: int  # per account
    guilds: int
    share_in: int  # guilds each shocker is shared in

    def target(self, event: int) -> tuple[int, int]:
        """(account, shocker of that account) of event ``event``: the accounts in turn, and each
        account's shockers in turn. Both processes use it: one pushes, the other checks."""
        account = event % self.accounts
        return account, (event // self.accounts) % self.shockers

    def guilds_of(self, account: int, shocker: int) -> list[int]:
        """Shocker n (counted over all accounts) is shared in guilds n*k … n*k+k-1 (mod guilds):
        each guild gets the same number."""
        n = account * self.shockers + shocker
        return [(n * self.share_in + j) % self.guilds for j in range(self.share_in)]


# --- The fakes' process --------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkedAccount:
    discord_id: int  # the wearer, on Discord
    openshock_id: str
    openshock_name: str
    token: str
    shockers: list[tuple[str, str]]  # (id, name)


@dataclass(frozen=True)
class Scene:
    """What the fakes' process reports once both fakes listen."""

    discord_url: str
    openshock_url: str
    accounts: list[LinkedAccount]
    guild_ids: list[int]
    channel_ids: list[int]  # the controls feed channel of each guild


@dataclass(frozen=True)
class Pushed:
    started: float  # time.monotonic() of the first push
    seconds: float  # how long the pushing took


@dataclass(frozen=True)
class Report:
    """What the fake Discord saw from the first push on."""

    texts: dict[int, list[str]]  # channel id -> its messages' text, oldest first
    requests: int
    creates: int  # message create requests
    created: int  # ... answered 200
    last_created_at: float  # time.monotonic() of the last one answered 200
    count_429: int
    limiter_429s: int
    nonce_dedupes: int
    peak_kib: int  # the fakes' process's VmHWM
    cpu: float  # the fakes' process's CPU seconds


def serve(pipe: Connection, shape: Shape) -> None:
    quiet_logging()
    asyncio.run(_serve(pipe, shape))


async def _serve(pipe: Connection, shape: Shape) -> None:
    api = FakeDiscordAPI()
    server = FakeOpenShockServer()
    users: list[OpenShockUser] = []
    shockers: list[list[FakeShocker]] = []
    accounts = []
    for a in range(shape.accounts):
        user = server.add_user(f"Wearer{a:02d}")
        device = server.add_device(user, f"Hub{a:02d}")
        own = [server.add_shocker(device, f"Collar{a:02d}-{s}") for s in range(shape.shockers)]
        wearer = api.add_user(FakeUser.make(f"wearer{a:02d}"))
        users.append(user)
        shockers.append(own)
        accounts.append(
            LinkedAccount(
                discord_id=wearer.id,
                openshock_id=str(user.id),
                openshock_name=user.name,
                token=user.token,
                shockers=[(str(s.id), s.name) for s in own],
            )
        )
    guilds = [api.add_guild(name=f"Guild {g:02d}") for g in range(shape.guilds)]
    channels = [api.add_channel("controls", guild_id=guild.id) for guild in guilds]
    await api.start()
    await server.start()
    first_request = 0
    cpu_at_push = 0.0

    def rate_limits(_: None) -> None:
        api.enable_rate_limits(messages=5, per=5.0, global_per_second=50)

    async def push(argument: tuple[int, float]) -> Pushed:
        """Push event i (custom name ``e{i}``) at i * seconds / events."""
        nonlocal first_request, cpu_at_push
        events, seconds = argument
        first_request = len(api.requests)
        cpu_at_push = cpu_seconds()
        started = time.monotonic()
        interval = seconds / events
        sent = 0
        while sent < events:
            due = min(events, int((time.monotonic() - started) / interval) + 1)
            while sent < due:
                a, s = shape.target(sent)
                event = log_event(shockers[a][s], custom_name=f"e{sent:06d}")
                await server.push(users[a], "Log", *event)
                sent += 1
            await asyncio.sleep(PUSH_TICK_S)
        return Pushed(started, time.monotonic() - started)

    def report(_: None) -> Report:
        requests = api.requests[first_request:]
        creates = [r for r in requests if r.method == "POST" and CREATE.match(r.path)]
        created = [r for r in creates if r.status == 200]
        return Report(
            texts={c.id: [message_text(m) for m in api.channel_messages(c.id)] for c in channels},
            requests=len(requests),
            creates=len(creates),
            created=len(created),
            last_created_at=max((r.at for r in created), default=float("nan")),
            count_429=api.count_429(),
            limiter_429s=api.limiter_429s,
            nonce_dedupes=api.nonce_dedupes,
            peak_kib=status_kib("VmHWM"),
            cpu=cpu_seconds() - cpu_at_push,
        )

    try:
        pipe.send(
            Scene(
                discord_url=api.base_url,
                openshock_url=server.base_url,
                accounts=accounts,
                guild_ids=[g.id for g in guilds],
                channel_ids=[c.id for c in channels],
            )
        )
        await serve_commands(pipe, {"rate_limits": rate_limits, "push": push, "report": report})
    finally:
        await server.stop()
        await api.stop()
    pipe.send("stopped")


# --- The bot's process: what the loop and the garbage collector do -------------------------------


class StallMonitor:
    """Sleeps TICK_S in a loop on the bot's event loop and records how late each wake-up is."""

    def __init__(self) -> None:
        self.lateness_ms: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (woke at, ms late) above the bar
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK_S)
            woke = time.monotonic()
            late = (woke - before - TICK_S) * 1000
            if late > STALL_BAR_MS:
                self.stalls.append((woke, late))
            self.lateness_ms.append(late)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class GcWatch:
    """Every collection of the cyclic GC in this process during the run (gc.callbacks): when,
    which generation and how long. A pass stops every thread, so a long one stalls the loop."""

    def __init__(self) -> None:
        self.passes: list[tuple[int, float, float]] = []  # (generation, start, end)
        self._started: float | None = None

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        elif self._started is not None:
            self.passes.append((info["generation"], self._started, time.monotonic()))
            self._started = None

    def full_ms(self) -> list[float]:
        return [(end - start) * 1000 for generation, start, end in self.passes if generation == 2]

    def during(self, woke: float, late_ms: float) -> tuple[int, float] | None:
        """The oldest generation (and its duration in ms) collected while a sleeper that woke at
        ``woke`` was late, or None."""
        since = woke - TICK_S - late_ms / 1000
        hits = [(g, (e - s) * 1000) for g, s, e in self.passes if s < woke and e > since]
        return max(hits) if hits else None

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


async def wait_for(check: Callable[[], Awaitable[bool]], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


# --- The bot's process: the floor ----------------------------------------------------------------

FLOOR_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY, account INTEGER NOT NULL, payload TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL REFERENCES events (id),
    channel_id INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending'
);
"""


@dataclass(frozen=True)
class Floor:
    events: int  # stored
    cpu: float  # this process's CPU seconds from asking for the push until all were stored
    stored_at: float  # seconds from asking for the push until all were stored
    pushed: Pushed
    stalls: list[float]  # ms late, each wake-up of the sleeper above the bar while it stored
    max_late_ms: float

    @property
    def cpu_per_event_ms(self) -> float:
        return self.cpu / max(self.events, 1) * 1000


async def measure_floor(
    args: argparse.Namespace, shape: Shape, fakes: Fakes, scene: Scene, path: Path
) -> Floor:
    """The same push received by bare pysignalr clients and stored with its deliveries, one
    transaction per event (see the module's docstring)."""
    channels_of = {
        shocker_id: [scene.channel_ids[g] for g in shape.guilds_of(a, s)]
        for a, linked in enumerate(scene.accounts)
        for s, (shocker_id, _) in enumerate(linked.shockers)
    }
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(FLOOR_SCHEMA)
    stored = 0
    all_stored = asyncio.Event()

    def on_log(account: int) -> Callable[[list[Any]], Awaitable[None]]:
        async def store(arguments: list[Any]) -> None:
            nonlocal stored
            _, logs = arguments
            channels = {c for log in logs for c in channels_of.get(log["shocker"]["id"], ())}
            db.execute("BEGIN")
            event_id = db.execute(
                "INSERT INTO events (account, payload, received_at) VALUES (?, ?, ?)",
                (account, json.dumps(arguments), time.time()),
            ).lastrowid
            db.executemany(
                "INSERT INTO deliveries (event_id, channel_id) VALUES (?, ?)",
                [(event_id, channel_id) for channel_id in channels],
            )
            db.execute("COMMIT")
            stored += 1
            if stored >= args.events:
                all_stored.set()

        return store

    async def ignore(_: Any) -> None:
        return None

    clients: list[asyncio.Task[None]] = []
    try:
        opened = []
        for a, linked in enumerate(scene.accounts):
            client = SignalRClient(
                scene.openshock_url + HUB_PATH, headers={"OpenShockToken": linked.token}
            )
            is_open = asyncio.Event()

            async def on_open(is_open: asyncio.Event = is_open) -> None:
                is_open.set()

            client.on_open(on_open)
            client.on("Log", on_log(a))
            for target in ("Welcome", "DeviceStatus"):
                client.on(target, ignore)
            clients.append(asyncio.create_task(client.run()))
            opened.append(is_open.wait())
        await asyncio.wait_for(asyncio.gather(*opened), 30)
        monitor = StallMonitor()  # the machine's own stalls: the floor has no long callback
        cpu = cpu_seconds()
        origin = time.monotonic()
        monitor.start()
        pushed: Pushed = await fakes.ask("push", (args.events, args.seconds), args.seconds + 60)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_stored.wait(), args.timeout)
        stored_at, cpu = time.monotonic() - origin, cpu_seconds() - cpu
        await monitor.stop()
        return Floor(
            stored,
            cpu,
            stored_at,
            pushed,
            [ms for _, ms in monitor.stalls],
            max(monitor.lateness_ms, default=0.0),
        )
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        db.close()


def census(top: int = 12) -> str:
    """The types of the objects the garbage collector tracks (those its full passes walk)."""
    counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    return ", ".join(f"{name} {n:,}" for name, n in counts.most_common(top))


# --- The bot's process: the run ------------------------------------------------------------------


async def bench(args: argparse.Namespace, shape: Shape, fakes: Fakes) -> bool:
    scene: Scene = await asyncio.get_running_loop().run_in_executor(None, fakes.receive)
    with tempfile.TemporaryDirectory(prefix="feed-fanout-") as tmp:
        secret_key = Fernet.generate_key().decode()
        settings = Settings(
            _env_file=None,
            discord_token="test-token",
            data_dir=Path(tmp) / "data",
            secret_key=secret_key,
            openshock_api_url=scene.openshock_url,
            discord_api_base_url=scene.discord_url,
        )
        storage = await Storage.open(settings.database_path, TokenCipher(secret_key.encode()))
        bot: OpenShockBot | None = None
        try:
            floor = None
            if not args.no_floor:
                gc.freeze()  # as the bot's start-up does, so that the floor is not handicapped
                floor = await measure_floor(args, shape, fakes, scene, Path(tmp) / "floor.sqlite")
                await asyncio.sleep(0.5)  # the fake hub notices the floor's clients are gone
            await configure(storage, scene, shape)
            bot = create_bot(
                settings, storage, hub_timings=FAST_HUB, confirm_timeout=CONFIRM_TIMEOUT
            )
            await bot.login("test-token")  # start-up: connects every linked account
            for account in await storage.accounts.list_active():
                hub = bot.hubs.get(account.id)
                if hub is None:
                    raise SystemExit(f"no hub connection for account {account.id}")
                await hub.wait_connected(timeout=10)
                if hub.shockers is None:
                    await hub.refresh_shockers()
            return await run(args, shape, fakes, scene, storage, floor)
        finally:
            if bot is not None and not bot.is_closed():
                await bot.close()
            await storage.close()


async def configure(storage: Storage, scene: Scene, shape: Shape) -> None:
    """What the bot would find in its database at a start: the accounts, the shares (caps as the
    tests' harness shares), one controls feed per guild."""
    for a, linked in enumerate(scene.accounts):
        account = await storage.accounts.link(
            discord_user_id=linked.discord_id,
            openshock_user_id=linked.openshock_id,
            openshock_name=linked.openshock_name,
            api_url=scene.openshock_url,
            token=linked.token,
        )
        for s, (shocker_id, name) in enumerate(linked.shockers):
            for g in shape.guilds_of(a, s):
                await storage.shares.share(
                    guild_id=scene.guild_ids[g],
                    account_id=account.id,
                    wearer_id=linked.discord_id,
                    shocker_id=shocker_id,
                    shocker_name=name,
                    max_intensity=25,
                    max_duration_ms=3000,
                    allow_shock=True,
                    allow_vibrate=True,
                    allow_sound=True,
                )
    for guild_id, channel_id in zip(scene.guild_ids, scene.channel_ids, strict=True):
        await storage.feeds.set(guild_id, FeedKind.CONTROLS, channel_id)


async def run(
    args: argparse.Namespace,
    shape: Shape,
    fakes: Fakes,
    scene: Scene,
    storage: Storage,
    floor: Floor | None,
) -> bool:
    expected: dict[int, set[int]] = {channel_id: set() for channel_id in scene.channel_ids}
    for i in range(args.events):
        for g in shape.guilds_of(*shape.target(i)):
            expected[scene.channel_ids[g]].add(i)
    deliveries = sum(len(events) for events in expected.values())
    print(
        f"setup: {shape.accounts} accounts x {shape.shockers} shockers, each shared in "
        f"{shape.share_in} of {shape.guilds} guilds (one controls feed channel each); "
        f"{args.events:,} Log events in {args.seconds:g} s -> {deliveries:,} deliveries "
        f"({deliveries // len(expected)} per channel)"
    )
    print(
        "fakes in a separate process; fake Discord: 5 messages / 5 s per channel, "
        "50 requests/s overall, real 429s"
    )
    print(
        f"bot process after start-up: {gc.get_freeze_count():,} objects frozen by gc.freeze() "
        f"(the bot's, and before the floor; out of the GC's walks), {len(gc.get_objects()):,} "
        "still tracked"
    )
    await fakes.ask("rate_limits")
    rss_before = status_kib("VmRSS")

    # -- the run ---------------------------------------------------------------------------------
    monitor = StallMonitor()
    gc_watch = GcWatch()
    profiling = contextlib.ExitStack()  # closed once everything is posted
    if args.profile or args.py_spy:
        profiling.enter_context(profiled(args.profile, args.py_spy))
    cpu_before = cpu_seconds()
    origin = time.monotonic()
    monitor.start()
    gc_watch.start()
    pushed: Pushed = await fakes.ask("push", (args.events, args.seconds), args.seconds + 60)
    push_done = time.monotonic() - origin
    tracked = census() if args.census else ""

    async def recorded() -> bool:
        row = await storage.db.fetch_one("SELECT count(*) AS n FROM hub_events")
        return row is not None and row["n"] >= args.events

    all_recorded = await wait_for(recorded, args.timeout)
    recorded_at = time.monotonic() - origin

    async def none_pending() -> bool:
        row = await storage.db.fetch_one(
            "SELECT count(*) AS n FROM feed_deliveries WHERE state = 'pending'"
        )
        return row is not None and row["n"] == 0

    all_posted = all_recorded and await wait_for(none_pending, args.timeout)
    posted_at = time.monotonic() - origin
    await monitor.stop()
    gc_watch.stop()
    cpu = cpu_seconds() - cpu_before
    profiling.close()
    peak_kib = status_kib("VmHWM")
    await asyncio.sleep(0.5)  # anything still in flight

    # -- what Discord saw ------------------------------------------------------------------------
    seen: Report = await fakes.ask("report")
    last_post = seen.last_created_at - origin
    messages = sum(len(t) for t in seen.texts.values())
    missing = duplicated = extra = 0
    for cid, wanted in expected.items():
        senders = Counter(int(n) for text in seen.texts[cid] for n in SENDER.findall(text))
        missing += len(wanted - senders.keys())
        extra += len(senders.keys() - wanted)
        duplicated += sum(c - 1 for c in senders.values() if c > 1)
    rows = await storage.db.fetch_all(
        "SELECT state, count(*) AS n, count(DISTINCT event_id || ':' || channel_id) AS pairs"
        " FROM feed_deliveries GROUP BY state"
    )
    by_state = {row["state"]: (row["n"], row["pairs"]) for row in rows}
    events_row = await storage.db.fetch_one("SELECT count(*) AS n FROM hub_events")
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
    over = len(monitor.stalls)
    p99 = late[int(len(late) * 0.99)] if late else float("nan")
    worst_at = max(monitor.stalls, key=lambda s: s[1])[0] - origin if monitor.stalls else None

    print(
        f"pushed {args.events:,} events in {pushed.seconds:.1f} s (first push "
        f"{(pushed.started - origin) * 1000:.0f} ms after asking); all stored by "
        f"{recorded_at:.1f} s{'' if all_recorded else ' (TIMED OUT)'}; all deliveries marked "
        f"posted by {posted_at:.1f} s{'' if all_posted else ' (TIMED OUT)'} "
        f"(push done at {push_done:.1f} s)"
    )
    print(
        f"exactly once: {stored_events:,} events stored; deliveries {by_state}; parsed from "
        f"{messages} messages: {missing} missing, {duplicated} duplicated, {extra} misrouted -> "
        f"{'yes' if exactly_once else 'NO'}"
    )
    print(
        f"posts: {seen.created} messages created ({seen.creates} create requests, "
        f"{seen.requests} requests in all, {seen.nonce_dedupes} nonce repeats); "
        f"{deliveries / max(messages, 1):.1f} events per message; last post at {last_post:.1f} s"
    )
    print(f"429s received: {seen.count_429} ({seen.limiter_429s} from the limiter)")
    print(
        f"memory: bot process RSS {rss_before / 1024:.0f} MiB before the run, peak (VmHWM) "
        f"{peak_kib / 1024:.0f} MiB; fakes' process peak {seen.peak_kib / 1024:.0f} MiB"
    )
    print(
        f"CPU from the first push to the last post: bot process {cpu:.1f} s "
        f"({cpu / args.events * 1000:.2f} ms per event), fakes' process {seen.cpu:.1f} s "
        "(until the report)"
    )
    if floor is not None:
        print(
            f"floor (bare pysignalr + one SQLite transaction per event, no posting; before the "
            f"bot): {floor.events:,} stored by {floor.stored_at:.1f} s (pushed in "
            f"{floor.pushed.seconds:.1f} s), {floor.cpu:.1f} s CPU, "
            f"{floor.cpu_per_event_ms:.3f} ms per event; its event loop: {len(floor.stalls)} "
            f"stalls above {STALL_BAR_MS:g} ms, max {floor.max_late_ms:.1f} ms late (what this "
            "machine does to a loop that runs no long callback)"
        )
        print(
            "machine-independent: bot CPU per event ÷ floor CPU per event (same run) = "
            f"{cpu / args.events * 1000 / floor.cpu_per_event_ms:.2f}"
        )
    if tracked:
        print(f"objects tracked by the GC right after the last push: {tracked}")
    full = gc_watch.full_ms()
    print(
        f"GC in the bot process during the run: {len(gc_watch.passes):,} passes, {len(full)} full"
        + (
            f" (longest {max(full):.0f} ms, median {statistics.median(full):.0f} ms)"
            if full
            else ""
        )
    )
    print(
        f"event loop stalls ({len(late):,} wake-ups of a {TICK_S * 1000:g} ms sleeper): "
        f"median {statistics.median(late):.1f} ms late, p99 {p99:.1f} ms, max {late[-1]:.1f} ms"
        + (f" (at {worst_at:.1f} s)" if worst_at is not None else "")
        + f"; {over} above {STALL_BAR_MS:g} ms"
    )
    causes = Counter[str]()
    for woke, ms in monitor.stalls:
        hit = gc_watch.during(woke, ms)
        cause = "no GC pass" if hit is None else f"gen {hit[0]} GC pass of {hit[1]:.0f} ms"
        causes["full GC" if hit is not None and hit[0] == 2 else "other"] += 1
        print(f"  stall at {woke - origin:5.1f} s: {ms:5.1f} ms late, during {cause}")
    if over:
        print(
            f"stalls above {STALL_BAR_MS:g} ms: {causes['full GC']} during a full GC pass, "
            f"{causes['other']} not (a younger pass, slow callbacks, or the process not scheduled)"
        )
    bars = {
        "every event once in every channel it belongs to": exactly_once,
        "no 429s": seen.count_429 == 0,
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
        "--quick", action="store_true", help="a fifth of the events over a fifth of the time"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor's run")
    parser.add_argument(
        "--census", action="store_true", help="the GC-tracked objects' types after the push"
    )
    parser.add_argument("--profile", type=Path, help="cProfile the bot's run to this file")
    parser.add_argument("--py-spy", type=Path, help="py-spy the bot's run to this file")
    args = parser.parse_args()
    if args.quick:
        args.events, args.seconds = args.events // 5, args.seconds / 5
    shape = Shape(args.accounts, args.shockers, args.guilds, args.share_in)
    quiet_logging()
    ok = False
    with fakes_process(serve, shape) as fakes:
        ok = asyncio.run(bench(args, shape, fakes))
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
