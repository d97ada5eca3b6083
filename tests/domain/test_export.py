"""The CSV export: a header, ISO-8601 UTC times, ids in full, no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.export import (
    FORMULA_STARTS,
    HEADER,
    HistoryCsv,
    history_csv,
    iso_utc,
    spreadsheet_safe,
)


@dataclass
class Row:
    created_at: float = 1_764_529_628.123456  # 2025-11-30T19:07:08.123Z
    guild_id: int | None = 1_234_567_890_123_456_789
    member_id: int = 987_654_321_098_765_432
    wearer_id: int | None = None
    shocker_id: str | None = "0b6a1f3e-6c1d-4a55-9a29-0d4bd6f0a7e1"
    shocker_name: str | None = "Collar"
    control_type: int = 1
    requested_intensity: int | None = 30
    requested_duration_ms: int | None = 1500
    effective_intensity: int | None = 25
    effective_duration_ms: int | None = 1500
    outcome: str = "confirmed"
    reason: str | None = None
    origin: str = "random"


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_a_row_has_iso_times_and_ids_in_full() -> None:
    data, rows = history_csv([Row()])
    assert rows == 1
    header, row = parse(data)
    assert tuple(header) == HEADER
    assert dict(zip(header, row, strict=True)) == {
        "time_utc": "2025-11-30T19:07:08.123Z",
        "guild_id": "1234567890123456789",
        "member_id": "987654321098765432",
        "wearer_id": "",
        "shocker_id": "0b6a1f3e-6c1d-4a55-9a29-0d4bd6f0a7e1",
        "shocker_name": "Collar",
        "type": "Shock",
        "requested_intensity": "30",
        "requested_duration_ms": "1500",
        "effective_intensity": "25",
        "effective_duration_ms": "1500",
        "outcome": "confirmed",
        "reason": "",
        "origin": "random",
    }
    assert data.endswith(b"\r\n")
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"


@given(st.text())
def test_any_text_round_trips_and_never_starts_a_formula(text: str) -> None:
    safe = spreadsheet_safe(text)
    assert not safe.startswith(FORMULA_STARTS)
    assert safe == ("'" + text if text.startswith(FORMULA_STARTS) else text)
    data, _ = history_csv([Row(shocker_name=text, reason=text)])
    header, row = parse(data)
    cells = dict(zip(header, row, strict=True))
    assert cells["shocker_name"] == cells["reason"] == safe


def test_rows_stop_before_the_file_would_be_too_big() -> None:
    entries = [Row(reason="x" * 100) for _ in range(50)]
    full, rows = history_csv(entries)
    assert rows == 50
    cut, kept = history_csv(entries, max_bytes=len(full) - 1)
    assert kept == 49 and len(cut) <= len(full) - 1
    assert len(parse(cut)) == 50  # the header and 49 whole rows


def test_a_file_built_page_by_page_stops_at_its_row_limit() -> None:
    export = HistoryCsv(max_rows=3)
    assert export.add([Row(), Row()])
    assert not export.add([Row(), Row()])  # the fourth row is left out
    assert (export.rows, export.full) == (3, True)
    assert not export.add([Row()])
    assert len(parse(export.getvalue())) == 4  # the header and 3 rows
    exact = HistoryCsv(max_rows=2)
    assert exact.add([Row(), Row()]) and not exact.full
