"""Acknowledging Slack comes first: background work waits while requests are arriving.

Slack gives an app 3 s to acknowledge a command; the people who typed it notice
far less. Python runs one thread at a time, so a command being carried out, a
plan being drawn or a message being posted slows the acknowledgement of the
next command that arrives meanwhile. Background work therefore pauses at its
natural breaks (before a command's processing, a Web API call, a plan redraw)
while a request is in flight or one ended less than `QUIET` ago (a burst is
still arriving). Each piece of work may be held back `MAX_DEFER` in all, so
steady traffic delays it a little but never starves it.

On PostgreSQL every statement is such a break as well (`step_aside`): a command
there is a dozen round trips, and each is a moment the command's thread would
win Python's lock back from the acknowledgement being written beside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

QUIET = 0.003  # seconds without requests that end a burst
MAX_DEFER = 0.5  # seconds one piece of work is held back at most, over all its pauses
STEP_ASIDE = 0.01  # seconds background work waits at most before one database statement
STEP_ASIDE_IN_ALL = 0.1  # … and over all the statements of one piece of work


class RequestsFirst:
    def __init__(
        self,
        quiet: float = QUIET,
        max_defer: float = MAX_DEFER,
        monotonic: Callable[[], float] = time.monotonic,
        statement_wait: float = STEP_ASIDE,
        statements_wait: float = STEP_ASIDE_IN_ALL,
    ) -> None:
        self.quiet = quiet
        self.max_defer = max_defer
        self.statement_wait = statement_wait
        self.statements_wait = statements_wait
        self._monotonic = monotonic
        self._in_flight = 0
        self._last_end = float("-inf")
        self._cond = threading.Condition()
        self._local = threading.local()  # per thread: the deadline of the work it runs

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around receiving and acknowledging one request (the HTTP handler's thread)."""
        with self._cond:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._last_end = self._monotonic()
                if not self._in_flight:  # waking the waiting work only then keeps bursts quick
                    self._cond.notify_all()

    def run(
        self,
        work: Callable[..., T],
        *args: object,
        max_defer: float | None = None,
        since: float | None = None,
    ) -> T:
        """Run one piece of background work, pausing first and before each Web API call
        it makes (`pause`) while requests arrive; its pauses share one `max_defer`
        (default: the instance's), counted from `since` (a `time.monotonic()` reading:
        when the work arrived; default now), so work that already waited in a queue
        does not wait again."""
        allowance = self.max_defer if max_defer is None else max_defer
        start = self._monotonic() if since is None else min(since, self._monotonic())
        self._local.deadline = start + allowance
        self._local.aside = self.statements_wait  # what stepping aside may still take
        try:
            self.pause()
            return work(*args)
        finally:
            self._local.deadline = None

    def pause(self) -> bool:
        """Inside `run`: wait until requests have stopped arriving, within the work's
        allowance; True when it is quiet. Elsewhere (a request's own thread, reminders,
        which keep their own time) it returns at once."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            return True
        with self._cond:
            while True:
                now = self._monotonic()
                since = now - self._last_end
                if self._in_flight == 0 and since >= self.quiet:
                    return True
                if now >= deadline:
                    return False
                wait = self.quiet - since if self._in_flight == 0 else deadline - now
                self._cond.wait(min(wait, deadline - now))

    def step_aside(self) -> None:
        """Inside `run`, before a database statement (PostgreSQL): while a request is in
        flight, wait for it to be answered, `statement_wait` at most each time and
        `statements_wait` over the whole piece of work, also once its allowance for
        pauses is spent (steady traffic spends that, and then the work would compete at
        every statement). Bounded in all, so a client that keeps a request in flight
        (a body sent slowly) cannot hold background work back for longer than that. Not
        on SQLite, where a statement inside a transaction holds the write lock the
        journal needs."""
        if getattr(self._local, "deadline", None) is None or not self._in_flight:
            return  # not background work (a request's thread, reminders), or nothing to wait for
        began = self._monotonic()
        end = began + min(self.statement_wait, self._local.aside)
        with self._cond:
            while self._in_flight:
                left = end - self._monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        self._local.aside = max(self._local.aside - (self._monotonic() - began), 0.0)
