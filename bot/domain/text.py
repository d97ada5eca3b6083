"""Text from outside (OpenShock names, Discord names, firmware messages) made safe to show."""

from __future__ import annotations

from functools import lru_cache

from discord.utils import escape_markdown, escape_mentions

# OpenShock keeps names within 64 characters, but nothing here relies on that.
MAX_NAME_CHARS = 100


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@lru_cache(maxsize=4096)
def inert(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """A text from outside, safe to put in a reply or post: no markdown, no mentions, and at most
    ``limit`` characters of it (escaping can at most double that). Remembered: the same few
    names (shockers, members) are shown again and again."""
    return escape_mentions(escape_markdown(clip(text, limit)))
