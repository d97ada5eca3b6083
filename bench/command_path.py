"""How long a /shock takes from the interaction to the ControlV2 frame at the hub, against the
cheapest bot of the same architecture (the floor) and a bare pysignalr client.

The fake Discord API and the fake OpenShock server run in a separate process (``spawn``, see
``bench/_fakes_process.py``), both on 127.0.0.1, as a deployment talks to a remote Discord and
OpenShock: their CPU work (answering the interaction callbacks and edits, parsing frames, sending
``Log``) is not counted as the bot's.
That process builds the scene of ``tests/cogs/test_control.py`` (Alice's online hub with her
collar, and Carol's and Dave's, each with their own) and reports over a pipe what this process
needs. Three comparators are then set up side by side in this process, against the same fakes:

- **bare**: a bare ``pysignalr`` client (``SignalRClient`` with the ``OpenShockToken`` header)
  sends the ControlV2 frame, timed from the call to ``send`` until the frame arrives. No Discord.
- **floor**: the cheapest possible bot of this architecture. A plain ``discord.Client`` (same
  discord.py, logged in to the same fake Discord) with a bare ``app_commands.CommandTree`` holding
  one ``/shock`` command (same options and bounds as the bot's), and a bare pysignalr client
  connected as Dave (so that the Log events of its controls reach it alone, not the bot). It
  receives the same ``/shock`` interaction payload through discord.py's real
  ``parse_interaction_create`` and the tree, sends the same ControlV2 frame to Dave's collar
  (online like Alice's), waits for the hub's completion, and answers with one REST call (the
  interaction response). No database, no decision, no audit, no waiting for OpenShock's
  ``Log`` (which still arrives on its connection and is parsed by pysignalr, as for the bot).
- **bot**: the real bot (``bot.app.create_bot`` with ``Settings`` pointing at the fakes, as the
  tests' harness does): Alice's account linked through storage, her collar shared with caps high
  enough, ``@everyone`` granted with no cooldown through a real ``/permissions grant``.

Each runs 2,000 commands with 20 in flight after 100 warm-up commands, then 300 one at a time (no
queueing), then 1,000 started at a steady 250 per second (paced: an open loop, the same offered
load for all). They take turns: each of these three phases is cut into 4 rounds (``--rounds``),
and each round runs a quarter of every comparator's commands, one comparator after the other
(the order turning by one each round), so that a slow stretch of a shared machine (its speed
moves by a third within a minute) falls on all of them alike instead of deciding a ratio. The
bot's part of a round ends with the WAL checkpoint its writes call for (``Comparator.settle``),
which it otherwise runs every second on its own, on whichever comparator's time. On a machine
with two CPUs or more this process and the fakes' are pinned to one CPU each (``--no-pin`` to
leave them to the scheduler), so that neither runs beside the other on a shared core.

With 20 in flight each comparator runs as fast as it can, so the floor handles about twice the
bot's commands per second, and a loop that is busier handles more commands per wake-up (and the
fakes' process, on the other core, is busier too): CPU per command then compares two different
loads. At equal load it compares the same one; both are printed.

A command is timed from the moment discord.py gets the payload (or ``send`` is called,
for bare) until its ControlV2 frame reaches the fake hub; each command asks for a unique
duration, which identifies its frame. Both ends are read with ``time.monotonic()``
(``CLOCK_MONOTONIC``, one clock for all processes on Linux): this process notes when it feeds
each payload, the fakes' process when each frame has been parsed, and sends those times back
after each run. A command stays in flight until it has been handled completely (for the bot:
reply edited, ``Log`` confirmed; for the floor: answered).

Printed: p50/p99 of each, the CPU seconds per command of this process and of the fakes' process
during each timed run (``getrusage``; with 20 in flight, a process near 100 % of a core queues
commands), and the figures the bot is held to:
- bot / floor for p50, p99 and CPU per command, with 20 in flight and at equal load; goal:
  **≤ 1.5×** in CPU and p99;
- overhead = bot p99 − bare p99 with 20 in flight; bar: **< 5 ms**.
The CPU ratio bot / floor (both measured in the same run, on the same machine, under the same
load) is the machine-independent figure: on a slower or busier machine both CPU figures grow
together, so it is what to compare across machines and runs (the absolute times are not).

The payloads fed to discord.py are built before the runs and then frozen out of the garbage
collector's walks (``gc.freeze()``), as the bot freezes its start-up; the fakes' process freezes
its growing records of requests and frames before each timed run (``_fakes_process``): without
that, its full GC passes (100-250 ms by the third comparator) held up whichever comparator was
running and decided the p99s.

Run: ``python bench/command_path.py`` (about 30 s; ``--quick`` runs a quarter of the commands for
a rough look; ``--help`` for the knobs). ``--profile FILE`` writes a cProfile of this process
during the bot's timed run (pstats format; read it with ``python -m pstats FILE``), ``--py-spy
FILE`` a py-spy sample (raw collapsed stacks, if ``py-spy`` is installed); a profiled run takes
no turns (one round per phase) and its figures are not comparable (profiling slows the bot down).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import discord
from cryptography.fernet import Fernet
from discord import app_commands
from pysignalr.client import SignalRClient

from bench._fakes_process import (
    Fakes,
    cpu_seconds,
    fakes_process,
    pin_apart,
    quiet_logging,
    serve_commands,
)
from bench._profile import profiled
from bot.app import create_bot, point_discord_at
from bot.client import OpenShockBot
from bot.config import Settings
from bot.crypto import TokenCipher
from bot.storage import Storage
from tests.fakes.discord_api import (
    FakeChannel,
    FakeDiscordAPI,
    FakeUser,
    register_interaction_payload,
)
from tests.fakes.interactions import Interactions, run_interaction
from tests.fakes.openshock_server import HUB_PATH, FakeHubConnection, FakeOpenShockServer
from tests.harness import FAST_HUB

BAR_MS = 5.0  # bot p99 - bare p99, with IN_FLIGHT in flight
FLOOR_GOAL = 1.5  # bot / floor, for CPU per command and p99
COMMANDS = 2_000
IN_FLIGHT = 20
WARMUP = 100
UNLOADED = 300  # also timed one at a time, for context: the path without queueing
PACED = 1_000  # also timed at the same steady rate for all: CPU per command at equal load
RATE = 250.0  # commands per second of the paced run (well below what the bot can do here)
ROUNDS = 4  # each timed phase runs in this many rounds, the comparators taking turns
FIRST_DURATION_MS = 1_000  # the lowest duration asked for
MAX_DURATION_MS = 65_535  # the highest the /shock option (and OpenShock) allows
INTENSITY = 10
CUSTOM_NAME = "bob (Discord)"
FRAME_TIMEOUT = 10.0
CONFIRM_TIMEOUT = 1.0  # the bot waits this long for OpenShock's Log (as the tests' harness)

Run = tuple[int, int]  # (first duration in ms, count)
Runs = tuple[Run, Run, Run, Run, Run]


@dataclass(frozen=True)
class Plan:
    """How many commands each comparator runs. Every command asks for its own duration, which
    identifies its frame at the fake hub: each comparator gets its own block of durations (one
    sample, the warm-up, the timed run, one at a time), so that no two frames share one."""

    commands: int = COMMANDS
    in_flight: int = IN_FLIGHT
    warmup: int = WARMUP
    unloaded: int = UNLOADED
    paced: int = PACED
    rate: float = RATE
    rounds: int = ROUNDS

    @property
    def block(self) -> int:
        return 1 + self.warmup + self.commands + self.unloaded + self.paced

    def runs(self, comparator: int) -> Runs:
        """(sample, warm-up, timed, one at a time, paced) of comparator 0, 1, 2."""
        first = FIRST_DURATION_MS + comparator * self.block
        sample = (first, 1)
        warmup = (first + 1, self.warmup)
        timed = (warmup[0] + self.warmup, self.commands)
        unloaded = (timed[0] + self.commands, self.unloaded)
        paced = (unloaded[0] + self.unloaded, self.paced)
        return sample, warmup, timed, unloaded, paced

    def check(self) -> None:
        if FIRST_DURATION_MS + 3 * self.block - 1 > MAX_DURATION_MS:
            raise SystemExit(
                f"too many commands: each needs its own duration, "
                f"{FIRST_DURATION_MS}–{MAX_DURATION_MS} ms"
            )


# Which block of durations each comparator uses.
BOT, FLOOR, BARE = 0, 1, 2


# Which run of `Plan.runs` each phase is.
SAMPLE_RUN, WARMUP_RUN, TIMED_RUN, UNLOADED_RUN, PACED_RUN = range(5)


def durations_of(run: Run) -> range:
    first, count = run
    return range(first, first + count)


# --- The fakes' process --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """What the fakes' process reports once both fakes listen."""

    discord_url: str
    openshock_url: str
    app_id: int
    guild_id: int
    channel: FakeChannel
    alice: FakeUser  # the wearer, on Discord
    bob: FakeUser  # who sends the shocks
    admin: FakeUser  # who grants @everyone
    alice_os_id: str  # Alice's OpenShock user
    alice_os_name: str
    alice_os_token: str
    collar_id: str
    carol_os_token: str  # the bare client's OpenShock user, with her own collar
    carol_collar_id: str
    dave_os_token: str  # the floor's OpenShock user, with his own collar
    dave_collar_id: str


