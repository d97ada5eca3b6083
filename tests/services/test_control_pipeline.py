"""The control pipeline on its own: `ControlService.submit` against the fake OpenShock server and
a real SQLite file, with no Discord at all (as random mode, votes and approvals will call it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot.config import Settings
from bot.domain.controls import ControlKind
from bot.domain.decision import Allowed, Refused
from bot.domain.grants import GrantTarget
from bot.openshock.hub import HubConnection
from bot.openshock.manager import HubAccount, HubManager
from bot.services.control import (
    ControlOrder,
    ControlOutcome,
    ControlService,
    ControlTicket,
    Origin,
    Sender,
)
from bot.services.halts import Halt
from bot.storage import Storage, database
from bot.storage.models import Account, AuditOutcome
from tests.fakes.openshock_server import FakeOpenShockServer, FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import FAST_HUB

GUILD = 1111
ALICE = 2001  # the wearer
BOB = 2002  # a member


@dataclass
class Pipeline:
    server: FakeOpenShockServer
    storage: Storage
    hubs: HubManager
    control: ControlService
    alice_os: OpenShockUser
    account: Account
    hub: HubConnection
    collar: FakeShocker

    @property
    def collar_id(self) -> str:
        return str(self.collar.id)

    def order(self, member_id: int = BOB, **changes: Any) -> ControlOrder:
        order = ControlOrder(
            sender=Sender(member_id, frozenset(), "bob" if member_id == BOB else "alice"),
            guild_id=GUILD,
            shocker_id=self.collar_id,
            kind=ControlKind.SHOCK,
            intensity=10,
            duration_ms=1000,
        )
        return replace(order, **changes)

    async def grant_everyone(self, *, cooldown_ms: int | None = None) -> None:
        await self.storage.grants.grant(
            guild_id=GUILD,
            target_kind=GrantTarget.ROLE,
            target_id=GUILD,
            shocker_id=None,
            max_intensity=None,
            max_duration_ms=None,
            cooldown_ms=cooldown_ms,
            allow_shock=True,
            allow_vibrate=True,
            allow_sound=True,
            created_by=ALICE,
        )

    def control_frames(self) -> list[Any]:
        return [i for i in self.server.invocations if i.target == "ControlV2"]


async def open_pipeline(
    tmp_path: Path, server: FakeOpenShockServer, *, confirm_timeout: float = 1.0
) -> AsyncIterator[Pipeline]:
    key = Fernet.generate_key().decode()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        discord_token="test-token",
        data_dir=tmp_path,
        secret_key=key,
        openshock_api_url=server.base_url,
    )
    from bot.crypto import TokenCipher

    storage = await Storage.open(settings.database_path, TokenCipher(key.encode()))
    hubs = HubManager(timings=FAST_HUB)
    control = ControlService(storage, hubs, settings, confirm_timeout=confirm_timeout)
    alice_os = server.add_user("Alice")
    collar = server.add_shocker(server.add_device(alice_os, "Hub"), "Collar")
    account = await storage.accounts.link(
        discord_user_id=ALICE,
        openshock_user_id=str(alice_os.id),
        openshock_name=alice_os.name,
        api_url=server.base_url,
        token=alice_os.token,
    )
    hub = await hubs.start(HubAccount(account.id, server.base_url, alice_os.token))
    await hub.wait_connected(timeout=5)
    if hub.shockers is None:
        await hub.refresh_shockers()
    await storage.shares.share(
        guild_id=GUILD,
        account_id=account.id,
        wearer_id=ALICE,
        shocker_id=str(collar.id),
        shocker_name="Collar",
        max_intensity=25,
        max_duration_ms=3000,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
    )
    try:
        yield Pipeline(server, storage, hubs, control, alice_os, account, hub, collar)
    finally:
        await control.close()
        await hubs.stop_all()
        await storage.close()


@pytest.fixture
async def pipeline(
    tmp_path: Path, openshock_server: FakeOpenShockServer
) -> AsyncIterator[Pipeline]:
    async for p in open_pipeline(tmp_path, openshock_server):
        yield p


async def test_an_allowed_control_is_decided_at_once_then_confirmed_and_audited(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    await p.grant_everyone(cooldown_ms=60_000)
    ticket = await p.control.submit(p.order(intensity=80, origin=Origin.RANDOM))
    assert not ticket.refused
    assert isinstance(ticket.decision, Allowed)
    assert ticket.decision.intensity == 25  # the wearer's cap
    assert ticket.decision.capped_notes == ("capped at 25 % (wearer's limit)",)
    assert ticket.order.origin is Origin.RANDOM
    report = await ticket.outcome()
    assert report.outcome is ControlOutcome.CONFIRMED
    (frame,) = p.control_frames()
    assert frame.arguments[0][0]["intensity"] == 25
    assert frame.arguments[1] == "bob (Discord)"
    assert report.audit_id is not None
    entry = await p.storage.audit.get(report.audit_id)
    assert entry is not None and entry.outcome is AuditOutcome.CONFIRMED
    assert entry.origin == "random"
    assert await p.storage.cooldowns.last_control(GUILD, BOB, p.collar_id)


async def test_a_refusal_is_final_at_once_audited_and_sends_nothing(pipeline: Pipeline) -> None:
    p = pipeline
    ticket = await p.control.submit(p.order())  # no grant
    assert ticket.refused and isinstance(ticket.decision, Refused)
    assert ticket.report.outcome is ControlOutcome.REFUSED
    assert ticket.report.reason == "You do not have permission to control this shocker here."
    assert await ticket.outcome() is ticket.report
    assert ticket.report.audit_id is not None
    entry = await p.storage.audit.get(ticket.report.audit_id)
    assert entry is not None and entry.outcome is AuditOutcome.REFUSED
    assert p.control_frames() == []


async def test_a_shocker_not_shared_here_is_refused_without_an_audit_row(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    ticket = await p.control.submit(p.order(shocker_id="00000000-0000-0000-0000-000000000001"))
    assert ticket.refused and ticket.share is None
    assert ticket.report.audit_id is None
    assert await p.storage.audit.recent(GUILD) == []


async def test_the_wearers_own_control_needs_no_grant(pipeline: Pipeline) -> None:
    p = pipeline
    ticket = await p.control.submit(p.order(ALICE, kind=ControlKind.VIBRATE))
    assert (await ticket.outcome()).outcome is ControlOutcome.CONFIRMED
    (frame,) = p.control_frames()
    assert frame.arguments[0][0]["type"] == ControlKind.VIBRATE


async def test_reports_move_from_sending_to_confirming_to_final(pipeline: Pipeline) -> None:
    p = pipeline
    await p.grant_everyone()
    ticket = await p.control.submit(p.order())
    first = ticket.report
    assert first.outcome is ControlOutcome.SENDING
    seen = [first.outcome]
    report = first
    while not report.outcome.final:
        report = await ticket.changed(report)
        seen.append(report.outcome)
    assert seen == [ControlOutcome.SENDING, ControlOutcome.CONFIRMING, ControlOutcome.CONFIRMED]
    assert await ticket.settled(within=0) is report


async def test_waiting_on_a_ticket_gives_the_latest_report_in_time_and_the_final_one_later(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    await p.grant_everyone()
    p.server.log_delay = 0.3  # the Log comes well after the hub's acknowledgement
    ticket = await p.control.submit(p.order())
    # Not final yet: a wait of 0 takes a turn of the loop (the send starts) and says SENDING.
    assert (await ticket.settled(within=0)).outcome is ControlOutcome.SENDING
    confirming = await ticket.settled(within=0.15)
    assert confirming.outcome is ControlOutcome.CONFIRMING  # the wait ended, the Log had not come
    waiters = [asyncio.create_task(ticket.outcome()) for _ in range(3)]
    final = await ticket.settled(within=5)
    assert final.outcome is ControlOutcome.CONFIRMED
    assert [await waiter for waiter in waiters] == [final] * 3
    assert ticket._on_final == [] and ticket._on_change == []  # nobody left waiting


async def test_five_quick_controls_pass_a_cooldown_once(pipeline: Pipeline) -> None:
    p = pipeline
    await p.grant_everyone(cooldown_ms=600_000)
    tickets = await asyncio.gather(*(p.control.submit(p.order()) for _ in range(5)))
    allowed = [t for t in tickets if not t.refused]
    assert len(allowed) == 1
    assert all("cooling down" in (t.report.reason or "") for t in tickets if t.refused)
    assert (await allowed[0].outcome()).outcome is ControlOutcome.CONFIRMED
    assert len(p.control_frames()) == 1


async def test_a_pause_written_after_the_decision_refuses_at_the_redecision(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    await p.grant_everyone()
    original = p.control.decide
    calls = 0

    async def decide_then_pause(order: ControlOrder) -> Any:
        nonlocal calls
        calls += 1
        prepared = await original(order)
        if calls == 1:
            await p.storage.shares.set_paused(GUILD, ALICE, p.collar_id, True)
        return prepared

    p.control.decide = decide_then_pause  # type: ignore[method-assign]
    ticket = await p.control.submit(p.order())
    assert not ticket.refused  # allowed by the first decision...
    report = await ticket.outcome()
    assert report.outcome is ControlOutcome.REFUSED  # ...refused by the second
    assert report.reason is not None and "paused" in report.reason
    assert calls == 2
    assert p.control_frames() == []
    (entry,) = await p.storage.audit.recent(GUILD)
    assert entry.outcome is AuditOutcome.REFUSED


async def test_a_hub_gone_before_the_frame_fails_and_gives_the_cooldown_back(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    await p.grant_everyone(cooldown_ms=600_000)
    original = p.control.decide

    async def decide_then_drop(order: ControlOrder) -> Any:
        prepared = await original(order)
        await p.hubs.stop(p.account.id)
        return prepared

    p.control.decide = decide_then_drop  # type: ignore[method-assign]
    ticket = await p.control.submit(p.order())
    p.control.decide = original  # type: ignore[method-assign]
    report = await ticket.outcome()
    assert report.outcome is ControlOutcome.FAILED
    assert report.reason is not None and "connection is down" in report.reason
    assert await p.storage.cooldowns.last_control(GUILD, BOB, p.collar_id) is None
    hub = await p.hubs.start(HubAccount(p.account.id, p.server.base_url, p.alice_os.token))
    await hub.wait_connected(timeout=5)
    await hub.refresh_shockers()
    again = await p.control.submit(p.order())
    assert (await again.outcome()).outcome is ControlOutcome.CONFIRMED


async def test_an_unacknowledged_frame_is_uncertain_and_keeps_the_cooldown(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    await p.grant_everyone(cooldown_ms=600_000)
    p.server.unanswered_methods.add("ControlV2")
    p.control.send_timeout = 0.2
    report = await (await p.control.submit(p.order())).outcome()
    assert report.outcome is ControlOutcome.UNCERTAIN
    assert report.reason is not None and "may or may not have been delivered" in report.reason
    entry = await p.storage.audit.get(report.audit_id or 0)
    assert entry is not None and entry.outcome is AuditOutcome.NOT_CONFIRMED
    assert (await p.control.submit(p.order())).refused  # cooling down


async def test_a_log_before_the_acknowledgement_is_audited_in_the_one_insert(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenShock's Log came in before the hub acknowledged the frame: one audit row, written
    confirmed, and no update of it afterwards."""
    p = pipeline
    await p.grant_everyone()
    updates: list[AuditOutcome] = []
    set_outcome = p.storage.audit.set_outcome

    async def counted(entry_id: int, outcome: AuditOutcome, reason: str | None) -> None:
        updates.append(outcome)
        await set_outcome(entry_id, outcome, reason)

    monkeypatch.setattr(p.storage.audit, "set_outcome", counted)
    report = await (await p.control.submit(p.order())).outcome()
    assert report.outcome is ControlOutcome.CONFIRMED
    (entry,) = await p.storage.audit.recent(GUILD)
    assert entry.id == report.audit_id and entry.outcome is AuditOutcome.CONFIRMED
    assert updates == []


