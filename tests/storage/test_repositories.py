"""Every repository method against a real SQLite file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.crypto import TokenCipher
from bot.domain.decision import GrantTarget
from bot.storage import AccountLinkedElsewhere, ShockerSharedByOther, Storage
from bot.storage.models import AuditOutcome, FeedKind, NewAuditEntry
from bot.storage.permissions import ShockerNotShared
from bot.storage.shares import Owner

TOKEN = "t" * 64
GUILD = 111
OTHER_GUILD = 222
WEARER = 10
MEMBER = 20


async def _link(storage: Storage, discord_user_id: int = WEARER, os_id: str = "os-1") -> int:
    account = await storage.accounts.link(
        discord_user_id=discord_user_id,
        openshock_user_id=os_id,
        openshock_name="Alice",
        api_url="https://api.openshock.app",
        token=TOKEN,
    )
    return account.id


async def _share(storage: Storage, account_id: int, shocker: str = "s-1", guild: int = GUILD):
    return await storage.shares.share(
        guild_id=guild,
        account_id=account_id,
        wearer_id=WEARER,
        shocker_id=shocker,
        shocker_name="Collar",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=False,
    )


async def test_link_stores_the_token_encrypted_only(storage: Storage, tmp_path: Path) -> None:
    account_id = await _link(storage)
    account = await storage.accounts.get(account_id)
    assert account is not None
    assert storage.accounts.token_of(account) == TOKEN
    assert TOKEN not in repr(account)
    await storage.db.execute("PRAGMA wal_checkpoint(FULL)")
    for file in tmp_path.iterdir():
        assert TOKEN.encode() not in file.read_bytes()


async def test_relink_replaces_the_token_and_keeps_the_row(storage: Storage) -> None:
    first = await _link(storage)
    again = await storage.accounts.link(
        discord_user_id=WEARER,
        openshock_user_id="os-1",
        openshock_name="Alice2",
        api_url="https://example.org/api",
        token="n" * 64,
    )
    assert again.id == first
    assert again.openshock_name == "Alice2"
    assert storage.accounts.token_of(again) == "n" * 64


async def test_linking_another_openshock_account_drops_the_old_shares(storage: Storage) -> None:
    first = await _link(storage)
    await _share(storage, first)
    second = await _link(storage, os_id="os-2")
    assert second != first
    assert await storage.shares.of_wearer(WEARER) == []


async def test_an_account_linked_by_someone_else_is_refused(storage: Storage) -> None:
    await _link(storage)
    with pytest.raises(AccountLinkedElsewhere):
        await _link(storage, discord_user_id=99)


async def test_mark_invalid_reports_only_the_first_change(storage: Storage) -> None:
    account_id = await _link(storage)
    assert await storage.accounts.mark_invalid(account_id, "token rejected")
    assert not await storage.accounts.mark_invalid(account_id, "token rejected")
    assert await storage.accounts.list_active() == []
    account = await storage.accounts.by_discord_user(WEARER)
    assert account is not None and account.state_reason == "token rejected"
    assert [a.openshock_name for a in await storage.accounts.list_all()] == ["Alice"]


async def test_unlink_removes_everything_in_every_guild(storage: Storage) -> None:
    account_id = await _link(storage)
    await _share(storage, account_id, guild=GUILD)
    await _share(storage, account_id, guild=OTHER_GUILD)
    await storage.shares.block(GUILD, WEARER, MEMBER)
    await storage.shares.pause_wearer(GUILD, WEARER)
    await storage.events.store(account_id, "log", "{}", [(GUILD, FeedKind.CONTROLS, 5)])
    summary = await storage.accounts.unlink(WEARER)
    assert summary is not None
    assert (summary.shares, summary.blocks, summary.pending_events) == (2, 1, 1)
    assert await storage.accounts.by_discord_user(WEARER) is None
    assert await storage.shares.in_guild(GUILD) == []
    assert not await storage.shares.is_blocked(GUILD, WEARER, MEMBER)
    assert not await storage.shares.is_wearer_paused(GUILD, WEARER)
    assert await storage.events.pending() == []
    assert await storage.accounts.unlink(WEARER) is None


async def test_share_update_unshare_and_lookups(storage: Storage) -> None:
    account_id = await _link(storage)
    share = await _share(storage, account_id)
    assert (share.max_intensity, share.allow_sound, share.paused) == (25, False, False)
    updated = await storage.shares.share(
        guild_id=GUILD,
        account_id=account_id,
        wearer_id=WEARER,
        shocker_id="s-1",
        shocker_name="Collar",
        max_intensity=40,
        max_duration_ms=5000,
        allow_shock=False,
        allow_vibrate=True,
        allow_sound=True,
    )
    assert updated.id == share.id and updated.max_intensity == 40
    assert [s.guild_id for s in await storage.shares.of_shocker("s-1")] == [GUILD]
    assert len(await storage.shares.of_account(account_id)) == 1
    assert (await storage.shares.get(GUILD, "s-1")) == updated
    assert await storage.shares.get(OTHER_GUILD, "s-1") is None
    assert await storage.shares.unshare(GUILD, WEARER, "s-1")
    assert not await storage.shares.unshare(GUILD, WEARER, "s-1")


async def test_another_wearer_cannot_take_over_a_share(storage: Storage) -> None:
    account_id = await _link(storage)
    await _share(storage, account_id)
    other = await _link(storage, discord_user_id=30, os_id="os-3")
    with pytest.raises(ShockerSharedByOther):
        await storage.shares.share(
            guild_id=GUILD,
            account_id=other,
            wearer_id=30,
            shocker_id="s-1",
            shocker_name="Collar",
            max_intensity=25,
            max_duration_ms=3000,
            allow_shock=True,
            allow_vibrate=True,
            allow_sound=True,
        )


async def test_pause_resume_and_panic(storage: Storage) -> None:
    account_id = await _link(storage)
    await _share(storage, account_id, "s-1", GUILD)
    await _share(storage, account_id, "s-2", OTHER_GUILD)
    assert await storage.shares.set_paused(GUILD, WEARER, "s-1", True)
    assert (await storage.shares.get(GUILD, "s-1")).paused  # type: ignore[union-attr]
    await storage.shares.pause_wearer(GUILD, WEARER)
    assert await storage.shares.is_wearer_paused(GUILD, WEARER)
    assert await storage.shares.resume_wearer(GUILD, WEARER) == 2
    assert not await storage.shares.is_wearer_paused(GUILD, WEARER)
    assert not (await storage.shares.get(GUILD, "s-1")).paused  # type: ignore[union-attr]
    assert (await storage.shares.panic(WEARER)).own_shares == 2
    assert all(share.paused for share in await storage.shares.of_wearer(WEARER))
    assert await storage.shares.is_wearer_paused(OTHER_GUILD, WEARER)
    assert len(await storage.shares.of_wearer(WEARER, GUILD)) == 1


async def test_the_owner_rules_shares_of_their_shocker_on_their_own_server_only(
    storage: Storage,
) -> None:
    """Bob's share of Alice's collar is Alice's to pause and withdraw; the same shocker id
    claimed by an account on another server (OpenShock ids mean something on their server
    only) gives that account nothing, and its owner pauses do not reach Bob's share."""
    alice = Owner("os-alice", "https://api.openshock.app")
    bob_account = await _link(storage, discord_user_id=MEMBER, os_id="os-bob")
    await storage.shares.share(
        guild_id=GUILD,
        account_id=bob_account,
        wearer_id=MEMBER,
        shocker_id="collar",
        shocker_name="Collar",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        owner_openshock_id="os-alice",
    )
    await storage.shares.share(  # an older share, with no owner recorded
        guild_id=GUILD,
        account_id=bob_account,
        wearer_id=MEMBER,
        shocker_id="leg",
        shocker_name="Leg",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
    )
    owned = await storage.shares.ruled_in(GUILD, WEARER, alice)
    assert [s.shocker_id for s in owned] == ["collar"]
    owned = await storage.shares.ruled_in(GUILD, WEARER, alice, own=["leg"])
    assert [s.shocker_id for s in owned] == ["collar", "leg"]  # the live list knows the leg
    elsewhere = Owner("os-alice", "https://evil.example")
    assert await storage.shares.ruled_in(GUILD, WEARER, elsewhere, own=["collar", "leg"]) == []

    generation = storage.restrictions.value
    await storage.shares.pause_as_owner(GUILD, elsewhere, ["collar"])
    context = await storage.shares.control_context(GUILD, "collar", WEARER)
    assert context is not None and not context.paused
    await storage.shares.pause_as_owner(GUILD, alice, ["collar"])
    assert storage.restrictions.value > generation
    context = await storage.shares.control_context(GUILD, "collar", WEARER)
    assert context is not None and context.paused
    assert await storage.shares.owner_paused_in(GUILD) == {"collar"}
    # Bob's resume does not lift it; a withdraw and a share again keep it.
    await storage.shares.resume_wearer(GUILD, MEMBER)
    assert await storage.shares.withdraw(GUILD, "collar") is not None
    assert await storage.shares.get(GUILD, "collar") is None
    assert await storage.shares.resume_as_owner(GUILD, alice, "collar") == 1
    assert await storage.shares.owner_paused_in(GUILD) == set()


