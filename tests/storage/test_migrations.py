from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.storage.database import Database
from bot.storage.migrations import Migration, MigrationError, load_migrations


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


async def test_migrates_an_empty_database_to_the_newest_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bot.db"  # the folder is created too
    db = await Database.open(path)
    try:
        assert await db.user_version() == load_migrations()[-1].version
        mode = await db.fetch_one("PRAGMA journal_mode")
        keys = await db.fetch_one("PRAGMA foreign_keys")
    finally:
        await db.close()
    assert mode is not None and mode[0] == "wal"
    assert keys is not None and keys[0] == 1
    assert {"accounts", "shares", "grants", "audit", "hub_events", "cooldowns"} <= _tables(path)


async def test_running_migrations_again_is_a_no_op(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db")
    try:
        assert await db.migrate() == []
    finally:
        await db.close()


async def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    good = load_migrations()
    broken = Migration(
        len(good) + 1,
        f"{len(good) + 1:04d}_broken.sql",
        "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);",
    )
    db = await Database.open(path)
    try:
        with pytest.raises(MigrationError, match=r"broken.*rolled back"):
            await db.migrate([*good, broken])
        assert await db.user_version() == good[-1].version
    finally:
        await db.close()
    assert "half_done" not in _tables(path)


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(MigrationError, match="newer release"):
        await Database.open(path)


def test_migration_files_are_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="out of sequence"):
        load_migrations(tmp_path)  # type: ignore[arg-type]
    assert [m.version for m in load_migrations()] == list(range(1, len(load_migrations()) + 1))


async def test_reads_never_see_another_coroutines_unfinished_transaction(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "bot.db")
    try:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO guild_settings (guild_id, max_intensity) VALUES (1, 10)")
            assert await tx.fetch_one("SELECT 1 FROM guild_settings WHERE guild_id = 1")
            # A decision reading now must not act on a write that may still be rolled back.
            assert await db.fetch_one("SELECT 1 FROM guild_settings WHERE guild_id = 1") is None
        row = await db.fetch_one("SELECT max_intensity FROM guild_settings WHERE guild_id = 1")
        assert row is not None and row[0] == 10
    finally:
        await db.close()
