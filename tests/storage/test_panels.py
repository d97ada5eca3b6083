"""The panels repository against a real SQLite file: a panel is tied to the share it was posted
for, and closes for good."""

from __future__ import annotations

from bot.storage import Storage
from bot.storage.models import Share

GUILD = 111
WEARER = 10


async def _shared(storage: Storage, shocker: str = "s-1") -> Share:
    account = await storage.accounts.link(
        discord_user_id=WEARER,
        openshock_user_id="os-1",
        openshock_name="Alice",
        api_url="https://api.openshock.app",
        token="t" * 64,
    )
    return await storage.shares.share(
        guild_id=GUILD,
        account_id=account.id,
        wearer_id=WEARER,
        shocker_id=shocker,
        shocker_name="Collar",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=False,
    )


async def test_a_panel_reads_with_its_share_and_the_wearers_pause(storage: Storage) -> None:
    share = await _shared(storage)
    panel = await storage.panels.create(channel_id=5, share=share, reactions=True, created_by=9)
    await storage.panels.set_message(panel.id, 777)
    state = await storage.panels.state(panel.id)
    assert state is not None and state.share == share and not state.paused
    assert state.panel.shocker_name == "Collar" and state.panel.reactions
    await storage.shares.pause_wearer(GUILD, WEARER)
    by_message = await storage.panels.state_by_message(777)
    assert by_message is not None and by_message.paused
    assert [p.id for p in await storage.panels.open_matching(wearer_id=WEARER)] == [panel.id]
    assert [p.id for p in await storage.panels.open_of_account(share.account_id)] == [panel.id]


async def test_a_panel_outlives_its_share_and_a_new_share_is_not_its_share(
    storage: Storage,
) -> None:
    share = await _shared(storage)
    panel = await storage.panels.create(channel_id=5, share=share, reactions=False, created_by=9)
    await storage.shares.unshare(GUILD, WEARER, share.shocker_id)
    state = await storage.panels.state(panel.id)
    assert state is not None and state.share is None
    again = await storage.shares.share(
        guild_id=GUILD,
        account_id=share.account_id,
        wearer_id=WEARER,
        shocker_id=share.shocker_id,
        shocker_name="Collar",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
    )
    assert again.id == share.id  # SQLite reused the id: the creation time tells them apart
    state = await storage.panels.state(panel.id)
    assert state is not None and state.share is None
    assert await storage.panels.close(panel.id, "gone")
    assert not await storage.panels.close(panel.id, "again")
    closed = await storage.panels.get(panel.id)
    assert closed is not None and closed.closed and closed.closed_reason == "gone"


async def test_the_last_control_is_kept(storage: Storage) -> None:
    panel = await storage.panels.create(
        channel_id=5, share=await _shared(storage), reactions=False, created_by=9
    )
    await storage.panels.record_last(
        panel.id, member_id=20, summary="⚡ Shock 6 % · 1 s", outcome="confirmed", at=1.0
    )
    kept = await storage.panels.get(panel.id)
    assert kept is not None
    assert (kept.last_member_id, kept.last_summary, kept.last_outcome) == (
        20,
        "⚡ Shock 6 % · 1 s",
        "confirmed",
    )
    await storage.panels.delete(panel.id)
    assert await storage.panels.get(panel.id) is None