async def test_panic_pauses_the_owners_shockers_in_every_guild_and_records_openshock_pauses(
    storage: Storage,
) -> None:
    alice = Owner("os-1", "https://api.openshock.app")
    account = await _link(storage)  # Alice, os-1
    bob_account = await _link(storage, discord_user_id=MEMBER, os_id="os-bob")
    for guild in (GUILD, OTHER_GUILD):
        await storage.shares.share(
            guild_id=guild,
            account_id=bob_account,
            wearer_id=MEMBER,
            shocker_id="collar",
            shocker_name="Collar",
            max_intensity=25,
            max_duration_ms=3000,
            allow_shock=True,
            allow_vibrate=True,
            allow_sound=True,
            owner_openshock_id="os-1",
        )
    await _share(storage, account, "leg", GUILD)
    pauses = await storage.shares.panic(WEARER, alice, own=["leg", "arm"])
    assert pauses.own_shares == 1
    assert sorted((s.guild_id, s.shocker_id) for s in pauses.others_shares) == [
        (GUILD, "collar"),
        (OTHER_GUILD, "collar"),
    ]
    assert pauses.owned_shocker_ids == {"collar", "leg", "arm"}
    for guild in (GUILD, OTHER_GUILD):
        context = await storage.shares.control_context(guild, "collar", MEMBER)
        assert context is not None and context.paused
        assert await storage.shares.is_owner_panicked(alice, "collar")
    assert await storage.shares.lift_owner_panic(alice) == 3
    context = await storage.shares.control_context(GUILD, "collar", MEMBER)
    assert context is not None and not context.paused

    await storage.shares.record_openshock_pauses(alice, {"leg": "Leg", "arm": "Arm"})
    assert [p.shocker_name for p in await storage.shares.openshock_pauses(alice)] == [
        "Arm",
        "Leg",
    ]
    await storage.shares.forget_openshock_pause(alice, "arm")
    assert [p.shocker_id for p in await storage.shares.openshock_pauses(alice)] == ["leg"]
    assert await storage.shares.openshock_pauses(Owner("os-1", "https://evil.example")) == []


