"""Keeps posting within Slack's per-channel pace (about one message a second, short bursts).

A token bucket per channel: `burst` messages may go at once, then one per
`interval`. A caller that would exceed it waits (in its own worker thread), so
reminders for many incidents never trip Slack's rate limit for one channel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CHANNEL_INTERVAL = 1.0  # seconds per message to one channel once a burst is spent: Slack's pace


class Pacer:
    def __init__(
        self,
        interval: float | None = None,  # default: CHANNEL_INTERVAL, read when the pacer is made
        burst: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = CHANNEL_INTERVAL if interval is None else interval
        self.burst = burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free: dict[str, float] = {}  # channel -> when its bucket is full again

    def wait(self, channel: str) -> float:
        """Block until `channel` may take one more message; returns the seconds waited."""
        with self._lock:
            now = self._monotonic()
            # The bucket is a moment in time: each message pushes it one interval forward,
            # and it never lags more than a burst behind now (a new channel starts full).
            start = max(
                self._next_free.get(channel, float("-inf")), now - self.interval * (self.burst - 1)
            )
            self._next_free[channel] = start + self.interval
            delay = max(0.0, start - now)
        if delay:
            self._sleep(delay)
        return delay
