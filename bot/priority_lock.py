"""A re-entrant lock whose urgent takers go before everyone waiting.

On SQLite every thread shares one connection behind one lock: commands, posts
being recorded, reminders, and the journal of requests that wait for their
acknowledgement. A plain lock is taken by whichever waiter the OS wakes, so a
request could wait behind several commands' transactions in a row. Here the
journal (`urgent()`) waits at most for the transaction in progress.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PriorityLock:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._urgent = threading.Condition(self._guard)  # urgent takers wait here
        self._normal = threading.Condition(self._guard)  # the others here
        self._owner: int | None = None
        self._depth = 0
        self._urgent_waiting = 0

    def acquire(self, urgent: bool = False) -> None:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return
            try:
                if urgent:
                    self._urgent_waiting += 1
                    try:
                        while self._owner is not None:
                            self._urgent.wait()
                    finally:
                        self._urgent_waiting -= 1
                else:
                    while self._owner is not None or self._urgent_waiting:
                        self._normal.wait()
            except BaseException:  # interrupted (Ctrl-C) after being woken: wake the next
                if self._owner is None:
                    self._wake_next()
                raise
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._guard:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a PriorityLock this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            self._wake_next()

    def _wake_next(self) -> None:
        """(Holding the guard, the lock free.) An urgent waiter if any, else another."""
        if self._urgent_waiting:
            self._urgent.notify()
        else:
            self._normal.notify()

    def __enter__(self) -> PriorityLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @contextmanager
    def urgent(self) -> Iterator[None]:
        """Held like `with lock:`, but taken before any waiter that is not urgent."""
        self.acquire(urgent=True)
        try:
            yield
        finally:
            self.release()