async def test_blocks(storage: Storage) -> None:
    assert await storage.shares.block(GUILD, WEARER, MEMBER)
    assert not await storage.shares.block(GUILD, WEARER, MEMBER)
    assert await storage.shares.is_blocked(GUILD, WEARER, MEMBER)
    assert await storage.shares.unblock(GUILD, WEARER, MEMBER)
    assert not await storage.shares.unblock(GUILD, WEARER, MEMBER)


async def test_grants_replace_revoke_and_select_by_member(storage: Storage) -> None:
    await _share(storage, await _link(storage), "s-1")
    common = dict(
        guild_id=GUILD,
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=1,
    )
    await storage.grants.grant(
        target_kind=GrantTarget.ROLE, target_id=GUILD, shocker_id=None, **common
    )
    await storage.grants.grant(
        target_kind=GrantTarget.ROLE, target_id=5, shocker_id="s-1", **common
    )
    await storage.grants.grant(
        target_kind=GrantTarget.MEMBER, target_id=MEMBER, shocker_id=None, **common
    )
    replaced = await storage.grants.grant(
        target_kind=GrantTarget.MEMBER,
        target_id=MEMBER,
        shocker_id=None,
        **{**common, "max_intensity": 10},
    )
    assert replaced.max_intensity == 10
    assert len(await storage.grants.in_guild(GUILD)) == 3
    everyone_only = await storage.grants.for_member(GUILD, 999, [])
    assert [(g.target_kind, g.target_id) for g in everyone_only] == [(GrantTarget.ROLE, GUILD)]
    assert len(await storage.grants.for_member(GUILD, MEMBER, [5])) == 3
    assert await storage.grants.revoke(GUILD, GrantTarget.ROLE, 5, "s-1")
    assert not await storage.grants.revoke(GUILD, GrantTarget.ROLE, 5, "s-1")
    assert not await storage.grants.revoke(GUILD, GrantTarget.ROLE, GUILD, "s-1")