def serve(pipe: Connection) -> None:
    quiet_logging()
    asyncio.run(_serve(pipe))


def clock_frames(server: FakeOpenShockServer, arrivals: dict[int, float]) -> None:
    """Note in ``arrivals`` when each ControlV2 frame reaches the fake hub, keyed by its duration.

    It wraps the server's ``_on_invocation`` on this instance: the fake behaves exactly as before
    and the timestamp is taken as soon as the fake has parsed the record, before it handles it.
    """
    handle = server._on_invocation

    async def timed(connection: FakeHubConnection, record: dict[str, Any]) -> None:
        arrived = time.monotonic()
        if record.get("target") == "ControlV2":
            try:
                duration = record["arguments"][0][0]["duration"]
            except (LookupError, TypeError):
                duration = None
            if isinstance(duration, int):
                arrivals.setdefault(duration, arrived)
        await handle(connection, record)

    server._on_invocation = timed  # type: ignore[method-assign]


async def _serve(pipe: Connection) -> None:
    api = FakeDiscordAPI()
    server = FakeOpenShockServer()
    arrivals: dict[int, float] = {}
    clock_frames(server, arrivals)
    alice_os = server.add_user("Alice")
    collar = server.add_shocker(server.add_device(alice_os, "Hub", online=True), "Collar")
    carol_os = server.add_user("Carol")
    carol_collar = server.add_shocker(server.add_device(carol_os, "Hub", online=True), "Collar")
    dave_os = server.add_user("Dave")
    dave_collar = server.add_shocker(server.add_device(dave_os, "Hub", online=True), "Collar")
    alice, bob, admin = (FakeUser.make(name) for name in ("alice", "bob", "admin"))
    for user in (alice, bob, admin):
        api.add_member(None, user)  # a share works only while its wearer is a member
    channel = api.channel(api.channel_id)
    assert channel is not None
    await api.start()
    await server.start()

    def register(payloads: list[dict[str, Any]]) -> None:
        """Interaction payloads, so that the fake knows their channel."""
        for payload in payloads:
            register_interaction_payload(payload)

    def reply(token: str) -> str:
        """The text of the bot's answer to an interaction token."""
        try:
            return api.replies_for(token).text
        except KeyError as error:
            return f"no reply: {error}"

    def frames(durations: list[int]) -> dict[int, float]:
        """When the frames of these durations arrived."""
        return {d: arrivals.pop(d) for d in durations if d in arrivals}

    try:
        pipe.send(
            Scene(
                discord_url=api.base_url,
                openshock_url=server.base_url,
                app_id=api.app_id,
                guild_id=api.guild_id,
                channel=channel,
                alice=alice,
                bob=bob,
                admin=admin,
                alice_os_id=str(alice_os.id),
                alice_os_name=alice_os.name,
                alice_os_token=alice_os.token,
                collar_id=str(collar.id),
                carol_os_token=carol_os.token,
                carol_collar_id=str(carol_collar.id),
                dave_os_token=dave_os.token,
                dave_collar_id=str(dave_collar.id),
            )
        )
        await serve_commands(pipe, {"register": register, "reply": reply, "arrivals": frames})
    finally:
        await server.stop()
        await api.stop()
    pipe.send("stopped")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


