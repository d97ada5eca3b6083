"""What wearers decide: which shockers a guild may use and up to what, pauses and blocks."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from bot.storage.database import Database, RestrictionCounter, Transaction
from bot.storage.models import ControlContext, Grant, OpenShockPause, Share


@dataclass(frozen=True, slots=True)
class Owner:
    """An OpenShock account on its server: who owns a shocker there. An OpenShock id means
    something on its own server only, so every owner match also compares the server."""

    openshock_id: str
    api_url: str


# The shares (alias s, with their account a) of shockers `:owner` owns on `:api_url`: recorded
# when shared, or (older shares) one of the ids the owner's live list gives in `own`.
def _owned(own: Collection[str]) -> str:
    marks = ", ".join("?" for _ in own)
    live = f" OR (s.owner_openshock_id IS NULL AND s.shocker_id IN ({marks}))" if own else ""
    return f"(a.api_url = ? AND (s.owner_openshock_id = ?{live}))"


def _owned_params(owner: Owner, own: Collection[str]) -> list[str]:
    return [owner.api_url, owner.openshock_id, *own]


# Whether an owner's pause holds for the share s (of account a).
_OWNER_PAUSED = (
    "EXISTS (SELECT 1 FROM owner_pauses o WHERE o.shocker_id = s.shocker_id"
    " AND o.api_url = a.api_url AND (o.guild_id IS NULL OR o.guild_id = s.guild_id))"
)


# `control_context`'s row: the share s (of account a) in guild :guild, with the wearer's pause
# there, whether the wearer blocked :member, the guild's caps and :member's last control of it.
_CONTEXT_SELECT = (
    f"SELECT s.*, {_OWNER_PAUSED} AS owner_paused,"
    " EXISTS (SELECT 1 FROM wearer_pauses p"
    "  WHERE p.guild_id = s.guild_id AND p.wearer_id = s.wearer_id) AS wearer_paused,"
    " EXISTS (SELECT 1 FROM blocks b WHERE b.guild_id = s.guild_id"
    "  AND b.wearer_id = s.wearer_id AND b.member_id = :member) AS blocked,"
    " g.max_intensity AS guild_max_intensity, g.max_duration_ms AS guild_max_duration_ms,"
    # A cooldown is per member and shocker, across guilds.
    " (SELECT max(c.last_at) FROM cooldowns c"
    "  WHERE c.member_id = :member AND c.shocker_id = s.shocker_id) AS last_control_at"
)
_CONTEXT_FROM_SHARE = (
    "FROM shares s JOIN accounts a ON a.id = s.account_id"
    " LEFT JOIN guild_settings g ON g.guild_id = s.guild_id"
)
_CONTEXT_WHERE = "WHERE s.guild_id = :guild AND s.shocker_id = :shocker"
# A grant's columns beside the context (`decision_inputs`), each as gr_<column>.
_GRANT_COLUMNS = (
    "id",
    "guild_id",
    "target_kind",
    "target_id",
    "shocker_id",
    "max_intensity",
    "max_duration_ms",
    "cooldown_ms",
    "allow_shock",
    "allow_vibrate",
    "allow_sound",
    "created_by",
    "created_at",
    "expires_at",
)
_GRANT_FIELDS = ", ".join(f"gr.{column} AS gr_{column}" for column in _GRANT_COLUMNS)


def _context(values: dict[str, Any]) -> ControlContext:
    """An owner's pause (`pause_as_owner`) counts as a pause of the share: only Stop passes."""
    values["owner_paused"] = bool(values["owner_paused"])
    values["paused"] = bool(values["paused"]) or values["owner_paused"]
    return ControlContext.model_validate(values)


# `decision_inputs` answers kept in memory: how many, and for how long at most. The age limit
# must stay below the cooldown reservations' (services/control/cooldowns.RESERVATION_TTL_S): a
# kept answer's stored cooldown may be older than the member's latest control, which the
# reservation made for that control covers for that long.
DECISION_INPUTS_KEPT = 2048
DECISION_INPUTS_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class _KeptInputs:
    version: int
    at: float
    context: ControlContext | None
    grants: tuple[Grant, ...]