async def test_guild_limits(storage: Storage) -> None:
    assert (await storage.guild_settings.get(GUILD)).max_intensity is None
    settings = await storage.guild_settings.set_limits(GUILD, 50, 2000)
    assert (settings.max_intensity, settings.max_duration_ms) == (50, 2000)
    assert (await storage.guild_settings.set_limits(GUILD, None, 2000)).max_intensity is None


async def test_cooldowns_are_stored(storage: Storage) -> None:
    assert await storage.cooldowns.last_control(GUILD, MEMBER, "s-1") is None
    await storage.cooldowns.record(GUILD, MEMBER, "s-1", 100.0)
    await storage.cooldowns.record(GUILD, MEMBER, "s-1", 200.0)
    assert await storage.cooldowns.last_control(GUILD, MEMBER, "s-1") == 200.0


async def test_audit_record_outcome_and_filters(storage: Storage) -> None:
    base = dict(guild_id=GUILD, shocker_id="s-1", control_type=1, requested_intensity=30)
    first = await storage.audit.record(
        NewAuditEntry(member_id=MEMBER, wearer_id=WEARER, outcome=AuditOutcome.SENT, **base)
    )
    await storage.audit.record(
        NewAuditEntry(member_id=77, wearer_id=78, outcome=AuditOutcome.REFUSED, reason="no", **base)
    )
    await storage.audit.set_outcome(first, AuditOutcome.CONFIRMED, None)
    entry = await storage.audit.get(first)
    assert entry is not None and entry.outcome is AuditOutcome.CONFIRMED
    assert len(await storage.audit.recent(GUILD)) == 2
    assert [e.id for e in await storage.audit.recent(GUILD, involving=WEARER)] == [first]
    assert [e.member_id for e in await storage.audit.recent(GUILD, member_id=77)] == [77]
    assert await storage.audit.recent(GUILD, shocker_id="other") == []
    assert await storage.audit.recent(OTHER_GUILD) == []


async def test_audit_record_with_changes_stores_them_in_place_of_the_fields(
    storage: Storage,
) -> None:
    entry = NewAuditEntry(
        guild_id=GUILD,
        member_id=MEMBER,
        shocker_id="s-1",
        control_type=1,
        requested_intensity=30,
        outcome=AuditOutcome.REFUSED,
        reason="kept",
    )
    changed = await storage.audit.record(
        entry, effective_intensity=20, outcome=AuditOutcome.SENT, reason=None
    )
    stored = await storage.audit.get(changed)
    assert stored is not None
    assert (stored.effective_intensity, stored.outcome, stored.reason) == (
        20,
        AuditOutcome.SENT,
        None,
    )
    assert stored.requested_intensity == 30 and stored.member_id == MEMBER
    as_is = await storage.audit.get(await storage.audit.record(entry))
    assert as_is is not None and as_is.reason == "kept" and as_is.effective_intensity is None
    with pytest.raises(TypeError, match="effective"):
        await storage.audit.record(entry, effective=3)
    assert len(await storage.audit.recent(GUILD)) == 2  # nothing stored for the typo


