"""Times and durations as people read them: one formatter for messages and reviews.

A scaled or fake clock lands between minutes, so every clock time is rounded to
the nearest minute *before* it is written (02:49:40 is 02:50 in the channel and
in the review alike, and 23:59:45 is 00:00 of the next day). Durations of a
minute or more are whole minutes. `durations.format_duration` stays the
lossless form that runbook snapshots are written in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.durations import format_duration

NONE = "—"
_HALF_MINUTE = timedelta(seconds=30)
_ZH_UNITS = (("天", 86400), ("小时", 3600), ("分钟", 60), ("秒", 1))
# a step deadline as the runbook states it, relative to its milestone
_ANCHORS = {
    "en": {
        "start": "{}",
        "phase": "{} after phase",
        "mitigated": "{} after mitigated",
        "resolved": "{} after resolved",
    },
    "zh": {
        "start": "开始后 {}",
        "phase": "阶段开始后 {}",
        "mitigated": "缓解后 {}",
        "resolved": "解决后 {}",
    },
}


def nearest_minute(moment: datetime) -> datetime:
    """The moment rounded to the nearest whole minute (half a minute rounds up)."""
    return (moment + _HALF_MINUTE).replace(second=0, microsecond=0)


def _shown(moment: datetime, zone: str | None) -> datetime:
    rounded = nearest_minute(moment)
    if zone is None or (zone == "UTC" and rounded.utcoffset() == timedelta(0)):
        return rounded
    return rounded.astimezone(ZoneInfo(zone))


def clock_time(moment: datetime | None, zone: str | None = None) -> str:
    """`14:05`: the time of day (in `zone`, else the moment's own zone, UTC in the bot)."""
    return _shown(moment, zone).strftime("%H:%M") if moment else NONE


def date_time(moment: datetime | None, zone: str | None = None) -> str:
    """`2026-01-15 14:05`."""
    return _shown(moment, zone).strftime("%Y-%m-%d %H:%M") if moment else NONE


def utc_time(moment: datetime | None) -> str:
    """`2026-01-15 14:05 UTC`."""
    return f"{date_time(moment, 'UTC')} UTC" if moment else NONE


def duration(delta: timedelta | None, language: str = "en") -> str:
    """`1h05m` (en) or `1小时5分钟` (zh); whole minutes once it is a minute or longer."""
    if delta is None:
        return NONE
    if abs(delta) >= timedelta(minutes=1):
        delta = timedelta(minutes=round(delta.total_seconds() / 60))
    if language != "zh":
        return format_duration(delta)
    total = int(round(delta.total_seconds()))
    sign, total = ("-" if total < 0 else ""), abs(total)
    parts = []
    for unit, seconds in _ZH_UNITS:
        count, total = divmod(total, seconds)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0秒")


def deadline(offset: timedelta, anchor: str, language: str = "en") -> str:
    """`1h after mitigated` (en) or `缓解后 1小时` (zh): a step's `due` as people read it."""
    forms = _ANCHORS.get(language, _ANCHORS["en"])
    return forms.get(anchor, forms["start"]).format(duration(offset, language))
