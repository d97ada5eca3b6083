"""Control panels: which message shows buttons for which share, and what it last showed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.storage.database import Database
from bot.storage.models import Row, Share


class Panel(Row):
    """A panel message for one share. `closed_at` is set once its share ended (the buttons are
    disabled then, for good)."""

    id: int
    guild_id: int
    channel_id: int
    message_id: int | None
    share_id: int
    share_created_at: float
    shocker_id: str
    shocker_name: str
    wearer_id: int
    reactions: bool
    created_by: int
    created_at: float
    closed_at: float | None
    closed_reason: str | None
    last_member_id: int | None
    last_summary: str | None
    last_outcome: str | None
    last_at: float | None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


@dataclass(frozen=True, slots=True)
class PanelState:
    """A panel with what a press and the panel's text need: its share, when the share it was
    posted for still exists (None once it ended), and whether the wearer paused everything of
    theirs in the guild."""

    panel: Panel
    share: Share | None
    wearer_paused: bool

    @property
    def paused(self) -> bool:
        return self.wearer_paused or (self.share is not None and self.share.paused)


_SHARE_COLUMNS = (
    "id",
    "guild_id",
    "account_id",
    "wearer_id",
    "shocker_id",
    "shocker_name",
    "max_intensity",
    "max_duration_ms",
    "allow_shock",
    "allow_vibrate",
    "allow_sound",
    "paused",
    "created_at",
)
_STATE_SQL = (
    "SELECT p.*, "
    + ", ".join(f"s.{column} AS share__{column}" for column in _SHARE_COLUMNS)
    + ", EXISTS (SELECT 1 FROM wearer_pauses w"
    "  WHERE w.guild_id = p.guild_id AND w.wearer_id = p.wearer_id) AS wearer_paused"
    " FROM panels p"
    # The share it was posted for: a shocker shared again later is another share (SQLite may
    # give it the same id, not the same creation time).
    " LEFT JOIN shares s ON s.id = p.share_id AND s.created_at = p.share_created_at"
    " AND s.guild_id = p.guild_id AND s.shocker_id = p.shocker_id"
)


def _state(row: object) -> PanelState:
    values = dict(row)  # type: ignore[call-overload]
    share_values = {column: values.pop(f"share__{column}") for column in _SHARE_COLUMNS}
    wearer_paused = bool(values.pop("wearer_paused"))
    share = Share.model_validate(share_values) if share_values["id"] is not None else None
    return PanelState(Panel.model_validate(values), share, wearer_paused)


class PanelRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, *, channel_id: int, share: Share, reactions: bool, created_by: int
    ) -> Panel:
        """A panel row for a message about to be posted (its buttons need the id first)."""
        panel_id = await self._db.insert(
            "INSERT INTO panels (guild_id, channel_id, share_id, share_created_at, shocker_id,"
            " shocker_name, wearer_id, reactions, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                share.guild_id,
                channel_id,
                share.id,
                share.created_at,
                share.shocker_id,
                share.shocker_name,
                share.wearer_id,
                int(reactions),
                created_by,
                time.time(),
            ),
        )
        panel = await self.get(panel_id)
        assert panel is not None
        return panel

    async def set_message(self, panel_id: int, message_id: int) -> None:
        await self._db.execute(
            "UPDATE panels SET message_id = ? WHERE id = ?", (message_id, panel_id)
        )

    async def delete(self, panel_id: int) -> None:
        """A panel whose message could not be posted."""
        await self._db.execute("DELETE FROM panels WHERE id = ?", (panel_id,))

    async def get(self, panel_id: int) -> Panel | None:
        row = await self._db.fetch_one("SELECT * FROM panels WHERE id = ?", (panel_id,))
        return Panel.from_row(row) if row is not None else None

    async def state(self, panel_id: int) -> PanelState | None:
        """The panel, its share and the wearer's pause: one round trip (on every press)."""
        row = await self._db.fetch_one(_STATE_SQL + " WHERE p.id = ?", (panel_id,))
        return _state(row) if row is not None else None

    async def state_by_message(self, message_id: int) -> PanelState | None:
        """The panel posted as this message (for reactions), as `state`."""
        row = await self._db.fetch_one(_STATE_SQL + " WHERE p.message_id = ?", (message_id,))
        return _state(row) if row is not None else None

    async def open_matching(
        self,
        *,
        guild_id: int | None = None,
        wearer_id: int | None = None,
        shocker_id: str | None = None,
    ) -> list[Panel]:
        """Open panels matching every field given (None = any), for halts."""
        rows = await self._db.fetch_all(
            "SELECT * FROM panels WHERE closed_at IS NULL AND message_id IS NOT NULL"
            " AND (:guild IS NULL OR guild_id = :guild)"
            " AND (:wearer IS NULL OR wearer_id = :wearer)"
            " AND (:shocker IS NULL OR shocker_id = :shocker) ORDER BY id",
            {"guild": guild_id, "wearer": wearer_id, "shocker": shocker_id},
        )
        return [Panel.from_row(row) for row in rows]

    async def open_of_account(self, account_id: int) -> list[Panel]:
        """Open panels of the shockers an OpenShock account shares (its devices' state)."""
        rows = await self._db.fetch_all(
            "SELECT p.* FROM panels p JOIN shares s"
            " ON s.id = p.share_id AND s.created_at = p.share_created_at"
            " WHERE s.account_id = ? AND p.closed_at IS NULL AND p.message_id IS NOT NULL"
            " ORDER BY p.id",
            (account_id,),
        )
        return [Panel.from_row(row) for row in rows]

    async def close(self, panel_id: int, reason: str) -> bool:
        """Mark the panel closed; False when it already was."""
        changed = await self._db.execute(
            "UPDATE panels SET closed_at = ?, closed_reason = ? WHERE id = ? AND closed_at IS NULL",
            (time.time(), reason, panel_id),
        )
        return changed > 0

    async def record_last(
        self, panel_id: int, *, member_id: int, summary: str, outcome: str, at: float
    ) -> None:
        """What the panel shows as its last control."""
        await self._db.execute(
            "UPDATE panels SET last_member_id = ?, last_summary = ?, last_outcome = ?,"
            " last_at = ? WHERE id = ?",
            (member_id, summary, outcome, at, panel_id),
        )
