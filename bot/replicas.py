"""Replicas on one PostgreSQL database: nothing is anyone's alone.

A replica wakes its lanes for the work it journals itself. Work another
replica journaled, claimed or was about to do when it died (SIGKILL, a lost
machine) is in the database but in nobody's memory, so every replica sweeps
once a `SWEEP` for it: unfinished requests and undelivered messages wake their
lanes here (the database's row locks and claims keep two replicas off the same
item), and the reminder alarm is re-read, so a reminder another replica armed
or would have sent is this replica's too. With SQLite there is one process and
nothing to sweep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.logs import Throttled

log = logging.getLogger(__name__)
SWEEP = 1.0  # seconds between sweeps: bounds how late work left by a dead replica is taken up


class Sweeper:
    def __init__(self, sweep: Callable[[], None], interval: float = SWEEP) -> None:
        self._sweep = sweep
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep", daemon=True)
        self._log = Throttled(60.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sweep()
            except Exception:  # the database away for a moment: sweep again next time
                if self._log.due():
                    log.exception("sweeping for work other replicas left failed")
