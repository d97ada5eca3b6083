"""/history (with `days` and the CSV export) and /stats end to end, through the real command tree,
against the audit rows that real controls and seeded rows left."""

# ruff: noqa: F811  (`scene` is the imported fixture, named as a parameter)

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import Counter
from typing import Any

import pytest
from PIL import Image

from bot.cogs.activity import ActivityCog
from bot.domain.controls import ControlKind
from bot.domain.export import HEADER
from bot.domain.stats import SECONDS_PER_DAY, day_number, window_start
from bot.storage.models import AuditEntry, AuditOutcome, NewAuditEntry
from tests.cogs.test_control import Scene, scene  # noqa: F401  (the fixture, imported)
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.discord_api import InteractionRecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def seed(
    scene: Scene,
    *,
    at: float,
    member: DiscordUser,
    control_type: ControlKind = ControlKind.SHOCK,
    outcome: AuditOutcome = AuditOutcome.CONFIRMED,
    guild_id: int | None = None,
    shocker_id: str | None = None,
    shocker_name: str = "Collar",
    wearer: DiscordUser | None = None,
    reason: str | None = None,
) -> int:
    """One audit row at unix time `at`, as the control pipeline writes it."""
    entry_id = await scene.h.storage.audit.record(
        NewAuditEntry(
            guild_id=guild_id or scene.h.discord.guild_id,
            member_id=member.id,
            wearer_id=(wearer or scene.alice).id,
            shocker_id=shocker_id or scene.collar_id,
            shocker_name=shocker_name,
            control_type=int(control_type),
            requested_intensity=20,
            requested_duration_ms=1000,
            effective_intensity=None if outcome is AuditOutcome.REFUSED else 20,
            effective_duration_ms=None if outcome is AuditOutcome.REFUSED else 1000,
            outcome=outcome,
            reason=reason,
        )
    )
    # The pipeline stamps the time itself; a test row is moved to the moment it stands for.
    await scene.h.storage.db.execute("UPDATE audit SET created_at = ? WHERE id = ?", (at, entry_id))
    return entry_id


def days_ago(days: int, hour: int = 12) -> float:
    """A moment on the UTC day `days` before today (today: a second ago)."""
    if days == 0:
        return time.time() - 1
    return (day_number(time.time()) - days) * SECONDS_PER_DAY + hour * 3600.0


async def all_rows(scene: Scene) -> list[AuditEntry]:
    rows = await scene.h.storage.db.fetch_all("SELECT * FROM audit ORDER BY id")
    return [AuditEntry.from_row(row) for row in rows]


async def run(
    scene: Scene, name: str, user: DiscordUser, admin: bool = False, **options: Any
) -> InteractionRecord:
    payload = scene.h.ix.slash(name, options, user=user, admin=admin)
    await scene.h.run(payload)
    return scene.h.discord.replies_for(payload)


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


# -- /history -----------------------------------------------------------------------------------


async def test_history_shows_members_their_own_rows_and_admins_everything(scene: Scene) -> None:
    await scene.grant_everyone()
    carol = scene.h.discord_user("carol")
    await scene.command("shock", scene.bob, intensity=10, duration=1)
    await scene.command("vibrate", carol, intensity=10, duration=1)
    own = scene.h.ix.slash("history", user=carol)
    await scene.h.run(own)
    text = scene.h.discord.replies_for(own).text
    assert "Vibrate" in text and "Shock 10" not in text
    everything = scene.h.ix.slash("history", user=scene.admin, admin=True)
    await scene.h.run(everything)
    text = scene.h.discord.replies_for(everything).text
    assert "Vibrate" in text and "Shock 10" in text
    wearer = scene.h.ix.slash("history", user=scene.alice)
    await scene.h.run(wearer)
    assert "Vibrate" in scene.h.discord.replies_for(wearer).text  # rows about her shocker


async def test_history_days_leaves_out_older_rows_and_no_days_works_as_before(
    scene: Scene,
) -> None:
    await seed(scene, at=days_ago(10), member=scene.bob, control_type=ControlKind.SOUND)
    # 36 hours ago, whatever the time of day (`days_ago(1)` is yesterday noon, within the last
    # 24 hours before noon).
    at = time.time() - 36 * 3600
    await seed(scene, at=at, member=scene.bob, control_type=ControlKind.VIBRATE)
    recent = await run(scene, "history", scene.admin, admin=True, days=3)
    assert "Vibrate" in recent.text and "Sound" not in recent.text
    assert "in the last 3 days" in recent.text and recent.ephemeral
    assert not recent.files
    everything = await run(scene, "history", scene.admin, admin=True)
    assert "Vibrate" in everything.text and "Sound" in everything.text
    assert "last" not in everything.text
    nothing = await run(scene, "history", scene.admin, admin=True, days=1)
    assert nothing.text == "No controls involving this server in the last 1 day yet."


