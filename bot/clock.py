"""The only source of time in the bot: real, scaled (drills) or fake (tests).

All times are timezone-aware UTC. A scaled clock runs `speed` bot seconds per
real second from an origin; storing that origin lets a restarted process
continue the same bot timeline instead of jumping back to the real present.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    speed: float

    def now(self) -> datetime:
        """Bot time, UTC."""
        ...

    def real_seconds_until(self, moment: datetime) -> float:
        """How long to wait in real time until the bot clock shows `moment`."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class RealClock:
    speed = 1.0

    def now(self) -> datetime:
        return utc_now()

    def real_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds())


class ScaledClock:
    """Bot time = bot_origin + (real now - real_origin) × speed."""

    def __init__(
        self, speed: float, real_origin: datetime, bot_origin: datetime | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be greater than 0")
        self.speed = float(speed)
        self.real_origin = real_origin
        self.bot_origin = bot_origin or real_origin

    def now(self) -> datetime:
        return self.bot_origin + (utc_now() - self.real_origin) * self.speed

    def real_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds() / self.speed)


class FakeClock:
    """Moves only when told to; `advance` is how tests and the demo pass time."""

    speed = 1.0

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def real_seconds_until(self, moment: datetime) -> float:
        """Due now: no wait. Later: a fake clock never gets there by itself, so wait
        an hour (a test moves the clock and pokes the scheduler instead)."""
        return 0.0 if moment <= self.now() else 3600.0


def sleep_real(seconds: float) -> None:
    """Real sleeping lives here so the rest of the code never touches wall time."""
    time.sleep(seconds)


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


__all__ = ["Clock", "FakeClock", "RealClock", "ScaledClock", "iso", "parse_iso", "timedelta"]
