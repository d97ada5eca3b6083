"""Random modes: one row per "surprise me for N minutes", with its end and its next firing.

The row is the durable timer: `running()` is what a restart re-arms. Every write after the start
leaves an ended row alone (``ended_at IS NULL``), so a firing that finishes after a Stop cannot
bring an ended random mode back.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum

from bot.domain.controls import ControlKind
from bot.domain.random_draw import Firing, RandomMode, RandomRanges
from bot.storage.database import Database
from bot.storage.models import Row


class RandomModeRunning(Exception):
    """The shocker already has a running random mode (at most one per shocker)."""


class FiringOutcome(StrEnum):
    """What became of one firing, as the status message tells it."""

    DELIVERED = "delivered"  # OpenShock's log confirmed it
    SENT = "sent"  # sent; OpenShock confirms only to the owner
    UNCONFIRMED = "unconfirmed"  # sent, never confirmed
    OFFLINE = "offline"  # skipped: the device was offline (or its state unknown)
    NOT_SENT = "not_sent"  # refused or failed; `last_note` says why


class RandomModeRow(Row):
    id: int
    guild_id: int
    wearer_id: int
    wearer_name: str
    shocker_id: str
    shocker_name: str
    mode: RandomMode
    min_intensity: int
    max_intensity: int
    max_duration_ms: int
    min_gap_s: float
    max_gap_s: float
    started_at: float
    ends_at: float
    next_at: float
    next_gap_s: float
    next_type: int
    next_intensity: int
    next_duration_ms: int
    channel_id: int | None
    message_id: int | None
    fired: int
    last_at: float | None
    last_type: int | None
    last_intensity: int | None
    last_duration_ms: int | None
    last_outcome: FiringOutcome | None
    last_note: str | None
    ended_at: float | None
    end_reason: str | None

    @property
    def running(self) -> bool:
        return self.ended_at is None

    @property
    def ranges(self) -> RandomRanges:
        return RandomRanges(
            mode=self.mode,
            min_intensity=self.min_intensity,
            max_intensity=self.max_intensity,
            max_duration_ms=self.max_duration_ms,
            min_gap_s=self.min_gap_s,
            max_gap_s=self.max_gap_s,
        )

    @property
    def planned(self) -> Firing:
        """The next firing, as drawn when the previous one was sent (or at the start)."""
        return Firing(
            gap_s=self.next_gap_s,
            kind=ControlKind(self.next_type),
            intensity=self.next_intensity,
            duration_ms=self.next_duration_ms,
        )


class RandomModeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(
        self,
        *,
        guild_id: int,
        wearer_id: int,
        wearer_name: str,
        shocker_id: str,
        shocker_name: str,
        ranges: RandomRanges,
        started_at: float,
        ends_at: float,
        first: Firing,
    ) -> RandomModeRow:
        """Raises `RandomModeRunning` when the shocker has a running random mode already."""
        try:
            mode_id = await self._db.insert(
                "INSERT INTO random_modes (guild_id, wearer_id, wearer_name, shocker_id,"
                " shocker_name, mode, min_intensity, max_intensity, max_duration_ms, min_gap_s,"
                " max_gap_s, started_at, ends_at, next_at, next_gap_s, next_type,"
                " next_intensity, next_duration_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    guild_id,
                    wearer_id,
                    wearer_name,
                    shocker_id,
                    shocker_name,
                    ranges.mode.value,
                    ranges.min_intensity,
                    ranges.max_intensity,
                    ranges.max_duration_ms,
                    ranges.min_gap_s,
                    ranges.max_gap_s,
                    started_at,
                    ends_at,
                    started_at + first.gap_s,
                    first.gap_s,
                    int(first.kind),
                    first.intensity,
                    first.duration_ms,
                ),
            )
        except sqlite3.IntegrityError as error:
            raise RandomModeRunning(shocker_id) from error
        row = await self.get(mode_id)
        assert row is not None
        return row

    async def get(self, mode_id: int) -> RandomModeRow | None:
        row = await self._db.fetch_one("SELECT * FROM random_modes WHERE id = ?", (mode_id,))
        return RandomModeRow.from_row(row) if row is not None else None

    async def running(self) -> list[RandomModeRow]:
        rows = await self._db.fetch_all(
            "SELECT * FROM random_modes WHERE ended_at IS NULL ORDER BY id"
        )
        return [RandomModeRow.from_row(row) for row in rows]

    async def running_on(self, shocker_id: str) -> RandomModeRow | None:
        row = await self._db.fetch_one(
            "SELECT * FROM random_modes WHERE shocker_id = ? AND ended_at IS NULL", (shocker_id,)
        )
        return RandomModeRow.from_row(row) if row is not None else None

    async def running_of(self, guild_id: int, wearer_id: int) -> list[RandomModeRow]:
        rows = await self._db.fetch_all(
            "SELECT * FROM random_modes WHERE guild_id = ? AND wearer_id = ?"
            " AND ended_at IS NULL ORDER BY id",
            (guild_id, wearer_id),
        )
        return [RandomModeRow.from_row(row) for row in rows]

    async def set_message(self, mode_id: int, channel_id: int, message_id: int) -> None:
        await self._db.execute(
            "UPDATE random_modes SET channel_id = ?, message_id = ? WHERE id = ?",
            (channel_id, message_id, mode_id),
        )

    async def plan(self, mode_id: int, at: float, firing: Firing) -> bool:
        """Store the next firing (before the current one is sent: a crash never repeats one)."""
        changed = await self._db.execute(
            "UPDATE random_modes SET next_at = ?, next_gap_s = ?, next_type = ?,"
            " next_intensity = ?, next_duration_ms = ? WHERE id = ? AND ended_at IS NULL",
            (at, firing.gap_s, int(firing.kind), firing.intensity, firing.duration_ms, mode_id),
        )
        return changed > 0

    async def record_firing(
        self,
        mode_id: int,
        *,
        at: float,
        kind: ControlKind,
        intensity: int,
        duration_ms: int,
        outcome: FiringOutcome,
        note: str | None,
    ) -> bool:
        changed = await self._db.execute(
            "UPDATE random_modes SET fired = fired + 1, last_at = ?, last_type = ?,"
            " last_intensity = ?, last_duration_ms = ?, last_outcome = ?, last_note = ?"
            " WHERE id = ? AND ended_at IS NULL",
            (at, int(kind), intensity, duration_ms, outcome.value, note, mode_id),
        )
        return changed > 0

    async def end(self, mode_id: int, *, at: float, reason: str) -> bool:
        """Mark a running random mode ended; False when it had ended already."""
        changed = await self._db.execute(
            "UPDATE random_modes SET ended_at = ?, end_reason = ?"
            " WHERE id = ? AND ended_at IS NULL",
            (at, reason, mode_id),
        )
        return changed > 0