@pytest.mark.parametrize("days", [0, 366])
async def test_history_days_out_of_range_is_refused(scene: Scene, days: int) -> None:
    reply = await run(scene, "history", scene.bob, days=days, export=True)
    assert reply.ephemeral and reply.text == "`days` must be between 1 and 365."
    assert not reply.files


async def test_export_round_trips_the_rows_through_csv_and_neutralises_formulas(
    scene: Scene,
) -> None:
    await scene.grant_everyone()
    await scene.command("shock", scene.bob, intensity=10, duration=1.5)
    await scene.command("vibrate", scene.bob, intensity=30, duration=2)  # capped at 25 %
    hostile = {
        '=HYPERLINK("http://x")': "+1+1",
        "@SUM(A1)": "-2+3",
        "\tTabbed": "\rreturn",
        "Halsband ⚡ Ünïcode": 'a, "quoted"\nsecond line',
    }
    for name, reason in hostile.items():
        await seed(
            scene,
            at=days_ago(2),
            member=scene.bob,
            shocker_name=name,
            outcome=AuditOutcome.REFUSED,
            reason=reason,
        )
    reply = await run(scene, "history", scene.admin, admin=True, export=True)
    assert reply.deferred and reply.ephemeral
    ((filename, data),) = reply.files
    assert filename == f"history-{scene.h.discord.guild_id}.csv"
    assert "6 controls involving this server in the last 30 days" in reply.text
    data.decode("utf-8")  # UTF-8, no BOM
    assert data.startswith(b"time_utc,")
    parsed = read_csv(data)
    assert list(parsed[0]) == list(HEADER)
    expected = list(reversed(await all_rows(scene)))  # newest first, as /history lists them
    assert len(parsed) == len(expected) == 6
    for row, entry in zip(parsed, expected, strict=True):
        assert row["time_utc"].endswith("Z") and "T" in row["time_utc"]
        assert abs(_parse_utc(row["time_utc"]) - entry.created_at) < 0.001
        assert row["guild_id"] == str(scene.h.discord.guild_id)
        assert row["member_id"] == str(entry.member_id) == str(scene.bob.id)
        assert row["wearer_id"] == str(scene.alice.id)
        assert row["shocker_id"] == scene.collar_id
        assert row["outcome"] == entry.outcome.value
        assert row["effective_intensity"] == _text(entry.effective_intensity)
        assert row["requested_duration_ms"] == _text(entry.requested_duration_ms)
    by_type = Counter(row["type"] for row in parsed)
    assert by_type == {"Shock": 5, "Vibrate": 1}
    vibrate = next(row for row in parsed if row["type"] == "Vibrate")
    assert (vibrate["requested_intensity"], vibrate["effective_intensity"]) == ("30", "25")
    # Formula-like cells are prefixed with an apostrophe; everything else is as stored.
    names = {row["shocker_name"]: row["reason"] for row in parsed if row["outcome"] == "refused"}
    assert names == {
        '\'=HYPERLINK("http://x")': "'+1+1",
        "'@SUM(A1)": "'-2+3",
        "'\tTabbed": "'\rreturn",
        "Halsband ⚡ Ünïcode": 'a, "quoted"\nsecond line',
    }
    for row in parsed:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())


