"""The SQLite connection: WAL, foreign keys, migrations, and serialised writes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from bot.storage.migrations import Migration, MigrationError, load_migrations

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
_T = TypeVar("_T")

# How often the write-ahead log is copied back into the database file (when something was
# written since): the log stays small (a second of writes) and no commit ever does the copy.
CHECKPOINT_EVERY = 1.0
WAL_SIZE_LIMIT = 16 * 1024 * 1024
# How long deferred writes (see `Database`) wait for others to share their commit.
GROUP_WINDOW = 0.05
# ... or until this many have gathered: a group's run holds the loop (about 0.25 ms, and 15-20 µs
# a statement), so a bigger one would hold every control in flight that much longer.
GROUP_LIMIT = 24


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

    Short statements (an indexed read, a one-row write, a commit) run on the loop's own thread:
    each costs tens of microseconds there, much less than handing it to a worker thread and
    waking the loop again. WAL with `synchronous = NORMAL` makes a commit a write to the log
    with no fsync; the copy back into the database file and the start of a new log (the only
    steps that sync) run every second on a thread of its own (`_checkpoint_regularly`).
    Statements that can take long run on threads: reports and searches through many rows on
    the reports connection (`fetch_report`), and clean-ups that may touch many rows on the
    writer (`long=True`).

    Writes share one connection and take `_write_lock` (a multi-statement write runs inside
    `transaction()`), so two coroutines' transactions never interleave. Reads use a second
    connection: in WAL mode it sees only committed data (never another coroutine's half-done
    transaction). An in-memory database has a single connection for all, used from the loop
    only.

    The writes every control makes (its audit row, its outcome, its cooldown) are deferred
    (`defer`, `defer_insert`): they are kept in memory and run together `GROUP_WINDOW` after
    the first of them (or once `GROUP_LIMIT` have gathered), in one transaction
    (`_commit_group`). The controls of those 50 ms share one commit (a commit writes every
    page it changed to the log: about 30 µs against 15 µs for an audit row), and their
    statements run back to back: run one at a time between the rest of a control's work, an
    audit row costs 3-4 times as much (SQLite's code and pages are no longer in the CPU's
    caches). A read that names a table the group writes runs the group first
    (`_commit_group_before`), so it sees every write deferred before it; a read of other
    tables leaves the group to gather more. Any other write, a transaction, a checkpoint and
    `close` run the group first. A deferral made while a transaction or a long write holds
    the writer waits for it and runs at once, so the group is empty whenever the writer is
    held. What a crash of the process can lose is the last 50 ms of audit rows and cooldowns.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path | None,
        reader: sqlite3.Connection | None = None,
        reports: sqlite3.Connection | None = None,
    ) -> None:
        self._conn = connection
        self._reader = reader or connection
        self._reports = reports or self._reader
        self._write_lock = asyncio.Lock()
        self.path = path
        # See `routing_version`: set by the routing triggers inside a write, turned into a new
        # version once the write has committed.
        self._routing_touched = False
        self.routing_version = 0
        self._decision_touched = False
        self.decision_version = 0
        # Threads for long statements (none for an in-memory database: see `_off_loop`).
        self._reports_pool: ThreadPoolExecutor | None = None
        self._writes_pool: ThreadPoolExecutor | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._checkpointed_at = 0
        # The deferred writes (see the class docstring): their run, scheduled `GROUP_WINDOW`
        # after the first of them, and the statements in order. The next row id of each table
        # an insert was deferred into is kept across groups (an id given to a row that was then
        # lost is never given again), and checked against the table once per group.
        self._group: asyncio.Handle | None = None
        self._deferred: list[tuple[str, Params]] = []
        self._next_ids: dict[str, int] = {}
        self._ids_checked: set[str] = set()
        # The tables the group writes, for the reads (see `_commit_group_before`).
        self._deferred_into: set[str] = set()
        self._closed = False

    @classmethod
    async def open(cls, path: Path | str, *, migrate: bool = True) -> Database:
        """Open (creating the folder and file if needed) and, by default, migrate."""
        file = Path(path) if str(path) != ":memory:" else None
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            _owner_only(file)
        connection = _connect(str(path))
        database = cls(connection, file)
        try:
            if file is not None:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
                # Checkpoints are run by `_checkpoint_regularly`, not inside a commit; a log
                # grown by a burst is cut back to this size when it starts over.
                connection.execute("PRAGMA wal_autocheckpoint = 0")
                connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            if migrate:
                await database.migrate()
            else:
                await database.check_version()
            database._watch_writes()
            if file is not None:
                database._reader = _connect(str(file))
                database._reader.execute("PRAGMA query_only = ON")
                database._reports = _connect(str(file))
                database._reports.execute("PRAGMA query_only = ON")
                database._checkpointer = _connect(str(file))
                database._reports_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reports")
                database._writes_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writes")
                database._checkpoints = asyncio.create_task(
                    database._checkpoint_regularly(), name="sqlite-checkpoints"
                )
        except BaseException:
            await database.close()
            raise
        return database

    async def close(self) -> None:
        self._commit_group()
        self._closed = True  # nothing more is deferred
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
        for pool in (self._reports_pool, self._writes_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        # The last connection closed copies the log back and removes it.
        for connection in {
            id(c): c for c in (self._checkpointer, self._reports, self._reader)
        }.values():
            if connection is not None and connection is not self._conn:
                connection.close()
        self._conn.close()

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
            self._commit_group()
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
                    self._conn.executescript(script)
                except sqlite3.Error as error:
                    if self._conn.in_transaction:
                        self._conn.rollback()
                    raise MigrationError(
                        f"migration {migration.name} failed and was rolled back: {error}"
                    ) from error
                log.info("Applied migration %s", migration.name)
                applied.append(migration)
        return applied

    # -- what is kept in memory, and when it is let go -------------------------------------------

    def _watch_writes(self) -> None:
        """Two versions move after every committed write to the tables they watch, whichever
        repository wrote it (foreign-key cascades included):

        - `routing_version`: who shares which shocker where, which feeds are enabled in which
          channel, whose account is whose (the tables the feed routing is read from);
        - `decision_version`: everything a control decision reads from storage except the
          cooldowns (shares, accounts, grants, pauses, blocks, guild caps; see
          `ShareRepository.decision_inputs`).

        Temporary triggers on the writer connection call back into Python; they live with the
        connection and are not part of the schema."""
        self._conn.create_function("routing_touched", 0, self._touch_routing)
        self._conn.create_function("decision_touched", 0, self._touch_decision)
        tables = {
            row[0]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        for watch, table, when in _WATCHED_WRITES:
            if table not in tables:  # a database not migrated (yet): nothing to watch
                continue
            self._conn.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS {watch}_{table}_{when.split()[0].lower()}"
                f" AFTER {when} ON main.{table} BEGIN SELECT {watch}_touched(); END"
            )

    def _touch_routing(self) -> None:
        self._routing_touched = True  # inside the write

    def _touch_decision(self) -> None:
        self._decision_touched = True  # inside the write

    def _committed(self) -> None:
        """After a write (or a rolled-back one: a spurious bump costs one reload)."""
        if self._routing_touched:
            self._routing_touched = False
            self.routing_version += 1
        if self._decision_touched:
            self._decision_touched = False
            self.decision_version += 1

    # -- statements -----------------------------------------------------------------------------
    # Short statements run on the loop's thread (see the class docstring); writes take the lock.

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        self._commit_group_before(sql)
        return _fetch_one(self._reader, sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        self._commit_group_before(sql)
        return _fetch_all(self._reader, sql, params)

    async def fetch_report(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A long read (an aggregate, or a search through many rows), on the reports
        connection's thread."""
        self._commit_group_before(sql)
        return await _off_loop(self._reports_pool, _fetch_all, self._reports, sql, params)

    async def execute(self, sql: str, params: Params = (), *, long: bool = False) -> int:
        """Run one write statement on its own; returns the number of rows changed. `long` runs
        it on the writes' thread (a clean-up that may touch many rows), the loop going on."""
        return await self._write(_execute, sql, params, long=long)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT on its own; returns the new row id."""
        return await self._write(_insert, sql, params)

    async def defer(self, table: str, sql: str, params: Params = ()) -> None:
        """A write to `table` for the group (see the class docstring): for the writes every
        control makes, whose caller needs no answer from them. `sql` writes that table alone
        (no trigger or cascade reaches another: the reads of other tables do not wait for it).
        Its error, if any, is the operator's (logged when the group runs), not the caller's."""
        if self._write_lock.locked():
            await self._write(_execute, sql, params)
            return
        self._defer(table, sql, params)

    async def defer_insert(self, table: str, sql: str, params: Sequence[Any]) -> int:
        """An INSERT into `table` for the group, its row id chosen now: `sql`'s first parameter
        is the id, `params` the rest. The id is the one SQLite would give it (the next after
        the table's largest, counted on from the group's first insert into the table: any
        other write runs the group first)."""
        if self._write_lock.locked():
            return await self._write(_insert, sql, (None, *params))
        self._check_open()
        row_id = self._next_ids.get(table, 0)
        if table not in self._ids_checked:
            row_id = max(row_id, _largest_id(self._conn, table) + 1)
            self._ids_checked.add(table)
        self._next_ids[table] = row_id + 1
        self._defer(table, sql, (row_id, *params))
        return row_id

    def _check_open(self) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError("the database is closed: nothing can be written")

    def _defer(self, table: str, sql: str, params: Params) -> None:
        self._check_open()
        self._deferred_into.add(table)
        if self._group is None:
            self._group = asyncio.get_running_loop().call_later(GROUP_WINDOW, self._commit_group)
        self._deferred.append((sql, params))
        if len(self._deferred) == GROUP_LIMIT:  # once: later ones join it, not put it off
            self._group.cancel()
            self._group = asyncio.get_running_loop().call_soon(self._commit_group)

    async def _write(
        self,
        fn: Callable[[sqlite3.Connection, str, Params], int],
        sql: str,
        params: Params,
        *,
        long: bool = False,
    ) -> int:
        """One write, after the group. On the loop's thread it runs with no await, so it needs
        the write lock only to wait for a transaction or long statement that holds it (taking
        a free lock would only cost time); a long one holds the lock until it has ended."""
        if long or self._write_lock.locked():
            async with self._write_lock:
                self._commit_group()
                try:
                    if long:
                        return await _off_loop(self._writes_pool, fn, self._conn, sql, params)
                    return fn(self._conn, sql, params)
                finally:
                    self._committed()
        self._commit_group()
        try:
            return fn(self._conn, sql, params)
        finally:
            self._committed()

    def _commit_group_before(self, sql: str) -> None:
        """Before a read: run the group if the read may see what it writes (its SQL names one of
        the tables the group writes). A read of other tables (a panel's state, on every press)
        leaves the group to gather more."""
        if self._group is None:
            return
        if not self._deferred_into.isdisjoint(_words(sql)):
            self._commit_group()

    def _commit_group(self) -> None:
        """Run the deferred writes, if any, in one transaction. A statement that fails is
        logged and left out; a failed commit (a full disk, an I/O error) rolls the group back
        and the operator is told how many writes were lost."""
        if self._group is None:
            return
        self._group.cancel()
        self._group = None
        deferred, self._deferred = self._deferred, []
        self._ids_checked.clear()
        self._deferred_into.clear()
        conn = self._conn
        try:
            conn.execute("BEGIN")
            for sql, params in deferred:
                try:
                    conn.execute(sql, params)
                except Exception as error:  # SQLite's, or a value it cannot take (OverflowError)
                    if not conn.in_transaction:  # it rolled the whole group back
                        raise
                    log.error("A deferred write (%s) failed and is lost: %s", _kind(sql), error)
            conn.execute("COMMIT")
        except BaseException as error:
            # Never left open: the next write would run inside it, and be rolled back with it.
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.rollback()
            log.error(
                "%d deferred writes (audit rows, cooldowns) were rolled back and are lost: %s",
                len(deferred),
                str(error) or type(error).__name__,
            )
            if not isinstance(error, Exception):
                raise
        finally:
            self._committed()

    @property
    def writing(self) -> bool:
        """A transaction or a long write is under way. When not, every committed write has moved
        the versions it touched (see `_watch_writes`): what is kept by version is current."""
        return self._write_lock.locked()

    @asynccontextmanager
    async def transaction(self, *, long: bool = False) -> AsyncIterator[Transaction]:
        """Several writes that land together or not at all. `long` runs its statements on the
        writes' thread (see `execute`)."""
        async with self._write_lock:
            self._commit_group()
            tx = Transaction(self._conn, self._writes_pool if long else None)
            await tx.execute("BEGIN IMMEDIATE")
            try:
                yield tx
            except BaseException:
                await tx.execute("ROLLBACK")
                self._committed()
                raise
            else:
                await tx.execute("COMMIT")
                self._committed()

    # -- WAL checkpoints ------------------------------------------------------------------------

    async def _checkpoint_regularly(self) -> None:
        """Copy the write-ahead log back into the database file every `CHECKPOINT_EVERY` seconds
        when something was written, on the writes' thread with its own connection: the copy
        (and its fsync) never runs inside a commit on the loop.

        The log is only started over (instead of growing) by a write that finds it entirely
        copied back, which a copy running beside a steady stream of writes never achieves. So
        the bulk is copied while writes go on, and what they added meanwhile (little) is copied
        with the write lock held, then the log is started over (see `checkpoint`): it stays
        about a second of writes long however busy the bot is."""
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY)
            if self._conn.total_changes == self._checkpointed_at:
                continue
            self._checkpointed_at = self._conn.total_changes
            try:
                await self.checkpoint()
            except sqlite3.Error:
                log.warning("A WAL checkpoint failed; the next one will try again", exc_info=True)

    async def checkpoint(self) -> tuple[int, int]:
        """One checkpoint (see `_checkpoint_regularly`): the log's frames and how many of them
        are now in the database file."""
        if self._checkpointer is None:  # in memory: there is no log
            return (0, 0)
        await _off_loop(self._writes_pool, _wal_checkpoint, self._checkpointer)
        async with self._write_lock:
            self._commit_group()
            frames, copied = await _off_loop(self._writes_pool, _wal_checkpoint, self._checkpointer)
            if frames and copied == frames:
                # All of the log is in the file: the next write starts it over, and SQLite
                # syncs the log's new header then (an fdatasync, which can take many
                # milliseconds on a busy disk). That write is made here, off the loop.
                await _off_loop(self._writes_pool, _start_log_over, self._conn)
            return frames, copied


