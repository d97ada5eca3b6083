"""The audit trail: every control attempt and what became of it, and its aggregates."""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from bot.domain.stats import DayCount, SenderCount, ShockerCount
from bot.storage.database import Database
from bot.storage.models import AuditEntry, AuditOutcome, NewAuditEntry

EXPORT_PAGE = 1_000

_COLUMNS = (
    "guild_id",
    "member_id",
    "wearer_id",
    "account_id",
    "shocker_id",
    "shocker_name",
    "control_type",
    "requested_intensity",
    "requested_duration_ms",
    "effective_intensity",
    "effective_duration_ms",
    "outcome",
    "reason",
    "origin",
)

_VALUES = operator.attrgetter(*_COLUMNS)  # an entry's fields in column order, in one call
_POSITIONS = {column: index + 1 for index, column in enumerate(_COLUMNS)}  # after created_at

_INSERT = (
    f"INSERT INTO audit (id, created_at, {', '.join(_COLUMNS)})"
    f" VALUES (?, ?, {', '.join('?' * len(_COLUMNS))})"
)


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entry: NewAuditEntry, **changes: object) -> int:
        """Store the entry with ``changes`` (field=value) in place of its fields: as
        ``record(dataclasses.replace(entry, **changes))``, without building the replacement
        (this is on the path of every control). The fields go as they are (the enums are str)."""
        values = [time.time(), *_VALUES(entry)]
        for field, value in changes.items():
            position = _POSITIONS.get(field)
            if position is None:
                raise TypeError(f"not an audit field: {field}")
            values[position] = value
        return await self._db.defer_insert("audit", _INSERT, values)

    async def set_outcome(self, entry_id: int, outcome: AuditOutcome, reason: str | None) -> None:
        await self._db.defer(
            "audit",
            "UPDATE audit SET outcome = ?, reason = coalesce(?, reason) WHERE id = ?",
            (outcome.value, reason, entry_id),
        )

    async def get(self, entry_id: int) -> AuditEntry | None:
        row = await self._db.fetch_one("SELECT * FROM audit WHERE id = ?", (entry_id,))
        return AuditEntry.from_row(row) if row is not None else None

    async def recent(
        self,
        guild_id: int,
        *,
        shocker_id: str | None = None,
        member_id: int | None = None,
        involving: int | None = None,
        since: float | None = None,
        limit: int = 15,
    ) -> list[AuditEntry]:
        """Newest first. `member_id` filters by controller; `involving` keeps rows where that user
        was the controller or the wearer (what a non-admin may see); `since` keeps rows from that
        unix time on."""
        rows = await self._history_rows(
            guild_id,
            shocker_id=shocker_id,
            member_id=member_id,
            involving=involving,
            since=since,
            limit=limit,
        )
        return _entries(rows)

    async def export_pages(
        self,
        guild_id: int,
        *,
        shocker_id: str | None = None,
        member_id: int | None = None,
        involving: int | None = None,
        since: float | None = None,
        limit: int,
        page: int = EXPORT_PAGE,
    ) -> AsyncGenerator[list[AuditEntry]]:
        """`recent`'s rows for many rows, newest first, a page at a time (by id, so each page
        is one index range). The rows become models on a worker thread, and a page is let go
        before the next: thousands of models alive at once would make the garbage collector's
        passes, which stop every thread, long enough to stall the event loop."""
        before: int | None = None
        while limit > 0:
            rows = list(
                await self._history_rows(
                    guild_id,
                    shocker_id=shocker_id,
                    member_id=member_id,
                    involving=involving,
                    since=since,
                    before_id=before,
                    limit=min(page, limit),
                )
            )
            if not rows:
                return
            yield await asyncio.to_thread(_entries, rows)
            limit -= len(rows)
            before = rows[-1]["id"]

    async def _history_rows(
        self,
        guild_id: int,
        *,
        shocker_id: str | None,
        member_id: int | None,
        involving: int | None,
        since: float | None,
        limit: int,
        before_id: int | None = None,
    ) -> Iterable[Any]:
        clauses = ["guild_id = ?"]
        params: list[object] = [guild_id]
        if shocker_id is not None:
            clauses.append("shocker_id = ?")
            params.append(shocker_id)
        if member_id is not None:
            clauses.append("member_id = ?")
            params.append(member_id)
        if involving is not None:
            clauses.append("(member_id = ? OR wearer_id = ?)")
            params.extend((involving, involving))
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(since)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        params.append(limit)
        # On the reports connection: a member's rows in a busy guild may be far apart.
        return await self._db.fetch_report(
            f"SELECT * FROM audit WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            params,
        )

    # -- aggregates for /stats ------------------------------------------------------------------
    # Counted by SQLite (GROUP BY), each from an index of migration 0003 that is in its GROUP BY
    # order (no sort of the rows). They run on the reports connection, so that a long count
    # never holds up the reads of a control.

    async def day_counts(self, guild_id: int, first_day: int) -> list[DayCount]:
        """Attempts per UTC day (days since 1970), type and outcome, from `first_day` on."""
        rows = await self._db.fetch_report(
            "SELECT CAST(created_at / 86400 AS INTEGER) AS day, control_type, outcome, count(*)"
            " FROM audit INDEXED BY audit_by_day"
            " WHERE guild_id = ? AND CAST(created_at / 86400 AS INTEGER) >= ?"
            " GROUP BY CAST(created_at / 86400 AS INTEGER), control_type, outcome",
            (guild_id, first_day),
        )
        return [
            DayCount(day=row[0], control_type=row[1], outcome=row[2], count=row[3]) for row in rows
        ]

    async def top_senders(self, guild_id: int, since: float, limit: int) -> list[SenderCount]:
        """The members with the most attempts from `since` on, most first."""
        rows = await self._db.fetch_report(
            "SELECT member_id, count(*) AS n"
            " FROM audit INDEXED BY audit_by_sender"
            " WHERE guild_id = ? AND created_at >= ?"
            " GROUP BY member_id ORDER BY n DESC, member_id LIMIT ?",
            (guild_id, since, limit),
        )
        return [SenderCount(member_id=row[0], count=row[1]) for row in rows]

    async def top_shockers(self, guild_id: int, since: float, limit: int) -> list[ShockerCount]:
        """The shockers shared in the guild now with the most attempts from `since` on, most
        first, with their wearer there (shockers no longer shared here are left out)."""
        rows = await self._db.fetch_report(
            "SELECT s.shocker_id, s.shocker_name, s.wearer_id, counted.n"
            " FROM (SELECT shocker_id, count(*) AS n"
            "       FROM audit INDEXED BY audit_by_shocker"
            "       WHERE guild_id = ? AND shocker_id IS NOT NULL AND created_at >= ?"
            "       GROUP BY shocker_id) AS counted"
            " JOIN shares AS s ON s.guild_id = ? AND s.shocker_id = counted.shocker_id"
            " ORDER BY counted.n DESC, s.shocker_name LIMIT ?",
            (guild_id, since, guild_id, limit),
        )
        return [
            ShockerCount(shocker_id=row[0], shocker_name=row[1], wearer_id=row[2], count=row[3])
            for row in rows
        ]


def _entries(rows: Iterable[Any]) -> list[AuditEntry]:
    return [AuditEntry.from_row(row) for row in rows]
