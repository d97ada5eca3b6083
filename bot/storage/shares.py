"""What wearers decide: which shockers a guild may use and up to what, pauses and blocks."""

from __future__ import annotations

import time

from bot.storage.database import Database, RestrictionCounter
from bot.storage.models import ControlContext, Share


class ShareRepository:
    def __init__(self, db: Database, restrictions: RestrictionCounter) -> None:
        self._db = db
        self._restrictions = restrictions

    async def share(
        self,
        *,
        guild_id: int,
        account_id: int,
        wearer_id: int,
        shocker_id: str,
        shocker_name: str,
        max_intensity: int,
        max_duration_ms: int,
        allow_shock: bool,
        allow_vibrate: bool,
        allow_sound: bool,
        approval: bool | None = None,
    ) -> Share:
        """Share a shocker in a guild, or update the caps of an existing share of the same wearer.

        ``approval`` turns approval mode on or off; None keeps it as it was (off for a new share).
        Raises `ShockerSharedByOther` when another wearer already shared that shocker here.
        """
        async with self._db.transaction() as tx:
            existing = await tx.fetch_one(
                "SELECT wearer_id FROM shares WHERE guild_id = ? AND shocker_id = ?",
                (guild_id, shocker_id),
            )
            if existing is not None and existing["wearer_id"] != wearer_id:
                raise ShockerSharedByOther(existing["wearer_id"])
            await tx.execute(
                "INSERT INTO shares (guild_id, account_id, wearer_id, shocker_id, shocker_name,"
                " max_intensity, max_duration_ms, allow_shock, allow_vibrate, allow_sound,"
                " paused, created_at, approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?,"
                " coalesce(?, 0))"
                " ON CONFLICT (guild_id, shocker_id) DO UPDATE SET"
                " account_id = excluded.account_id, shocker_name = excluded.shocker_name,"
                " max_intensity = excluded.max_intensity,"
                " max_duration_ms = excluded.max_duration_ms,"
                " allow_shock = excluded.allow_shock, allow_vibrate = excluded.allow_vibrate,"
                " allow_sound = excluded.allow_sound,"
                " approval = coalesce(?, shares.approval)",
                (
                    guild_id,
                    account_id,
                    wearer_id,
                    shocker_id,
                    shocker_name,
                    max_intensity,
                    max_duration_ms,
                    int(allow_shock),
                    int(allow_vibrate),
                    int(allow_sound),
                    time.time(),
                    None if approval is None else int(approval),
                    None if approval is None else int(approval),
                ),
            )
            row = await tx.fetch_one(
                "SELECT * FROM shares WHERE guild_id = ? AND shocker_id = ?",
                (guild_id, shocker_id),
            )
        assert row is not None
        self._restrictions.bump()
        return Share.from_row(row)

    async def control_context(
        self, guild_id: int, shocker_id: str, member_id: int
    ) -> ControlContext | None:
        """The share of `shocker_id` in the guild, the wearer's pause there, whether the wearer
        blocked the member, the guild's caps and the member's last control of it: one round
        trip, because this is on the path of every control."""
        row = await self._db.fetch_one(
            "SELECT s.*,"
            " EXISTS (SELECT 1 FROM wearer_pauses p"
            "  WHERE p.guild_id = s.guild_id AND p.wearer_id = s.wearer_id) AS wearer_paused,"
            " EXISTS (SELECT 1 FROM blocks b WHERE b.guild_id = s.guild_id"
            "  AND b.wearer_id = s.wearer_id AND b.member_id = :member) AS blocked,"
            " g.max_intensity AS guild_max_intensity, g.max_duration_ms AS guild_max_duration_ms,"
            # A cooldown is per member and shocker, across guilds.
            " (SELECT max(c.last_at) FROM cooldowns c"
            "  WHERE c.member_id = :member AND c.shocker_id = s.shocker_id) AS last_control_at"
            " FROM shares s"
            " LEFT JOIN guild_settings g ON g.guild_id = s.guild_id"
            " WHERE s.guild_id = :guild AND s.shocker_id = :shocker",
            {"guild": guild_id, "shocker": shocker_id, "member": member_id},
        )
        return ControlContext.from_row(row) if row is not None else None

    async def unshare(self, guild_id: int, wearer_id: int, shocker_id: str) -> bool:
        """Withdraw the share, and the admins' grants for that shocker here: a grant names a
        shocker someone offered, and must not carry over to whoever shares it next."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "DELETE FROM shares WHERE guild_id = ? AND wearer_id = ? AND shocker_id = ?",
                (guild_id, wearer_id, shocker_id),
            )
            if changed:
                await tx.execute(
                    "DELETE FROM grants WHERE guild_id = ? AND shocker_id = ?",
                    (guild_id, shocker_id),
                )
        self._restrictions.bump()
        return changed > 0

    async def get(self, guild_id: int, shocker_id: str) -> Share | None:
        row = await self._db.fetch_one(
            "SELECT * FROM shares WHERE guild_id = ? AND shocker_id = ?", (guild_id, shocker_id)
        )
        return Share.from_row(row) if row is not None else None

    async def in_guild(self, guild_id: int) -> list[Share]:
        rows = await self._db.fetch_all(
            "SELECT * FROM shares WHERE guild_id = ? ORDER BY shocker_name, id", (guild_id,)
        )
        return [Share.from_row(row) for row in rows]

    async def of_wearer(self, wearer_id: int, guild_id: int | None = None) -> list[Share]:
        if guild_id is None:
            rows = await self._db.fetch_all(
                "SELECT * FROM shares WHERE wearer_id = ? ORDER BY guild_id, shocker_name",
                (wearer_id,),
            )
        else:
            rows = await self._db.fetch_all(
                "SELECT * FROM shares WHERE wearer_id = ? AND guild_id = ? ORDER BY shocker_name",
                (wearer_id, guild_id),
            )
        return [Share.from_row(row) for row in rows]

    async def of_shocker(self, shocker_id: str) -> list[Share]:
        """Every guild's share of one shocker (for routing its events to feeds)."""
        rows = await self._db.fetch_all(
            "SELECT * FROM shares WHERE shocker_id = ? ORDER BY guild_id", (shocker_id,)
        )
        return [Share.from_row(row) for row in rows]

    async def of_account(self, account_id: int) -> list[Share]:
        rows = await self._db.fetch_all(
            "SELECT * FROM shares WHERE account_id = ? ORDER BY guild_id, shocker_name",
            (account_id,),
        )
        return [Share.from_row(row) for row in rows]

    # -- pauses ---------------------------------------------------------------------------------

    async def set_paused(
        self, guild_id: int, wearer_id: int, shocker_id: str, paused: bool
    ) -> bool:
        changed = await self._db.execute(
            "UPDATE shares SET paused = ? WHERE guild_id = ? AND wearer_id = ? AND shocker_id = ?",
            (int(paused), guild_id, wearer_id, shocker_id),
        )
        self._restrictions.bump()
        return changed > 0

    async def pause_wearer(self, guild_id: int, wearer_id: int) -> None:
        """Pause everything of the wearer's in this guild, including shockers shared later."""
        await self._db.execute(
            "INSERT INTO wearer_pauses (guild_id, wearer_id, paused_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (guild_id, wearer_id, time.time()),
        )
        self._restrictions.bump()

    async def resume_wearer(self, guild_id: int, wearer_id: int) -> int:
        """Lift the wearer's pause in this guild and every per-shocker pause of theirs there."""
        async with self._db.transaction() as tx:
            lifted = await tx.execute(
                "DELETE FROM wearer_pauses WHERE guild_id = ? AND wearer_id = ?",
                (guild_id, wearer_id),
            )
            lifted += await tx.execute(
                "UPDATE shares SET paused = 0 WHERE guild_id = ? AND wearer_id = ? AND paused = 1",
                (guild_id, wearer_id),
            )
        return lifted

    async def is_wearer_paused(self, guild_id: int, wearer_id: int) -> bool:
        row = await self._db.fetch_one(
            "SELECT 1 FROM wearer_pauses WHERE guild_id = ? AND wearer_id = ?",
            (guild_id, wearer_id),
        )
        return row is not None

    async def panic(self, wearer_id: int) -> int:
        """Pause every share of the wearer in every guild, and the wearer in each such guild."""
        now = time.time()
        async with self._db.transaction() as tx:
            paused = await tx.execute(
                "UPDATE shares SET paused = 1 WHERE wearer_id = ?", (wearer_id,)
            )
            await tx.execute(
                "INSERT INTO wearer_pauses (guild_id, wearer_id, paused_at)"
                " SELECT DISTINCT guild_id, wearer_id, ? FROM shares WHERE wearer_id = ?"
                " ON CONFLICT DO NOTHING",
                (now, wearer_id),
            )
        self._restrictions.bump()
        return paused

    # -- blocks ---------------------------------------------------------------------------------

    async def block(self, guild_id: int, wearer_id: int, member_id: int) -> bool:
        changed = await self._db.execute(
            "INSERT INTO blocks (guild_id, wearer_id, member_id, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (guild_id, wearer_id, member_id, time.time()),
        )
        self._restrictions.bump()
        return changed > 0

    async def unblock(self, guild_id: int, wearer_id: int, member_id: int) -> bool:
        changed = await self._db.execute(
            "DELETE FROM blocks WHERE guild_id = ? AND wearer_id = ? AND member_id = ?",
            (guild_id, wearer_id, member_id),
        )
        return changed > 0

    async def is_blocked(self, guild_id: int, wearer_id: int, member_id: int) -> bool:
        row = await self._db.fetch_one(
            "SELECT 1 FROM blocks WHERE guild_id = ? AND wearer_id = ? AND member_id = ?",
            (guild_id, wearer_id, member_id),
        )
        return row is not None


class ShockerSharedByOther(Exception):
    """Another wearer already shared this shocker in the guild."""

    def __init__(self, wearer_id: int) -> None:
        super().__init__(f"this shocker is already shared here by <@{wearer_id}>")
        self.wearer_id = wearer_id