Result = tuple[list[float], int, float]  # latencies in ms, commands without a frame, wall time


@dataclass
class Timed:
    """A measured run: latencies, and this process's and the fakes' CPU seconds during it."""

    result: Result
    cpu: float
    fakes_cpu: float


Drive = Callable[[Callable[[int], Awaitable[None]], list[int]], Awaitable[None]]
Settle = Callable[[], Awaitable[object]]


async def timed_run(
    fakes: Fakes,
    run: Run,
    one: Callable[[int], Awaitable[float | None]],
    drive: Drive,
    settle: Settle | None = None,
) -> Timed:
    """Time ``one(duration_ms)`` for each duration of ``run``, started as ``drive`` starts them;
    ``one`` returns the ``time.monotonic()`` at which it started, or None if the command did
    not finish. The latencies are taken from the frames' arrival times the fakes' process
    reports; CPU is this process's and the fakes' during the run, ``settle`` (the work the run
    left owing, see `Comparator`) included."""
    durations = list(durations_of(run))
    started: dict[int, float] = {}

    async def timed_one(duration: int) -> None:
        began = await one(duration)
        if began is not None:
            started[duration] = began

    fakes_cpu = await fakes.ask("cpu")
    cpu = cpu_seconds()
    began = time.perf_counter()
    await drive(timed_one, durations)
    wall = time.perf_counter() - began
    if settle is not None:
        await settle()
    cpu = cpu_seconds() - cpu
    fakes_cpu = await fakes.ask("cpu") - fakes_cpu
    arrivals: dict[int, float] = await fakes.ask("arrivals", durations)
    latencies = [
        (arrivals[k] - started[k]) * 1000 for k in durations if k in arrivals and k in started
    ]
    return Timed((latencies, len(durations) - len(latencies), wall), cpu, fakes_cpu)


