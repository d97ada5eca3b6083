"""`ShareRepository.decision_inputs` keeps its answer in memory, and lets go of it after any
committed write to a table it reads from, whoever writes it (here: raw SQL, no repository)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.services.control.cooldowns import RESERVATION_TTL_S
from bot.storage import Storage
from bot.storage import shares as shares_module
from tests.storage.test_repositories import GUILD, MEMBER, WEARER, _link, _share


class Reads:
    """Counts the reads that reach SQLite."""

    def __init__(self, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        read = storage.db.fetch_all

        async def counted(sql: str, params: Any = ()) -> Any:
            self.count += 1
            return await read(sql, params)

        monkeypatch.setattr(storage.db, "fetch_all", counted)


async def _inputs(storage: Storage) -> Any:
    return await storage.shares.decision_inputs(GUILD, "s-1", MEMBER, [5])


# Each write changes something a decision reads; after it, the next answer shows it.
WRITES = [
    ("UPDATE shares SET max_intensity = 7", lambda c, g: c.max_intensity == 7),
    ("UPDATE shares SET paused = 1", lambda c, g: c.paused),
    (f"INSERT INTO wearer_pauses VALUES ({GUILD}, {WEARER}, 1)", lambda c, g: c.wearer_paused),
    (f"INSERT INTO blocks VALUES ({GUILD}, {WEARER}, {MEMBER}, 1)", lambda c, g: c.blocked),
    (
        f"INSERT INTO guild_settings VALUES ({GUILD}, 9, NULL)",
        lambda c, g: c.guild_max_intensity == 9,
    ),
    (
        "INSERT INTO owner_pauses VALUES (NULL, 'https://api.openshock.app', 's-1', 'os-1', 1)",
        lambda c, g: c.owner_paused and c.paused,
    ),
    (
        "INSERT INTO grants (guild_id, target_kind, target_id, shocker_id, max_intensity,"
        " max_duration_ms, cooldown_ms, allow_shock, allow_vibrate, allow_sound, created_by,"
        f" created_at) VALUES ({GUILD}, 'member', {MEMBER}, NULL, 10, 1000, 0, 1, 1, 1, 1, 1)",
        lambda c, g: len(g) == 1,
    ),
    ("DELETE FROM shares", lambda c, g: c is None),
]


async def test_a_kept_answer_is_handed_out_as_kept(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same (immutable) objects each time, so that what the control service derives from
    them is remembered by their identity; a fresh read gives new ones."""
    await _share(storage, await _link(storage))
    first = await _inputs(storage)
    again = await _inputs(storage)
    assert again[0] is first[0] and again[1] is first[1]
    assert isinstance(first[1], tuple)
    await storage.db.execute("UPDATE shares SET max_intensity = 7")
    fresh = await _inputs(storage)
    assert fresh[0] is not first[0]


@pytest.mark.parametrize(("sql", "shows"), WRITES, ids=[w[0].split(" (")[0] for w in WRITES])
async def test_a_kept_answer_is_let_go_after_a_write_to_any_table_it_reads(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, sql: str, shows: Any
) -> None:
    await _share(storage, await _link(storage))
    reads = Reads(storage, monkeypatch)
    first = await _inputs(storage)
    assert await _inputs(storage) == first and reads.count == 1  # kept
    await storage.db.execute(sql)
    context, grants = await _inputs(storage)
    assert reads.count == 2
    assert shows(context, grants)


async def test_a_write_elsewhere_keeps_the_answer(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit trail and the cooldowns are written by every control: they must not make
    every control read again. (A kept cooldown may be old: the control service's reservations
    hold the member's latest controls; see the next test.)"""
    await _share(storage, await _link(storage))
    reads = Reads(storage, monkeypatch)
    await _inputs(storage)
    await storage.cooldowns.record(GUILD, MEMBER, "s-1", 123.0)
    await storage.db.execute(
        "INSERT INTO audit (created_at, guild_id, member_id, control_type,"
        " outcome) VALUES (1, 1, 1, 1, 'sent')"
    )
    await _inputs(storage)
    assert reads.count == 1


async def test_a_kept_answer_is_younger_than_any_cooldown_reservation(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shares_module.DECISION_INPUTS_TTL_S < RESERVATION_TTL_S
    await _share(storage, await _link(storage))
    reads = Reads(storage, monkeypatch)
    now = [1000.0]
    storage.shares.clock = lambda: now[0]
    await _inputs(storage)
    now[0] += shares_module.DECISION_INPUTS_TTL_S - 1
    await _inputs(storage)
    assert reads.count == 1
    now[0] += 1
    await _inputs(storage)
    assert reads.count == 2


async def test_nothing_is_kept_or_served_while_a_write_is_under_way(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long write (an unlink, on the writes' thread) commits before its version moves: while
    any write holds the lock, answers come from SQLite."""
    await _share(storage, await _link(storage))
    reads = Reads(storage, monkeypatch)
    await _inputs(storage)
    async with storage.db.transaction(long=True) as tx:
        await tx.execute("UPDATE shares SET paused = 1")
        await tx.execute("COMMIT")  # committed on its thread; the version has not moved yet
        await tx.execute("BEGIN IMMEDIATE")  # (the context manager commits once more)
        context, _ = await _inputs(storage)
        assert context is not None and context.paused
        await _inputs(storage)
        assert reads.count == 3  # nothing served from, or kept in, memory meanwhile
    context, _ = await _inputs(storage)
    assert context is not None and context.paused and reads.count == 4
    await _inputs(storage)
    assert reads.count == 4  # kept again
