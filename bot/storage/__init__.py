"""Storage: the only layer that speaks SQL. Everything else uses these repositories."""

from __future__ import annotations

from pathlib import Path

from bot.crypto import TokenCipher
from bot.storage.accounts import AccountLinkedElsewhere, AccountRepository, UnlinkSummary
from bot.storage.approvals import ApprovalRepository
from bot.storage.audit import AuditRepository
from bot.storage.database import Database, RestrictionCounter
from bot.storage.feeds import DeviceStateRepository, EventRepository, FeedRepository
from bot.storage.migrations import MigrationError
from bot.storage.panels import PanelRepository
from bot.storage.permissions import CooldownRepository, GrantRepository, GuildSettingsRepository
from bot.storage.random_modes import RandomModeRepository
from bot.storage.shares import ShareRepository, ShockerSharedByOther
from bot.storage.votes import VoteRepository

__all__ = [
    "AccountLinkedElsewhere",
    "Database",
    "MigrationError",
    "ShockerSharedByOther",
    "Storage",
    "UnlinkSummary",
]

_KEY_CHECK = "token_key_check"


class Storage:
    """The database and its repositories, opened once by the composition root."""

    def __init__(self, db: Database, cipher: TokenCipher) -> None:
        self.db = db
        self.restrictions = RestrictionCounter()
        self.accounts = AccountRepository(db, cipher, self.restrictions)
        self.shares = ShareRepository(db, self.restrictions)
        self.grants = GrantRepository(db, self.restrictions)
        self.guild_settings = GuildSettingsRepository(db, self.restrictions)
        self.cooldowns = CooldownRepository(db)
        self.audit = AuditRepository(db)
        self.feeds = FeedRepository(db)
        self.events = EventRepository(db)
        self.device_states = DeviceStateRepository(db)
        self.votes = VoteRepository(db)
        self.approvals = ApprovalRepository(db)
        self.random_modes = RandomModeRepository(db)
        self.panels = PanelRepository(db)

    @classmethod
    async def open(cls, path: Path | str, cipher: TokenCipher) -> Storage:
        """Open and migrate the database, and check that `cipher` is the key tokens were stored
        with (raises `WrongKeyError` otherwise)."""
        db = await Database.open(path)
        try:
            row = await db.fetch_one("SELECT value FROM meta WHERE key = ?", (_KEY_CHECK,))
            if row is None:
                await db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)", (_KEY_CHECK, cipher.key_check())
                )
            else:
                cipher.verify_key_check(row["value"])
        except BaseException:
            await db.close()
            raise
        return cls(db, cipher)

    async def close(self) -> None:
        await self.db.close()