async def test_feeds_set_remove_and_disable(storage: Storage) -> None:
    feed = await storage.feeds.set(GUILD, FeedKind.CONTROLS, 5)
    assert feed.enabled and feed.channel_id == 5
    await storage.feeds.set(OTHER_GUILD, FeedKind.CONTROLS, 6)
    assert [f.guild_id for f in await storage.feeds.enabled_in(FeedKind.CONTROLS, [GUILD])] == [
        GUILD
    ]
    disabled = await storage.feeds.disable_channel(5, "missing access")
    assert [f.guild_id for f in disabled] == [GUILD]
    assert await storage.feeds.disable_channel(5, "again") == []
    assert await storage.feeds.enabled_in(FeedKind.CONTROLS, [GUILD]) == []
    assert (await storage.feeds.set(GUILD, FeedKind.CONTROLS, 7)).enabled
    assert len(await storage.feeds.in_guild(GUILD)) == 1
    assert await storage.feeds.remove(GUILD, FeedKind.CONTROLS)
    assert await storage.feeds.get(GUILD, FeedKind.CONTROLS) is None


async def test_events_are_delivered_once_and_pruned(storage: Storage) -> None:
    account_id = await _link(storage)
    event_id = await storage.events.store(
        account_id,
        "log",
        '{"x": 1}',
        [(GUILD, FeedKind.CONTROLS, 5), (OTHER_GUILD, FeedKind.CONTROLS, 6)],
    )
    pending = await storage.events.pending()
    assert [(d.channel_id, e.id, e.payload) for d, e in pending] == [
        (5, event_id, '{"x": 1}'),
        (6, event_id, '{"x": 1}'),
    ]
    await storage.events.set_nonce([pending[0][0].id], "nonce-1")
    await storage.events.mark_posted([pending[0][0].id], message_id=42)
    assert await storage.events.drop_channel(6) == 1
    assert await storage.events.pending() == []
    assert await storage.events.prune(older_than=time.time() + 1) == 1


async def test_device_states(storage: Storage) -> None:
    account_id = await _link(storage)
    await storage.device_states.save(
        account_id, "d-1", online=True, firmware_version="1.0", device_name="Hub"
    )
    await storage.device_states.save(
        account_id, "d-1", online=False, firmware_version="1.1", device_name=None
    )
    state = (await storage.device_states.of_account(account_id))["d-1"]
    assert (state.online, state.firmware_version, state.device_name) == (False, "1.1", "Hub")


async def test_a_different_key_is_refused_at_open(tmp_path: Path, cipher: TokenCipher) -> None:
    from cryptography.fernet import Fernet

    from bot.crypto import WrongKeyError

    first = await Storage.open(tmp_path / "bot.db", cipher)
    await first.close()
    with pytest.raises(WrongKeyError):
        await Storage.open(tmp_path / "bot.db", TokenCipher(Fernet.generate_key()))
    reopened = await Storage.open(tmp_path / "bot.db", cipher)
    await reopened.close()


async def test_control_context_reads_everything_a_decision_needs(storage: Storage) -> None:
    account_id = await _link(storage)
    assert await storage.shares.control_context(GUILD, "s-1", MEMBER) is None
    await _share(storage, account_id)
    context = await storage.shares.control_context(GUILD, "s-1", MEMBER)
    assert context is not None
    assert (context.wearer_paused, context.blocked, context.last_control_at) == (False, False, None)
    assert (context.guild_max_intensity, context.guild_max_duration_ms) == (None, None)
    await storage.shares.pause_wearer(GUILD, WEARER)
    await storage.shares.block(GUILD, WEARER, MEMBER)
    await storage.guild_settings.set_limits(GUILD, 40, 2000)
    await storage.cooldowns.record(GUILD, MEMBER, "s-1", 123.0)
    context = await storage.shares.control_context(GUILD, "s-1", MEMBER)
    assert context is not None
    assert (context.wearer_paused, context.blocked, context.last_control_at) == (True, True, 123.0)
    assert (context.guild_max_intensity, context.guild_max_duration_ms) == (40, 2000)
    other = await storage.shares.control_context(GUILD, "s-1", 999)
    assert other is not None and not other.blocked and other.last_control_at is None


