"""A scaled clock whose origin lives in the database.

The first run stores (real origin, bot origin, speed). A restarted process
reads it back, so bot time keeps running from where it was: killed for 4 real
seconds at speed 300, the bot wakes 20 bot minutes later, never in the past.
Changing the speed re-anchors at the current bot time, so time never jumps.
"""

from __future__ import annotations

import json

from bot.clock import Clock, RealClock, ScaledClock, iso, parse_iso, utc_now
from bot.store import Store

_KEY = "scaled_clock"


def persisted_clock(store: Store, speed: float) -> Clock:
    if speed == 1:
        return RealClock()  # production: real time, whatever a rehearsal stored before
    saved = store.get_meta(_KEY)
    if saved:
        clock = _clock(saved)
        if clock.speed == speed:
            return clock
        bot_now = clock.now()
    else:
        bot_now = utc_now()
    clock = ScaledClock(speed, utc_now(), bot_now)
    record = {
        "speed": speed,
        "real_origin": iso(clock.real_origin),
        "bot_origin": iso(clock.bot_origin),
    }
    # replicas starting together: the first origin stored is everyone's
    stored = store.set_meta(_KEY, json.dumps(record), only_if_absent=not saved)
    return _clock(stored)


def _clock(saved: str) -> ScaledClock:
    data = json.loads(saved)
    return ScaledClock(data["speed"], parse_iso(data["real_origin"]), parse_iso(data["bot_origin"]))
