"""The audit rows `/history` shows, as a CSV file a spreadsheet can open safely.

UTF-8, one header row, RFC 4180 quoting (``csv`` module, ``\\r\\n`` line ends), times in ISO-8601
UTC, Discord ids and OpenShock ids written out in full as text (a spreadsheet that reads an
18-digit id as a number loses its last digits; here it is never a float or a rounded number).

Formula injection: a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and
some also after a leading tab or carriage return) as a formula. Every cell that starts with one
of those is prefixed with an apostrophe, which spreadsheets show as plain text (OWASP's advice
for CSV injection). Shocker names and reasons come from outside (OpenShock, people), so nothing
is trusted.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from bot.domain.render import type_name

DEFAULT_EXPORT_DAYS = 30
MAX_HISTORY_DAYS = 365
# The newest rows are exported, at most this many and this many bytes (Discord refuses
# attachments over 10 MiB from bots in servers without boosts).
MAX_EXPORT_ROWS = 20_000
MAX_EXPORT_BYTES = 8 * 1024 * 1024

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

HEADER = (
    "time_utc",
    "guild_id",
    "member_id",
    "wearer_id",
    "shocker_id",
    "shocker_name",
    "type",
    "requested_intensity",
    "requested_duration_ms",
    "effective_intensity",
    "effective_duration_ms",
    "outcome",
    "reason",
    "origin",
)


class AuditRecord(Protocol):
    """What the export reads of one audit row (storage's `AuditEntry` has it)."""

    @property
    def created_at(self) -> float: ...
    @property
    def guild_id(self) -> int | None: ...
    @property
    def member_id(self) -> int: ...
    @property
    def wearer_id(self) -> int | None: ...
    @property
    def shocker_id(self) -> str | None: ...
    @property
    def shocker_name(self) -> str | None: ...
    @property
    def control_type(self) -> int: ...
    @property
    def requested_intensity(self) -> int | None: ...
    @property
    def requested_duration_ms(self) -> int | None: ...
    @property
    def effective_intensity(self) -> int | None: ...
    @property
    def effective_duration_ms(self) -> int | None: ...
    @property
    def outcome(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def origin(self) -> str: ...


def spreadsheet_safe(cell: str) -> str:
    """The cell, prefixed with ``'`` when a spreadsheet would read it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def iso_utc(timestamp: float) -> str:
    """`2026-11-30T19:07:08.123Z`: ISO-8601, UTC, milliseconds."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def csv_row(entry: AuditRecord) -> list[str]:
    cells = [
        iso_utc(entry.created_at),
        _text(entry.guild_id),
        _text(entry.member_id),
        _text(entry.wearer_id),
        _text(entry.shocker_id),
        _text(entry.shocker_name),
        type_name(entry.control_type),
        _text(entry.requested_intensity),
        _text(entry.requested_duration_ms),
        _text(entry.effective_intensity),
        _text(entry.effective_duration_ms),
        _text(entry.outcome),
        _text(entry.reason),
        _text(entry.origin),
    ]
    return [spreadsheet_safe(cell) for cell in cells]


class HistoryCsv:
    """The file, built a page of rows at a time (a page is added on a worker thread while the
    next is read): the header first, then rows until the next would pass ``max_rows`` or
    ``max_bytes``."""

    def __init__(
        self, *, max_rows: int = MAX_EXPORT_ROWS, max_bytes: int = MAX_EXPORT_BYTES
    ) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows = 0
        self.full = False  # a row was left out
        self._line = io.StringIO(newline="")
        self._writer = csv.writer(self._line)
        self._out = io.BytesIO()
        self._write(list(HEADER))

    def _write(self, cells: list[str]) -> bool:
        self._line.seek(0)
        self._line.truncate()
        self._writer.writerow(cells)
        encoded = self._line.getvalue().encode("utf-8")
        if self._out.tell() + len(encoded) > self.max_bytes:
            return False
        self._out.write(encoded)
        return True

    def add(self, entries: Iterable[AuditRecord]) -> bool:
        """Add rows in order; False once one was left out (the file is full)."""
        for entry in entries:
            if self.full or self.rows >= self.max_rows or not self._write(csv_row(entry)):
                self.full = True
                return False
            self.rows += 1
        return True

    def getvalue(self) -> bytes:
        return self._out.getvalue()


def history_csv(
    entries: Iterable[AuditRecord], *, max_bytes: int = MAX_EXPORT_BYTES
) -> tuple[bytes, int]:
    """The whole file for these entries, and how many rows it holds."""
    export = HistoryCsv(max_rows=sys.maxsize, max_bytes=max_bytes)
    export.add(entries)
    return export.getvalue(), export.rows
