"""Approval requests: controls waiting for the wearer's Approve or Deny (approval mode).

A request is written when the control pipeline holds a control back, and kept until it is
answered, expires or is ended by a halt, so a restart re-arms it (or finds it expired).
"""

from __future__ import annotations

import json
import time

from bot.storage.database import Database
from bot.storage.models import ApprovalRequest, ApprovalState, NewApprovalRequest

# How far back requests the wearer did not approve count against a requester's limit.
REQUEST_WINDOW_S = 600.0


class ApprovalRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        request: NewApprovalRequest,
        *,
        expires_at: float,
        max_pending: int,
        window_s: float = REQUEST_WINDOW_S,
    ) -> ApprovalRequest | None:
        """Store a pending request, unless the requester already made ``max_pending`` requests
        on this shocker in this guild within ``window_s`` that the wearer did not approve
        (pending, denied, expired, or ended by a Stop or pause: each of them pinged the wearer,
        and ending one's own request with /stop must not make room for another ping). Then
        None. Checked in the same transaction."""
        since = time.time() - window_s
        async with self._db.transaction() as tx:
            await tx.execute(
                "DELETE FROM approval_requests WHERE state != 'pending' AND created_at < ?",
                (since,),
            )
            row = await tx.fetch_one(
                "SELECT count(*) AS n FROM approval_requests WHERE guild_id = ?"
                " AND shocker_id = ? AND requester_id = ? AND state != 'approved'"
                " AND (state = 'pending' OR created_at >= ?)",
                (
                    request.guild_id,
                    request.shocker_id,
                    request.requester_id,
                    since,
                ),
            )
            if row is not None and row["n"] >= max_pending:
                return None
            request_id = await tx.insert(
                "INSERT INTO approval_requests (guild_id, channel_id, shocker_id, wearer_id,"
                " requester_id, requester_roles, requester_name, control_type, intensity,"
                " duration_ms, origin, summary, state, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    request.guild_id,
                    request.channel_id,
                    request.shocker_id,
                    request.wearer_id,
                    request.requester_id,
                    json.dumps(sorted(request.requester_roles)),
                    request.requester_name,
                    request.control_type,
                    request.intensity,
                    request.duration_ms,
                    request.origin,
                    request.summary,
                    time.time(),
                    expires_at,
                ),
            )
            stored = await tx.fetch_one(
                "SELECT * FROM approval_requests WHERE id = ?", (request_id,)
            )
        assert stored is not None
        return ApprovalRequest.from_row(stored)

    async def get(self, request_id: int) -> ApprovalRequest | None:
        row = await self._db.fetch_one(
            "SELECT * FROM approval_requests WHERE id = ?", (request_id,)
        )
        return ApprovalRequest.from_row(row) if row is not None else None

    async def all(self) -> list[ApprovalRequest]:
        rows = await self._db.fetch_all("SELECT * FROM approval_requests ORDER BY id")
        return [ApprovalRequest.from_row(row) for row in rows]

    async def settle(self, request_id: int, state: ApprovalState) -> bool:
        """Move a pending request to ``state``; False when it was no longer pending."""
        changed = await self._db.execute(
            "UPDATE approval_requests SET state = ? WHERE id = ? AND state = 'pending'",
            (state.value, request_id),
        )
        return changed > 0

    async def set_message(self, request_id: int, message_id: int) -> None:
        await self._db.execute(
            "UPDATE approval_requests SET message_id = ? WHERE id = ?", (message_id, request_id)
        )

    async def attach_reply(self, request_id: int, application_id: int, token: str) -> bool:
        """Remember the requester's interaction, to edit its reply with the outcome. False when
        the request was no longer pending (answered or ended before the reply existed)."""
        changed = await self._db.execute(
            "UPDATE approval_requests SET reply_application_id = ?, reply_token = ?"
            " WHERE id = ? AND state = 'pending'",
            (application_id, token, request_id),
        )
        return changed > 0

    async def forget(self, request_id: int) -> None:
        """A request was answered and told: drop its interaction token (an approved one goes
        at once). The row of one the wearer did not approve stays until `create` prunes it
        (after ``REQUEST_WINDOW_S``): it counts against the requester's limit until then."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "DELETE FROM approval_requests WHERE id = ? AND state = 'approved'", (request_id,)
            )
            await tx.execute(
                "UPDATE approval_requests SET reply_application_id = NULL, reply_token = NULL"
                " WHERE id = ?",
                (request_id,),
            )
