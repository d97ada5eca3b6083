"""What admins decide: grants to roles and members, server-wide caps, and cooldown timestamps."""

from __future__ import annotations

import time
from collections.abc import Iterable

from bot.domain.decision import GrantTarget
from bot.errors import UserError
from bot.storage.database import Database, RestrictionCounter
from bot.storage.models import Grant, GuildSettings, Share


class ShockerNotShared(UserError):
    """A grant for one shocker was asked for while that shocker is not (or no longer) shared in
    the guild: an unshare got in between the admin's command and the write."""

    def __init__(self) -> None:
        super().__init__(
            "That shocker is no longer shared in this server, so nothing was granted; "
            "`/shockers list` shows what is."
        )


class GrantRepository:
    def __init__(self, db: Database, restrictions: RestrictionCounter) -> None:
        self._db = db
        self._restrictions = restrictions

    async def grant(
        self,
        *,
        guild_id: int,
        target_kind: GrantTarget,
        target_id: int,
        shocker_id: str | None,
        max_intensity: int | None,
        max_duration_ms: int | None,
        cooldown_ms: int | None,
        allow_shock: bool,
        allow_vibrate: bool,
        allow_sound: bool,
        created_by: int,
        share: Share | None = None,
        expires_at: float | None = None,
    ) -> Grant:
        """Create the grant, or replace the one for the same target and shocker.

        A grant for one shocker is written only while the shocker is shared in the guild — by
        ``share``, the very share the admin picked, when given — checked in the same transaction
        as the write (raises ShockerNotShared otherwise). An unshare deletes the shocker's grants
        in one transaction too, so no grant outlives its share to come back with the next one.
        ``expires_at`` (unix seconds) is when the grant stops counting; None: never.
        """
        async with self._db.transaction() as tx:
            if shocker_id is not None or share is not None:
                if share is not None:
                    shocker_id = share.shocker_id
                    found = await tx.fetch_one(
                        "SELECT 1 FROM shares WHERE id = ? AND guild_id = ? AND shocker_id = ?"
                        " AND wearer_id = ? AND created_at = ?",
                        (share.id, guild_id, share.shocker_id, share.wearer_id, share.created_at),
                    )
                else:
                    found = await tx.fetch_one(
                        "SELECT 1 FROM shares WHERE guild_id = ? AND shocker_id = ?",
                        (guild_id, shocker_id),
                    )
                if found is None:
                    raise ShockerNotShared()
            await tx.execute(
                "DELETE FROM grants WHERE guild_id = ? AND target_kind = ? AND target_id = ?"
                " AND coalesce(shocker_id, '') = coalesce(?, '')",
                (guild_id, target_kind.value, target_id, shocker_id),
            )
            grant_id = await tx.insert(
                "INSERT INTO grants (guild_id, target_kind, target_id, shocker_id, max_intensity,"
                " max_duration_ms, cooldown_ms, allow_shock, allow_vibrate, allow_sound,"
                " created_by, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    guild_id,
                    target_kind.value,
                    target_id,
                    shocker_id,
                    max_intensity,
                    max_duration_ms,
                    cooldown_ms,
                    int(allow_shock),
                    int(allow_vibrate),
                    int(allow_sound),
                    created_by,
                    time.time(),
                    expires_at,
                ),
            )
            row = await tx.fetch_one("SELECT * FROM grants WHERE id = ?", (grant_id,))
        assert row is not None
        self._restrictions.bump()
        return Grant.from_row(row)

    async def revoke(
        self, guild_id: int, target_kind: GrantTarget, target_id: int, shocker_id: str | None
    ) -> bool:
        changed = await self._db.execute(
            "DELETE FROM grants WHERE guild_id = ? AND target_kind = ? AND target_id = ?"
            " AND coalesce(shocker_id, '') = coalesce(?, '')",
            (guild_id, target_kind.value, target_id, shocker_id),
        )
        self._restrictions.bump()
        return changed > 0

    async def in_guild(self, guild_id: int) -> list[Grant]:
        rows = await self._db.fetch_all(
            "SELECT * FROM grants WHERE guild_id = ? ORDER BY target_kind, target_id, shocker_id",
            (guild_id,),
        )
        return [Grant.from_row(row) for row in rows]

    async def for_member(
        self, guild_id: int, member_id: int, role_ids: Iterable[int]
    ) -> list[Grant]:
        """The grants that can apply to a member: their own and their roles' (incl. @everyone)."""
        roles = sorted({*role_ids, guild_id})  # @everyone's role id is the guild id
        marks = ",".join("?" * len(roles))
        rows = await self._db.fetch_all(
            "SELECT * FROM grants WHERE guild_id = ? AND ("
            " (target_kind = 'member' AND target_id = ?)"
            f" OR (target_kind = 'role' AND target_id IN ({marks})))",
            (guild_id, member_id, *roles),
        )
        return [Grant.from_row(row) for row in rows]

    async def delete_expired(self, now: float) -> int:
        """Delete the grants that ended by ``now`` (the decision already ignores them)."""
        deleted = await self._db.execute(
            "DELETE FROM grants WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        )
        if deleted:
            self._restrictions.bump()
        return deleted

    async def next_expiry(self) -> float | None:
        """When the next grant ends, in unix seconds (None: no grant ends)."""
        row = await self._db.fetch_one(
            "SELECT min(expires_at) AS at FROM grants WHERE expires_at IS NOT NULL"
        )
        return float(row["at"]) if row is not None and row["at"] is not None else None


class GuildSettingsRepository:
    def __init__(self, db: Database, restrictions: RestrictionCounter) -> None:
        self._db = db
        self._restrictions = restrictions

    async def get(self, guild_id: int) -> GuildSettings:
        row = await self._db.fetch_one(
            "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return GuildSettings.from_row(row) if row is not None else GuildSettings(guild_id=guild_id)

    async def set_limits(
        self, guild_id: int, max_intensity: int | None, max_duration_ms: int | None
    ) -> GuildSettings:
        await self._db.execute(
            "INSERT INTO guild_settings (guild_id, max_intensity, max_duration_ms)"
            " VALUES (?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " max_intensity = excluded.max_intensity, max_duration_ms = excluded.max_duration_ms",
            (guild_id, max_intensity, max_duration_ms),
        )
        self._restrictions.bump()
        return await self.get(guild_id)


class CooldownRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def last_control(self, guild_id: int, member_id: int, shocker_id: str) -> float | None:
        row = await self._db.fetch_one(
            "SELECT last_at FROM cooldowns WHERE guild_id = ? AND member_id = ? AND shocker_id = ?",
            (guild_id, member_id, shocker_id),
        )
        return float(row["last_at"]) if row is not None else None

    async def record(self, guild_id: int, member_id: int, shocker_id: str, at: float) -> None:
        await self._db.defer(
            "cooldowns",
            "INSERT INTO cooldowns (guild_id, member_id, shocker_id, last_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO UPDATE SET last_at = excluded.last_at",
            (guild_id, member_id, shocker_id, at),
        )
