"""A scaled clock whose origin lives in the database.

The first run stores (real origin, bot origin, speed). A restarted process
reads it back, so bot time keeps running from where it was: killed for 4 real
seconds at speed 300, the bot wakes 20 bot minutes later, never in the past.
Changing the speed re-anchors at the current bot time, so time never jumps.

A drill that is quit on purpose pauses instead (`pause_clock`): the bot time it
stopped at is stored, and the next run continues from that moment however long
the drill was away. Only a crash or a kill lets bot time run on meanwhile.
"""

from __future__ import annotations

import json
from datetime import datetime

from bot.clock import Clock, RealClock, ScaledClock, iso, parse_iso, utc_now
from bot.store import Store

_KEY = "scaled_clock"


def persisted_clock(store: Store, speed: float, pausable: bool = False) -> Clock:
    """The clock stored in `store`, at `speed`. `pausable` (drills): a scaled clock even at
    speed 1, so that quitting can pause it; otherwise speed 1 is real time."""
    if speed == 1 and not pausable:
        return RealClock()  # production: real time, whatever a rehearsal stored before
    saved = store.get_meta(_KEY)
    if saved:
        data = json.loads(saved)
        if data.get("paused"):
            bot_now = parse_iso(data["bot_origin"])  # where it was paused: no time passed
        else:
            clock = _clock(data)
            if clock.speed == speed:
                return clock
            bot_now = clock.now()
    else:
        bot_now = utc_now()
    clock = ScaledClock(speed, utc_now(), bot_now)
    # replicas starting together: the first origin stored is everyone's
    stored = _save(store, clock, paused=False, overwrite=bool(saved))
    return _clock(json.loads(stored))


def pause_clock(store: Store, clock: Clock) -> datetime | None:
    """Stop the stored clock at the bot time it shows now (a drill being quit); the next
    `persisted_clock` resumes from there. Returns that bot time, or None for a clock that
    is not stored (real time, or a test's fake clock)."""
    if not isinstance(clock, ScaledClock):
        return None
    paused = ScaledClock(clock.speed, utc_now(), clock.now())
    _save(store, paused, paused=True, overwrite=True)
    return paused.bot_origin


def _save(store: Store, clock: ScaledClock, paused: bool, overwrite: bool) -> str:
    """Store the clock (`overwrite=False`: unless one was stored meanwhile); returns what
    is stored now."""
    record: dict[str, object] = {
        "speed": clock.speed,
        "real_origin": iso(clock.real_origin),
        "bot_origin": iso(clock.bot_origin),
    }
    if paused:
        record["paused"] = True
    return store.set_meta(_KEY, json.dumps(record), only_if_absent=not overwrite)


def _clock(data: dict[str, object]) -> ScaledClock:
    return ScaledClock(
        float(str(data["speed"])),
        parse_iso(str(data["real_origin"])),
        parse_iso(str(data["bot_origin"])),
    )
