"""Plan redraws after reminders: once per incident however often marked, oldest first, paced."""

from __future__ import annotations

import threading

import pytest

from bot.slack.pacing import Pacer
from bot.slack.plan_redraws import PlanRedraws
from tests.conftest import SleepRecorder as _Time


def _redraws(redrawn: list[int], time: _Time, burst: int = 2) -> PlanRedraws:
    pacer = Pacer(interval=1.2, burst=burst, monotonic=time.monotonic, sleep=time.sleep)
    return PlanRedraws(redrawn.append, pacer)


def test_an_incident_marked_many_times_is_redrawn_once_oldest_mark_first():
    redrawn: list[int] = []
    redraws = _redraws(redrawn, _Time())
    for incident_id in (7, 3, 7, 7, 5, 3):
        redraws.mark(incident_id)
    assert redraws.pending == 3
    while redraws.redraw_next() is not None:
        pass
    assert redrawn == [7, 3, 5]
    assert redraws.pending == 0


def test_redraws_keep_to_slacks_pace_for_chat_update():
    time, redrawn = _Time(), []
    redraws = _redraws(redrawn, time, burst=2)
    for incident_id in range(5):
        redraws.mark(incident_id)
    while redraws.redraw_next() is not None:
        pass
    assert redrawn == [0, 1, 2, 3, 4]
    assert time.slept == pytest.approx([1.2, 1.2, 1.2])  # two at once, then 1 per 1.2 s (50/min)


def test_a_failed_redraw_is_logged_and_the_next_one_still_runs(caplog):
    redrawn: list[int] = []

    def redraw(incident_id: int) -> None:
        if incident_id == 1:
            raise ConnectionError("Slack is down")
        redrawn.append(incident_id)

    redraws = PlanRedraws(redraw, Pacer(interval=0.0))
    redraws.mark(1)
    redraws.mark(2)
    assert redraws.redraw_next() == 1
    assert redraws.redraw_next() == 2
    assert redrawn == [2]
    assert "redrawing the plan of INC-1 failed" in caplog.text


def test_the_background_thread_redraws_what_is_marked_and_stops():
    done = threading.Event()
    redrawn: list[int] = []

    def redraw(incident_id: int) -> None:
        redrawn.append(incident_id)
        done.set()

    redraws = PlanRedraws(redraw, Pacer(interval=0.0))
    redraws.start()
    try:
        redraws.mark(42)
        assert done.wait(timeout=10)
    finally:
        redraws.stop()
    assert redrawn == [42]
    assert redraws._thread is not None and not redraws._thread.is_alive()
