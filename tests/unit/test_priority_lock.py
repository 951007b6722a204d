"""The store's lock on SQLite: the journal (urgent) goes before commands that wait."""

from __future__ import annotations

import threading
import time

import pytest

from bot.priority_lock import PriorityLock


def _waiting(lock: PriorityLock, urgent: int = 0, normal: int = 0) -> None:
    """Until that many takers wait (read from the lock's own state)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with lock._guard:
            waiting = (lock._urgent_waiting, len(lock._normal._waiters))  # type: ignore[attr-defined]
        if waiting == (urgent, normal):
            return
        time.sleep(0.001)
    raise AssertionError(f"waiting: {waiting}, expected {(urgent, normal)}")


def test_an_urgent_taker_goes_before_everyone_who_waited_longer():
    lock = PriorityLock()
    order: list[str] = []
    lock.acquire()  # a command's transaction in progress

    def take(name: str, urgent: bool) -> None:
        lock.acquire(urgent=urgent)
        order.append(name)
        lock.release()

    normal = [threading.Thread(target=take, args=(f"command {i}", False)) for i in range(5)]
    for thread in normal:
        thread.start()
    _waiting(lock, normal=5)
    journal = threading.Thread(target=take, args=("journal", True))
    journal.start()
    _waiting(lock, urgent=1, normal=5)
    lock.release()
    for thread in [*normal, journal]:
        thread.join(5)
    assert order[0] == "journal"
    assert sorted(order[1:]) == [f"command {i}" for i in range(5)]  # none lost


def test_it_is_re_entrant_and_only_its_holder_releases_it():
    lock = PriorityLock()
    with lock, lock.urgent(), lock:  # nested takes by one thread (transaction, statement)
        assert lock._depth == 3
        failed: list[BaseException] = []
        other = threading.Thread(target=lambda: _release(lock, failed))
        other.start()
        other.join(5)
        assert isinstance(failed[0], RuntimeError)
    assert lock._owner is None
    with pytest.raises(RuntimeError):
        lock.release()


def _release(lock: PriorityLock, failed: list[BaseException]) -> None:
    try:
        lock.release()
    except RuntimeError as exc:
        failed.append(exc)
