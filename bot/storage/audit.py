"""The audit trail: every control attempt and what became of it."""

from __future__ import annotations

import time

from bot.storage.database import Database
from bot.storage.models import AuditEntry, AuditOutcome, NewAuditEntry

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


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entry: NewAuditEntry) -> int:
        values = entry.model_dump(mode="json")
        return await self._db.insert(
            f"INSERT INTO audit (created_at, {', '.join(_COLUMNS)})"
            f" VALUES (?, {', '.join('?' * len(_COLUMNS))})",
            (time.time(), *(values[column] for column in _COLUMNS)),
        )

    async def set_outcome(self, entry_id: int, outcome: AuditOutcome, reason: str | None) -> None:
        await self._db.execute(
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
        limit: int = 15,
    ) -> list[AuditEntry]:
        """Newest first. `member_id` filters by controller; `involving` keeps rows where that user
        was the controller or the wearer (what a non-admin may see)."""
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
        params.append(limit)
        rows = await self._db.fetch_all(
            f"SELECT * FROM audit WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            params,
        )
        return [AuditEntry.from_row(row) for row in rows]
