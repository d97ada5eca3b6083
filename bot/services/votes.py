"""Votes (`/vote`): a proposed control the channel votes on, sent as its starter if Yes wins.

The life of a vote:

- `open` stores it (`storage.votes`) and arms its end on the scheduler; the cog posts the
  message and tells `posted` its id. The starter's right to send the control was checked first.
- `cast` records a member's vote (one per member, changeable) once the access rules say they
  may control the shocker, and refreshes the message at most every `refresh_interval` seconds.
- At the end (`end`, the timer), the row and its ballots are deleted in one step (so a vote is
  settled once, also across a crash) and, if Yes has more votes than No, the control goes through
  the pipeline's front door as the starter (`Origin.VOTE`), so it is decided again with that
  moment's facts and the starter's roles read from Discord right then (not those of the start):
  when they left the server, or Discord cannot be asked, nothing is sent. Its guard
  (`still_wanted`) is false once a halt ended the vote.
- A halt (Stop, `/panic`, a pause, an unshare, an unlink) ends every vote it covers at once:
  the timer is cancelled in the announcing step, and nothing is sent. The row is marked halted
  first thing (one quick write), and a shutdown waits (up to `close_wait`) for these clean-ups,
  so a halted vote never comes back after a restart.
- The rows survive a restart: `load` re-arms them. A vote that ended while the bot was down is
  settled at start; if it ended more than `late_grace` seconds ago nothing is sent (nobody is
  waiting for it any more).

How a vote looks is the `VoteBoard`'s business (the cog's, on Discord).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from bot.domain.votes import MAX_VOTE_SECONDS, MIN_VOTE_SECONDS, Tally, may_vote
from bot.errors import UserError
from bot.openshock.errors import OpenShockError
from bot.openshock.manager import HubManager
from bot.openshock.models import DeviceSnapshotApplied
from bot.services.background import BackgroundTasks
from bot.services.control import (
    ControlOrder,
    ControlOutcome,
    ControlReport,
    ControlService,
    Origin,
    Sender,
)
from bot.services.halts import Halt
from bot.services.members import MemberDirectory, MemberUnknown, NotAMember
from bot.services.scheduler import Scheduler
from bot.storage import Storage
from bot.storage.models import AccountState
from bot.storage.votes import NewVote, Vote

__all__ = ["EndKind", "RunningVote", "VoteBoard", "VoteEnding", "VoteService"]

log = logging.getLogger(__name__)

CLOSE_WAIT = 5.0  # seconds
VOTE_ENDED = "This vote has ended."
NOT_SHARED = "This shocker is not shared here any more; the vote has ended."


class EndKind(Enum):
    DECIDED = "decided"  # Yes won: the control went to the pipeline (`report` says what came of it)
    NOT_PASSED = "not_passed"  # No won, or a tie: nothing was sent
    HALTED = "halted"  # a Stop, a pause, /panic, an unshare or an unlink ended it: nothing sent
    LATE = "late"  # it ended long before the bot came back: nothing was sent
    NOT_SENT = "not_sent"  # Yes won, but the starter could not be checked (`reason` says why)


@dataclass(frozen=True, slots=True)
class VoteEnding:
    kind: EndKind
    report: ControlReport | None = None
    halt: Halt | None = None
    reason: str | None = None


class VoteBoard(Protocol):
    """Where a vote is shown: `ending` None while it runs."""

    async def show(self, vote: Vote, tally: Tally, ending: VoteEnding | None) -> None: ...


class RunningVote:
    """A vote this process is running (or settling), in memory beside its row."""

    def __init__(self, vote: Vote) -> None:
        self.vote = vote
        self.halt: Halt | None = None  # set synchronously by the halt that ended it
        self.settling = False  # its end has started: no more votes, no more refreshes
        self.ending: tuple[Tally, VoteEnding] | None = None
        self.lock = asyncio.Lock()  # one message edit at a time, the final one last
        self.dirty = False
        self.last_shown = float("-inf")  # loop time of the last refresh
        self.refresh: asyncio.Task[None] | None = None

    @property
    def id(self) -> int:
        return self.vote.id

    def still_wanted(self) -> bool:
        return self.halt is None


def timer_key(vote_id: int) -> tuple[str, int]:
    return ("vote", vote_id)


class VoteService:
    def __init__(
        self,
        storage: Storage,
        control: ControlService,
        scheduler: Scheduler,
        hubs: HubManager,
        board: VoteBoard,
        members: MemberDirectory,
    ) -> None:
        self.storage = storage
        self.control = control
        self.scheduler = scheduler
        self.hubs = hubs
        self.board = board
        self.members = members
        # The shortest vote; tests lower it (the public floor is MIN_VOTE_SECONDS).
        self.min_seconds: float = MIN_VOTE_SECONDS
        self.refresh_interval = 2.0  # seconds between two edits of a running vote's tally
        self.late_grace = 60.0  # a vote that ended longer ago than this (bot down) sends nothing
        self.hub_wait = 20.0  # at start-up, how long a vote's end waits for the wearer's hub
        self.close_wait = CLOSE_WAIT  # at shutdown, how long halted votes' clean-ups may take
        self._votes: dict[int, RunningVote] = {}
        self._tasks = BackgroundTasks("vote")

    # -- lifecycle ------------------------------------------------------------------------------

    async def load(self) -> int:
        """Subscribe to halts and re-arm every stored vote (one that ended meanwhile ends at
        once). Returns how many were re-armed."""
        self.control.halts.subscribe(self._on_halt)
        armed = 0
        for vote in await self.storage.votes.running():
            if vote.id in self._votes:
                continue
            if vote.message_id is None:
                # Never posted (the bot stopped in between): nobody saw it, nobody voted.
                await self.storage.votes.finish(vote.id)
                continue
            if vote.halted:
                # A halt ended it before the last shutdown finished settling it.
                running = RunningVote(vote)
                running.settling = True
                self._tasks.spawn(self._close_halted(running, None), f"vote-halted-{vote.id}")
                continue
            self._arm(RunningVote(vote))
            armed += 1
        return armed

    async def close(self) -> None:
        """Stop the timers and refreshes of this process; the rows of running votes stay for the
        next start. Halted votes' clean-ups are let finish (up to `close_wait`): a Stop just
        before shutdown must not be undone by the restart."""
        self.control.halts.unsubscribe(self._on_halt)
        for vote_id in list(self._votes):
            self.scheduler.cancel(timer_key(vote_id))
        refreshes = [r.refresh for r in self._votes.values() if r.refresh is not None]
        for task in refreshes:
            task.cancel()
        await asyncio.gather(*refreshes, return_exceptions=True)
        await self._tasks.close(wait=self.close_wait)
        self._votes.clear()

    async def idle(self) -> None:
        """Wait until no clean-up task is running (for tests)."""
        await self._tasks.idle()

    def running(self, vote_id: int) -> RunningVote | None:
        return self._votes.get(vote_id)

    # -- starting -------------------------------------------------------------------------------

    def check_seconds(self, seconds: float) -> float:
        """How long a vote lasts, re-checked at run time (Discord's bounds are a convenience)."""
        if not self.min_seconds <= seconds <= MAX_VOTE_SECONDS:
            raise UserError(
                f"`seconds` must be between {self.min_seconds:g} and {MAX_VOTE_SECONDS}."
            )
        return seconds

    async def open(self, new: NewVote) -> RunningVote:
        """Store the vote and arm its end. The cog posts it next and calls `posted`."""
        running = RunningVote(await self.storage.votes.create(new))
        self._arm(running)
        return running

    async def posted(self, running: RunningVote, message_id: int) -> None:
        async with running.lock:
            running.vote = running.vote.model_copy(update={"message_id": message_id})
            await self.storage.votes.set_message(running.id, message_id)
            if running.ending is not None:
                # Halted between being stored and being posted: show how it ended.
                await self._show(running.vote, *running.ending)

    async def discard(self, running: RunningVote) -> None:
        """The vote could not be posted: forget it."""
        self._votes.pop(running.id, None)
        self.scheduler.cancel(timer_key(running.id))
        running.settling = True
        await self.storage.votes.finish(running.id)

    def _arm(self, running: RunningVote) -> None:
        self._votes[running.id] = running
        vote_id = running.id
        self.scheduler.at(timer_key(vote_id), running.vote.ends_at, lambda: self.end(vote_id))

    # -- voting ---------------------------------------------------------------------------------

    async def cast(
        self, vote_id: int, *, guild_id: int, member_id: int, role_ids: Iterable[int], yes: bool
    ) -> Tally:
        """Record the member's vote (or change it). Refused (`UserError`) when the vote has ended
        or the member may not control the shocker."""
        running = self._votes.get(vote_id)
        if running is None or running.settling or running.vote.guild_id != guild_id:
            raise UserError(VOTE_ENDED)
        vote = running.vote
        share = await self.storage.shares.get(vote.guild_id, vote.shocker_id)
        if share is None or share.wearer_id != vote.wearer_id:
            raise UserError(NOT_SHARED)
        ((_, access),) = await self.control.access(
            [share], guild_id=guild_id, member_id=member_id, role_ids=role_ids
        )
        if not may_vote(access):
            raise UserError("Only members who may control this shocker can vote on it.")
        tally = await self.storage.votes.cast(vote_id, member_id, yes)
        if tally is None or running.settling:
            raise UserError(VOTE_ENDED)
        self._refresh_soon(running)
        return tally

    def _refresh_soon(self, running: RunningVote) -> None:
        running.dirty = True
        if running.refresh is None or running.refresh.done():
            running.refresh = asyncio.create_task(
                self._refresh(running), name=f"vote-refresh-{running.id}"
            )

    async def _refresh(self, running: RunningVote) -> None:
        """Show the tally, at most once per `refresh_interval`; the latest votes always end up
        shown (or replaced by the final tally)."""
        loop = asyncio.get_running_loop()
        try:
            while running.dirty and not running.settling:
                delay = running.last_shown + self.refresh_interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                running.dirty = False
                async with running.lock:
                    if running.settling or running.vote.message_id is None:
                        return
                    tally = await self.storage.votes.tally(running.id)
                    running.last_shown = loop.time()
                    await self._show(running.vote, tally, None)
        except Exception:
            log.exception("Could not refresh vote %d", running.id)

    # -- ending ---------------------------------------------------------------------------------

    async def end(self, vote_id: int) -> None:
        """Time is up (the scheduler calls this): settle the vote and send its control if Yes
        won."""
        running = self._votes.get(vote_id)
        if running is None or running.settling:
            return
        running.settling = True
        vote = running.vote
        late = time.time() - vote.ends_at > self.late_grace
        if not late and running.halt is None:
            await self._wait_for_hub(vote)
        settled = await self.storage.votes.finish(vote_id)
        if settled is None:
            self._votes.pop(vote_id, None)
            return
        _, tally = settled
        if running.halt is not None:
            ending = VoteEnding(EndKind.HALTED, halt=running.halt)
        elif not tally.passed:
            ending = VoteEnding(EndKind.NOT_PASSED)
        elif late:
            log.info("Vote %d ended while the bot was down; nothing was sent", vote_id)
            ending = VoteEnding(EndKind.LATE)
        else:
            try:
                # The starter as they are now: roles taken away meanwhile count.
                role_ids = await self.members.current_roles(vote.guild_id, vote.starter_id)
            except NotAMember:
                role_ids = None
                reason = "the member who started it is no longer in this server; nothing was sent."
            except MemberUnknown:
                role_ids = None
                reason = (
                    "the bot couldn't check the roles of the member who started it with "
                    "Discord; nothing was sent."
                )
            if role_ids is None:
                log.info("Vote %d passed but is not sent: %s", vote_id, reason)
                await self._finish(running, tally, VoteEnding(EndKind.NOT_SENT, reason=reason))
                return
            ticket = await self.control.submit(
                ControlOrder(
                    sender=Sender(
                        member_id=vote.starter_id,
                        role_ids=role_ids,
                        display_name=vote.starter_name,
                    ),
                    guild_id=vote.guild_id,
                    channel_id=vote.channel_id,  # where an approval request would be posted
                    shocker_id=vote.shocker_id,
                    kind=vote.control_type,
                    intensity=vote.intensity,
                    duration_ms=vote.duration_ms,
                    origin=Origin.VOTE,
                    still_wanted=running.still_wanted,
                )
            )
            report = await ticket.outcome()
            if running.halt is not None and report.outcome is ControlOutcome.REFUSED:
                ending = VoteEnding(EndKind.HALTED, halt=running.halt)  # called off in time
            else:
                ending = VoteEnding(EndKind.DECIDED, report=report)
        await self._finish(running, tally, ending)

    def _on_halt(self, halt: Halt) -> None:
        """Synchronous, in the announcing step: every vote the halt covers ends now."""
        for running in list(self._votes.values()):
            vote = running.vote
            if running.halt is not None or not halt.covers(
                guild_id=vote.guild_id, wearer_id=vote.wearer_id, shocker_id=vote.shocker_id
            ):
                continue
            running.halt = halt  # the guard of a control already on its way is now false
            self.scheduler.cancel(timer_key(running.id))
            if not running.settling:
                running.settling = True
                self._tasks.spawn(self._close_halted(running, halt), f"vote-halt-{running.id}")

    async def _close_halted(self, running: RunningVote, halt: Halt | None) -> None:
        """Settle a halted vote: marked halted first (so a restart cannot re-arm it), then
        settled and shown as ended."""
        if not running.vote.halted:
            await self.storage.votes.mark_halted(running.id)
        settled = await self.storage.votes.finish(running.id)
        tally = settled[1] if settled is not None else Tally()
        await self._finish(running, tally, VoteEnding(EndKind.HALTED, halt=halt))

    async def _finish(self, running: RunningVote, tally: Tally, ending: VoteEnding) -> None:
        self._votes.pop(running.id, None)
        if running.refresh is not None and running.refresh is not asyncio.current_task():
            running.refresh.cancel()
        async with running.lock:
            running.ending = (tally, ending)
            if running.vote.message_id is not None:
                await self._show(running.vote, tally, ending)

    async def _show(self, vote: Vote, tally: Tally, ending: VoteEnding | None) -> None:
        try:
            await self.board.show(vote, tally, ending)
        except Exception:
            log.exception("Could not show vote %d", vote.id)

    async def _wait_for_hub(self, vote: Vote) -> None:
        """Right after a start the wearer's hub may not be connected yet: wait (up to
        `hub_wait`) for it, its device snapshot and its shocker list, so the control is decided
        on known facts rather than refused as "device unknown"."""
        share = await self.storage.shares.get(vote.guild_id, vote.shocker_id)
        if share is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hub_wait
        hub = self.hubs.get(share.account_id)
        if hub is None:
            # Votes are re-armed when the cogs load, before the accounts' hubs are started.
            account = await self.storage.accounts.get(share.account_id)
            while hub is None and account is not None and account.state is AccountState.ACTIVE:
                if loop.time() >= deadline:
                    return
                await asyncio.sleep(0.05)
                hub = self.hubs.get(share.account_id)
        if hub is None or hub.shockers is not None:
            return  # loaded since this start: an outage later is reported, not waited for
        snapshot = hub.expect(DeviceSnapshotApplied)
        try:
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                if not hub.connected:
                    await snapshot
                if hub.shockers is None:
                    await hub.refresh_shockers()
        except (TimeoutError, OpenShockError) as error:
            log.info("Vote %d ends without the wearer's hub ready: %s", vote.id, error)
        finally:
            snapshot.cancel()
