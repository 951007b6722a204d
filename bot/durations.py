"""Durations as people write them in runbooks and commands: `15m`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([dhms])")
_LONGEST = 400 * 86400
_WHOLE = re.compile(r"^\s*(?:\d+\s*[dhms]\s*)+$")


class DurationError(ValueError):
    """A duration that is not written like `15m`, `1h30m` or `2d`."""


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m` into a timedelta; zero and negative are refused."""
    cleaned = str(text).strip().lower()
    if not _WHOLE.match(cleaned):
        raise DurationError(f"'{text}' is not a duration; write it like 15m, 1h30m or 2d")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    if seconds <= 0:
        raise DurationError(f"'{text}' must be longer than zero")
    if seconds > _LONGEST:
        raise DurationError(f"'{text}' is too long; the longest is 400d")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a timedelta compactly (`1h05m`, `45m`, `30s`), rounding to the second."""
    total = int(round(delta.total_seconds()))
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    # Lossless (a runbook snapshot must parse back to the same plan), compact
    # for the common cases: 45m, 1h05m, 2d, 1d03h, 1d00h30m.
    if days:
        text = f"{days}d"
        if hours or minutes or seconds:
            text += f"{hours:02d}h"
        if minutes or seconds:
            text += f"{minutes:02d}m"
    elif hours:
        text = f"{hours}h{minutes:02d}m"
    elif minutes:
        text = f"{minutes}m"
    else:
        return f"{sign}{seconds}s"
    return sign + text + (f"{seconds:02d}s" if seconds else "")
