"""The database files are readable by their owner only."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.storage.database import Database
from tests.harness import Harness


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: new files would be world-readable
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    return {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in folder.iterdir()
        if p.name.startswith("bot.db")
    }


async def test_a_new_database_and_its_wal_files_are_created_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    db = await Database.open(tmp_path / "data" / "bot.db")
    try:
        await db.execute("CREATE TABLE t (x)")
        await db.execute("INSERT INTO t VALUES (1)")
        assert modes(tmp_path / "data") == {
            "bot.db": 0o600,
            "bot.db-wal": 0o600,
            "bot.db-shm": 0o600,
        }
    finally:
        await db.close()


async def test_an_existing_world_readable_database_is_made_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    path = tmp_path / "bot.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE t (x)")
    os.chmod(path, 0o644)
    db = await Database.open(path)
    try:
        await db.execute("INSERT INTO t VALUES (1)")
        assert set(modes(tmp_path).values()) == {0o600}
    finally:
        await db.close()
        connection.close()


async def test_the_running_bots_database_files_are_0600(harness: Harness) -> None:
    alice_os = harness.openshock.add_user("Alice")
    await harness.link(harness.discord_user("alice"), alice_os)
    found = modes(harness.data_dir)
    assert {"bot.db", "bot.db-wal", "bot.db-shm"} <= set(found)
    assert set(found.values()) == {0o600}
