"""Grouped writes (a control's audit row and cooldown): they run at once and commit together
with the other grouped writes of the next `GROUP_WINDOW`; anything else that uses the database
commits them first."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.storage.database import GROUP_WINDOW, Database


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


async def test_grouped_writes_within_the_window_commit_together(
    db: Database, outside: sqlite3.Connection
) -> None:
    first = await db.insert("INSERT INTO t VALUES (1)", grouped=True)
    await asyncio.sleep(GROUP_WINDOW / 10)
    await db.execute("INSERT INTO t VALUES (2)", grouped=True)
    assert first == 1  # the row id, at once
    assert committed(outside) == []  # one open transaction holds both
    await window_over(db)
    assert committed(outside) == [1, 2]
    assert not db._conn.in_transaction


async def test_a_read_sees_the_grouped_writes_before_it(db: Database) -> None:
    await db.execute("INSERT INTO t VALUES (1)", grouped=True)
    assert [row[0] for row in await db.fetch_all("SELECT n FROM t")] == [1]
    await db.execute("INSERT INTO t VALUES (2)", grouped=True)
    row = await db.fetch_one("SELECT count(*) FROM t")
    assert row is not None and row[0] == 2
    await db.execute("INSERT INTO t VALUES (3)", grouped=True)
    assert len(await db.fetch_report("SELECT n FROM t")) == 3


async def test_any_other_write_commits_the_group_with_itself(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.execute("INSERT INTO t VALUES (1)", grouped=True)
    await db.execute("INSERT INTO t VALUES (2)")
    assert committed(outside) == [1, 2]


async def test_a_failing_write_commits_the_group_and_raises_its_own_error(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.execute("INSERT INTO t VALUES (1)", grouped=True)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        await db.execute("INSERT INTO t VALUES (-1)")
    assert committed(outside) == [1]
    assert db._group is None


async def test_a_transaction_after_grouped_writes_does_not_take_them_along(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.execute("INSERT INTO t VALUES (1)", grouped=True)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("rolled back")
    assert committed(outside) == [1]  # committed before the transaction began


async def test_a_failed_grouped_write_leaves_the_others_of_its_group(
    db: Database, outside: sqlite3.Connection
) -> None:
    await db.execute("INSERT INTO t VALUES (1)", grouped=True)
    with pytest.raises(sqlite3.IntegrityError):
        await db.execute("INSERT INTO t VALUES (-1)", grouped=True)
    await db.execute("INSERT INTO t VALUES (2)", grouped=True)
    await window_over(db)
    assert committed(outside) == [1, 2]


async def test_a_grouped_write_waits_for_an_open_transaction(
    db: Database, outside: sqlite3.Connection
) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t VALUES (1)")
        waiting = asyncio.create_task(db.execute("INSERT INTO t VALUES (2)", grouped=True))
        await asyncio.sleep(0)
        assert not waiting.done()
    await waiting
    assert committed(outside) == [1, 2]


async def test_closing_commits_the_open_group(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db", migrate=False)
    await db.execute("CREATE TABLE t (n INTEGER)")
    await db.execute("INSERT INTO t VALUES (1)", grouped=True)
    await db.close()
    with sqlite3.connect(tmp_path / "bot.db") as check:
        assert check.execute("SELECT n FROM t").fetchall() == [(1,)]


async def orphan(db: Database) -> None:
    """A grouped write that only its commit refuses (a deferred foreign key): as a full disk
    would refuse it."""
    await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    await db.execute(
        "CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    await db.execute("INSERT INTO child VALUES (99)", grouped=True)


async def test_a_group_that_cannot_commit_is_rolled_back_and_told_to_the_operator(
    db: Database, outside: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await orphan(db)
    await db.execute("INSERT INTO t VALUES (1)", grouped=True)
    with caplog.at_level(logging.ERROR, logger="bot.storage.database"):
        await window_over(db)
    assert committed(outside) == []
    assert not db._conn.in_transaction
    assert "2 grouped writes" in caplog.text and "FOREIGN KEY" in caplog.text
    # The next group starts afresh.
    await db.execute("INSERT INTO t VALUES (2)", grouped=True)
    await window_over(db)
    assert committed(outside) == [2]


async def test_a_write_that_joined_a_group_that_cannot_commit_fails(
    db: Database, outside: sqlite3.Connection
) -> None:
    await orphan(db)
    with pytest.raises(sqlite3.OperationalError, match="could not be committed"):
        await db.execute("INSERT INTO t VALUES (1)")
    assert committed(outside) == []
    await db.execute("INSERT INTO t VALUES (2)")
    assert committed(outside) == [2]
