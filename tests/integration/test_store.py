"""The SQLite store: round trips, reopening, migrations and several threads."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.engine import IncidentService
from bot.events import EventKind, Note, RiskTriggered
from bot.store import Store, StoreError
from tests.conftest import START


def test_incident_state_survives_reopening_the_database(tmp_path, catalog):
    path = tmp_path / "bot.db"
    clock = FakeClock(START)
    first = IncidentService(Store(path), clock, catalog)
    incident = first.start("service-outage", "Checkout down", "ana").incident
    first.assign(incident.id, "tech-lead", "ben", "ana")
    first.handoff(incident.id, "commander", "ivy", "ana")
    first.done(incident.id, "1.1", "ana")
    clock.advance(timedelta(minutes=20))
    first.mitigated(incident.id, "ana")
    first.store.close()

    again = IncidentService(Store(path), clock, catalog)
    view = again.view(incident.id)
    assert view.incident.status == "mitigated"
    assert view.incident.mitigated_at == START + timedelta(minutes=20)
    assert view.holders == {"commander": "ana", "tech-lead": "ben"}
    assert [h.to_user for h in view.pending] == ["ivy"]
    assert {s.step.id: s.state for s in view.steps}["1.1"] == "done"
    again.accept(incident.id, "ivy")  # the pending handoff is still acceptable
    assert again.store.current_holders(incident.id)["commander"] == "ivy"
    again.store.close()


def test_event_round_trip_keeps_data_and_order(store):
    incident_id = store.insert_incident(
        title="t",
        severity="sev2",
        status="active",
        runbook_id="r",
        runbook_version="v",
        runbook_snapshot="{}",
        phase_index=0,
        declared_by="ana",
        started_at=START,
    )
    store.append_event(incident_id, START, "ana", RiskTriggered("ü ✓"), "first")
    store.append_event(incident_id, START, "ben", Note(), "second")
    events = store.events(incident_id)
    assert [e.text for e in events] == ["first", "second"]
    assert events[0].data == {"risk": "ü ✓"} and events[0].payload == RiskTriggered("ü ✓")
    assert events[1].kind == EventKind.NOTE and events[1].payload == Note()
    assert events[0].at == START


def test_database_uses_wal_and_records_its_schema_version(store):
    assert store.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    assert store.query("PRAGMA user_version")[0]["user_version"] >= 1


def test_a_transaction_that_fails_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.set_meta("k", "v")
            raise RuntimeError("boom")
    assert store.get_meta("k") is None


def test_another_programs_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not an incident-bot database"):
        Store(path)


def test_a_file_that_is_not_sqlite_gives_a_clear_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        Store(path)


def test_many_threads_write_to_many_incidents_without_losing_events(store, catalog):
    service = IncidentService(store, FakeClock(START), catalog)
    ids = [service.start("service-outage", f"incident {n}", "ana").incident.id for n in range(8)]
    errors: list[BaseException] = []

    def worker(incident_id: int) -> None:
        try:
            for n in range(25):
                service.update(incident_id, f"update {n}", "ben")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for incident_id in ids:
        updates = store.events(incident_id, kinds=("update",))
        assert [e.text for e in updates] == [f"update {n}" for n in range(25)]


def test_a_database_from_before_review_fields_upgrades_and_keeps_its_actions(tmp_path):
    from bot.database import ddl_for
    from bot.store import _APP_ID, MIGRATIONS

    path = tmp_path / "old.db"
    old = sqlite3.connect(str(path), isolation_level=None)
    for statements in MIGRATIONS[:5]:  # the schema before actions had a priority and a link
        for statement in statements:
            old.execute(ddl_for("sqlite", statement))
    old.execute(f"PRAGMA application_id={_APP_ID}")
    old.execute("PRAGMA user_version=5")
    old.execute(
        "INSERT INTO incidents (id, title, severity, status, runbook_id, started_at) "
        "VALUES (1, 'x', 'sev2', 'closed', 'r', '2026-01-15T02:00:00+00:00')"
    )
    old.execute(
        "INSERT INTO actions (incident_id, text, owner, due, status, created_at) "
        "VALUES (1, 'Pin the pool', 'eli', NULL, 'open', '2026-01-15T02:00:00+00:00')"
    )
    old.close()
    store = Store(path)
    try:
        (action,) = store.actions(1)
        assert (action.text, action.priority, action.link) == ("Pin the pool", None, None)
        store.add_action(
            1, "Alert", None, None, action.created_at, priority="p1", link="https://x.example/1"
        )
        assert [(a.priority, a.link) for a in store.actions(1)][-1] == ("p1", "https://x.example/1")
        assert store.query("PRAGMA user_version")[0]["user_version"] == len(MIGRATIONS)
    finally:
        store.close()


def test_a_database_written_by_the_previous_release_opens_and_carries_on(tmp_path):
    """tests/data/schema7.db was written by the bot before the store ran on PostgreSQL too
    (sqlite-utils built its tables): an incident, a role, an update, a step, an action and
    a request left unfinished. It upgrades in place and everything is still there."""
    import shutil

    path = tmp_path / "v7.db"
    shutil.copy(Path(__file__).parent.parent / "data" / "schema7.db", path)
    store = Store(path)
    try:
        (incident,) = store.incidents()
        assert incident.title == "From the previous release"
        assert store.current_holders(incident.id) == {"commander": "ana", "tech-lead": "ben"}
        assert [e.text for e in store.events(incident.id, kinds=("update",))] == ["looking at it"]
        assert set(store.step_records(incident.id)) == {"1.1"}
        (action,) = store.actions(incident.id)
        assert (action.priority, action.link) == ("p1", "https://x.example/1")
        (left,) = store.unfinished_requests()
        assert left["incident_id"] == incident.id and left["attempts"] == 0
        store.set_holder(incident.id, "ops-a", "chen", incident.started_at)  # still writable
        assert store.current_holders(incident.id)["ops-a"] == "chen"
    finally:
        store.close()
