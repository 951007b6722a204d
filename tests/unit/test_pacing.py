"""The per-channel pace: a burst of three, then one a second, each channel on its own."""

from __future__ import annotations

from bot.slack.pacing import Pacer
from tests.conftest import SleepRecorder as _Time


def test_a_burst_of_three_goes_at_once_then_one_a_second():
    clock = _Time()
    pacer = Pacer(interval=1.0, burst=3, monotonic=clock.monotonic, sleep=clock.sleep)
    waits = [pacer.wait("C1") for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_channels_do_not_wait_for_each_other():
    clock = _Time()
    pacer = Pacer(interval=1.0, burst=1, monotonic=clock.monotonic, sleep=clock.sleep)
    assert [pacer.wait(c) for c in ("C1", "C2", "C3")] == [0.0, 0.0, 0.0]


def test_a_quiet_channel_gets_its_burst_back():
    clock = _Time()
    pacer = Pacer(interval=1.0, burst=3, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(4):
        pacer.wait("C1")
    clock.now += 10
    assert [pacer.wait("C1") for _ in range(3)] == [0.0, 0.0, 0.0]
