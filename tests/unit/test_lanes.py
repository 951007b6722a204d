"""Lanes: one item at a time per lane, in order; lanes side by side; retries wake later."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.lanes import Lanes


class Queues:
    """A step over in-memory queues that records who ran what, and when lanes overlapped."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], list[str]] = {}
        self.done: list[tuple[tuple[str, int], str]] = []
        self.running: set[tuple[str, int]] = set()
        self.overlap: list[tuple[str, int]] = []  # a lane stepped by two threads at once
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()

    def step(self, lane: tuple[str, int]) -> float | None:
        with self.lock:
            if lane in self.running:
                self.overlap.append(lane)
            self.running.add(lane)
            queue = self.items.get(lane) or []
            item = queue.pop(0) if queue else None
        try:
            if item is None:
                return None
            self.gate.wait(5)
            with self.lock:
                self.done.append((lane, item))
            return 0
        finally:
            with self.lock:
                self.running.discard(lane)


@pytest.fixture
def pool():
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


def test_items_of_one_lane_run_in_order_and_never_two_at_once(pool):
    queues = Queues()
    lanes = Lanes("test", pool, queues.step)
    lane = ("incident", 1)
    for n in range(200):
        with queues.lock:
            queues.items.setdefault(lane, []).append(f"c{n}")
        lanes.wake(lane)  # woken once per item, as each request is journaled
    assert lanes.wait_idle(10)
    assert [item for _, item in queues.done] == [f"c{n}" for n in range(200)]
    assert queues.overlap == []


def test_lanes_run_side_by_side(pool):
    barrier = threading.Barrier(3, timeout=5)  # broken unless three lanes are inside at once
    met: list[tuple[str, int]] = []

    def step(lane: tuple[str, int]) -> float | None:
        if lane in met:
            return None
        barrier.wait()
        met.append(lane)
        return 0

    lanes = Lanes("test", pool, step)
    for incident in (1, 2, 3):
        lanes.wake(("incident", incident))
    assert lanes.wait_idle(10)
    assert not barrier.broken
    assert sorted(met) == [("incident", n) for n in (1, 2, 3)]


def test_a_lane_that_asks_to_wait_is_woken_again_later(pool):
    tries: list[int] = []
    woken = threading.Event()

    def step(lane: tuple[str, int]) -> float | None:
        tries.append(len(tries))
        if len(tries) == 1:
            return 0.05  # the head waits for a retry
        woken.set()
        return None

    lanes = Lanes("test", pool, step)
    lanes.wake(("incident", 7))
    assert woken.wait(5) and len(tries) == 2
    lanes.close()


def test_a_failing_step_does_not_lose_the_lane(pool, caplog):
    calls: list[int] = []
    done = threading.Event()

    def step(lane: tuple[str, int]) -> float | None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        done.set()
        return None

    lanes = Lanes("test", pool, step)
    lanes.wake(("incident", 1))
    assert lanes.wait_idle(5)
    lanes.wake(("incident", 1))
    assert done.wait(5)
    assert "stepping lane" in caplog.text
    lanes.close()


def test_a_lane_tells_each_step_when_it_was_woken_for_the_work_still_to_do(pool):
    """Items queued in a lane share the time of the wake that found it idle, so what they
    wait for (acknowledgements in flight) is counted once; a lane that caught up starts
    a new count at its next wake."""
    clock = [10.0]
    queues = Queues()
    seen: list[float] = []

    def run(step, lane, since):
        seen.append(since)
        clock[0] += 1  # each step takes a (fake) second
        return step(lane)

    lanes = Lanes("test", pool, queues.step, run=run, monotonic=lambda: clock[0])
    lane = ("incident", 1)
    queues.gate.clear()  # the first item holds the lane while the others queue
    with queues.lock:
        queues.items[lane] = ["a"]
    lanes.wake(lane)
    for item in ("b", "c"):
        with queues.lock:
            queues.items[lane].append(item)
        lanes.wake(lane)
    queues.gate.set()
    assert lanes.wait_idle(10)
    assert [item for _, item in queues.done] == ["a", "b", "c"]
    assert set(seen) == {10.0}  # every step of that backlog: since the first wake
    clock[0] = 50.0
    with queues.lock:
        queues.items[lane].append("d")
    lanes.wake(lane)
    assert lanes.wait_idle(10)
    assert seen[-1] == 50.0
