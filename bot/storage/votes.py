"""Votes that are running (`/vote`) and their ballots. A row lives until its vote is settled:
`finish` reads the tally and deletes the vote in one transaction, so a vote is settled once."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from bot.domain.controls import ControlKind
from bot.domain.votes import Tally
from bot.storage.database import Database, Transaction
from bot.storage.models import Row

__all__ = ["NewVote", "Vote", "VoteRepository"]


class NewVote(BaseModel):
    """A vote as `/vote` starts it."""

    model_config = ConfigDict(frozen=True)

    guild_id: int
    channel_id: int
    shocker_id: str
    shocker_name: str
    wearer_id: int
    starter_id: int
    starter_name: str
    starter_role_ids: frozenset[int]
    control_type: ControlKind
    intensity: int
    duration_ms: int
    shown_intensity: int
    shown_duration_ms: int
    ends_at: float


class Vote(Row):
    id: int
    guild_id: int
    channel_id: int
    message_id: int | None
    shocker_id: str
    shocker_name: str
    wearer_id: int
    starter_id: int
    starter_name: str
    starter_role_ids: frozenset[int]
    control_type: ControlKind
    intensity: int
    duration_ms: int
    shown_intensity: int
    shown_duration_ms: int
    created_at: float
    ends_at: float
    halted: bool = False  # a halt ended it; settled at the next start, nothing sent

    @field_validator("starter_role_ids", mode="before")
    @classmethod
    def _roles_from_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


_COLUMNS = (
    "guild_id",
    "channel_id",
    "shocker_id",
    "shocker_name",
    "wearer_id",
    "starter_id",
    "starter_name",
    "starter_role_ids",
    "control_type",
    "intensity",
    "duration_ms",
    "shown_intensity",
    "shown_duration_ms",
    "ends_at",
)


class VoteRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewVote) -> Vote:
        values = new.model_dump()
        values["starter_role_ids"] = json.dumps(sorted(new.starter_role_ids))
        values["control_type"] = int(new.control_type)
        async with self._db.transaction() as tx:
            vote_id = await tx.insert(
                f"INSERT INTO votes (created_at, {', '.join(_COLUMNS)})"
                f" VALUES (?, {', '.join('?' * len(_COLUMNS))})",
                (time.time(), *(values[column] for column in _COLUMNS)),
            )
            row = await tx.fetch_one("SELECT * FROM votes WHERE id = ?", (vote_id,))
        assert row is not None
        return Vote.from_row(row)

    async def set_message(self, vote_id: int, message_id: int) -> bool:
        changed = await self._db.execute(
            "UPDATE votes SET message_id = ? WHERE id = ?", (message_id, vote_id)
        )
        return changed > 0

    async def mark_halted(self, vote_id: int) -> bool:
        """A halt ended the vote: one quick write, so a restart before `finish` never re-arms
        it. False when it was settled already."""
        changed = await self._db.execute("UPDATE votes SET halted = 1 WHERE id = ?", (vote_id,))
        return changed > 0

    async def get(self, vote_id: int) -> Vote | None:
        row = await self._db.fetch_one("SELECT * FROM votes WHERE id = ?", (vote_id,))
        return Vote.from_row(row) if row is not None else None

    async def running(self) -> list[Vote]:
        """Every vote not settled yet, the earliest end first."""
        rows = await self._db.fetch_all("SELECT * FROM votes ORDER BY ends_at, id")
        return [Vote.from_row(row) for row in rows]

    async def cast(self, vote_id: int, member_id: int, yes: bool) -> Tally | None:
        """Record (or change) the member's vote; the tally after it, or None when the vote is
        settled already."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "INSERT INTO vote_ballots (vote_id, member_id, yes, cast_at)"
                " SELECT id, ?, ?, ? FROM votes WHERE id = ?"
                " ON CONFLICT (vote_id, member_id) DO UPDATE SET"
                " yes = excluded.yes, cast_at = excluded.cast_at",
                (member_id, int(yes), time.time(), vote_id),
            )
            if not changed:
                return None
            return await _tally(tx, vote_id)

    async def tally(self, vote_id: int) -> Tally:
        row = await self._db.fetch_one(_TALLY, (vote_id,))
        return _tally_of(row)

    async def finish(self, vote_id: int) -> tuple[Vote, Tally] | None:
        """Settle: the vote and its final tally, deleted in the same step. None when it was
        settled already (only one caller ever gets it)."""
        async with self._db.transaction() as tx:
            row = await tx.fetch_one("SELECT * FROM votes WHERE id = ?", (vote_id,))
            if row is None:
                return None
            tally = await _tally(tx, vote_id)
            await tx.execute("DELETE FROM votes WHERE id = ?", (vote_id,))
        return Vote.from_row(row), tally


# The ballots of members the wearer has blocked in the vote's guild do not count, whenever
# the block came: a blocked member may not control the wearer, through a vote neither.
_TALLY = (
    "SELECT coalesce(sum(b.yes), 0) AS yes, coalesce(sum(1 - b.yes), 0) AS no"
    " FROM vote_ballots b JOIN votes v ON v.id = b.vote_id WHERE b.vote_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM blocks k WHERE k.guild_id = v.guild_id"
    " AND k.wearer_id = v.wearer_id AND k.member_id = b.member_id)"
)


async def _tally(tx: Transaction, vote_id: int) -> Tally:
    return _tally_of(await tx.fetch_one(_TALLY, (vote_id,)))


def _tally_of(row: Any) -> Tally:
    if row is None:
        return Tally()
    return Tally(yes=int(row["yes"]), no=int(row["no"]))