async def run_load(
    fakes: Fakes,
    run: Run,
    one: Callable[[int], Awaitable[float | None]],
    in_flight: int,
    settle: Settle | None = None,
) -> Timed:
    """``in_flight`` commands at a time (a closed loop: each starts when one ends)."""

    async def drive(timed_one: Callable[[int], Awaitable[None]], durations: list[int]) -> None:
        queue = iter(durations)

        async def worker() -> None:
            for duration in queue:
                await timed_one(duration)

        await asyncio.gather(*(worker() for _ in range(in_flight)))

    return await timed_run(fakes, run, one, drive, settle)


@dataclass
class Measured:
    """A comparator's timed run (``Plan.in_flight`` in flight), its run one at a time and its
    paced run."""

    loaded: Timed
    unloaded: Timed
    paced: Timed
    sample: str = ""  # the reply to the sample command, when there is one


@dataclass(frozen=True)
class Options:
    plan: Plan
    cprofile: Path | None  # profile the bot's timed run
    py_spy: Path | None


async def run_paced(
    fakes: Fakes,
    run: Run,
    one: Callable[[int], Awaitable[float | None]],
    rate: float,
    settle: Settle | None = None,
) -> Timed:
    """Commands started at a steady ``rate`` per second, however many are then in flight (an
    open loop: the offered load does not depend on how fast the comparator is)."""

    async def drive(timed_one: Callable[[int], Awaitable[None]], durations: list[int]) -> None:
        loop = asyncio.get_running_loop()
        first = loop.time()
        commands = []
        for index, duration in enumerate(durations):
            delay = first + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            commands.append(asyncio.ensure_future(timed_one(duration)))
        await asyncio.gather(*commands)

    return await timed_run(fakes, run, one, drive, settle)


@dataclass(frozen=True)
class Comparator:
    """One of the three, set up and ready for commands: its blocks of durations, its
    one-command function, and the work a run leaves it owing, to be counted to it rather than
    to whichever comparator runs next (``settle``: for the bot, the WAL checkpoint its writes
    call for, which it otherwise runs on its own every second)."""

    name: str
    runs: Runs
    one: Callable[[int], Awaitable[float | None]]
    sample: str = ""  # the reply to the sample command, when there is one
    settle: Settle | None = None


def chunk(run: Run, index: int, rounds: int) -> Run:
    """Part ``index`` of ``run`` cut into ``rounds`` (the last takes the remainder)."""
    first, count = run
    size = count // rounds
    return (first + index * size, size if index < rounds - 1 else count - index * size)


def merged(parts: list[Timed]) -> Timed:
    latencies = [latency for part in parts for latency in part.result[0]]
    missing = sum(part.result[1] for part in parts)
    wall = sum(part.result[2] for part in parts)
    return Timed(
        (latencies, missing, wall),
        sum(part.cpu for part in parts),
        sum(part.fakes_cpu for part in parts),
    )


async def interleaved(
    comparators: list[Comparator],
    run: Callable[[Comparator, Run], Awaitable[Timed]],
    phase: int,
    rounds: int,
    profile: str | None = None,
    options: Options | None = None,
) -> dict[str, Timed]:
    """Run phase ``phase`` of ``Plan.runs`` for every comparator, in ``rounds`` rounds of a
    part each (the order turning by one each round), so that a slow stretch of a shared machine
    falls on all of them alike. The comparator named ``profile`` is profiled (one round)."""
    parts: dict[str, list[Timed]] = {c.name: [] for c in comparators}
    for index in range(rounds):
        turn = index % len(comparators)
        for comparator in comparators[turn:] + comparators[:turn]:
            part = chunk(comparator.runs[phase], index, rounds)
            profiling = comparator.name == profile and options is not None
            with (
                profiled(options.cprofile, options.py_spy)
                if profiling and options is not None
                else contextlib.nullcontext()
            ):
                parts[comparator.name].append(await run(comparator, part))
    return {name: merged(timed) for name, timed in parts.items()}


