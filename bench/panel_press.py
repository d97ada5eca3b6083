"""A panel button press → ControlV2 frame, next to a /shock → frame, in the same run.

Both go through the same control pipeline (`ControlService.submit`, then `answer_control`), so
the figures should be the same within noise; what the press adds is reading the panel with its
share (one query) and building the `discord.Message` Discord sends with every component
interaction.

The setup is `bench/command_path.py`'s: the fakes in a separate process, Alice's online collar
linked, shared with caps of 100 % and 30 s, `@everyone` granted with no cooldown through a real
`/permissions grant`. Then a panel is posted with the real `/panel`. Each control is sent by its
own member (`p<n>`), so that its frame is recognised at the fake hub by its `customName`
(a preset's values are the same for every press); the fakes' process notes when each frame has
been parsed (`time.monotonic()`, one clock for both processes). /shock asks for 25 % and 1 s,
what Light asks for with a 100 % cap. Runs alternate /shock and Light, 20 in flight, after a
warm-up of each; then both one at a time. Run: ``python bench/panel_press.py``.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet

from bench._fakes_process import Fakes, fakes_process, quiet_logging, serve_commands
from bench.command_path import TaskRecorder, Timed, percentile, run_load, summary
from bot.app import create_bot
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
from tests.fakes.openshock_server import FakeHubConnection, FakeOpenShockServer
from tests.harness import FAST_HUB

COMMANDS = 2_000  # per path
IN_FLIGHT = 20
WARMUP = 100
UNLOADED = 300
FRAME_TIMEOUT = 10.0
CONFIRM_TIMEOUT = 1.0
# Keys: member p<key> sends the control whose frame is timed. (first key, count) of each run.
SLASH_WARMUP, PRESS_WARMUP = (10_000, WARMUP), (20_000, WARMUP)
SLASH_TIMED, PRESS_TIMED = (30_000, COMMANDS), (40_000, COMMANDS)
SLASH_UNLOADED, PRESS_UNLOADED = (50_000, UNLOADED), (60_000, UNLOADED)
SLASH_RUNS = (SLASH_WARMUP, SLASH_TIMED, SLASH_UNLOADED)
PRESS_RUNS = (PRESS_WARMUP, PRESS_TIMED, PRESS_UNLOADED)


def keys_of(run: tuple[int, int]) -> range:
    first, count = run
    return range(first, first + count)


@dataclass(frozen=True)
class Scene:
    discord_url: str
    openshock_url: str
    app_id: int
    guild_id: int
    channel: FakeChannel
    alice: FakeUser
    admin: FakeUser
    alice_os_id: str
    alice_os_name: str
    alice_os_token: str
    collar_id: str


# --- The fakes' process --------------------------------------------------------------------------


def serve(pipe: Connection) -> None:
    quiet_logging()
    asyncio.run(_serve(pipe))


def clock_frames_by_sender(server: FakeOpenShockServer, arrivals: dict[int, float]) -> None:
    """Note when each ControlV2 frame reaches the fake hub, keyed by the n of its sender p<n>."""
    handle = server._on_invocation

    async def timed(connection: FakeHubConnection, record: dict[str, Any]) -> None:
        arrived = time.monotonic()
        if record.get("target") == "ControlV2":
            try:
                name = str(record["arguments"][1])
                key = int(name.split(" ", 1)[0].removeprefix("p"))
            except (LookupError, TypeError, ValueError):
                key = None
            if key is not None:
                arrivals.setdefault(key, arrived)
        await handle(connection, record)

    server._on_invocation = timed  # type: ignore[method-assign]


async def _serve(pipe: Connection) -> None:
    api = FakeDiscordAPI()
    server = FakeOpenShockServer()
    arrivals: dict[int, float] = {}
    clock_frames_by_sender(server, arrivals)
    alice_os = server.add_user("Alice")
    collar = server.add_shocker(server.add_device(alice_os, "Hub", online=True), "Collar")
    alice, admin = (api.add_user(FakeUser.make(name)) for name in ("alice", "admin"))
    channel = api.channel(api.channel_id)
    assert channel is not None
    await api.start()
    await server.start()

    def register(payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            register_interaction_payload(payload)

    def reply(token: str) -> str:
        try:
            return api.replies_for(token).text
        except KeyError as error:
            return f"no reply: {error}"

    def panel(_: Any) -> dict[str, Any]:
        return api.channel_messages(api.channel_id)[-1]

    def frames(keys: list[int]) -> dict[int, float]:
        return {k: arrivals.pop(k) for k in keys if k in arrivals}

    def edits(_: Any) -> int:
        return len(api.requests_matching("PATCH", r"^/channels/\d+/messages/\d+$"))

    try:
        pipe.send(
            Scene(
                discord_url=api.base_url,
                openshock_url=server.base_url,
                app_id=api.app_id,
                guild_id=api.guild_id,
                channel=channel,
                alice=alice,
                admin=admin,
                alice_os_id=str(alice_os.id),
                alice_os_name=alice_os.name,
                alice_os_token=alice_os.token,
                collar_id=str(collar.id),
            )
        )
        await serve_commands(
            pipe,
            {
                "register": register,
                "reply": reply,
                "panel": panel,
                "arrivals": frames,
                "edits": edits,
            },
        )
    finally:
        await server.stop()
        await api.stop()
    pipe.send("stopped")


# --- The bot -------------------------------------------------------------------------------------

One = Callable[[int], Awaitable[float | None]]


async def measure(fakes: Fakes) -> None:
    scene: Scene = await asyncio.get_running_loop().run_in_executor(None, fakes.receive)
    with tempfile.TemporaryDirectory() as tmp:
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
        bot = create_bot(settings, storage, hub_timings=FAST_HUB, confirm_timeout=CONFIRM_TIMEOUT)
        try:
            await bot.login("test-token")
            await report(fakes, scene, bot, storage)
        finally:
            asyncio.get_running_loop().set_task_factory(None)
            if not bot.is_closed():
                await bot.close()
            await storage.close()


async def report(fakes: Fakes, scene: Scene, bot: Any, storage: Storage) -> None:
    account = await storage.accounts.link(
        discord_user_id=scene.alice.id,
        openshock_user_id=scene.alice_os_id,
        openshock_name=scene.alice_os_name,
        api_url=scene.openshock_url,
        token=scene.alice_os_token,
    )
    await bot.connect_account(account)
    hub = bot.hubs.get(account.id)
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
    setup = [
        ix.slash(
            "permissions grant",
            {"who": ix.everyone},
            user=scene.admin,
            admin=True,
            types={"who": "mentionable"},
        ),
        ix.slash("panel", {"shocker": scene.collar_id}, user=scene.alice),
    ]
    await fakes.ask("register", setup)
    for payload in setup:
        await run_interaction(bot, payload)
        answer = await fakes.ask("reply", payload["token"])
        if "Granted" not in answer and "Posted the panel" not in answer:
            raise SystemExit(f"setup failed: {answer!r}")
    panel: dict[str, Any] = await fakes.ask("panel")
    light = next(
        b["custom_id"]
        for row in panel["components"]
        for b in row["components"]
        if b["custom_id"].endswith(":light")
    )

    def slash(key: int) -> dict[str, Any]:
        user = FakeUser.make(f"p{key}")
        return ix.slash(
            "shock", {"shocker": scene.collar_id, "intensity": 25, "duration": 1.0}, user=user
        )

    def press(key: int) -> dict[str, Any]:
        return ix.button(light, message=panel, user=FakeUser.make(f"p{key}"))

    payloads = {k: slash(k) for run in SLASH_RUNS for k in keys_of(run)}
    payloads |= {k: press(k) for run in PRESS_RUNS for k in keys_of(run)}
    await fakes.ask("register", list(payloads.values()))
    # Thousands of payloads waiting to be fed (each with the whole panel message) are not what a
    # bot's heap holds: out of the garbage collector's walks, as in command_path.py.
    gc.freeze()
    state = bot._connection
    tasks = TaskRecorder(asyncio.get_running_loop())

    async def one(key: int) -> float | None:
        with tasks.recording() as handling:
            started = time.monotonic()
            state.parse_interaction_create(payloads[key])
        if handling:
            _, pending = await asyncio.wait(handling, timeout=FRAME_TIMEOUT)
            if pending:
                return None
        return started

    sample_slash, sample_press = SLASH_WARMUP[0], PRESS_WARMUP[0]
    await run_load(fakes, SLASH_WARMUP, one, IN_FLIGHT)
    await run_load(fakes, PRESS_WARMUP, one, IN_FLIGHT)
    print(f"sample /shock answer: {await fakes.ask('reply', payloads[sample_slash]['token'])}")
    print(f"sample press answer:  {await fakes.ask('reply', payloads[sample_press]['token'])}")
    edits_before = await fakes.ask("edits")
    slash_timed = await run_load(fakes, SLASH_TIMED, one, IN_FLIGHT)
    began = time.perf_counter()
    press_timed = await run_load(fakes, PRESS_TIMED, one, IN_FLIGHT)
    press_wall = time.perf_counter() - began
    edits = await fakes.ask("edits") - edits_before
    slash_one = await run_load(fakes, SLASH_UNLOADED, one, in_flight=1)
    press_one = await run_load(fakes, PRESS_UNLOADED, one, in_flight=1)

    print(
        f"{COMMANDS} each, {IN_FLIGHT} in flight, after {WARMUP} warm-up each; fakes in a process"
    )
    print(summary("/shock → frame      ", slash_timed.result))
    print(summary("panel Light → frame ", press_timed.result))
    ratio(slash_timed, press_timed)
    print(f"panel edits during the {COMMANDS} presses ({press_wall:.1f} s): {edits}")
    print(f"{UNLOADED} each, one at a time:")
    print(summary("  /shock → frame      ", slash_one.result))
    print(summary("  panel Light → frame ", press_one.result))
    ratio(slash_one, press_one)
    print(
        "CPU per control in this process: "
        f"/shock {slash_timed.cpu / COMMANDS * 1000:.2f} ms, "
        f"press {press_timed.cpu / COMMANDS * 1000:.2f} ms"
    )


def ratio(slash: Timed, press: Timed) -> None:
    s50, s99 = percentile(slash.result[0], 50), percentile(slash.result[0], 99)
    p50, p99 = percentile(press.result[0], 50), percentile(press.result[0], 99)
    print(f"  press/slash: p50 {p50 / s50:.2f}x, p99 {p99 / s99:.2f}x")


def main() -> None:
    quiet_logging()
    with fakes_process(serve) as fakes:
        asyncio.run(measure(fakes))


if __name__ == "__main__":
    main()