class Transaction:
    """The statements available inside `Database.transaction()` (the lock is already held)."""

    def __init__(self, connection: sqlite3.Connection, pool: ThreadPoolExecutor | None) -> None:
        self._conn = connection
        self._pool = pool

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await _off_loop(self._pool, fn, self._conn, *args)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._run(_execute, sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        return await self._run(_insert, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._run(_executemany, sql, rows)

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return await self._run(_fetch_one, sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self._run(_fetch_all, sql, params)


# The writes the versions watch (see `Database._watch_writes`).
_WATCHED_WRITES = [
    *(
        ("routing", table, when)
        for table, columns in (
            ("shares", "account_id, shocker_id, guild_id"),
            ("feeds", "guild_id, kind, channel_id, enabled"),
            ("accounts", "discord_user_id, openshock_user_id"),
        )
        for when in ("INSERT", "DELETE", f"UPDATE OF {columns}")
    ),
    *(
        ("decision", table, when)
        for table in (
            "shares",
            "accounts",
            "grants",
            "wearer_pauses",
            "owner_pauses",
            "blocks",
            "guild_settings",
        )
        for when in ("INSERT", "DELETE", "UPDATE")
    ),
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


async def _off_loop(pool: ThreadPoolExecutor | None, fn: Callable[..., _T], *args: Any) -> _T:
    """`fn(*args)` on the pool's thread; inline without a pool (an in-memory database: one
    connection, used from the loop only). A cancelled caller still waits for the statement to
    end, so that what it holds (the write lock) is not let go while its connection is busy."""
    if pool is None:
        return fn(*args)
    future = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit (a statement outside BEGIN … COMMIT commits on its own). Used from the loop's
    # thread, and for a long statement from one other thread while the loop waits for it (the
    # write lock, or the reports connection's own thread): never from two threads at once.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def _wal_checkpoint(conn: sqlite3.Connection) -> tuple[int, int]:
    """PASSIVE: waits for no reader or writer; copies what it can."""
    _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames), int(copied)


def _start_log_over(conn: sqlite3.Connection) -> None:
    """A write that changes nothing (the header's application id, which the bot does not use,
    set to what it is): the first write after a complete checkpoint starts the log over."""
    (application_id,) = conn.execute("PRAGMA application_id").fetchone()
    conn.execute(f"PRAGMA application_id = {int(application_id)}")


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Params) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    return row


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Params) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def _execute(conn: sqlite3.Connection, sql: str, params: Params) -> int:
    return conn.execute(sql, params).rowcount


def _executemany(conn: sqlite3.Connection, sql: str, rows: Iterable[Params]) -> None:
    conn.executemany(sql, rows)


def _largest_id(conn: sqlite3.Connection, table: str) -> int:
    if not table.isidentifier():
        raise ValueError(f"not a table name: {table!r}")
    (largest,) = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()
    return int(largest or 0)


@functools.lru_cache(maxsize=1024)
def _words(sql: str) -> frozenset[str]:
    """Every name in a statement, lower case (the tables it reads among them)."""
    return frozenset(re.findall(r"\w+", sql.lower()))


def _kind(sql: str) -> str:
    """What a statement does, for a log line: its first words, never its values."""
    return " ".join(sql.split()[:3])


def _insert(conn: sqlite3.Connection, sql: str, params: Params) -> int:
    cursor = conn.execute(sql, params)
    if cursor.lastrowid is None:
        raise sqlite3.OperationalError("INSERT produced no row id")
    return cursor.lastrowid