async def test_decision_inputs_read_the_context_and_the_members_grants_in_one(
    storage: Storage,
) -> None:
    """The front door's one read: the same context as `control_context` and the same grants
    as `grants.for_member`, field for field."""
    account_id = await _link(storage)
    assert await storage.shares.decision_inputs(GUILD, "s-1", MEMBER, [5]) == (None, ())
    await _share(storage, account_id)
    context, grants = await storage.shares.decision_inputs(GUILD, "s-1", MEMBER, [5])
    assert context == await storage.shares.control_context(GUILD, "s-1", MEMBER)
    assert grants == ()
    common = dict(
        guild_id=GUILD,
        max_intensity=30,
        max_duration_ms=1500,
        cooldown_ms=2000,
        allow_shock=False,
        allow_vibrate=True,
        allow_sound=False,
        created_by=1,
    )
    await storage.grants.grant(
        target_kind=GrantTarget.ROLE, target_id=GUILD, shocker_id=None, **common
    )
    await storage.grants.grant(
        target_kind=GrantTarget.ROLE,
        target_id=5,
        shocker_id="s-1",
        expires_at=time.time() + 3600.123456,
        **common,
    )
    await storage.grants.grant(target_kind=GrantTarget.ROLE, target_id=6, shocker_id=None, **common)
    await storage.grants.grant(
        target_kind=GrantTarget.MEMBER, target_id=MEMBER, shocker_id=None, **common
    )
    await storage.grants.grant(
        target_kind=GrantTarget.MEMBER, target_id=999, shocker_id=None, **common
    )
    await storage.shares.pause_wearer(GUILD, WEARER)
    await storage.cooldowns.record(GUILD, MEMBER, "s-1", 123.5)
    context, grants = await storage.shares.decision_inputs(GUILD, "s-1", MEMBER, [5])
    assert context == await storage.shares.control_context(GUILD, "s-1", MEMBER)
    assert context is not None and context.wearer_paused and context.last_control_at == 123.5
    expected = await storage.grants.for_member(GUILD, MEMBER, [5])
    assert len(expected) == 3
    assert sorted(grants, key=lambda g: g.id) == sorted(expected, key=lambda g: g.id)
    _, everyone_only = await storage.shares.decision_inputs(GUILD, "s-1", 42, [])
    assert [(g.target_kind, g.target_id) for g in everyone_only] == [(GrantTarget.ROLE, GUILD)]


async def test_withdrawing_a_share_removes_the_grants_that_named_its_shocker(
    storage: Storage,
) -> None:
    account_id = await _link(storage)
    await _share(storage, account_id, "s-1")
    await _share(storage, account_id, "s-2")
    common = dict(
        guild_id=GUILD,
        target_kind=GrantTarget.ROLE,
        target_id=GUILD,
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=1,
    )
    for shocker in ("s-1", "s-2", None):
        await storage.grants.grant(shocker_id=shocker, **common)  # type: ignore[arg-type]
    assert await storage.shares.unshare(GUILD, WEARER, "s-1")
    assert sorted(str(g.shocker_id) for g in await storage.grants.in_guild(GUILD)) == [
        "None",
        "s-2",
    ]
    await storage.accounts.unlink(WEARER)
    assert [g.shocker_id for g in await storage.grants.in_guild(GUILD)] == [None]


async def test_a_grant_for_a_shocker_unshared_meanwhile_is_refused_and_leaves_nothing(
    storage: Storage,
) -> None:
    # /permissions grant reads the share, then writes: an unshare in between must win.
    account_id = await _link(storage)
    await _share(storage, account_id, "s-1")
    read = await storage.shares.get(GUILD, "s-1")
    assert read is not None
    assert await storage.shares.unshare(GUILD, WEARER, "s-1")
    common = dict(
        guild_id=GUILD,
        target_kind=GrantTarget.ROLE,
        target_id=GUILD,
        shocker_id="s-1",
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=1,
    )
    with pytest.raises(ShockerNotShared):
        await storage.grants.grant(share=read, **common)  # type: ignore[arg-type]
    with pytest.raises(ShockerNotShared):
        await storage.grants.grant(**common)  # type: ignore[arg-type]
    assert await storage.grants.in_guild(GUILD) == []

    # Shared again: the new share starts without grants, and the old read still cannot grant.
    await _share(storage, account_id, "s-1")
    assert await storage.grants.in_guild(GUILD) == []
    with pytest.raises(ShockerNotShared):
        await storage.grants.grant(share=read, **common)  # type: ignore[arg-type]
    again = await storage.shares.get(GUILD, "s-1")
    granted = await storage.grants.grant(share=again, **common)  # type: ignore[arg-type]
    assert granted.shocker_id == "s-1"
