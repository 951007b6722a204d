"""Lanes: work kept in order per key, keys in parallel.

Everything addressed to one incident (its commands, then the messages they
cause) must happen one at a time, in the order it arrived, while other
incidents go on beside it. A lane is such a key. The queue itself lives in the
database (the inbox, the outbox): a lane's `step` takes the oldest item of that
key from there, does it, and says whether more may follow. This class only
makes sure that one thread at a time steps each lane, wakes a lane when
something new arrives, and wakes it again later when its head asked to wait
(a retry after a failure).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor

log = logging.getLogger(__name__)

# A lane: ("incident", id) for everything addressed to one incident, or a lane of one item
# that addresses none, such as ("request", inbox id) or ("row", outbox id).
Lane = tuple[str, int]
# What `step` returns: None when the lane is empty, 0 when more may follow now,
# or the seconds after which to look again (its head waits for a retry).
Step = Callable[[Lane], float | None]
TURN = 20  # items one thread takes from a lane before letting other lanes have the thread
# How a step is run: given the step, its lane and when the lane was woken for the work
# now at its head (time.monotonic(); the oldest wake not yet served).
Run = Callable[[Step, Lane, float], float | None]


class Lanes:
    def __init__(
        self,
        name: str,
        pool: Executor,
        step: Step,
        run: Run | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._pool = pool
        self._step = step
        # how each step is run (e.g. inside RequestsFirst, so acknowledgements go first)
        self._run: Run = run or (lambda step, key, since: step(key))
        self._monotonic = monotonic
        # per lane, when it was woken for work not yet done: what waits in a lane waits
        # (for acknowledgements in flight, say) counted from then, not again per item
        self._since: dict[Lane, float] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active: set[Lane] = set()  # lanes a thread is stepping now
        self._again: set[Lane] = set()  # woken while active: look once more
        self._timers: dict[Lane, threading.Timer] = {}
        self._closed = False

    def wake(self, key: Lane) -> None:
        """Something was added to lane `key` (or its retry is due): step it soon."""
        with self._lock:
            if self._closed:
                return
            self._since.setdefault(key, self._monotonic())
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            if key in self._active:
                self._again.add(key)
                return
            self._active.add(key)
        self._submit(key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._active)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no lane is being stepped (a lane waiting for a retry is idle);
        False on timeout. For shutdown and tests."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._active, timeout)

    def _drain(self, key: Lane) -> None:
        wait: float | None = None
        for _ in range(TURN):
            with self._lock:
                since = self._since.setdefault(key, self._monotonic())
            try:
                wait = self._run(self._step, key, since)
            except Exception:  # the step records its own failures; never lose the lane
                log.exception("%s: stepping lane %s failed", self.name, key)
                wait = 1.0
            if wait != 0:
                break
        with self._lock:
            again = key in self._again
            self._again.discard(key)
            if wait is None and not again:  # caught up: the next wake starts a new wait
                self._since.pop(key, None)
            resubmit = not self._closed and (wait == 0 or again)
            if not resubmit:  # the lane stays active across a resubmission: never idle between
                self._release(key)
                if wait is not None and not self._closed and key not in self._timers:
                    timer = threading.Timer(wait, self.wake, (key,))
                    timer.daemon = True
                    self._timers[key] = timer
                    timer.start()
        if resubmit:
            self._submit(key)

    def _submit(self, key: Lane) -> None:
        try:
            self._pool.submit(self._drain, key)
        except RuntimeError:  # the pool is shutting down: the database keeps the work
            with self._lock:
                self._release(key)

    def _release(self, key: Lane) -> None:
        self._active.discard(key)
        if not self._active:
            self._idle.notify_all()
