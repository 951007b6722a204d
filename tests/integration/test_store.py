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
from tests.conftest import START, store_on


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The store and engine suites run on both databases."""
    store = store_on(request.param, tmp_path, request)
    yield store
    store.close()


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


def test_database_uses_wal_and_records_its_schema_version(tmp_path):
    store = Store(tmp_path / "wal.db")
    try:
        assert store.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
        assert store.query("PRAGMA user_version")[0]["user_version"] >= 1
    finally:
        store.close()


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
        assert action.done_at is None  # marking follow-ups done came later (schema 8)
        assert store.complete_action(action.id, action.created_at)
        assert store.action(action.id).done_at == action.created_at
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


def _journal(
    store: Store, key: str, at=START, delivery: str | None = None, incident: int | None = None
):
    return store.journal(
        at, key, at - timedelta(seconds=5), "ana", "C1", incident, '{"text": "x"}', None, delivery
    )


def test_requests_journaled_together_share_one_synced_commit_and_each_gets_its_own_id(tmp_path):
    """Fifty requests in flight: while one round is being synced the others line up and
    are written by the next round, one transaction and one sync for all of them; each
    caller still gets its own row (or its own repeat), readable from another connection
    as soon as the call returns."""
    path = tmp_path / "bot.db"
    store = Store(path)
    keys = [f"k{i}" for i in range(49)] + ["k0"]  # the last one: a double click of the first
    out: dict[int, object] = {}
    group = store._journals
    store._db.lock.acquire()  # the first round cannot start writing yet: the rest queue
    try:
        threads = [
            threading.Thread(target=lambda i=i: out.__setitem__(i, _journal(store, keys[i])))
            for i in range(len(keys))
        ]
        threads[0].start()
        with group.queued:
            assert group.queued.wait_for(lambda: group._writing, timeout=5)
        for thread in threads[1:]:
            thread.start()
        with group.queued:
            assert group.queued.wait_for(lambda: len(group._waiting) == len(keys) - 1, timeout=5)
    finally:
        store._db.lock.release()
    for thread in threads:
        thread.join(10)
    assert group.rounds == 2
    ids = [out[i][0] for i in range(len(keys) - 1)]  # type: ignore[index]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    assert out[len(keys) - 1] == "double"
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == len(keys) - 1
        assert other.execute("PRAGMA synchronous").fetchone()[0] == 2  # the default: FULL
    finally:
        other.close()
    assert store._db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again
    store.close()


def _second_round_on_postgresql(
    store: Store,
    url: str,
    works: list[tuple[str, str | None]],
    incidents: dict[int, int] | None = None,
):
    """`works` (key, delivery) journaled while a first round waits on the server (its key
    is locked from another session): they line up and share round two. Each caller's
    answer, or the error it got."""
    import psycopg

    out: dict[int, object] = {}
    group = store._journals

    def one(i: int, key: str, delivery: str | None) -> None:
        try:
            out[i] = _journal(store, key, delivery=delivery, incident=(incidents or {}).get(i))
        except Exception as exc:
            out[i] = exc

    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('first'))")
        first = threading.Thread(target=one, args=(-1, "first", None))
        first.start()
        with group.queued:
            assert group.queued.wait_for(lambda: group._writing, timeout=5)
        threads = [
            threading.Thread(target=one, args=(i, key, delivery))
            for i, (key, delivery) in enumerate(works)
        ]
        for thread in threads:
            thread.start()
        with group.queued:
            assert group.queued.wait_for(lambda: len(group._waiting) == len(works), timeout=5)
        other.execute("SELECT pg_advisory_unlock(hashtext('first'))")
    for thread in [first, *threads]:
        thread.join(10)
    assert isinstance(out[-1], tuple)
    return out


def test_on_postgresql_requests_journaled_together_share_one_transaction(postgres_url):
    """(One round trip: what a thread waiting to acknowledge waits for.) Each caller still
    gets its own row; a double click inside the round is still a double, a delivery Slack
    sent twice is still a repeat, as when they come in rounds of their own."""
    store = Store(postgres_url)
    try:
        works: list[tuple[str, str | None]] = [(f"k{i}", f"d{i}") for i in range(20)]
        works += [("k3", None), ("other", "d5")]  # a double click of k3; d5 delivered again
        out = _second_round_on_postgresql(store, postgres_url, works)
        assert store._journals.rounds == 2
        ids = [out[i][0] for i in range(20)]  # type: ignore[index]
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 20
        assert (out[20], out[21]) == ("double", "delivery")
        transactions = store.query("SELECT COUNT(DISTINCT xmin::text) AS n FROM inbox")
        assert transactions[0]["n"] == 2  # the first round's row, and all twenty of round two
        again = Store(postgres_url)  # committed: another replica sees them
        assert again.query("SELECT COUNT(*) AS n FROM inbox")[0]["n"] == 21
        again.close()
    finally:
        store.close()


def test_on_postgresql_a_request_the_database_refuses_fails_only_its_own_caller(postgres_url):
    """A NUL character, which PostgreSQL's text cannot hold, fails the round's transaction:
    the round is written again one entry at a time, so the others are journaled."""
    import psycopg

    store = Store(postgres_url)
    try:
        works: list[tuple[str, str | None]] = [("ok-1", None), ("bad\x00key", None), ("ok-2", None)]
        out = _second_round_on_postgresql(store, postgres_url, works)
        assert isinstance(out[1], psycopg.DataError)
        assert isinstance(out[0], tuple) and isinstance(out[2], tuple)
        keys = [r["dedupe_key"] for r in store.query("SELECT dedupe_key FROM inbox ORDER BY id")]
        assert keys == ["first", "ok-1", "ok-2"]
    finally:
        store.close()


def test_on_postgresql_an_entry_the_server_refuses_midway_fails_only_its_caller(postgres_url):
    """(The server aborts the round's pipeline at that insert and skips the rest.) The
    round is written again one entry at a time; its connection goes back to the pool
    fit for the next round."""
    store = Store(postgres_url)
    try:
        works: list[tuple[str, str | None]] = [("ok-1", "d1"), ("bad", "d2"), ("ok-2", "d3")]
        out = _second_round_on_postgresql(store, postgres_url, works, incidents={1: 2**63})
        assert "out of range" in str(out[1])  # an incident id no BIGINT holds
        assert isinstance(out[0], tuple) and isinstance(out[2], tuple)
        assert isinstance(_journal(store, "next", delivery="d4"), tuple)
        keys = [r["dedupe_key"] for r in store.query("SELECT dedupe_key FROM inbox ORDER BY id")]
        assert keys == ["first", "ok-1", "ok-2", "next"]
    finally:
        store.close()


def test_on_postgresql_journaling_needs_no_connection_of_the_main_pool(postgres_url):
    """(Background work may hold every one of them.) A repeat is told apart inside its
    round's transaction: nothing is asked once it has committed, and no caller whose row
    is in the inbox is told it was not recorded."""
    store = Store(postgres_url)
    pool = store._db.pool  # type: ignore[attr-defined]
    held = [pool.getconn() for _ in range(store._db.POOL_MAX)]  # type: ignore[attr-defined]
    try:
        assert isinstance(_journal(store, "k", delivery="d1"), tuple)
        assert _journal(store, "k", delivery="d2") == "double"  # the same, moments later
        assert _journal(store, "other", delivery="d1") == "delivery"  # Slack sent it again
    finally:
        for conn in held:
            pool.putconn(conn)
        store.close()


def test_on_postgresql_a_delivery_journaled_meanwhile_by_a_replica_is_a_repeat(postgres_url):
    """Another replica's round holds the same Slack delivery under another key (a read-only
    verb's key carries its moment), not yet committed: this journal waits for it and
    answers "delivery" (Slack sent it again: ignored), not "double" (which answers the
    person that their request was a repeat)."""
    import psycopg

    store = Store(postgres_url)
    out: list[object] = []
    try:
        with psycopg.connect(postgres_url) as other:  # a transaction, as a round is
            other.execute("SELECT pg_advisory_xact_lock(hashtext('env:D'))")
            other.execute(
                "INSERT INTO inbox (received_at, dedupe_key, actor, payload, delivery) "
                "VALUES (%s, 'status at one moment', 'ana', '{}', 'env:D')",
                [START.isoformat()],
            )
            thread = threading.Thread(
                target=lambda: out.append(_journal(store, "status at another", delivery="env:D"))
            )
            thread.start()
            thread.join(0.3)
            assert thread.is_alive()  # waiting for the other replica's round
        thread.join(10)  # it committed
        assert out == ["delivery"]
    finally:
        store.close()


def test_the_statement_hook_runs_before_each_postgresql_statement_never_on_sqlite(store):
    """(The Slack server hooks RequestsFirst.step_aside there: background work lets an
    acknowledgement go first at each statement. On SQLite a thread waiting inside a
    transaction would hold the write lock the journal needs.)"""
    calls: list[str] = []
    store.before_statement(lambda: calls.append(threading.current_thread().name))
    with store.transaction():  # its beginning, then each statement
        store.incident(1)
        store.incident(2)
    store.incident(3)  # a statement on its own
    assert calls == (["MainThread"] * 4 if store.is_postgres else [])


def test_a_request_journaled_inside_a_transaction_joins_it(store):
    """(No round of its own: the caller's transaction decides, as for any other write; its
    repeats are told apart in it as in a round.)"""
    with pytest.raises(RuntimeError), store.transaction():
        assert isinstance(_journal(store, "inside", delivery="d1"), tuple)
        assert _journal(store, "inside", delivery="d2") == "double"
        assert _journal(store, "other", delivery="d1") == "delivery"
        raise RuntimeError("rolled back")
    assert store.query("SELECT COUNT(*) AS n FROM inbox")[0]["n"] == 0
    assert store._journals.rounds == 0


def test_a_request_is_journaled_with_the_incident_whose_channel_it_came_from(store, catalog):
    """The journal finds the channel's incident in its own transaction (one wait for the
    database before the ack); a channel that is no incident's, or a request that names
    its incident, is kept as it came."""
    service = IncidentService(store, FakeClock(START), catalog)
    incident = service.start("service-outage", "checkout down", "ana").incident
    store.update_incident(incident.id, channel="CINC")
    window = START - timedelta(seconds=5)

    def journal(key: str, channel: str | None, named: int | None = None) -> object:
        return store.journal(START, key, window, "ana", channel, named, "{}", None)

    inbox_id, found = journal("a", "CINC")  # type: ignore[misc]
    assert found == incident.id
    assert store.request(inbox_id)["incident_id"] == incident.id  # type: ignore[index]
    assert journal("b", "CELSEWHERE")[1] is None  # type: ignore[index]
    assert journal("c", None)[1] is None  # type: ignore[index]
    assert journal("d", "CELSEWHERE", named=incident.id)[1] == incident.id  # type: ignore[index]


def test_a_transaction_sqlite_rolled_back_by_itself_is_not_carried_on_outside(tmp_path):
    """(SQLite may roll a transaction back on a full disk or an I/O error.) What the code
    does next inside it must fail, not commit on its own; and the journal's group commit
    sees it, so no caller of the round is told its entry was or was not written wrongly."""
    store = Store(tmp_path / "bot.db")
    try:
        with pytest.raises(StoreError, match="rolled back"), store.transaction():
            _journal(store, "first")
            store._db.conn.execute("ROLLBACK")  # what SQLite does by itself on such a fault
            _journal(store, "second")
        assert store.query("SELECT COUNT(*) AS n FROM inbox")[0]["n"] == 0
        with store._db.lock.urgent():
            store._db.conn.execute("BEGIN IMMEDIATE")
            assert store._journal_intact()
            store._db.conn.execute("ROLLBACK")
            assert not store._journal_intact()
    finally:
        store.close()
