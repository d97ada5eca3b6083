"""A property through the real bot: whatever sequence of random-mode firings, pauses, /panic,
/stop, resumes and cap changes happens, no frame that reaches the hub exceeds the caps in force,
and nothing fires while paused (a pause ends random mode; it must be started again).

One harness serves every example (hypothesis runs them from a worker thread, each on the bot's
event loop); each example
starts from a clean state: nothing running, nothing paused, the wearer's usual caps."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.cogs.random_mode import RandomModeCog
from bot.domain.controls import MAX_DURATION_MS, MIN_DURATION_MS, ControlKind
from bot.domain.random_draw import RandomMode
from bot.services.random_mode import RandomModeService
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeShocker
from tests.harness import Harness

CAP = 25
CAP_MS = 3000

Op = tuple[Any, ...]

start = st.tuples(
    st.just("start"),
    st.sampled_from(RandomMode),
    st.integers(1, 100),
    st.integers(1, 100),
    st.integers(MIN_DURATION_MS, MAX_DURATION_MS),
)
operations = st.builds(
    lambda first, rest: [first, *rest],
    start,
    st.lists(
        st.one_of(
            start,
            st.just(("fire",)),
            st.just(("fire",)),
            st.just(("fire",)),
            st.just(("fire",)),
            st.sampled_from([("pause",), ("pause all",), ("panic",), ("stop",), ("resume",)]),
            st.tuples(
                st.just("caps"),
                st.integers(1, 100),
                st.integers(MIN_DURATION_MS, MAX_DURATION_MS),
            ),
        ),
        max_size=15,
    ),
)


@dataclass
class Model:
    """What the wearer has set, as the test knows it (and the bot's own caps)."""

    operator_cap: int
    operator_cap_ms: int
    share_cap: int = CAP
    share_cap_ms: int = CAP_MS
    paused: bool = False
    mode_id: int | None = None
    kinds: tuple[ControlKind, ...] = ()
    max_intensity: int = 0
    max_duration_ms: int = 0

    @property
    def cap(self) -> int:
        return min(self.share_cap, self.operator_cap)

    @property
    def cap_ms(self) -> int:
        return min(self.share_cap_ms, self.operator_cap_ms)


async def test_no_sequence_of_firings_exceeds_a_cap_or_fires_while_paused(
    harness: Harness,
) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub"), "Collar")
    alice = h.discord_user("alice")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id), max_intensity=CAP, max_duration_ms=CAP_MS)
    checked = 0
    loop = asyncio.get_running_loop()

    async def run(ops: list[Op]) -> None:
        nonlocal checked
        await _reset(h, alice, collar)
        settings = h.bot.settings
        model = Model(settings.max_intensity, settings.max_duration_ms)
        for op in ops:
            checked += await _apply(h, alice, collar, model, op)

    @settings(
        max_examples=30,
        deadline=None,
        # No shrinking: over a live bot it can outlast the test's timeout and hide the failure;
        # the falsifying sequence is printed as generated.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(operations)
    def sequence(ops: list[Op]) -> None:
        # Hypothesis drives the examples from a worker thread; each runs on the bot's loop.
        asyncio.run_coroutine_threadsafe(run(ops), loop).result(timeout=60)

    await asyncio.to_thread(sequence)
    assert checked > 0  # some firings were checked


def _service(h: Harness) -> RandomModeService:
    cog = h.bot.get_cog(RandomModeCog.__cog_name__)
    assert isinstance(cog, RandomModeCog)
    return cog.service


def _random_frames(h: Harness) -> list[dict[str, Any]]:
    return [
        control
        for invocation in h.openshock.invocations
        if invocation.target == "ControlV2"
        for control in invocation.arguments[0]
        if control["type"] in (ControlKind.SHOCK, ControlKind.VIBRATE)
    ]


async def _command(h: Harness, name: str, user: DiscordUser, **options: Any) -> str:
    payload = h.ix.slash(name, options, user=user)
    await h.run(payload)
    return h.discord.replies_for(payload).text


async def _reset(h: Harness, alice: DiscordUser, collar: FakeShocker) -> None:
    service = _service(h)
    for row in await h.storage.random_modes.running():
        await service.stop(row.id, "test reset")
    await _command(h, "shockers resume", alice)  # also what /panic paused on OpenShock
    await h.share(alice, str(collar.id), max_intensity=CAP, max_duration_ms=CAP_MS)


async def _apply(h: Harness, alice: DiscordUser, collar: FakeShocker, model: Model, op: Op) -> int:
    """Apply one step and check what reached the hub; returns how many firings it checked."""
    service = _service(h)
    shocker = str(collar.id)
    action = op[0]
    if action == "start":
        _, mode, low, high, duration_ms = op
        high = min(high, model.cap)
        low = min(low, high)
        duration_ms = min(duration_ms, model.cap_ms)
        text = await _command(
            h,
            "random start",
            alice,
            shocker=shocker,
            minutes=60,
            mode=mode.value,
            min_intensity=low,
            max_intensity=high,
            max_duration=duration_ms / 1000,
            min_gap=1000.0,  # the timers never fire on their own here: "fire" steps fire
            max_gap=2000.0,
        )
        if model.paused:
            assert "cannot start" in text
        elif model.mode_id is not None:
            assert "already running" in text
        else:
            row = await h.storage.random_modes.running_on(shocker)
            assert row is not None, text
            model.mode_id = row.id
            model.kinds = RandomMode(mode).kinds
            model.max_intensity, model.max_duration_ms = high, duration_ms
        return 0
    if action == "fire":
        before = len(_random_frames(h))
        if model.mode_id is not None:
            await service.due(model.mode_id)
        new = _random_frames(h)[before:]
        if model.mode_id is None:
            assert new == []
            return 0
        assert not model.paused
        (control,) = new
        assert control["type"] in model.kinds
        assert 1 <= control["intensity"] <= min(model.cap, model.max_intensity)
        cap_ms = max(MIN_DURATION_MS, model.cap_ms)
        assert MIN_DURATION_MS <= control["duration"] <= min(cap_ms, model.max_duration_ms)
        return 1
    if action == "caps":
        _, cap, cap_ms = op
        await h.share(alice, shocker, max_intensity=cap, max_duration_ms=cap_ms)
        model.share_cap, model.share_cap_ms = cap, cap_ms
        return 0
    if action == "resume":
        await _command(h, "shockers resume", alice)
        model.paused = False
        return 0
    if action == "pause":
        await _command(h, "shockers pause", alice, shocker=shocker)
    elif action == "pause all":
        await _command(h, "shockers pause", alice)
    elif action == "panic":
        await _command(h, "panic", alice)
    else:
        await _command(h, "stop", alice, shocker=shocker)
    if model.mode_id is not None:
        assert not service.is_running(model.mode_id)  # ended with the command
        await service.idle()
    model.mode_id = None
    model.paused = model.paused or action != "stop"
    return 0