class ShareRepository:
    def __init__(self, db: Database, restrictions: RestrictionCounter) -> None:
        self._db = db
        self._restrictions = restrictions
        self._kept: dict[tuple[int, str, int, tuple[int, ...]], _KeptInputs] = {}
        self.clock = time.monotonic

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
        owner_openshock_id: str | None = None,
    ) -> Share:
        """Share a shocker in a guild, or update the caps of an existing share of the same wearer.

        ``approval`` turns approval mode on or off; None keeps it as it was (off for a new share).
        ``owner_openshock_id`` is the OpenShock account that owns the shocker (as the sharing
        account's server lists it): whoever linked that account rules every share of it.
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
                " paused, created_at, approval, owner_openshock_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, coalesce(?, 0), ?)"
                " ON CONFLICT (guild_id, shocker_id) DO UPDATE SET"
                " account_id = excluded.account_id, shocker_name = excluded.shocker_name,"
                " owner_openshock_id ="
                "  coalesce(excluded.owner_openshock_id, shares.owner_openshock_id),"
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
                    owner_openshock_id,
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
        trip, because this is on the path of every control. An owner's pause (`pause_as_owner`)
        counts as a pause of the share: only Stop passes."""
        row = await self._db.fetch_one(
            f"{_CONTEXT_SELECT} {_CONTEXT_FROM_SHARE} {_CONTEXT_WHERE}",
            {"guild": guild_id, "shocker": shocker_id, "member": member_id},
        )
        if row is None:
            return None
        return _context(dict(row))

    async def decision_inputs(
        self, guild_id: int, shocker_id: str, member_id: int, role_ids: Iterable[int]
    ) -> tuple[ControlContext | None, tuple[Grant, ...]]:
        """`control_context` and the grants that can apply to the member (their own and their
        roles', incl. @everyone; as `GrantRepository.for_member`) in one round trip: the control
        pipeline's front door reads both for every control. No share: (None, ()), since a
        control on a shocker not shared here is refused before any grant counts.

        The answer is kept in memory until a committed write touches any table it is read from
        (`Database.decision_version`, moved by triggers whoever writes: a pause, a block, a
        grant, a share's settings, …) or for `DECISION_INPUTS_TTL_S`. While a write is under
        way (`Database.writing`: a long one may have committed on its thread before its version
        moves) nothing is kept or served from memory. Its cooldown (the member's last stored
        control) may be older than their latest control meanwhile: the control service's
        cooldown reservations cover those (see `DECISION_INPUTS_TTL_S`). A kept answer is
        handed out as it is kept (both parts are immutable): what is derived from it can be
        remembered by its identity (`FactGatherer`)."""
        roles = sorted({*role_ids, guild_id})  # @everyone's role id is the guild id
        key = (guild_id, shocker_id, member_id, tuple(roles))
        version, now = self._db.decision_version, self.clock()
        current = not self._db.writing
        kept = self._kept.get(key)
        if (
            current
            and kept is not None
            and kept.version == version
            and now - kept.at < DECISION_INPUTS_TTL_S
        ):
            return kept.context, kept.grants
        role_params = {f"r{index}": role for index, role in enumerate(roles)}
        role_marks = ", ".join(f":{name}" for name in role_params)
        # One row per grant (the context repeated), or one row with no grant.
        rows = await self._db.fetch_all(
            f"{_CONTEXT_SELECT}, {_GRANT_FIELDS} {_CONTEXT_FROM_SHARE}"
            " LEFT JOIN grants gr ON gr.guild_id = s.guild_id AND ("
            "  (gr.target_kind = 'member' AND gr.target_id = :member)"
            f"  OR (gr.target_kind = 'role' AND gr.target_id IN ({role_marks})))"
            f" {_CONTEXT_WHERE}",
            {"guild": guild_id, "shocker": shocker_id, "member": member_id, **role_params},
        )
        context: ControlContext | None = None
        found = []
        for row in rows:
            values = dict(row)
            fields = {column: values.pop(f"gr_{column}") for column in _GRANT_COLUMNS}
            if context is None:
                context = _context(values)
            if fields["id"] is not None:
                found.append(Grant.model_validate(fields))
        grants = tuple(found)
        if current and version == self._db.decision_version:  # (nothing committed meanwhile)
            if len(self._kept) >= DECISION_INPUTS_KEPT:
                self._kept.clear()  # stale answers and a few warm ones: read again as needed
            self._kept[key] = _KeptInputs(version, now, context, grants)
        return context, grants

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
        """Lift the wearer's pause in this guild and every per-shocker pause of theirs there,
        also their pauses as the owner of shockers others share here (not /panic's, which
        `lift_owner_panic` lifts)."""
        async with self._db.transaction() as tx:
            lifted = await tx.execute(
                "DELETE FROM wearer_pauses WHERE guild_id = ? AND wearer_id = ?",
                (guild_id, wearer_id),
            )
            lifted += await tx.execute(
                "UPDATE shares SET paused = 0 WHERE guild_id = ? AND wearer_id = ? AND paused = 1",
                (guild_id, wearer_id),
            )
            # And the pauses they set here as the owner of shockers (whoever shares them).
            lifted += await tx.execute(
                "DELETE FROM owner_pauses WHERE guild_id = ? AND (api_url, owner_openshock_id) IN"
                " (SELECT api_url, openshock_user_id FROM accounts WHERE discord_user_id = ?)",
                (guild_id, wearer_id),
            )
        return lifted

    async def is_wearer_paused(self, guild_id: int, wearer_id: int) -> bool:
        row = await self._db.fetch_one(
            "SELECT 1 FROM wearer_pauses WHERE guild_id = ? AND wearer_id = ?",
            (guild_id, wearer_id),
        )
        return row is not None

    async def panic(
        self, wearer_id: int, owner: Owner | None = None, own: Collection[str] = ()
    ) -> PanicPauses:
        """Pause every share of the wearer in every guild, and the wearer in each such guild.
        With `owner` (the wearer's OpenShock account), also pause every shocker it owns in
        every guild, whoever shared it (an owner's pause, `guild_id` NULL): the shockers of its
        shares recorded as its own and the ids `own` its live list gives. One transaction."""
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
            shocker_ids: set[str] = set()
            others: list[Share] = []
            if owner is not None:
                owned = await self._owned_shares(tx, owner, own)
                shocker_ids = set(own) | {share.shocker_id for share in owned}
                others = [share for share in owned if share.wearer_id != wearer_id]
                await self._insert_owner_pauses(tx, None, owner, shocker_ids, now)
        self._restrictions.bump()
        return PanicPauses(paused, others, frozenset(shocker_ids))

    # -- the owner's authority ------------------------------------------------------------------

    async def owned_shares(
        self, owner: Owner, own: Collection[str] = (), guild_id: int | None = None
    ) -> list[Share]:
        """Every share (in one guild, or in all) of a shocker `owner` owns, whoever made it."""
        where = _owned(own)
        guild = " AND s.guild_id = ?" if guild_id is not None else ""
        rows = await self._db.fetch_all(
            "SELECT s.* FROM shares s JOIN accounts a ON a.id = s.account_id"
            f" WHERE {where}{guild} ORDER BY s.guild_id, s.shocker_name, s.id",
            [*_owned_params(owner, own), *([guild_id] if guild_id is not None else [])],
        )
        return [Share.from_row(row) for row in rows]

    async def ruled_in(
        self, guild_id: int, wearer_id: int, owner: Owner | None, own: Collection[str] = ()
    ) -> list[Share]:
        """The shares here the caller may pause and unshare: their own, and (with `owner`, their
        OpenShock account) every share of a shocker that account owns, whoever made it."""
        if owner is None:
            return await self.of_wearer(wearer_id, guild_id)
        where = _owned(own)
        rows = await self._db.fetch_all(
            "SELECT s.* FROM shares s JOIN accounts a ON a.id = s.account_id"
            f" WHERE s.guild_id = ? AND (s.wearer_id = ? OR {where})"
            " ORDER BY s.shocker_name, s.id",
            [guild_id, wearer_id, *_owned_params(owner, own)],
        )
        return [Share.from_row(row) for row in rows]

    async def pause_as_owner(self, guild_id: int, owner: Owner, shocker_ids: Iterable[str]) -> None:
        """The owner pauses their shockers in this guild, whoever shares them (now or later):
        only Stop passes until the owner resumes them here."""
        async with self._db.transaction() as tx:
            await self._insert_owner_pauses(tx, guild_id, owner, set(shocker_ids), time.time())
        self._restrictions.bump()

    async def resume_as_owner(
        self, guild_id: int, owner: Owner, shocker_id: str | None = None
    ) -> int:
        """Lift the owner's pauses in this guild (of one shocker, or all of theirs)."""
        shocker = " AND shocker_id = ?" if shocker_id is not None else ""
        return await self._db.execute(
            "DELETE FROM owner_pauses WHERE guild_id = ? AND api_url = ?"
            f" AND owner_openshock_id = ?{shocker}",
            [guild_id, owner.api_url, owner.openshock_id]
            + ([shocker_id] if shocker_id is not None else []),
        )

    async def lift_owner_panic(self, owner: Owner) -> int:
        """Lift the pauses /panic set on the owner's shockers in every guild."""
        return await self._db.execute(
            "DELETE FROM owner_pauses WHERE guild_id IS NULL AND api_url = ?"
            " AND owner_openshock_id = ?",
            (owner.api_url, owner.openshock_id),
        )

    async def is_owner_panicked(self, owner: Owner, shocker_id: str) -> bool:
        row = await self._db.fetch_one(
            "SELECT 1 FROM owner_pauses WHERE guild_id IS NULL AND api_url = ?"
            " AND owner_openshock_id = ? AND shocker_id = ?",
            (owner.api_url, owner.openshock_id, shocker_id),
        )
        return row is not None

    async def owner_paused_in(self, guild_id: int) -> set[str]:
        """The shockers shared here that their owner paused (here, or everywhere by /panic)."""
        rows = await self._db.fetch_all(
            f"SELECT s.shocker_id FROM shares s JOIN accounts a ON a.id = s.account_id"
            f" WHERE s.guild_id = ? AND {_OWNER_PAUSED}",
            (guild_id,),
        )
        return {row["shocker_id"] for row in rows}

    async def withdraw(self, guild_id: int, shocker_id: str) -> Share | None:
        """The owner withdraws a share of their shocker, whoever made it, with the admins' grants
        for it here (as `unshare`). Returns the share withdrawn."""
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT * FROM shares WHERE guild_id = ? AND shocker_id = ?",
                (guild_id, shocker_id),
            )
            if row is not None:
                await tx.execute("DELETE FROM shares WHERE id = ?", (row["id"],))
                await tx.execute(
                    "DELETE FROM grants WHERE guild_id = ? AND shocker_id = ?",
                    (guild_id, shocker_id),
                )
        self._restrictions.bump()
        return Share.from_row(row) if row is not None else None

    @staticmethod
    async def _owned_shares(tx: Transaction, owner: Owner, own: Collection[str]) -> list[Share]:
        where = _owned(own)
        rows = await tx.fetch_all(
            f"SELECT s.* FROM shares s JOIN accounts a ON a.id = s.account_id WHERE {where}",
            _owned_params(owner, own),
        )
        return [Share.from_row(row) for row in rows]

    @staticmethod
    async def _insert_owner_pauses(
        tx: Transaction, guild_id: int | None, owner: Owner, shocker_ids: set[str], now: float
    ) -> None:
        await tx.executemany(
            "INSERT INTO owner_pauses (guild_id, api_url, shocker_id, owner_openshock_id,"
            " paused_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                (guild_id, owner.api_url, sid, owner.openshock_id, now)
                for sid in sorted(shocker_ids)
            ],
        )

    # -- pauses /panic set on OpenShock ---------------------------------------------------------

    async def record_openshock_pauses(self, owner: Owner, shockers: dict[str, str]) -> None:
        """/panic paused these shockers (id → name) on OpenShock, where they were not paused."""
        now = time.time()
        async with self._db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO panic_openshock_pauses (api_url, shocker_id, owner_openshock_id,"
                " shocker_name, paused_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET shocker_name = excluded.shocker_name",
                [
                    (owner.api_url, sid, owner.openshock_id, name, now)
                    for sid, name in shockers.items()
                ],
            )

    async def openshock_pauses(self, owner: Owner) -> list[OpenShockPause]:
        rows = await self._db.fetch_all(
            "SELECT * FROM panic_openshock_pauses WHERE api_url = ? AND owner_openshock_id = ?"
            " ORDER BY shocker_name, shocker_id",
            (owner.api_url, owner.openshock_id),
        )
        return [OpenShockPause.from_row(row) for row in rows]

    async def forget_openshock_pause(self, owner: Owner, shocker_id: str) -> None:
        await self._db.execute(
            "DELETE FROM panic_openshock_pauses WHERE api_url = ? AND owner_openshock_id = ?"
            " AND shocker_id = ?",
            (owner.api_url, owner.openshock_id, shocker_id),
        )

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


@dataclass(frozen=True, slots=True)
class PanicPauses:
    """What a panic paused: the wearer's own shares, the shares others made of shockers the
    wearer's account owns, and those shockers (now paused in every guild)."""

    own_shares: int
    others_shares: list[Share]
    owned_shocker_ids: frozenset[str]


class ShockerSharedByOther(Exception):
    """Another wearer already shared this shocker in the guild."""

    def __init__(self, wearer_id: int) -> None:
        super().__init__(f"this shocker is already shared here by <@{wearer_id}>")
        self.wearer_id = wearer_id
