"""Every delay the feeds use, in one place, so tests can shrink them."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["FeedTimings"]


@dataclass(frozen=True)
class FeedTimings:
    batch_window: float = 1.5  # wait this long for more events before a channel's next post
    edit_interval: float = 2.0  # at most one edit of an update message per interval
    retry_initial: float = 2.0  # backoff after a 5xx, a network error or a 429 that got through
    retry_max: float = 60.0
    poll_interval: float = 30.0  # look for pending deliveries even without a wake-up
    prune_interval: float = 3600.0  # old events and stale in-memory state are pruned this often
    directory_wait: float = 5.0  # how long to wait for an account's shocker list to load
    device_dedupe: float = 60.0  # same device change seen through two accounts: post it once

    def backoff(self, failures: int) -> float:
        ceiling = min(self.retry_max, self.retry_initial * 2.0 ** max(0, failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