def _parse_utc(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _text(value: object) -> str:
    return "" if value is None else str(value)


async def test_export_gives_members_their_own_rows_and_admins_all(scene: Scene) -> None:
    carol, dave = scene.h.discord_user("carol"), scene.h.discord_user("dave")
    dave_os = scene.h.openshock.add_user("Dave")
    await seed(scene, at=days_ago(1), member=scene.bob)
    await seed(scene, at=days_ago(1), member=carol, control_type=ControlKind.VIBRATE)
    # A row where carol is the wearer (dave controls her shocker): hers to see too.
    await seed(
        scene,
        at=days_ago(1),
        member=dave,
        wearer=carol,
        shocker_id=str(dave_os.id),
        shocker_name="Cuff",
    )
    member_ids = {
        who.username: {row["member_id"] for row in read_csv(reply.files[0][1])}
        for who, reply in [
            (carol, await run(scene, "history", carol, export=True)),
            (scene.bob, await run(scene, "history", scene.bob, export=True)),
            (scene.admin, await run(scene, "history", scene.admin, admin=True, export=True)),
        ]
    }
    assert member_ids == {
        "carol": {str(carol.id), str(dave.id)},
        "bob": {str(scene.bob.id)},
        "admin": {str(scene.bob.id), str(carol.id), str(dave.id)},
    }
    # The member option narrows, it never widens what a member may see.
    narrowed = await run(scene, "history", carol, export=True, member=scene.bob)
    assert (
        not narrowed.files
        and narrowed.text == "No controls involving you in the last 30 days to export."
    )


async def test_export_covers_30_days_unless_told_otherwise(scene: Scene) -> None:
    await seed(scene, at=time.time() - 29 * SECONDS_PER_DAY, member=scene.bob)
    await seed(scene, at=time.time() - 31 * SECONDS_PER_DAY, member=scene.bob)
    default = await run(scene, "history", scene.admin, admin=True, export=True)
    assert len(read_csv(default.files[0][1])) == 1
    longer = await run(scene, "history", scene.admin, admin=True, export=True, days=60)
    assert len(read_csv(longer.files[0][1])) == 2
    assert "in the last 60 days" in longer.text


async def test_an_export_too_long_for_one_file_keeps_the_newest_rows_and_says_so(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.cogs.activity.MAX_EXPORT_ROWS", 2)
    for ago in (3, 2, 1):
        await seed(scene, at=days_ago(ago), member=scene.bob, reason=f"{ago} days ago")
    reply = await run(scene, "history", scene.admin, admin=True, export=True)
    assert [row["reason"] for row in read_csv(reply.files[0][1])] == ["1 days ago", "2 days ago"]
    assert "Only the newest 2 fit in one file" in reply.text


# -- /stats -------------------------------------------------------------------------------------


async def test_stats_attaches_a_png_chart_and_its_numbers_match_the_audit_rows(
    scene: Scene,
) -> None:
    await scene.grant_everyone()
    carol = scene.h.discord_user("carol")
    await scene.command("shock", scene.bob, intensity=10, duration=1)  # confirmed by the Log
    await scene.command("vibrate", carol, intensity=10, duration=1)
    plan = [
        (1, scene.bob, ControlKind.SHOCK, AuditOutcome.CONFIRMED),
        (1, scene.bob, ControlKind.SHOCK, AuditOutcome.SENT),
        (1, carol, ControlKind.SOUND, AuditOutcome.REFUSED),
        (3, scene.bob, ControlKind.VIBRATE, AuditOutcome.NOT_CONFIRMED),
        (6, scene.bob, ControlKind.STOP, AuditOutcome.CONFIRMED),
        (6, carol, ControlKind.SHOCK, AuditOutcome.FAILED),
        (7, carol, ControlKind.SHOCK, AuditOutcome.CONFIRMED),  # before the 7-day window
        (40, scene.bob, ControlKind.SHOCK, AuditOutcome.CONFIRMED),  # long before
    ]
    for ago, member, control_type, outcome in plan:
        await seed(
            scene, at=days_ago(ago), member=member, control_type=control_type, outcome=outcome
        )
    # Another server's rows never count here.
    await seed(scene, at=days_ago(1), member=scene.bob, guild_id=4242)

    reply = await run(scene, "stats", carol)
    assert reply.deferred and not reply.ephemeral
    ((filename, png),) = reply.files
    assert filename == "stats.png" and png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        image.load()  # decodes every pixel: a whole, valid PNG
        assert (image.format, image.size) == ("PNG", (1000, 450))
    (message,) = reply.messages
    assert message["embeds"][0]["image"]["url"] == "attachment://stats.png"
    assert message["allowed_mentions"] == {"parse": []}

    # The numbers, counted here from the audit rows themselves.
    rows = [
        row
        for row in await all_rows(scene)
        if row.guild_id == scene.h.discord.guild_id
        and row.created_at >= window_start(time.time(), 7)
    ]
    assert len(rows) == 8
    delivered = sum(row.outcome in (AuditOutcome.CONFIRMED, AuditOutcome.SENT) for row in rows)
    assert delivered == 5
    text = reply.text
    assert f"{delivered} of {len(rows)} attempts delivered (63 %)" in text
    assert "1 not confirmed · 1 refused · 1 failed" in text
    senders = Counter(row.member_id for row in rows)
    assert senders == {scene.bob.id: 5, carol.id: 3}
    assert f"1. <@{scene.bob.id}> · 5\n2. <@{carol.id}> · 3" in text
    assert f"1. Collar (<@{scene.alice.id}>) · 8" in text
    assert "Alice" not in text  # the wearer's OpenShock name never shows

    cog = scene.h.bot.get_cog("ActivityCog")
    assert isinstance(cog, ActivityCog)
    stats = await cog.guild_stats(scene.h.discord.guild_id, 7, time.time())
    first_day = day_number(time.time()) - 6
    expected: dict[int, list[int]] = {int(t): [0] * 7 for t in ControlKind}
    for row in rows:
        expected[row.control_type][day_number(row.created_at) - first_day] += 1
    assert stats.per_type == expected
    assert sum(stats.per_day()) == len(rows) == stats.attempts


async def test_stats_lists_only_shockers_shared_here_with_their_wearer(scene: Scene) -> None:
    carol = scene.h.discord_user("carol")
    carol_os = scene.h.openshock.add_user("Carol")
    cuff = scene.h.openshock.add_shocker(scene.h.openshock.add_device(carol_os, "Hub"), "Cuff")
    await scene.h.link(carol, carol_os)
    await scene.h.share(carol, str(cuff.id))
    for _ in range(3):
        await seed(
            scene,
            at=days_ago(0),
            member=scene.bob,
            wearer=carol,
            shocker_id=str(cuff.id),
            shocker_name="Cuff",
        )
    await seed(scene, at=days_ago(0), member=scene.bob)
    for _ in range(5):  # a shocker no longer shared here
        await seed(scene, at=days_ago(0), member=scene.bob, shocker_id="gone", shocker_name="Gone")
    text = (await run(scene, "stats", scene.bob, days=1)).text
    assert f"1. Cuff (<@{carol.id}>) · 3\n2. Collar (<@{scene.alice.id}>) · 1" in text
    assert "Gone" not in text and "Carol" not in text
    assert f"1. <@{scene.bob.id}> · 9" in text


async def test_a_chart_process_that_died_is_replaced(scene: Scene) -> None:
    await seed(scene, at=days_ago(0), member=scene.bob)
    first = await run(scene, "stats", scene.bob)
    assert first.files[0][1].startswith(PNG_SIGNATURE)
    cog = scene.h.bot.get_cog("ActivityCog")
    assert isinstance(cog, ActivityCog) and cog.charts._pool is not None
    (worker,) = cog.charts._pool._processes.values()  # type: ignore[attr-defined]
    worker.kill()
    await asyncio.to_thread(worker.join, 10)
    again = await run(scene, "stats", scene.bob)
    assert again.files[0][1].startswith(PNG_SIGNATURE)
    (replacement,) = cog.charts._pool._processes.values()  # type: ignore[attr-defined]
    assert replacement.pid != worker.pid


async def test_stats_of_a_server_without_controls_says_so_without_a_chart(scene: Scene) -> None:
    await seed(scene, at=days_ago(0), member=scene.bob, guild_id=4242)  # another server
    await seed(scene, at=days_ago(8), member=scene.bob)  # before the window
    reply = await run(scene, "stats", scene.bob)
    assert not reply.files
    assert reply.text.startswith("No controls in this server in the last 7 days (")
    assert reply.text.endswith("UTC): nothing to chart yet.")


@pytest.mark.parametrize("days", [0, 91])
async def test_stats_days_out_of_range_is_refused(scene: Scene, days: int) -> None:
    reply = await run(scene, "stats", scene.bob, days=days)
    assert reply.ephemeral and reply.text == "`days` must be between 1 and 90."
    assert not reply.files


async def test_registration_payload_of_history_and_stats(scene: Scene) -> None:
    registered = {
        command.name: command.to_dict(scene.h.bot.tree)
        for command in scene.h.bot.tree.get_commands()
    }
    history, stats = registered["history"], registered["stats"]
    assert [o["name"] for o in history["options"]] == ["shocker", "member", "days", "export"]
    days = history["options"][2]
    assert (days["type"], days["min_value"], days["max_value"], days["required"]) == (
        4,
        1,
        365,
        False,
    )
    assert history["options"][3]["type"] == 5  # boolean
    (stats_days,) = stats["options"]
    assert (stats_days["min_value"], stats_days["max_value"], stats_days["required"]) == (
        1,
        90,
        False,
    )
    for command in (history, stats):
        assert command["contexts"] == [0]
        assert command["default_member_permissions"] is None
