"""Where statements run: short ones on the loop's thread, long ones on threads of their own,
and the write-ahead log copied back into the database file by a checkpoint off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import database
from bot.storage.database import Database


@pytest.fixture
async def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Database]:
    monkeypatch.setattr(database, "CHECKPOINT_EVERY", 0.05)
    db = await Database.open(tmp_path / "bot.db")
    for connection in {id(c): c for c in (db._conn, db._reader, db._reports)}.values():
        connection.create_function("thread", 0, lambda: threading.current_thread().name)
    try:
        yield db
    finally:
        await db.close()


async def test_short_statements_run_on_the_loops_thread(db: Database) -> None:
    here = threading.current_thread().name
    row = await db.fetch_one("SELECT thread()")
    assert row is not None and row[0] == here
    async with db.transaction() as tx:
        inside = await tx.fetch_one("SELECT thread()")
    assert inside is not None and inside[0] == here


async def test_reports_and_long_writes_run_on_their_own_threads(db: Database) -> None:
    (report,) = await db.fetch_report("SELECT thread()")
    assert report[0].startswith("sqlite-reports")
    await db.execute("CREATE TABLE seen (name TEXT)")
    await db.execute("INSERT INTO seen SELECT thread()", long=True)
    async with db.transaction(long=True) as tx:
        await tx.execute("INSERT INTO seen SELECT thread()")
    names = [row[0] for row in await db.fetch_all("SELECT name FROM seen")]
    assert len(names) == 2 and all(n.startswith("sqlite-writes") for n in names)


async def test_a_commit_leaves_the_log_and_a_checkpoint_copies_it_back(
    db: Database, tmp_path: Path
) -> None:
    file = tmp_path / "bot.db"
    before = file.stat().st_size
    await db.execute("CREATE TABLE blobs (b BLOB)")
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO blobs VALUES (?)", [(b"x" * 4000,)] * 50)
    # Committed to the log only: no commit on the loop copies pages into the file.
    assert file.stat().st_size == before
    assert (tmp_path / "bot.db-wal").stat().st_size > 50 * 4000
    for _ in range(100):
        await asyncio.sleep(0.02)
        if file.stat().st_size > 50 * 4000:
            break
    assert file.stat().st_size > 50 * 4000
    count = await db.fetch_one("SELECT count(*) FROM blobs")
    assert count is not None and count[0] == 50


async def test_a_cancelled_long_write_holds_the_lock_until_its_statement_ended(
    db: Database,
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        release.wait(5)
        return 1

    db._conn.create_function("slow", 0, slow)
    await db.execute("CREATE TABLE t (x)")
    write = asyncio.create_task(db.execute("INSERT INTO t SELECT slow()", long=True))
    await asyncio.to_thread(started.wait, 5)
    write.cancel()
    await asyncio.sleep(0.05)
    assert db._write_lock.locked() and not write.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await write
    assert not db._write_lock.locked()
    await db.execute("INSERT INTO t VALUES (2)")  # the connection is usable again
    rows = await db.fetch_all("SELECT x FROM t ORDER BY x")
    assert [r[0] for r in rows] == [1, 2]


async def test_the_log_starts_over_under_a_steady_stream_of_writes(db: Database) -> None:
    """A checkpoint beside writes that never pause still lets the log start over: it does not
    grow with everything written since the bot started."""
    await db.execute("CREATE TABLE rows (x BLOB)")
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.6  # a dozen checkpoints (every 0.05 s here)
    written = 0
    while loop.time() < end:
        await db.execute("INSERT INTO rows VALUES (?)", (b"x" * 3000,))
        written += 1
        await asyncio.sleep(0.001)
    frames, copied = await db.checkpoint()
    assert copied == frames
    assert written > 100 and frames < written / 3  # at least one page per row written


async def test_a_complete_checkpoint_starts_the_log_over_off_the_loop(
    db: Database, tmp_path: Path
) -> None:
    """The write that starts the log over (SQLite syncs the log's new header then) is made by
    the checkpoint on the writes' thread, changing nothing, so no write on the loop waits for
    the disk: the log holds only that write afterwards."""
    await db.execute("CREATE TABLE blobs (b BLOB)")
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO blobs VALUES (?)", [(b"x" * 4000,)] * 50)
    version = await db.user_version()
    frames, copied = await db.checkpoint()
    assert frames >= 50 and copied == frames
    with sqlite3.connect(tmp_path / "bot.db") as outside:
        (_, in_log, _) = outside.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        (application_id,) = outside.execute("PRAGMA application_id").fetchone()
    assert 0 < in_log <= 2  # the header page of the restarting write, nothing else
    assert application_id == 0 and await db.user_version() == version
    (count,) = await db.fetch_one("SELECT count(*) FROM blobs") or (0,)
    assert count == 50


async def test_a_write_waits_for_an_open_transaction_and_is_not_rolled_back_with_it(
    db: Database,
) -> None:
    await db.execute("CREATE TABLE t (x)")
    inside = asyncio.Event()

    async def failing_transaction() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1)")
            inside.set()
            await asyncio.sleep(0.02)  # another coroutine writes meanwhile
            raise RuntimeError("changed my mind")

    task = asyncio.create_task(failing_transaction())
    await inside.wait()
    await db.execute("INSERT INTO t VALUES (2)")  # waits for the transaction to end
    with pytest.raises(RuntimeError):
        await task
    rows = await db.fetch_all("SELECT x FROM t")
    assert [r[0] for r in rows] == [2]
