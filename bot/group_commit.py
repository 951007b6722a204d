"""Group commit: requests arriving together share one transaction and one sync to disk.

Every request is journaled, synced to the disk, before it is acknowledged. On
SQLite a sync costs a few hundred microseconds of waiting, under the lock that
every command's transaction also needs, so fifty requests in flight (a busy
sev1 channel) would queue behind fifty syncs one after another. Instead the
first caller to find no write in progress becomes the leader: it writes every
entry waiting at that moment in one transaction, syncs once, and hands each
caller its own result. Callers that arrive meanwhile wait for the next round.
One caller alone pays what it paid before, nothing more.

On PostgreSQL the wait is the round trip, not the disk: each statement a thread
waits for is also a wait to win Python's lock back from the busy threads, so a
round goes out as one pipelined transaction (`Store._journal_round`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Entry(Generic[T, R]):
    work: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None
    # set when its round is written, or when it is to lead the next one: each caller is
    # woken once, not every caller at every round (fifty in flight, a handful of rounds)
    woken: threading.Event = field(default_factory=threading.Event)


class GroupCommit(Generic[T, R]):
    """`write(works)` writes one round, durably, as one transaction: each entry's result,
    or the error that failed that entry alone, in order; raising fails every caller of
    the round (its commit, or its sync, failed: none of them is written)."""

    def __init__(self, write: Callable[[list[T]], list[R | Exception]]) -> None:
        self._write_round = write
        self._lock = lock = threading.Lock()  # the line, and who is writing
        # who watches the line (tests) waits here, woken as callers join it or a round
        # starts, so no caller waiting for its round is woken for nothing
        self.queued = threading.Condition(lock)
        self._waiting: list[_Entry[T, R]] = []
        self._writing = False
        self.rounds = 0  # transactions written (tests and benchmarks read it)

    @classmethod
    def in_one_transaction(
        cls,
        batch: Callable[[], AbstractContextManager[object]],
        each: Callable[[T], R],
        intact: Callable[[], bool],
    ) -> GroupCommit[T, R]:
        """Rounds written entry by entry: `batch()` opens the shared transaction (and makes
        its commit durable); `each(work)` writes one entry inside it, as one statement,
        which the database undoes alone when it fails (SQLite): an entry that fails fails
        only its own caller. Unless the failure ended the shared transaction (`intact()`
        says False: SQLite may roll it all back on a full disk, say): then, as for a failed
        commit, every caller of the round fails."""

        def write(works: list[T]) -> list[R | Exception]:
            results: list[R | Exception] = []
            with batch():
                for work in works:
                    try:
                        results.append(each(work))
                    except Exception as exc:  # this entry only: its statement was undone
                        if not intact():
                            raise
                        results.append(exc)
            return results

        return cls(write)

    def submit(self, work: T) -> R:
        """Write `work` durably, possibly in one transaction with others; its result, or
        its error raised here."""
        entry: _Entry[T, R] = _Entry(work)
        batch: list[_Entry[T, R]] = []
        with self._lock:
            self._waiting.append(entry)
            self.queued.notify_all()
            if not self._writing:  # no round in progress: lead one, for all who wait
                batch, self._waiting = self._waiting, []
                self._writing = True
        if not batch:
            entry.woken.wait()
            if not entry.done:  # the round before has ended: lead the next
                with self._lock:
                    batch, self._waiting = self._waiting, []
                    self.queued.notify_all()
        if batch:
            ended = False
            following: _Entry[T, R] | None = None
            try:
                self._write(batch)
                ended = True
            finally:
                with self._lock:
                    for written in batch:
                        if not ended:  # a BaseException ended the round: nothing is written
                            written.result = None
                            written.error = RuntimeError("the commit round was interrupted")
                        written.done = True
                    following = self._waiting[0] if self._waiting else None
                    self._writing = following is not None  # it leads the next round
                    self.queued.notify_all()
                for written in batch:
                    written.woken.set()
                if following is not None:
                    following.woken.set()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    def _write(self, batch: list[_Entry[T, R]]) -> None:
        try:
            results = self._write_round([entry.work for entry in batch])
        except Exception as exc:  # the commit or the sync failed: none of them is written
            for entry in batch:
                entry.result, entry.error = None, exc
            return
        for entry, result in zip(batch, results, strict=True):  # one answer for each
            if isinstance(result, Exception):
                entry.error = result
            else:
                entry.result = result
        self.rounds += 1
