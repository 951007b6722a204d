"""Redrawing pinned plans: coalesced, paced, off the path of commands and reminders.

A step done or overdue, a new role holder or a raised severity changes how the
pinned plan looks, but it is the command's answer and the reminder that people
need at once. So both only mark the incident's plan as stale; one background
thread redraws stale plans, each once however often it was marked meanwhile,
oldest first, within Slack's pace for chat.update (Tier 3: about 50 a minute).
A lone change is drawn at once; a burst of 50 commands becomes a few redraws.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.slack.pacing import Pacer

log = logging.getLogger(__name__)
REDRAWS_PER_MINUTE = 50  # Slack's Tier 3, which chat.update belongs to
BURST = 10


class PlanRedraws:
    def __init__(self, redraw: Callable[[int], None], pacer: Pacer | None = None) -> None:
        self._redraw = redraw
        self._stop = threading.Event()
        self._pacer = pacer or Pacer(
            interval=60 / REDRAWS_PER_MINUTE, burst=BURST, sleep=self._sleep
        )
        self._stale: dict[int, None] = {}  # insertion-ordered: the oldest mark first
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop cuts a paced wait short

    def mark(self, incident_id: int) -> None:
        """The incident's plan no longer matches the record; redraw it when the pace allows."""
        with self._cond:
            self._stale.setdefault(incident_id, None)
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._stale)

    def redraw_next(self) -> int | None:
        """Redraw the oldest stale plan (waiting for the pace); returns its incident id."""
        with self._cond:
            if not self._stale:
                return None
            incident_id = next(iter(self._stale))
            del self._stale[incident_id]
        self._pacer.wait("chat.update")
        if self._stop.is_set():
            return None
        try:
            self._redraw(incident_id)
        except Exception:  # a stale picture is cosmetic; the next mark tries again
            log.exception("redrawing the plan of INC-%s failed", incident_id)
        return incident_id

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="plan-redraws", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._stale and not self._stop.is_set():
                    self._cond.wait()
            self.redraw_next()
