"""Restart safety: a new process on the same database re-arms, catches up once, never repeats."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta

from bot.clock import FakeClock
from bot.engine import IncidentService
from bot.messages import Renderer
from bot.reminders import ReminderScheduler, ReminderService, run_until
from bot.store import Store
from tests.conftest import START, RecordingChat


def _process(path, clock, catalog, chat):
    """What a bot process holds: its own connection, service and reminder service."""
    store = Store(path)
    return (
        store,
        IncidentService(store, clock, catalog),
        ReminderService(store, clock, chat, Renderer("en", mention=chat.mention)),
    )


def _phase_reminders(store, incident_id):
    return [
        e.at - START
        for e in store.events(incident_id, kinds=("reminder",))
        if e.data["reminder"] == "phase"
    ]


def test_restart_sends_the_missed_reminder_once_and_keeps_the_cadence(tmp_path, drill_catalog):
    path, clock = tmp_path / "bot.db", FakeClock(START)
    chat = RecordingChat()
    store, svc, reminders = _process(path, clock, drill_catalog, chat)
    incident = svc.start("drill", "Checkout down", "ana").incident
    svc.set_channel(incident.id, "C1")
    svc.next_phase(incident.id, "ana")  # phase two: reminders every 15m
    run_until(reminders, clock, START + timedelta(minutes=16))
    assert _phase_reminders(store, incident.id) == [timedelta(minutes=15)]
    store.close()  # the process dies

    clock.set(START + timedelta(minutes=64))  # down across the 30m, 45m and 60m slots
    chat2 = RecordingChat()
    store, svc, reminders = _process(path, clock, drill_catalog, chat2)
    assert reminders.recover() == 0
    assert reminders.fire_due() >= 1
    (catch_up,) = [t for _, t in chat2.posts]  # one message, not a burst
    assert catch_up.count(":alarm_clock:") == 1  # one catch-up, not the three slots missed
    assert catch_up.startswith(":rotating_light:")  # the overrun of the 1h target, first
    run_until(reminders, clock, START + timedelta(minutes=91))
    assert _phase_reminders(store, incident.id) == [timedelta(minutes=m) for m in (15, 64, 75, 90)]
    store.close()


def test_a_reminder_interrupted_while_posting_is_never_posted_again(tmp_path, drill_catalog):
    path, clock = tmp_path / "bot.db", FakeClock(START)
    chat = RecordingChat()
    store, svc, reminders = _process(path, clock, drill_catalog, chat)
    incident = svc.start("drill", "Checkout down", "ana").incident
    svc.set_channel(incident.id, "C1")
    clock.set(START + timedelta(minutes=10))
    (due,) = [r for r in store.due_reminders(clock.now()) if r.kind == "phase"]
    # the process claimed it and died before recording the outcome
    assert store.set_reminder_state(due.id, "sending", clock.now(), expect="pending")
    store.close()

    chat2 = RecordingChat()
    store, svc, reminders = _process(path, clock, drill_catalog, chat2)
    assert reminders.recover() == 1
    reminders.fire_due()
    assert not any(t.startswith(":alarm_clock:") for _, t in chat2.posts)
    states = {r.id: r.state for r in store.reminders(incident.id)}
    assert states[due.id] == "unknown"
    store.close()


def test_two_processes_on_one_database_never_post_the_same_reminder(tmp_path, drill_catalog):
    path, clock = tmp_path / "bot.db", FakeClock(START)
    chat_a, chat_b = RecordingChat(), RecordingChat()
    store_a, svc, rem_a = _process(path, clock, drill_catalog, chat_a)
    store_b, _, rem_b = _process(path, clock, drill_catalog, chat_b)
    for n in range(30):
        incident = svc.start("drill", f"incident {n}", "ana").incident
        svc.set_channel(incident.id, f"C{n}")
    clock.set(START + timedelta(minutes=10))
    threads = [threading.Thread(target=r.fire_due) for r in (rem_a, rem_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    posted = [c for c, t in chat_a.posts + chat_b.posts if t.startswith(":alarm_clock:")]
    assert sorted(posted) == sorted(f"C{n}" for n in range(30))
    store_a.close()
    store_b.close()


class _SignallingChat(RecordingChat):
    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.done = threading.Event()

    def post(self, channel: str, text: str) -> None:
        super().post(channel, text)
        if len(self.posts) >= self.expected:
            self.done.set()


def test_live_scheduler_re_arms_from_the_database_on_start(tmp_path, drill_catalog):
    path, clock = tmp_path / "bot.db", FakeClock(START)
    store, svc, _ = _process(path, clock, drill_catalog, RecordingChat())
    incident = svc.start("drill", "Checkout down", "ana").incident
    svc.set_channel(incident.id, "C1")
    store.close()

    clock.set(START + timedelta(minutes=16))  # the 10m phase reminder and the 15m nudge are due
    chat = _SignallingChat(expected=1)
    store, svc, reminders = _process(path, clock, drill_catalog, chat)
    scheduler = ReminderScheduler(reminders, clock)
    scheduler.start()
    try:
        assert chat.done.wait(timeout=10), "the scheduler did not fire the overdue reminders"
    finally:
        scheduler.shutdown()
    (text,) = [t for _, t in chat.posts]  # what fell due for one incident goes out together
    assert text.count(":alarm_clock:") == 1
    assert text.count(":hourglass:") == 1
    assert text.index(":alarm_clock:") < text.index(":hourglass:")
    store.close()


def test_a_database_that_cannot_be_written_backs_the_alarm_off(tmp_path, drill_catalog, caplog):
    """Firing fails (e.g. disk full): the alarm waits 1, 2, 4 … s, capped at a minute, instead
    of re-firing at once for the same overdue row; the failure is logged once a minute."""
    path, clock = tmp_path / "bot.db", FakeClock(START)
    store, svc, reminders = _process(path, clock, drill_catalog, RecordingChat())
    incident = svc.start("drill", "Disk full", "ana").incident
    svc.set_channel(incident.id, "C1")
    clock.set(START + timedelta(minutes=20))  # reminders are due
    wall = [START]
    ticks = [0.0]
    scheduler = ReminderScheduler(
        reminders, clock, wall=lambda: wall[0], monotonic=lambda: ticks[0]
    )

    def disk_full() -> int:
        raise sqlite3.OperationalError("database or disk is full")

    reminders.fire_due = disk_full  # type: ignore[method-assign]
    scheduler._scheduler.start()
    try:
        waits = []
        for _ in range(9):
            scheduler._run()
            assert scheduler.next_wake is not None
            waits.append((scheduler.next_wake - wall[0]).total_seconds())
            ticks[0] += 1  # a second of monotonic time between firings
        assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
        assert caplog.text.count("firing reminders failed") == 1  # once a minute, not 9 times
        del reminders.fire_due  # the disk has room again
        scheduler._run()
        assert scheduler.failures == 0
        assert _phase_reminders(store, incident.id) == [timedelta(minutes=20)]  # the overdue one
    finally:
        scheduler.shutdown()
        store.close()


def test_changes_committed_during_a_re_arm_share_the_next_one_and_none_is_missed(
    tmp_path, drill_catalog
):
    """A burst of commands each ask for the alarm to be re-set (`changed`). They return at
    once (a command's thread holds its incident's lane); one re-arming thread reads the
    earliest reminder, and once more for all the changes committed while it read, which
    sees their commits: two reads for six changes, the alarm set for the new row."""
    path, clock = tmp_path / "bot.db", FakeClock(START)
    store, svc, reminders = _process(path, clock, drill_catalog, RecordingChat())
    # not started: its alarm (START + 1 h, long past in real time) would ring at once
    scheduler = ReminderScheduler(reminders, clock, wall=lambda: START)
    reads: list[str] = []
    inside, release = threading.Event(), threading.Event()
    read_due = store.next_reminder_due

    def slow_first_read():
        reads.append(threading.current_thread().name)
        if len(reads) == 1:
            inside.set()
            assert release.wait(5)
        return read_due()

    store.next_reminder_due = slow_first_read  # type: ignore[method-assign]
    try:
        scheduler.changed()  # returns at once: the re-arming thread reads
        assert inside.wait(5)  # it is reading: no reminder exists yet
        incident = svc.start("drill", "Checkout down", "ana").incident  # committed meanwhile
        for _ in range(5):
            scheduler.changed()  # the burst: each returns at once
        assert reads == ["alarm"] and not scheduler.settled(0)
        release.set()
        assert scheduler.settled(5)
        assert reads == ["alarm", "alarm"]  # one more read, for all five
        # the first read found no reminder (the alarm would stay off); the one more read
        # found the new incident's (a fake clock's alarm for later rings in an hour)
        assert read_due() is not None and incident.id
        assert scheduler.next_wake == START + timedelta(hours=1)
    finally:
        release.set()
        scheduler.shutdown()
        store.close()


def test_a_re_arm_that_fails_is_tried_again(tmp_path, drill_catalog, caplog):
    """The callers have returned, trusting the re-arm: a read that fails (the database is
    locked, say) is tried again until it works, and said once."""
    path, clock = tmp_path / "bot.db", FakeClock(START)
    store, svc, reminders = _process(path, clock, drill_catalog, RecordingChat())
    scheduler = ReminderScheduler(reminders, clock, wall=lambda: START)
    read_due = store.next_reminder_due
    failures = [sqlite3.OperationalError("database is locked")]

    def flaky():
        if failures:
            raise failures.pop()
        return read_due()

    store.next_reminder_due = flaky  # type: ignore[method-assign]
    try:
        svc.start("drill", "Checkout down", "ana")
        scheduler.changed()
        assert scheduler.settled(10)
        assert scheduler.next_wake == START + timedelta(hours=1) and not failures
        assert caplog.text.count("re-arming the reminder alarm failed") == 1
    finally:
        scheduler.shutdown()
        store.close()
