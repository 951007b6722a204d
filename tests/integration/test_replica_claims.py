"""Replicas on PostgreSQL claim due reminders side by side: while one holds a chunk, the
next takes other incidents (never the same rows, never nothing while work is due)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from bot.clock import FakeClock
from bot.engine import IncidentService
from bot.events import EventKind
from bot.messages import Renderer
from bot.reminders import CHUNK, CONTENDED, ReminderScheduler, ReminderService
from bot.store import Store
from tests.conftest import START, RecordingChat, store_on


def _due_incidents(url: str, catalog, count: int) -> FakeClock:
    clock = FakeClock(START)
    store = Store(url)
    service = IncidentService(store, clock, catalog)
    for k in range(count):
        incident = service.start("service-outage", f"Outage {k}", "ana").incident
        service.set_channel(incident.id, f"C{k}")
    store.close()
    clock.set(START + timedelta(minutes=16))  # every incident's first phase reminder is due
    return clock


def test_while_one_replica_holds_a_chunk_another_claims_other_incidents(postgres_url, catalog):
    clock = _due_incidents(postgres_url, catalog, 3 * CHUNK)
    first, second = Store(postgres_url), Store(postgres_url)
    held, release, taken = threading.Event(), threading.Event(), set[int]()

    def first_replica() -> None:
        with first.transaction():
            taken.update(first.due_chunk(clock.now(), CHUNK)[0])
            held.set()
            release.wait(10)

    thread = threading.Thread(target=first_replica)
    thread.start()
    try:
        assert held.wait(10) and taken
        with second.transaction():
            held, rows = second.due_chunk(clock.now(), CHUNK)
            mine = set(held)
            assert {r.incident_id for r in rows} == mine
    finally:
        release.set()
        thread.join(10)
        first.close()
        second.close()
    assert mine, "the second replica found nothing to do while reminders were due"
    assert not mine & taken


def test_two_replicas_firing_at_once_post_every_due_reminder_once(postgres_url, catalog):
    clock = _due_incidents(postgres_url, catalog, 5 * CHUNK)
    replicas = []
    for _ in range(2):
        chat = RecordingChat()
        store = Store(postgres_url)
        replicas.append((store, chat, ReminderService(store, clock, chat, Renderer("en"))))
    start = threading.Barrier(2)

    def fire(service: ReminderService) -> None:
        start.wait(10)
        service.fire_due()

    threads = [threading.Thread(target=fire, args=(r[2],)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    posts = Counter(channel for _, chat, _ in replicas for channel, _ in chat.posts)
    for store, _, _ in replicas:
        store.close()
    assert set(posts) == {f"C{k}" for k in range(5 * CHUNK)}
    assert set(posts.values()) == {1}


def test_a_replica_that_finds_every_due_row_held_waits_a_moment_instead_of_spinning(
    postgres_url, catalog
):
    clock = _due_incidents(postgres_url, catalog, 2)
    holder, store = Store(postgres_url), Store(postgres_url)
    service = ReminderService(store, clock, RecordingChat(), Renderer("en"))
    wall = START  # the scheduler's wall clock, frozen: what it arms is exact
    scheduler = ReminderScheduler(service, clock, wall=lambda: wall)
    try:
        with holder.transaction():  # the other replica is claiming them right now
            assert holder.due_chunk(clock.now(), 100)[0]  # every incident
            scheduler._run()
            assert not service.claimed_any
            assert scheduler.next_wake == wall + timedelta(seconds=CONTENDED)
        scheduler._run()  # released (say, its claim was rolled back): this one takes them
        assert service.claimed_any
    finally:
        scheduler.shutdown()
        holder.close()
        store.close()


def test_an_incident_held_by_a_command_is_left_for_later_not_waited_for(postgres_url, catalog):
    """A command in progress (another replica's, say) holds its incident: the reminders of
    the other incidents go out meanwhile; that incident's follow once it is released."""
    clock = _due_incidents(postgres_url, catalog, 3)
    command, store = Store(postgres_url), Store(postgres_url)
    chat = RecordingChat()
    service = ReminderService(store, clock, chat, Renderer("en"))
    try:
        with command.transaction():
            command.locked_incident(1)  # what a command's lane does first
            service.fire_due()  # would block here until the command commits
            assert sorted({channel for channel, _ in chat.posts}) == ["C1", "C2"]
        service.fire_due()
        assert sorted({channel for channel, _ in chat.posts}) == ["C0", "C1", "C2"]
        assert len(chat.posts) == 3
    finally:
        command.close()
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_chunk_with_an_escalation_among_its_rows_decides_the_rest_on_both_databases(
    backend, tmp_path, request, catalog
):
    """Each incident's second slot holds its phase reminder and the 'no update within 30m'
    risk, which changes the incident (the row after it reads it again, inside the chunk's
    batched writes on PostgreSQL): every slot's reminder still goes out, on both."""
    clock = FakeClock(START)
    store = store_on(backend, tmp_path, request)
    service = IncidentService(store, clock, catalog)
    for k in range(5):
        incident = service.start("service-outage", f"Outage {k}", "ana").incident
        service.set_channel(incident.id, f"C{k}")
    chat = RecordingChat()
    reminders = ReminderService(store, clock, chat, Renderer("en"))
    try:
        for minutes in (16, 31, 46):
            clock.set(START + timedelta(minutes=minutes))
            reminders.fire_due()
        alarms = Counter(c for c, text in chat.posts if ":alarm_clock:" in text)
        assert alarms == {f"C{k}": 3 for k in range(5)}
        for k in range(5):
            assert store.events(k + 1, kinds=(EventKind.RISK_TRIGGERED,))
    finally:
        store.close()


def test_inside_the_pipeline_a_write_asked_for_its_row_count_still_gets_it(postgres_url, catalog):
    """(PostgreSQL learns a row count only from the answer: asking for it waits for it.)"""
    clock = _due_incidents(postgres_url, catalog, 1)
    store = Store(postgres_url)
    try:
        (due,) = [r for r in store.due_reminders(clock.now()) if r.kind == "phase"]
        with store.transaction(), store.pipeline():
            assert store.set_reminder_state(due.id, "skipped", clock.now(), expect="pending")
            assert not store.set_reminder_state(due.id, "sent", clock.now(), expect="pending")
        (row,) = [r for r in store.reminders(state="skipped") if r.id == due.id]
        assert row.kind == "phase"
    finally:
        store.close()
