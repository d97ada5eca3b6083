"""The SQLite connection: WAL, foreign keys, migrations, and serialised writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.storage.migrations import Migration, MigrationError, load_migrations

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]


class RestrictionCounter:
    """Counts committed writes that can make a control no longer allowed (a pause, a block, an
    unshare, a revoked or narrowed grant, lower caps, an unlinked or invalid account).

    A control decided on facts read at count N is re-decided before sending when the count has
    moved since: a `/panic` or a pause can never be overtaken by a control decided just before.
    """

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


class Database:
    """The bot's SQLite database: one connection that writes, one that reads, one for reports.

    aiosqlite runs each connection's statements on its own worker thread. Writes share one
    connection and take `_write_lock` (a multi-statement write runs inside `transaction()`), so
    two coroutines' transactions never interleave. Reads use a second connection: in WAL mode
    it sees only committed data (never another coroutine's half-done transaction) and does not
    queue behind writes. Long aggregate reads (`/stats` over a million audit rows) go to a third
    connection, so that they never make a control's reads wait. An in-memory database has a
    single connection for all.
    """

    def __init__(
        self,
        connection: aiosqlite.Connection,
        path: Path | None,
        reader: aiosqlite.Connection | None = None,
        reports: aiosqlite.Connection | None = None,
    ) -> None:
        self._conn = connection
        self._reader = reader or connection
        self._reports = reports or self._reader
        self._write_lock = asyncio.Lock()
        self.path = path
        # See `routing_version`: set (on the writer's thread) by the routing triggers, turned
        # into a new version on the loop once the write has committed.
        self._routing_touched = False
        self.routing_version = 0

    @classmethod
    async def open(cls, path: Path | str, *, migrate: bool = True) -> Database:
        """Open (creating the folder and file if needed) and, by default, migrate."""
        file = Path(path) if str(path) != ":memory:" else None
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            _owner_only(file)
        connection = await _connect(str(path))
        reader = reports = None
        try:
            if file is not None:
                await connection.execute("PRAGMA journal_mode = WAL")
                await connection.execute("PRAGMA synchronous = NORMAL")
            database = cls(connection, file)
            if migrate:
                await database.migrate()
            else:
                await database.check_version()
            await database._watch_routing()
            if file is not None:
                reader = await _connect(str(file))
                await reader.execute("PRAGMA query_only = ON")
                database._reader = reader
                reports = await _connect(str(file))
                await reports.execute("PRAGMA query_only = ON")
                database._reports = reports
        except BaseException:
            await connection.close()
            for extra in (reader, reports):
                if extra is not None:
                    await extra.close()
            raise
        return database

    async def close(self) -> None:
        if self._reports is not self._reader:
            await self._reports.close()
        if self._reader is not self._conn:
            await self._reader.close()
        await self._conn.close()

    # -- migrations -----------------------------------------------------------------------------

    async def user_version(self) -> int:
        row = await self.fetch_one("PRAGMA user_version")
        return int(row[0]) if row is not None else 0

    async def check_version(self, migrations: list[Migration] | None = None) -> int:
        """The current version; refuses a database written by a newer release."""
        migrations = migrations if migrations is not None else load_migrations()
        newest = migrations[-1].version if migrations else 0
        current = await self.user_version()
        if current > newest:
            raise MigrationError(
                f"the database is at version {current} but this release knows only up to "
                f"{newest}: it was written by a newer release of the bot; upgrade the bot "
                "(or restore a backup)"
            )
        return current

    async def migrate(self, migrations: list[Migration] | None = None) -> list[Migration]:
        """Apply every migration newer than the database, each in one transaction."""
        migrations = migrations if migrations is not None else load_migrations()
        current = await self.check_version(migrations)
        applied = []
        async with self._write_lock:
            for migration in migrations:
                if migration.version <= current:
                    continue
                # executescript commits any open transaction first, so the whole file (and the
                # version bump) is wrapped in one explicit BEGIN … COMMIT.
                script = (
                    f"BEGIN IMMEDIATE;\n{migration.sql}\n;\n"
                    f"PRAGMA user_version = {migration.version};\nCOMMIT;"
                )
                try:
                    await self._conn.executescript(script)
                except sqlite3.Error as error:
                    if self._conn.in_transaction:
                        await self._conn.rollback()
                    raise MigrationError(
                        f"migration {migration.name} failed and was rolled back: {error}"
                    ) from error
                log.info("Applied migration %s", migration.name)
                applied.append(migration)
        return applied

    # -- what feeds are routed by -----------------------------------------------------------------

    async def _watch_routing(self) -> None:
        """`routing_version` moves after every committed write that changes who shares which
        shocker where, which feeds are enabled in which channel, or whose account is whose (the
        tables the feed routing is read from), whichever repository wrote it (foreign-key
        cascades included). Temporary triggers on the writer connection call back into Python;
        they live with the connection and are not part of the schema."""
        await self._conn.create_function("routing_touched", 0, self._touch_routing)
        tables = {
            row[0]
            for row in await self._conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        for table, when in _ROUTING_WRITES:
            if table not in tables:  # a database not migrated (yet): nothing to route
                continue
            await self._conn.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS routing_{table}_{when.split()[0].lower()}"
                f" AFTER {when} ON main.{table} BEGIN SELECT routing_touched(); END"
            )

    def _touch_routing(self) -> None:
        self._routing_touched = True  # on the writer's thread, inside the write

    def _committed(self) -> None:
        """After a write (or a rolled-back one: a spurious bump costs one reload)."""
        if self._routing_touched:
            self._routing_touched = False
            self.routing_version += 1

    # -- statements -----------------------------------------------------------------------------
    # Reads go straight to the connection; writes take the lock (see the class docstring).

    async def fetch_one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        return await _fetch_one(self._reader, sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> Iterable[aiosqlite.Row]:
        return await _fetch_all(self._reader, sql, params)

    async def fetch_report(self, sql: str, params: Params = ()) -> Iterable[aiosqlite.Row]:
        """A long read (an aggregate over many rows), on the reports connection."""
        return await _fetch_all(self._reports, sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement on its own; returns the number of rows changed."""
        async with self._write_lock:
            try:
                return await _execute(self._conn, sql, params)
            finally:
                self._committed()

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT on its own; returns the new row id."""
        async with self._write_lock:
            try:
                return await _insert(self._conn, sql, params)
            finally:
                self._committed()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Several writes that land together or not at all."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn)
            except BaseException:
                await self._conn.rollback()
                self._committed()
                raise
            else:
                await self._conn.commit()
                self._committed()


class Transaction:
    """The statements available inside `Database.transaction()` (the lock is already held)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._conn = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await _execute(self._conn, sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        return await _insert(self._conn, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetch_one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        return await _fetch_one(self._conn, sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> Iterable[aiosqlite.Row]:
        return await _fetch_all(self._conn, sql, params)


# The writes the feed routing depends on (see `Database._watch_routing`).
_ROUTING_WRITES = [
    (table, when)
    for table, columns in (
        ("shares", "account_id, shocker_id, guild_id"),
        ("feeds", "guild_id, kind, channel_id, enabled"),
        ("accounts", "discord_user_id, openshock_user_id"),
    )
    for when in ("INSERT", "DELETE", f"UPDATE OF {columns}")
]


def _owner_only(file: Path) -> None:
    """Make the database file (and any -wal/-shm left from before) readable by its owner only,
    before SQLite opens it. SQLite creates the -wal and -shm files with the database file's
    permissions, so they are 0600 too; the tokens in them are encrypted, but the rest (who
    shares what with whom) is nobody else's business."""
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for path in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)


async def _connect(path: str) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = aiosqlite.Row
    await connection.execute("PRAGMA foreign_keys = ON")
    await connection.execute("PRAGMA busy_timeout = 5000")
    return connection


# Each helper is one trip to aiosqlite's worker thread (`execute_fetchall`, or `execute` without
# a separate fetch and cursor close): they sit on the path of every control.


async def _fetch_one(conn: aiosqlite.Connection, sql: str, params: Params) -> aiosqlite.Row | None:
    rows = await conn.execute_fetchall(sql, params)
    return next(iter(rows), None)


async def _fetch_all(
    conn: aiosqlite.Connection, sql: str, params: Params
) -> Iterable[aiosqlite.Row]:
    return await conn.execute_fetchall(sql, params)


async def _execute(conn: aiosqlite.Connection, sql: str, params: Params) -> int:
    cursor = await conn.execute(sql, params)
    return cursor.rowcount


async def _insert(conn: aiosqlite.Connection, sql: str, params: Params) -> int:
    cursor = await conn.execute(sql, params)
    if cursor.lastrowid is None:
        raise sqlite3.OperationalError("INSERT produced no row id")
    return cursor.lastrowid