async def measure_all(
    fakes: Fakes, comparators: list[Comparator], options: Options
) -> dict[str, Measured]:
    """Each comparator's warm-up, then each phase (with ``Plan.in_flight`` in flight, one at a
    time, paced) interleaved in rounds. A profiled run runs each phase in one round, the bot's
    timed run profiled."""
    plan = options.plan
    profiling = options.cprofile is not None or options.py_spy is not None
    rounds = 1 if profiling else plan.rounds
    for comparator in comparators:
        await run_load(fakes, comparator.runs[WARMUP_RUN], comparator.one, plan.in_flight)

    async def loaded(c: Comparator, run: Run) -> Timed:
        return await run_load(fakes, run, c.one, plan.in_flight, c.settle)

    async def alone(c: Comparator, run: Run) -> Timed:
        return await run_load(fakes, run, c.one, 1, c.settle)

    async def paced(c: Comparator, run: Run) -> Timed:
        return await run_paced(fakes, run, c.one, plan.rate, c.settle)

    timed = await interleaved(
        comparators, loaded, TIMED_RUN, rounds, "bot" if profiling else None, options
    )
    unloaded = await interleaved(comparators, alone, UNLOADED_RUN, rounds)
    at_rate = await interleaved(comparators, paced, PACED_RUN, rounds)
    return {
        c.name: Measured(timed[c.name], unloaded[c.name], at_rate[c.name], c.sample)
        for c in comparators
    }


# --- Feeding interactions to a discord.py client -------------------------------------------------


