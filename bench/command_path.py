"""How long a /shock takes from the interaction to the ControlV2 frame at the hub.

The fake Discord API and the fake OpenShock server run in a separate process (``spawn``, see
``bench/_fakes_process.py``), both on 127.0.0.1, as a deployment talks to a remote Discord and
OpenShock: their CPU work (answering the interaction callbacks and edits, parsing frames, sending
``Log``) is not counted as the bot's.
That process builds the scene of ``tests/cogs/test_control.py`` (Alice's online hub with her
collar) and reports over a pipe what this process needs. This process builds the real bot
(``bot.app.create_bot`` with ``Settings`` pointing at the fakes, as the tests' harness does), links
Alice's account through storage, shares her collar with caps high enough, and grants
``@everyone`` with no cooldown through a real ``/permissions grant``. Then 2,000 /shock
interactions, 20 in flight, are fed through the real command tree, each timed from the moment
discord.py gets the payload until its ControlV2 frame reaches the fake hub (each command asks for
a unique duration, which identifies its frame). Both ends are read with ``time.monotonic()``
(``CLOCK_MONOTONIC``, one clock for all processes on Linux): this process notes when it feeds
each payload, the fakes' process when each frame has been parsed, and sends those times back
after each run. A command stays in flight until the bot has finished handling it (reply edited,
``Log`` confirmed).

In the same run a bare ``pysignalr`` client (``SignalRClient`` with the ``OpenShockToken``
header), in this process and connected to the same fake hub, sends the same ControlV2 frame 2,000
times with 20 in flight, timed from the call to ``send`` until the frame arrives. The difference
of the p99s is what the bot adds; bar: under 5 ms. For context both are also timed one at a time
(no queueing), and the CPU seconds per command of this process and of the fakes' process during
the timed runs are printed (with 20 in flight, a process near 100 % of a core queues commands).
Run: ``python bench/command_path.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet
from pysignalr.client import SignalRClient

from bench._fakes_process import Fakes, cpu_seconds, fakes_process, quiet_logging, serve_commands
from bot.app import create_bot
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

BAR_MS = 5.0
COMMANDS = 2_000
IN_FLIGHT = 20
WARMUP = 100
UNLOADED = 300  # also timed one at a time, for context: the path without queueing
FIRST_DURATION_MS = 1_000  # command n asks for FIRST_DURATION_MS + n ms: unique per command
INTENSITY = 10
CUSTOM_NAME = "bob (Discord)"
FRAME_TIMEOUT = 10.0
CONFIRM_TIMEOUT = 1.0  # the bot waits this long for OpenShock's Log (as the tests' harness)
# (first duration, count) of each run: a sample, the warm-up, the timed run, one at a time.
SAMPLE_RUN = (FIRST_DURATION_MS - 1, 1)
WARMUP_RUN = (FIRST_DURATION_MS + 10_000, WARMUP)
TIMED_RUN = (FIRST_DURATION_MS, COMMANDS)
UNLOADED_RUN = (FIRST_DURATION_MS + 20_000, UNLOADED)
RUNS = (SAMPLE_RUN, WARMUP_RUN, TIMED_RUN, UNLOADED_RUN)
# The bare client's durations are offset so that they never share a key with the bot's.
BARE_OFFSET_MS = 30_000


def durations_of(run: tuple[int, int]) -> range:
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
    alice, bob, admin = (api.add_user(FakeUser.make(name)) for name in ("alice", "bob", "admin"))
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


async def run_load(
    fakes: Fakes,
    run: tuple[int, int],
    one: Callable[[int], Awaitable[float | None]],
    in_flight: int = IN_FLIGHT,
    offset: int = 0,
) -> Timed:
    """Run ``one(duration_ms)`` for each duration of ``run``, ``in_flight`` at a time; ``one``
    returns the ``time.monotonic()`` at which it started, or None if the command did not finish.
    The latencies are taken from the frames' arrival times the fakes' process reports."""
    durations = iter(durations_of(run))
    started: dict[int, float] = {}

    async def worker() -> None:
        for duration in durations:
            began = await one(duration + offset)
            if began is not None:
                started[duration + offset] = began

    fakes_cpu = await fakes.ask("cpu")
    cpu = cpu_seconds()
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall = time.perf_counter() - began
    cpu = cpu_seconds() - cpu
    fakes_cpu = await fakes.ask("cpu") - fakes_cpu
    keys = [d + offset for d in durations_of(run)]
    arrivals: dict[int, float] = await fakes.ask("arrivals", keys)
    latencies = [(arrivals[k] - started[k]) * 1000 for k in keys if k in arrivals and k in started]
    return Timed((latencies, len(keys) - len(latencies), wall), cpu, fakes_cpu)


# --- The bot -------------------------------------------------------------------------------------


class TaskRecorder:
    """Collects the tasks created on the loop while recording: the ones discord.py starts for an
    interaction. (Cheaper than diffing ``asyncio.all_tasks()`` before and after, which walks every
    task of the 20 commands in flight on the bot's loop, twice per command.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._created: list[asyncio.Task[Any]] | None = None
        loop.set_task_factory(self._factory)  # type: ignore[arg-type]

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


async def bot_scene(
    bot: OpenShockBot, storage: Storage, fakes: Fakes, scene: Scene
) -> tuple[Callable[[int], Awaitable[float | None]], str]:
    """Alice's collar linked and shared, @everyone granted; returns the one-command function and
    a sample reply."""
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
    state = bot._connection

    def build(duration_ms: int) -> dict[str, Any]:
        return ix.slash(
            "shock",
            {"shocker": scene.collar_id, "intensity": INTENSITY, "duration": duration_ms / 1000},
            user=scene.bob,
        )

    # Built beforehand, so that building them does not load the loop during the timed runs, and
    # registered with the fake Discord API (in its process) as the builder does in-process.
    payloads = {d: build(d) for run in RUNS for d in durations_of(run)}
    await fakes.ask("register", list(payloads.values()))

    tasks = TaskRecorder(asyncio.get_running_loop())

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

    await one(SAMPLE_RUN[0])
    sample = await fakes.ask("reply", payloads[SAMPLE_RUN[0]]["token"])
    return one, sample


async def measure_bot(fakes: Fakes, scene: Scene, data_dir: Path) -> tuple[Timed, Timed, str]:
    secret_key = Fernet.generate_key().decode()
    settings = Settings(
        _env_file=None,
        discord_token="test-token",
        data_dir=data_dir,
        secret_key=secret_key,
        openshock_api_url=scene.openshock_url,
        discord_api_base_url=scene.discord_url,
    )
    storage = await Storage.open(settings.database_path, TokenCipher(secret_key.encode()))
    # The tests' timings: reconnects in milliseconds, confirmations within a second.
    bot = create_bot(settings, storage, hub_timings=FAST_HUB, confirm_timeout=CONFIRM_TIMEOUT)
    try:
        await bot.login("test-token")
        one, sample = await bot_scene(bot, storage, fakes, scene)
        await run_load(fakes, WARMUP_RUN, one)
        loaded = await run_load(fakes, TIMED_RUN, one)
        unloaded = await run_load(fakes, UNLOADED_RUN, one, in_flight=1)
    finally:
        asyncio.get_running_loop().set_task_factory(None)
        if not bot.is_closed():
            await bot.close()
        await storage.close()
    return loaded, unloaded, sample


# --- The bare client -----------------------------------------------------------------------------


async def measure_bare(fakes: Fakes, scene: Scene) -> tuple[Timed, Timed]:
    hub_url = scene.openshock_url + HUB_PATH
    client = SignalRClient(hub_url, headers={"OpenShockToken": scene.carol_os_token})
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

    async def one(duration_ms: int) -> float | None:
        control = {
            "id": scene.carol_collar_id,
            "type": 1,
            "intensity": INTENSITY,
            "duration": duration_ms,
            "exclusive": False,
        }
        completed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def on_completion(_: Any) -> None:
            if not completed.done():
                completed.set_result(None)

        started = time.monotonic()
        await client.send("ControlV2", [[control], CUSTOM_NAME], on_invocation=on_completion)  # type: ignore[list-item]
        try:
            await asyncio.wait_for(completed, FRAME_TIMEOUT)
        except TimeoutError:
            return None
        return started

    try:
        await run_load(fakes, WARMUP_RUN, one, offset=BARE_OFFSET_MS)
        loaded = await run_load(fakes, TIMED_RUN, one, offset=BARE_OFFSET_MS)
        unloaded = await run_load(fakes, UNLOADED_RUN, one, in_flight=1, offset=BARE_OFFSET_MS)
        return loaded, unloaded
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


# --- Report --------------------------------------------------------------------------------------


def summary(name: str, result: Result) -> str:
    latencies, missing, wall = result
    return (
        f"{name}: p50 {percentile(latencies, 50):6.2f} ms, p99 {percentile(latencies, 99):6.2f} ms "
        f"(mean {statistics.fmean(latencies):.2f}, max {max(latencies):.2f}; "
        f"{len(latencies)} timed, {missing} without a frame; {len(latencies) / wall:.0f}/s)"
    )


def cpu_summary(name: str, timed: Timed) -> str:
    wall, count = timed.result[2], TIMED_RUN[1]
    return (
        f"{name}: {timed.cpu / count * 1000:.2f} ms/command in this process "
        f"({timed.cpu / wall * 100:.0f} % of a core), "
        f"{timed.fakes_cpu / count * 1000:.2f} ms/command in the fakes' process "
        f"({timed.fakes_cpu / wall * 100:.0f} % of a core)"
    )


async def measure(fakes: Fakes) -> None:
    scene: Scene = await asyncio.get_running_loop().run_in_executor(None, fakes.receive)
    with tempfile.TemporaryDirectory() as tmp:
        bare, bare_unloaded = await measure_bare(fakes, scene)
        bot, bot_unloaded, sample = await measure_bot(fakes, scene, Path(tmp) / "data")

    print(
        f"{COMMANDS} ControlV2 each, {IN_FLIGHT} in flight, after {WARMUP} warm-up; "
        "fakes on 127.0.0.1 in a separate process"
    )
    print(f"sample reply: {sample}")
    print(summary("bot  /shock → frame at hub", bot.result))
    print(summary("bare pysignalr → frame   ", bare.result))
    bot_p50, bot_p99 = percentile(bot.result[0], 50), percentile(bot.result[0], 99)
    bare_p50, bare_p99 = percentile(bare.result[0], 50), percentile(bare.result[0], 99)
    print(f"ratio bot/bare: p50 {bot_p50 / bare_p50:.1f}x, p99 {bot_p99 / bare_p99:.1f}x")
    print(f"CPU during the timed runs ({COMMANDS} commands each, getrusage):")
    print(cpu_summary("  bot  /shock      ", bot))
    print(cpu_summary("  bare pysignalr   ", bare))
    print(f"for context, {UNLOADED} more one at a time (no queueing):")
    print(summary("  bot  /shock → frame    ", bot_unloaded.result))
    print(summary("  bare pysignalr → frame ", bare_unloaded.result))
    overhead = bot_p99 - bare_p99
    print(f"bot overhead at p99 = bot p99 − bare p99 = {overhead:.2f} ms ({IN_FLIGHT} in flight)")
    verdict = "PASS" if overhead < BAR_MS and not bot.result[1] else "FAIL"
    print(f"bar: overhead at p99 < {BAR_MS:.0f} ms: {verdict}")


def main() -> None:
    quiet_logging()  # silence everything below WARNING during the run
    with fakes_process(serve) as fakes:
        asyncio.run(measure(fakes))


if __name__ == "__main__":
    main()
