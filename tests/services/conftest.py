from __future__ import annotations

import pytest

from bot.services import feed_service as feeds
from tests.services.feed_helpers import FAST_FEEDS


@pytest.fixture(autouse=True)
def fast_feeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Feeds with batching windows and backoffs of milliseconds (set before the bot is built)."""
    monkeypatch.setattr(feeds, "DEFAULT_TIMINGS", FAST_FEEDS)