class TaskRecorder:
    """Collects the tasks created on the loop while recording: the ones discord.py starts for an
    interaction. (Cheaper than diffing ``asyncio.all_tasks()`` before and after, which walks every
    task of the 20 commands in flight on the bot's loop, twice per command.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._created: list[asyncio.Task[Any]] | None = None
        self._loop = loop
        loop.set_task_factory(self._factory)  # type: ignore[arg-type]

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> TaskRecorder:
        """The loop's recorder, installed on first use: a loop has one task factory, shared by
        every client fed on it (a recording never spans an await, so theirs never mix)."""
        factory = loop.get_task_factory()
        owner = getattr(factory, "__self__", None)
        return owner if isinstance(owner, TaskRecorder) else cls(loop)

    def _factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        if self._created is not None:
            self._created.append(task)
        return task

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[asyncio.Task[Any]]]:
        created: list[asyncio.Task[Any]] = []
        self._created = created
        try:
            yield created
        finally:
            self._created = None

    def close(self) -> None:
        self._loop.set_task_factory(None)


async def interaction_feeder(
    client: discord.Client,
    fakes: Fakes,
    scene: Scene,
    ix: Interactions,
    runs: Runs,
    collar_id: str,
) -> tuple[Callable[[int], Awaitable[float | None]], dict[int, dict[str, Any]]]:
    """The one-command function of a logged-in client: it feeds the ``/shock`` payload of a
    duration through discord.py's ``parse_interaction_create`` and waits until it is handled.
    Also the payloads by duration."""
    state = client._connection

    def build(duration_ms: int) -> dict[str, Any]:
        return ix.slash(
            "shock",
            {"shocker": collar_id, "intensity": INTENSITY, "duration": duration_ms / 1000},
            user=scene.bob,
        )

    # Built beforehand, so that building them does not load the loop during the timed runs, and
    # registered with the fake Discord API (in its process) as the builder does in-process.
    payloads = {d: build(d) for run in runs for d in durations_of(run)}
    await fakes.ask("register", list(payloads.values()))
    # Thousands of payloads waiting to be fed are not what a bot's heap holds (an interaction
    # arrives and is let go): out of the garbage collector's walks, as the bot's start-up is.
    gc.freeze()
    tasks = TaskRecorder.of(asyncio.get_running_loop())

    async def one(duration_ms: int) -> float | None:
        payload = payloads[duration_ms]
        # As tests/fakes/interactions.py run_interaction feeds it, but waiting only for the tasks
        # this interaction starts (run_interaction waits for every dispatch task started while it
        # waits, which would tie the 20 commands in flight together).
        with tasks.recording() as handling:
            started = time.monotonic()
            state.parse_interaction_create(payload)  # type: ignore[arg-type]
        if handling:
            _, pending = await asyncio.wait(handling, timeout=FRAME_TIMEOUT)
            if pending:
                return None
        return started

    return one, payloads


def settings_for(scene: Scene, data_dir: Path, secret_key: str) -> Settings:
    return Settings(
        _env_file=None,
        discord_token="test-token",
        data_dir=data_dir,
        secret_key=secret_key,
        openshock_api_url=scene.openshock_url,
        discord_api_base_url=scene.discord_url,
    )


# --- The bot -------------------------------------------------------------------------------------


async def bot_scene(bot: OpenShockBot, storage: Storage, fakes: Fakes, scene: Scene) -> None:
    """Alice's collar linked and shared, @everyone granted."""
    account = await storage.accounts.link(
        discord_user_id=scene.alice.id,
        openshock_user_id=scene.alice_os_id,
        openshock_name=scene.alice_os_name,
        api_url=scene.openshock_url,
        token=scene.alice_os_token,
    )
    await bot.connect_account(account)
    hub = bot.hubs.get(account.id)
    if hub is None:
        raise SystemExit("the bot did not start a hub connection for Alice")
    await hub.wait_connected(timeout=10)
    if hub.shockers is None:
        await hub.refresh_shockers()
    await storage.shares.share(
        guild_id=scene.guild_id,
        account_id=account.id,
        wearer_id=scene.alice.id,
        shocker_id=scene.collar_id,
        shocker_name="Collar",
        max_intensity=100,
        max_duration_ms=30_000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
    )
    ix = Interactions(scene.app_id, scene.guild_id, channel=scene.channel, tree=bot.tree)
    grant = ix.slash(
        "permissions grant",
        {"who": ix.everyone},
        user=scene.admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await fakes.ask("register", [grant])
    await run_interaction(bot, grant)
    granted = await fakes.ask("reply", grant["token"])
    if "Granted" not in granted:
        raise SystemExit(f"could not grant @everyone: {granted!r}")


@contextlib.asynccontextmanager
async def bot_comparator(
    fakes: Fakes, scene: Scene, data_dir: Path, options: Options
) -> AsyncIterator[Comparator]:
    secret_key = Fernet.generate_key().decode()
    settings = settings_for(scene, data_dir, secret_key)
    storage = await Storage.open(settings.database_path, TokenCipher(secret_key.encode()))
    # The tests' timings: reconnects in milliseconds, confirmations within a second.
    bot = create_bot(settings, storage, hub_timings=FAST_HUB, confirm_timeout=CONFIRM_TIMEOUT)
    try:
        await bot.login("test-token")
        await bot_scene(bot, storage, fakes, scene)
        runs = options.plan.runs(BOT)
        ix = Interactions(scene.app_id, scene.guild_id, channel=scene.channel, tree=bot.tree)
        one, payloads = await interaction_feeder(bot, fakes, scene, ix, runs, scene.collar_id)
        await one(runs[SAMPLE_RUN][0])
        sample = await fakes.ask("reply", payloads[runs[SAMPLE_RUN][0]]["token"])
        yield Comparator("bot", runs, one, sample, settle=storage.db.checkpoint)
    finally:
        if not bot.is_closed():
            await bot.close()
        await storage.close()


# --- The floor: the cheapest bot of this architecture -------------------------------------------


async def connect_bare(url: str, token: str) -> tuple[SignalRClient, asyncio.Task[None]]:
    """A bare pysignalr client connected to the fake hub as the token's user, and its task
    (cancel it to stop: pysignalr has no stop)."""
    client = SignalRClient(url, headers={"OpenShockToken": token})
    opened = asyncio.Event()

    async def on_open() -> None:
        opened.set()

    async def ignore(*_: Any) -> None:
        return None

    client.on_open(on_open)
    for target in ("Welcome", "DeviceStatus", "Log"):
        client.on(target, ignore)
    running = asyncio.create_task(client.run())
    await asyncio.wait_for(opened.wait(), 10)
    return client, running


async def send_control(client: SignalRClient, control: dict[str, Any], custom_name: str) -> bool:
    """Send one ControlV2 frame and wait for the hub's completion; False if none came."""
    completed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_completion(_: Any) -> None:
        if not completed.done():
            completed.set_result(None)

    await client.send("ControlV2", [[control], custom_name], on_invocation=on_completion)  # type: ignore[list-item]
    try:
        await asyncio.wait_for(completed, FRAME_TIMEOUT)
    except TimeoutError:
        return False
    return True


def floor_client(hub: SignalRClient) -> discord.Client:
    """A plain discord.Client whose command tree holds one ``/shock``, with the bot's options and
    bounds: it sends the frame, waits for the hub's completion and answers with one REST call."""
    intents = discord.Intents.none()
    intents.guilds = True  # as the bot's
    client = discord.Client(intents=intents, allowed_mentions=discord.AllowedMentions.none())
    tree = app_commands.CommandTree(client)

    @tree.command(name="shock", description="Send a shock")
    @app_commands.guild_only()
    async def shock(
        interaction: discord.Interaction[Any],
        shocker: str,
        intensity: app_commands.Range[int, 1, 100],
        duration: app_commands.Range[float, 0.3, 65.535],
    ) -> None:
        control = {
            "id": shocker,
            "type": 1,
            "intensity": intensity,
            "duration": round(duration * 1000),
            "exclusive": False,
        }
        sent = await send_control(hub, control, f"{interaction.user.display_name} (Discord)")
        await interaction.response.send_message(
            f"⚡ Shock {intensity} % · {duration:g} s · {'sent' if sent else 'not sent'}"
        )

    return client


@contextlib.asynccontextmanager
async def floor_comparator(
    fakes: Fakes, scene: Scene, data_dir: Path, options: Options
) -> AsyncIterator[Comparator]:
    point_discord_at(settings_for(scene, data_dir, Fernet.generate_key().decode()))
    # Dave's hub and collar: the Log events of the floor's controls reach the floor only (the
    # bot's connection, as Alice, would otherwise handle them on the floor's time).
    hub, running = await connect_bare(scene.openshock_url + HUB_PATH, scene.dave_os_token)
    client = floor_client(hub)
    try:
        await client.login("test-token")
        runs = options.plan.runs(FLOOR)
        ix = Interactions(scene.app_id, scene.guild_id, channel=scene.channel)
        ix = ix.for_tree(client._connection._command_tree)  # type: ignore[arg-type]
        one, payloads = await interaction_feeder(
            client, fakes, scene, ix, runs, scene.dave_collar_id
        )
        await one(runs[SAMPLE_RUN][0])
        sample = await fakes.ask("reply", payloads[runs[SAMPLE_RUN][0]]["token"])
        yield Comparator("floor", runs, one, sample)
    finally:
        await client.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


# --- The bare client -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bare_comparator(
    fakes: Fakes, scene: Scene, options: Options
) -> AsyncIterator[Comparator]:
    client, running = await connect_bare(scene.openshock_url + HUB_PATH, scene.carol_os_token)

    async def one(duration_ms: int) -> float | None:
        control = {
            "id": scene.carol_collar_id,
            "type": 1,
            "intensity": INTENSITY,
            "duration": duration_ms,
            "exclusive": False,
        }
        started = time.monotonic()
        return started if await send_control(client, control, CUSTOM_NAME) else None

    try:
        yield Comparator("bare", options.plan.runs(BARE), one)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


