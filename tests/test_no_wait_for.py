"""On Python 3.11, `asyncio.wait_for` returns the result and swallows a cancellation that
arrives as the awaited thing finishes (CPython gh-86296): a loop around it never stopped at
shutdown (the feed publisher did exactly that). The bot uses `asyncio.timeout` instead."""

from __future__ import annotations

import re
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def test_the_bot_does_not_use_asyncio_wait_for() -> None:
    found = [
        f"{path.relative_to(BOT.parent)}:{number}"
        for path in sorted(BOT.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bwait_for\(", line.split("#", 1)[0])
    ]
    assert found == []
