"""Deferred writes (a control's audit row, outcome and cooldown): they are kept and run together,
in one transaction, `GROUP_WINDOW` after the first of them; anything else that uses the database
runs them first."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.storage.database import GROUP_LIMIT, GROUP_WINDOW, Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(tmp_path / "bot.db", migrate=False)
    await db.execute("CREATE TABLE t (n INTEGER NOT NULL CHECK (n >= 0))")
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view: only what is committed."""
    connection = sqlite3.connect(tmp_path / "bot.db")
    yield connection
    connection.close()


def committed(outside: sqlite3.Connection) -> list[int]:
    return [row[0] for row in outside.execute("SELECT n FROM t ORDER BY n")]


async def window_over(db: Database) -> None:
    """Until the open group's commit has run."""
    for _ in range(1000):
        if db._group is None:
            return
        await asyncio.sleep(GROUP_WINDOW / 4)
    raise AssertionError("the group was never committed")


async def test_deferred_writes_within_the_window_commit_together(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.defer("t", "INSERT INTO t VALUES (1)")
    await asyncio.sleep(GROUP_WINDOW / 10)
    await db.defer("t", "INSERT INTO t VALUES (2)")
    assert committed(outside) == []  # kept until the window is over
    assert not db._conn.in_transaction  # nothing held open meanwhile
    await window_over(db)
    assert committed(outside) == [1, 2]
    assert not db._conn.in_transaction


async def test_a_full_group_runs_at_the_next_turn_of_the_loop(
    db: Database, outside: sqlite3.Connection
) -> None:
    for n in range(GROUP_LIMIT - 1):
        await db.defer("t", "INSERT INTO t VALUES (?)", (n,))
    await asyncio.sleep(0)
    assert committed(outside) == []  # still gathering
    await db.defer("t", "INSERT INTO t VALUES (?)", (GROUP_LIMIT - 1,))
    await asyncio.sleep(0)  # not the window: a group never holds the loop for long
    assert committed(outside) == list(range(GROUP_LIMIT))
    assert db._group is None


async def test_a_full_group_is_not_put_off_by_the_deferrals_after_it(
    db: Database, outside: sqlite3.Connection
) -> None:
    """Callbacks that each schedule the next one before deferring a write: the full group's
    run keeps its place in the loop's queue instead of going behind each new deferral."""
    loop = asyncio.get_running_loop()
    over = loop.create_future()
    seen: list[int] = []

    def step(n: int) -> None:
        if n == 10 * GROUP_LIMIT:
            seen.append(len(committed(outside)))
            over.set_result(None)
            return
        loop.call_soon(step, n + 1)
        db._defer("t", "INSERT INTO t VALUES (?)", (n,))

    step(0)
    await over
    assert seen[0] >= 8 * GROUP_LIMIT  # committed as it went, a group at a time


async def test_a_deferred_insert_knows_its_row_id_at_once(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    await db.execute("INSERT INTO r (n) VALUES (10)")
    await db.execute("INSERT INTO r (n) VALUES (20)")
    await db.execute("DELETE FROM r WHERE n = 10")
    insert = "INSERT INTO r (id, n) VALUES (?, ?)"
    ids = [await db.defer_insert("r", insert, (n,)) for n in (30, 40)]
    assert ids == [3, 4]  # as SQLite would number them: after the largest
    await db.defer("r", "UPDATE r SET n = n + 1 WHERE id = ?", (ids[0],))  # runs after its insert
    await window_over(db)
    assert outside.execute("SELECT id, n FROM r ORDER BY id").fetchall() == [
        (2, 20),
        (3, 31),
        (4, 40),
    ]
    # A row written by anything else runs the group first: the next group counts on after it.
    await db.execute("INSERT INTO r (n) VALUES (50)")
    assert await db.defer_insert("r", insert, (60,)) == 6


async def test_a_read_sees_the_deferred_writes_before_it(db: Database) -> None:
    await db.defer("t", "INSERT INTO t VALUES (1)")
    assert [row[0] for row in await db.fetch_all("SELECT n FROM t")] == [1]
    await db.defer("t", "INSERT INTO t VALUES (2)")
    row = await db.fetch_one("SELECT count(*) FROM t")
    assert row is not None and row[0] == 2
    await db.defer("t", "INSERT INTO t VALUES (3)")
    assert len(await db.fetch_report("SELECT n FROM t")) == 3


async def test_a_read_of_other_tables_leaves_the_group_to_gather_more(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.execute("CREATE TABLE other (n INTEGER)")
    await db.execute("INSERT INTO other VALUES (7)")
    await db.defer("t", "INSERT INTO t VALUES (1)")
    assert [row[0] for row in await db.fetch_all("SELECT n FROM other")] == [7]
    assert db._group is not None and committed(outside) == []  # still gathering
    row = await db.fetch_one("SELECT count(*) FROM T")  # names the table (in any case)
    assert row is not None and row[0] == 1
    assert db._group is None and committed(outside) == [1]


async def test_any_other_write_runs_the_group_first(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.defer("t", "INSERT INTO t VALUES (1)")
    await db.execute("INSERT INTO t VALUES (2)")
    assert committed(outside) == [1, 2]


async def test_a_failing_write_runs_the_group_and_raises_its_own_error(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.defer("t", "INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        await db.execute("INSERT INTO t VALUES (-1)")
    assert committed(outside) == [1]
    assert db._group is None


async def test_a_transaction_after_deferred_writes_does_not_take_them_along(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.defer("t", "INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("rolled back")
    assert committed(outside) == [1]  # committed before the transaction began


async def test_a_failed_deferred_write_leaves_the_others_of_its_group_and_is_logged(
    db: Database, outside: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await db.defer("t", "INSERT INTO t VALUES (1)")
    await db.defer("t", "INSERT INTO t VALUES (?)", (-1,))
    await db.defer("t", "INSERT INTO t VALUES (2)")
    with caplog.at_level(logging.ERROR, logger="bot.storage.database"):
        await window_over(db)
    assert committed(outside) == [1, 2]
    assert "A deferred write (INSERT INTO t) failed and is lost" in caplog.text
    assert "CHECK" in caplog.text and "-1" not in caplog.text  # the error, not the values


async def test_a_deferred_write_waits_for_an_open_transaction(
    db: Database, outside: sqlite3.Connection
) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t VALUES (1)")
        waiting = asyncio.create_task(db.defer("t", "INSERT INTO t VALUES (2)"))
        await asyncio.sleep(0)
        assert not waiting.done()
    await waiting
    assert committed(outside) == [1, 2]  # at once: nothing is left deferred
    assert db._group is None


async def test_closing_commits_the_open_group(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db", migrate=False)
    await db.execute("CREATE TABLE t (n INTEGER)")
    await db.defer("t", "INSERT INTO t VALUES (1)")
    await db.close()
    with sqlite3.connect(tmp_path / "bot.db") as check:
        assert check.execute("SELECT n FROM t").fetchall() == [(1,)]


async def orphan(db: Database) -> None:
    """A deferred write that only its commit refuses (a deferred foreign key): as a full disk
    would refuse it."""
    await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    await db.execute(
        "CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    await db.defer("child", "INSERT INTO child VALUES (99)")


async def test_a_group_that_cannot_commit_is_rolled_back_and_told_to_the_operator(
    db: Database, outside: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await orphan(db)
    await db.defer("t", "INSERT INTO t VALUES (1)")
    with caplog.at_level(logging.ERROR, logger="bot.storage.database"):
        await window_over(db)
    assert committed(outside) == []
    assert not db._conn.in_transaction
    assert "2 deferred writes" in caplog.text and "FOREIGN KEY" in caplog.text
    # The next group starts afresh.
    await db.defer("t", "INSERT INTO t VALUES (2)")
    await window_over(db)
    assert committed(outside) == [2]


async def test_a_write_after_a_group_that_cannot_commit_is_its_own(
    db: Database, outside: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await orphan(db)
    with caplog.at_level(logging.ERROR, logger="bot.storage.database"):
        await db.execute("INSERT INTO t VALUES (1)")
    assert committed(outside) == [1]  # the group was lost (and said so), not this write
    assert "1 deferred writes" in caplog.text
    assert not db._conn.in_transaction


async def test_a_value_sqlite_cannot_take_is_left_out_and_the_writer_is_not_left_open(
    db: Database, outside: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await db.defer("t", "INSERT INTO t VALUES (?)", (2**70,))  # too large: refused while binding
    await db.defer("t", "INSERT INTO t VALUES (1)")
    with caplog.at_level(logging.ERROR, logger="bot.storage.database"):
        await window_over(db)
    assert "A deferred write (INSERT INTO t) failed and is lost" in caplog.text
    assert not db._conn.in_transaction
    await db.execute("INSERT INTO t VALUES (2)")
    assert committed(outside) == [1, 2]


async def test_a_row_id_given_to_a_lost_row_is_never_given_again(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n > 0))")
    insert = "INSERT INTO r (id, n) VALUES (?, ?)"
    lost = await db.defer_insert("r", insert, (-1,))  # refused when the group runs
    await window_over(db)
    kept = await db.defer_insert("r", insert, (1,))
    assert kept != lost
    # An update meant for the lost row (its outcome, later) touches no other row.
    await db.defer("r", "UPDATE r SET n = 99 WHERE id = ?", (lost,))
    await window_over(db)
    assert outside.execute("SELECT id, n FROM r").fetchall() == [(kept, 1)]


async def test_nothing_is_deferred_once_the_database_is_closed(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db", migrate=False)
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    await db.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await db.defer("t", "INSERT INTO t (n) VALUES (1)")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await db.defer_insert("t", "INSERT INTO t (id, n) VALUES (?, ?)", (1,))
    assert db._group is None