# --- Report --------------------------------------------------------------------------------------


def summary(name: str, result: Result) -> str:
    latencies, missing, wall = result
    if not latencies:
        return f"{name}: no frame arrived ({missing} without a frame)"
    return (
        f"{name}: p50 {percentile(latencies, 50):6.2f} ms, p99 {percentile(latencies, 99):6.2f} ms "
        f"(mean {statistics.fmean(latencies):.2f}, max {max(latencies):.2f}; "
        f"{len(latencies)} timed, {missing} without a frame; {len(latencies) / wall:.0f}/s)"
    )


def cpu_per_command_ms(timed: Timed) -> float:
    return timed.cpu / (len(timed.result[0]) + timed.result[1]) * 1000


def cpu_summary(name: str, timed: Timed) -> str:
    wall, count = timed.result[2], len(timed.result[0]) + timed.result[1]
    return (
        f"{name}: {cpu_per_command_ms(timed):.2f} ms/command in this process "
        f"({timed.cpu / wall * 100:.0f} % of a core), "
        f"{timed.fakes_cpu / count * 1000:.2f} ms/command in the fakes' process "
        f"({timed.fakes_cpu / wall * 100:.0f} % of a core)"
    )


def goal(met: bool) -> str:
    return "PASS" if met else "FAIL"


