"""The audit trail's aggregates for /stats and its long reads for the export, on a real file:
the counts equal counting the rows one by one, and each query reads its index in GROUP BY order
(SQLite sorts nothing)."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from bot.domain.stats import SECONDS_PER_DAY, day_number
from bot.storage import Storage
from bot.storage.models import AuditEntry, AuditOutcome, NewAuditEntry

GUILD = 111
OTHER_GUILD = 222


async def _seed(storage: Storage, count: int, seed: int = 7) -> list[AuditEntry]:
    """`count` random rows over the last 20 days in two guilds; returns them as stored."""
    rng = random.Random(seed)
    now = time.time()
    for _ in range(count):
        entry_id = await storage.audit.record(
            NewAuditEntry(
                guild_id=rng.choice((GUILD, GUILD, OTHER_GUILD)),
                member_id=rng.choice((1, 2, 3, 4)),
                wearer_id=10,
                shocker_id=rng.choice(("s-1", "s-2", "s-3")),
                shocker_name="x",
                control_type=rng.randrange(4),
                outcome=rng.choice(list(AuditOutcome)),
            )
        )
        at = now - rng.uniform(0, 20 * SECONDS_PER_DAY)
        await storage.db.execute("UPDATE audit SET created_at = ? WHERE id = ?", (at, entry_id))
    return [AuditEntry.from_row(row) for row in await storage.db.fetch_all("SELECT * FROM audit")]


async def test_aggregates_equal_counting_the_rows(storage: Storage) -> None:
    rows = await _seed(storage, 400)
    first_day = day_number(time.time()) - 9
    since = first_day * SECONDS_PER_DAY
    ours = [row for row in rows if row.guild_id == GUILD and row.created_at >= since]
    assert ours

    counted = Counter((day_number(r.created_at), r.control_type, r.outcome.value) for r in ours)
    groups = await storage.audit.day_counts(GUILD, first_day)
    assert {(g.day, g.control_type, g.outcome): g.count for g in groups} == counted

    senders = Counter(row.member_id for row in ours)
    top = await storage.audit.top_senders(GUILD, since, 2)
    expected = sorted(senders.items(), key=lambda item: (-item[1], item[0]))[:2]
    assert [(s.member_id, s.count) for s in top] == expected

    # Only shockers shared in the guild now are listed, with the share's name and wearer.
    account = await storage.accounts.link(
        discord_user_id=10,
        openshock_user_id="os-1",
        openshock_name="Alice",
        api_url="https://api.openshock.app",
        token="t" * 64,
    )
    for shocker in ("s-1", "s-2"):
        await storage.shares.share(
            guild_id=GUILD,
            account_id=account.id,
            wearer_id=10,
            shocker_id=shocker,
            shocker_name=f"Collar {shocker}",
            max_intensity=25,
            max_duration_ms=3000,
            allow_shock=True,
            allow_vibrate=True,
            allow_sound=True,
        )
    shockers = Counter(row.shocker_id for row in ours if row.shocker_id != "s-3")
    listed = await storage.audit.top_shockers(GUILD, since, 5)
    assert {(s.shocker_id, s.shocker_name, s.wearer_id, s.count) for s in listed} == {
        (shocker, f"Collar {shocker}", 10, n) for shocker, n in shockers.items()
    }
    assert [s.count for s in listed] == sorted((s.count for s in listed), reverse=True)


async def test_aggregates_read_their_index_without_sorting_the_rows(storage: Storage) -> None:
    await _seed(storage, 20)
    queries = {
        "audit_by_day": (
            "SELECT CAST(created_at / 86400 AS INTEGER) AS day, control_type, outcome, count(*)"
            " FROM audit WHERE guild_id = ? AND CAST(created_at / 86400 AS INTEGER) >= ?"
            " GROUP BY CAST(created_at / 86400 AS INTEGER), control_type, outcome",
            (GUILD, 0),
        ),
        "audit_by_sender": (
            "SELECT member_id, count(*) FROM audit WHERE guild_id = ? AND created_at >= ?"
            " GROUP BY member_id",
            (GUILD, 0),
        ),
        "audit_by_shocker": (
            "SELECT shocker_id, count(*) FROM audit"
            " WHERE guild_id = ? AND shocker_id IS NOT NULL AND created_at >= ?"
            " GROUP BY shocker_id",
            (GUILD, 0),
        ),
    }
    for index, (sql, params) in queries.items():
        plan = " | ".join(
            row[3] for row in await storage.db.fetch_all(f"EXPLAIN QUERY PLAN {sql}", params)
        )
        assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
        assert "TEMP B-TREE FOR GROUP BY" not in plan, plan


async def test_export_pages_are_newest_first_within_the_period(storage: Storage) -> None:
    now = time.time()
    ids = []
    for age_days in (40, 20, 3, 2, 1):
        entry_id = await storage.audit.record(
            NewAuditEntry(guild_id=GUILD, member_id=1, control_type=1, outcome=AuditOutcome.SENT)
        )
        await storage.db.execute(
            "UPDATE audit SET created_at = ? WHERE id = ?",
            (now - age_days * SECONDS_PER_DAY, entry_id),
        )
        ids.append(entry_id)
    since = now - 30 * SECONDS_PER_DAY

    async def pages(**options: Any) -> list[list[int]]:
        return [
            [entry.id for entry in page]
            async for page in storage.audit.export_pages(GUILD, since=since, **options)
        ]

    assert await pages(limit=100, page=2) == [[ids[4], ids[3]], [ids[2], ids[1]]]
    assert await pages(limit=3, page=2) == [[ids[4], ids[3]], [ids[2]]]
    assert await pages(limit=100) == [[ids[4], ids[3], ids[2], ids[1]]]
    assert [e.id for e in await storage.audit.recent(GUILD)] == ids[::-1]
