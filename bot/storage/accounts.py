"""Linked OpenShock accounts, with their tokens encrypted at rest."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.crypto import TokenCipher
from bot.storage.database import Database, RestrictionCounter
from bot.storage.models import Account

# Admins' grants for the shockers an account shared go with its shares (see
# ShareRepository.unshare).
_DELETE_GRANTS_OF_SHARES = (
    "DELETE FROM grants WHERE (guild_id, shocker_id) IN"
    " (SELECT guild_id, shocker_id FROM shares WHERE account_id = ?)"
)


class AccountLinkedElsewhere(Exception):
    """The OpenShock account is already linked by another Discord user."""


@dataclass(frozen=True, slots=True)
class UnlinkSummary:
    shares: int
    blocks: int
    pending_events: int


class AccountRepository:
    def __init__(self, db: Database, cipher: TokenCipher, restrictions: RestrictionCounter) -> None:
        self._db = db
        self._restrictions = restrictions
        self._cipher = cipher

    async def link(
        self,
        *,
        discord_user_id: int,
        openshock_user_id: str,
        openshock_name: str,
        api_url: str,
        token: str,
        is_operator: bool = False,
    ) -> Account:
        """Store (or replace) the Discord user's link. The token is encrypted before it is stored.

        Re-linking by the same Discord user replaces the token, account and server; shares of a
        different OpenShock account are removed because they no longer belong to this token.
        """
        now = time.time()
        encrypted = self._cipher.encrypt(token)
        async with self._db.transaction() as tx:
            other = await tx.fetch_one(
                "SELECT discord_user_id FROM accounts WHERE openshock_user_id = ?",
                (openshock_user_id,),
            )
            if other is not None and other["discord_user_id"] != discord_user_id:
                raise AccountLinkedElsewhere(
                    "this OpenShock account is already linked by another Discord user"
                )
            existing = await tx.fetch_one(
                "SELECT id, openshock_user_id FROM accounts WHERE discord_user_id = ?",
                (discord_user_id,),
            )
            if existing is not None and existing["openshock_user_id"] != openshock_user_id:
                # A different OpenShock account: drop the old one and everything hanging off it.
                await tx.execute(_DELETE_GRANTS_OF_SHARES, (existing["id"],))
                await tx.execute("DELETE FROM accounts WHERE id = ?", (existing["id"],))
                existing = None
            if existing is None:
                await tx.insert(
                    "INSERT INTO accounts (discord_user_id, openshock_user_id, openshock_name,"
                    " api_url, token_encrypted, is_operator, state, linked_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                    (
                        discord_user_id,
                        openshock_user_id,
                        openshock_name,
                        api_url,
                        encrypted,
                        int(is_operator),
                        now,
                        now,
                    ),
                )
            else:
                await tx.execute(
                    "UPDATE accounts SET openshock_name = ?, api_url = ?, token_encrypted = ?,"
                    " is_operator = ?, state = 'active', state_reason = NULL, updated_at = ?"
                    " WHERE id = ?",
                    (openshock_name, api_url, encrypted, int(is_operator), now, existing["id"]),
                )
            row = await tx.fetch_one(
                "SELECT * FROM accounts WHERE discord_user_id = ?", (discord_user_id,)
            )
        assert row is not None
        self._restrictions.bump()
        return Account.from_row(row)

    async def get(self, account_id: int) -> Account | None:
        row = await self._db.fetch_one("SELECT * FROM accounts WHERE id = ?", (account_id,))
        return Account.from_row(row) if row is not None else None

    async def by_discord_user(self, discord_user_id: int) -> Account | None:
        row = await self._db.fetch_one(
            "SELECT * FROM accounts WHERE discord_user_id = ?", (discord_user_id,)
        )
        return Account.from_row(row) if row is not None else None

    async def by_openshock_user(self, openshock_user_id: str) -> Account | None:
        """The linked account of an OpenShock user (e.g. the sender of a ``Log``), if any."""
        row = await self._db.fetch_one(
            "SELECT * FROM accounts WHERE openshock_user_id = ?", (openshock_user_id,)
        )
        return Account.from_row(row) if row is not None else None

    async def list_active(self) -> list[Account]:
        rows = await self._db.fetch_all("SELECT * FROM accounts WHERE state = 'active' ORDER BY id")
        return [Account.from_row(row) for row in rows]

    async def list_all(self) -> list[Account]:
        rows = await self._db.fetch_all("SELECT * FROM accounts ORDER BY id")
        return [Account.from_row(row) for row in rows]

    def token_of(self, account: Account) -> str:
        """The plaintext token, for opening a connection. Never log or show it."""
        return self._cipher.decrypt(account.token_encrypted)

    async def mark_invalid(self, account_id: int, reason: str) -> bool:
        """Returns True when the state changed (so the wearer is told only once)."""
        changed = await self._db.execute(
            "UPDATE accounts SET state = 'invalid', state_reason = ?, updated_at = ?"
            " WHERE id = ? AND state != 'invalid'",
            (reason, time.time(), account_id),
        )
        self._restrictions.bump()
        return changed > 0

    async def unlink(self, discord_user_id: int) -> UnlinkSummary | None:
        """Delete the account, its shares, blocks and pending events, in every guild."""
        # Long: the account's stored events and deliveries go with it (ON DELETE CASCADE).
        async with self._db.transaction(long=True) as tx:
            row = await tx.fetch_one(
                "SELECT id FROM accounts WHERE discord_user_id = ?", (discord_user_id,)
            )
            if row is None:
                return None
            account_id = row["id"]
            await tx.execute(_DELETE_GRANTS_OF_SHARES, (account_id,))
            shares = await tx.execute("DELETE FROM shares WHERE account_id = ?", (account_id,))
            blocks = await tx.execute("DELETE FROM blocks WHERE wearer_id = ?", (discord_user_id,))
            await tx.execute("DELETE FROM wearer_pauses WHERE wearer_id = ?", (discord_user_id,))
            pending = await tx.fetch_one(
                "SELECT count(*) FROM feed_deliveries d JOIN hub_events e ON e.id = d.event_id"
                " WHERE e.account_id = ? AND d.state = 'pending'",
                (account_id,),
            )
            # Events, their deliveries and device states go with the account (ON DELETE CASCADE).
            await tx.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
        self._restrictions.bump()
        return UnlinkSummary(
            shares=shares, blocks=blocks, pending_events=int(pending[0]) if pending else 0
        )
