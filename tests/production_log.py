"""Capture log output exactly as the bot writes it: through the production handler, with the
production redactor attached (``bot.logs.log_handler``), from every logger at every level."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import log_handler


class ProductionLog:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def production_log() -> Iterator[ProductionLog]:
    captured = ProductionLog()
    handler = log_handler(captured.stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