def report(plan: Plan, bot: Measured, floor: Measured, bare: Measured, profiled: bool) -> None:
    print(
        f"{plan.commands} /shock or ControlV2 each, {plan.in_flight} in flight, after "
        f"{plan.warmup} warm-up; fakes on 127.0.0.1 in a separate process"
    )
    if profiled:
        print("(the bot's timed run was profiled: its figures are slowed down, not comparable)")
    print(f"sample reply, bot:   {bot.sample}")
    print(f"sample reply, floor: {floor.sample}")
    print(summary("bot   /shock → frame at hub", bot.loaded.result))
    print(summary("floor /shock → frame at hub", floor.loaded.result))
    print(summary("bare  pysignalr → frame    ", bare.loaded.result))
    print(f"CPU during the timed runs ({plan.commands} commands each, getrusage):")
    print(cpu_summary("  bot   /shock    ", bot.loaded))
    print(cpu_summary("  floor /shock    ", floor.loaded))
    print(cpu_summary("  bare  pysignalr ", bare.loaded))
    print(f"for context, {plan.unloaded} more one at a time (no queueing):")
    print(summary("  bot   /shock → frame   ", bot.unloaded.result))
    print(summary("  floor /shock → frame   ", floor.unloaded.result))
    print(summary("  bare  pysignalr → frame", bare.unloaded.result))
    print(f"at equal load: {plan.paced} more, started at {plan.rate:.0f}/s for all (paced):")
    print(summary("  bot   /shock → frame   ", bot.paced.result))
    print(summary("  floor /shock → frame   ", floor.paced.result))
    print(cpu_summary("  bot   CPU ", bot.paced))
    print(cpu_summary("  floor CPU ", floor.paced))
    if not (bot.loaded.result[0] and floor.loaded.result[0] and bare.loaded.result[0]):
        print("some comparator had no frame at all: no ratios")
        return

    def p(measured: Measured, pct: float) -> float:
        return percentile(measured.loaded.result[0], pct)

    cpu_ratio = cpu_per_command_ms(bot.loaded) / cpu_per_command_ms(floor.loaded)
    p99_ratio = p(bot, 99) / p(floor, 99)
    print(
        f"bot / floor ({plan.in_flight} in flight): p50 {p(bot, 50) / p(floor, 50):.2f}×, "
        f"p99 {p99_ratio:.2f}×, CPU per command {cpu_ratio:.2f}× "
        f"(one at a time: p50 {percentile(bot.unloaded.result[0], 50):.2f} vs "
        f"{percentile(floor.unloaded.result[0], 50):.2f} ms)"
    )
    paced_ratio = cpu_per_command_ms(bot.paced) / cpu_per_command_ms(floor.paced)
    print(
        f"bot / floor at equal load ({plan.rate:.0f}/s): CPU per command {paced_ratio:.2f}×, "
        f"p99 {percentile(bot.paced.result[0], 99) / percentile(floor.paced.result[0], 99):.2f}×"
    )
    print(
        f"machine-independent: bot CPU per command ÷ floor CPU per command (same run) = "
        f"{cpu_ratio:.2f} ({plan.in_flight} in flight), {paced_ratio:.2f} (equal load)"
    )
    overhead = p(bot, 99) - p(bare, 99)
    print(
        f"bot overhead at p99 = bot p99 − bare p99 = {overhead:.2f} ms "
        f"(floor: {p(floor, 99) - p(bare, 99):.2f} ms; {plan.in_flight} in flight)"
    )
    complete = not (bot.loaded.result[1] or floor.loaded.result[1])
    print(
        f"goal: bot CPU per command ≤ {FLOOR_GOAL}× the floor's ({plan.in_flight} in flight): "
        f"{goal(cpu_ratio <= FLOOR_GOAL)}; at equal load: {goal(paced_ratio <= FLOOR_GOAL)}"
    )
    print(
        f"goal: bot p99 ≤ {FLOOR_GOAL}× the floor's: {goal(p99_ratio <= FLOOR_GOAL and complete)}"
    )
    print(
        f"bar: overhead at p99 < {BAR_MS:.0f} ms ({plan.in_flight} in flight): "
        f"{goal(overhead < BAR_MS and complete)}"
    )


async def measure(fakes: Fakes, options: Options) -> None:
    scene: Scene = await asyncio.get_running_loop().run_in_executor(None, fakes.receive)
    # The bot ends its start-up with gc.freeze(): everything imported and built until then is
    # out of the collector's walks. The floor and the bare client get the same treatment (their
    # process imported the whole bot too), else their full GC passes stall them alone.
    gc.freeze()
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            bare_comparator(fakes, scene, options) as bare,
            floor_comparator(fakes, scene, Path(tmp) / "floor", options) as floor,
            bot_comparator(fakes, scene, Path(tmp) / "data", options) as bot,
        ):
            measured = await measure_all(fakes, [bare, floor, bot], options)
    report(
        options.plan,
        measured["bot"],
        measured["floor"],
        measured["bare"],
        options.cprofile is not None or options.py_spy is not None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=COMMANDS, help="timed, in flight")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--unloaded", type=int, default=UNLOADED, help="timed one at a time")
    parser.add_argument("--paced", type=int, default=PACED, help="timed at --rate for all")
    parser.add_argument("--rate", type=float, default=RATE, help="commands/s of the paced run")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="rounds each phase is cut into (turns taken)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a quarter of the commands: a rough look"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="leave both processes to the scheduler's choice"
    )
    parser.add_argument("--profile", type=Path, help="cProfile the bot's timed run to this file")
    parser.add_argument("--py-spy", type=Path, help="py-spy the bot's timed run to this file")
    args = parser.parse_args()
    plan = Plan(
        args.commands,
        args.in_flight,
        args.warmup,
        args.unloaded,
        args.paced,
        args.rate,
        max(1, args.rounds),
    )
    if args.quick:
        plan = Plan(
            plan.commands // 4,
            plan.in_flight,
            plan.warmup // 2,
            plan.unloaded // 3,
            plan.paced // 4,
            plan.rate,
            plan.rounds,
        )
    plan.check()
    quiet_logging()  # silence everything below WARNING during the run
    with fakes_process(serve) as fakes:
        if not args.no_pin:
            print(pin_apart(fakes))
        asyncio.run(measure(fakes, Options(plan, args.profile, args.py_spy)))


if __name__ == "__main__":
    main()