async def test_a_log_after_the_acknowledgement_updates_the_sent_row(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline
    await p.grant_everyone()
    p.server.log_delay = 0.2  # the Log comes after the completion
    updates: list[AuditOutcome] = []
    set_outcome = p.storage.audit.set_outcome

    async def counted(entry_id: int, outcome: AuditOutcome, reason: str | None) -> None:
        updates.append(outcome)
        await set_outcome(entry_id, outcome, reason)

    monkeypatch.setattr(p.storage.audit, "set_outcome", counted)
    report = await (await p.control.submit(p.order())).outcome()
    assert report.outcome is ControlOutcome.CONFIRMED
    (entry,) = await p.storage.audit.recent(GUILD)
    assert entry.outcome is AuditOutcome.CONFIRMED
    assert updates == [AuditOutcome.CONFIRMED]  # the row was written sent, then updated


async def test_a_silently_dropped_control_ends_not_confirmed(pipeline: Pipeline) -> None:
    p = pipeline
    await p.grant_everyone()
    p.collar.paused = True  # paused on OpenShock behind the bot's back: no Log will come
    report = await (await p.control.submit(p.order())).outcome()
    assert report.outcome is ControlOutcome.NOT_CONFIRMED
    assert report.reason == "no Log event from OpenShock in time"
    entry = await p.storage.audit.get(report.audit_id or 0)
    assert entry is not None and entry.outcome is AuditOutcome.NOT_CONFIRMED


async def test_one_log_confirms_one_control(pipeline: Pipeline) -> None:
    """Two controls in flight on one shocker, the second dropped silently by OpenShock: the
    Log of the first confirms the first only, and the second ends not confirmed."""
    p = pipeline
    await p.grant_everyone()
    p.server.log_delay = 0.2  # both are sent before the first one's Log comes
    first = await p.control.submit(p.order())
    assert (await first.changed(first.report)).outcome is ControlOutcome.CONFIRMING  # sent
    p.collar.paused = True  # paused on OpenShock behind the bot's back: no Log for the second
    second = await p.control.submit(p.order(intensity=20))
    assert (await first.outcome()).outcome is ControlOutcome.CONFIRMED
    dropped = await second.outcome()
    assert dropped.outcome is ControlOutcome.NOT_CONFIRMED
    assert dropped.reason == "no Log event from OpenShock in time"
    assert len(p.server.executed_controls) == 1


def drop_logs_of(p: Pipeline, monkeypatch: pytest.MonkeyPatch, intensity: int) -> None:
    """OpenShock drops the control of that intensity silently (no Log); the others go on."""
    publish = p.server._publish_logs

    async def publish_others(connection: Any, accepted: list[Any], custom_name: Any) -> None:
        kept = [c for c in accepted if c.intensity != intensity]
        if kept:
            await publish(connection, kept, custom_name)

    monkeypatch.setattr(p.server, "_publish_logs", publish_others)


async def test_a_dropped_control_is_not_confirmed_by_a_later_ones_log(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The older control of two in flight is the one dropped: the newer one's Log confirms the
    newer one (its own type and values), and the older one ends not confirmed."""
    p = pipeline
    await p.grant_everyone()
    drop_logs_of(p, monkeypatch, intensity=10)
    dropped = await p.control.submit(p.order(intensity=10))
    assert (await dropped.changed(dropped.report)).outcome is ControlOutcome.CONFIRMING
    delivered = await p.control.submit(p.order(intensity=20))
    assert (await delivered.outcome()).outcome is ControlOutcome.CONFIRMED
    assert (await dropped.outcome()).outcome is ControlOutcome.NOT_CONFIRMED


async def test_a_stops_log_does_not_confirm_the_shock_before_it(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline
    await p.grant_everyone()
    drop_logs_of(p, monkeypatch, intensity=10)
    shock = await p.control.submit(p.order(intensity=10))
    assert (await shock.changed(shock.report)).outcome is ControlOutcome.CONFIRMING
    stop = await p.control.submit(p.order(kind=ControlKind.STOP))
    assert (await stop.outcome()).outcome is ControlOutcome.CONFIRMED
    assert (await shock.outcome()).outcome is ControlOutcome.NOT_CONFIRMED


async def test_closing_the_service_still_ends_every_ticket(
    tmp_path: Path, openshock_server: FakeOpenShockServer
) -> None:
    async for p in open_pipeline(tmp_path, openshock_server, confirm_timeout=60):
        await p.grant_everyone()
        p.collar.paused = True  # no Log: the ticket waits for its confirmation
        ticket: ControlTicket = await p.control.submit(p.order())
        report = await ticket.changed(ticket.report)
        assert report.outcome is ControlOutcome.CONFIRMING
        await p.control.close()
        assert (await ticket.outcome()).outcome is ControlOutcome.NOT_CONFIRMED


async def test_panic_pauses_first_then_stops(pipeline: Pipeline) -> None:
    p = pipeline
    result = await p.control.panic(wearer_id=ALICE, account=p.account, display_name="alice")
    assert result.paused == 1 and result.problem is None
    (frame,) = p.control_frames()
    assert frame.arguments[0][0]["type"] == ControlKind.STOP
    ticket = await p.control.submit(p.order(ALICE))
    assert ticket.refused and "paused" in (ticket.report.reason or "")


@pytest.mark.parametrize("halt", ["pause", "panic"])
async def test_a_pause_or_panic_while_audit_rows_wait_for_their_commit_wins(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, halt: str
) -> None:
    """Grouped writes (audit rows, cooldowns) wait for company before they commit: a pause or
    a panic written meanwhile commits them with itself and refuses the next control at once;
    nothing but Stops goes out after it."""
    p = pipeline
    monkeypatch.setattr(database, "GROUP_WINDOW", 60.0)  # the group stays open throughout
    await p.grant_everyone()
    first = await p.control.submit(p.order())
    assert (await first.outcome()).outcome is ControlOutcome.CONFIRMED
    assert p.storage.db._group is not None  # its audit row and cooldown are not committed yet
    if halt == "pause":
        await p.storage.shares.pause_wearer(GUILD, ALICE)
    else:
        await p.control.panic(wearer_id=ALICE, account=p.account, display_name="alice")
    assert p.storage.db._group is None
    refused = await p.control.submit(p.order(intensity=20))
    assert refused.refused and "paused" in (refused.report.reason or "")
    if halt == "pause":  # a Stop passes a pause (a panic sent its own Stops)
        stop = await p.control.submit(p.order(kind=ControlKind.STOP))
        assert (await stop.outcome()).outcome is ControlOutcome.CONFIRMED
    first_sent, *after = p.server.executed_controls
    assert first_sent.intensity == 10  # the first, before the halt
    assert after and all(c.type == ControlKind.STOP for c in after)
    outcomes = [e.outcome for e in await p.storage.audit.recent(GUILD)]
    assert AuditOutcome.CONFIRMED in outcomes and AuditOutcome.REFUSED in outcomes


async def test_an_allowed_stop_and_a_panic_announce_a_halt_before_their_frames(
    pipeline: Pipeline,
) -> None:
    """Pending controls (approvals, votes, random mode) end before the Stop reaches the hub."""
    p = pipeline
    heard: list[tuple[Halt, int]] = []
    p.control.halts.subscribe(lambda halt: heard.append((halt, len(p.control_frames()))))
    refused = await p.control.submit(p.order(kind=ControlKind.STOP))  # Bob has no grant
    assert refused.refused and heard == []
    stop = await p.control.submit(p.order(ALICE, kind=ControlKind.STOP))
    assert (await stop.outcome()).outcome is ControlOutcome.CONFIRMED
    assert heard == [(Halt("stop", shocker_id=p.collar_id), 0)]
    await p.control.panic(wearer_id=ALICE, account=p.account, display_name="alice")
    assert heard[1] == (Halt("panic", wearer_id=ALICE), 1)
    assert len(p.control_frames()) == 2


async def test_a_control_no_longer_wanted_at_the_frame_sends_nothing_and_keeps_no_cooldown(
    pipeline: Pipeline,
) -> None:
    """A control that waited to fire (random mode, an approval, a vote) carries a guard; a Stop
    announced between its decision and its frame ends it: nothing goes out."""
    p = pipeline
    await p.grant_everyone(cooldown_ms=60_000)
    halted: list[Halt] = []
    p.control.halts.subscribe(halted.append)
    ticket = await p.control.submit(p.order(still_wanted=lambda: not halted))
    assert isinstance(ticket.decision, Allowed)  # decided; its frame is not written yet
    # What an allowed Stop announces before its own frame (no await since the submit).
    p.control.halts.announce(Halt("stop", shocker_id=p.collar_id))
    report = await ticket.outcome()
    assert report.outcome is ControlOutcome.REFUSED
    assert report.reason is not None and "called off" in report.reason
    assert p.control_frames() == []
    assert report.audit_id is not None
    entry = await p.storage.audit.get(report.audit_id)
    assert entry is not None and entry.outcome is AuditOutcome.REFUSED
    # Nothing went out, so the member's cooldown was given back.
    again = await p.control.submit(p.order())
    assert isinstance(again.decision, Allowed)
    await again.outcome()


async def test_a_control_still_wanted_is_sent(pipeline: Pipeline) -> None:
    p = pipeline
    await p.grant_everyone()
    ticket = await p.control.submit(p.order(still_wanted=lambda: True))
    assert (await ticket.outcome()).outcome is ControlOutcome.CONFIRMED
    assert len(p.control_frames()) == 1
