"""The record: every incident, event, role, step, reminder, request and message.

Everything the bot knows lives here; nothing is kept only in memory. The engine
wraps each command in `transaction()`, so a state change and its timeline
event are committed together or not at all. The same schema, migrations and
SQL run on SQLite (the embedded default: one process, one file) and on
PostgreSQL (`INCIDENT_BOT_DB=postgresql://…`: replicas share it); see
bot/database.py for how each backend keeps transactions. Where replicas could
race, the store asks the database: `locked_incident` serialises the commands of
one incident, `due_chunk` and the outbox and inbox claims
let replicas take disjoint rows, and unique keys refuse a second copy of a
delivery.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from bot.clock import iso, parse_iso
from bot.database import (
    Database,
    DatabaseUnavailable,
    Params,
    PostgresDatabase,
    SQLiteDatabase,
    conflicted,
    is_postgres,
    open_database,
    unavailable_error,
)
from bot.events import EventKind, Payload, SeverityChanged, to_data
from bot.group_commit import GroupCommit
from bot.model import (
    Action,
    Event,
    Handoff,
    Holding,
    Incident,
    Outgoing,
    PhaseRun,
    Reminder,
    StepRecord,
)


class StoreError(Exception):
    """The database cannot be opened or is not ours."""


# One migration history for both databases: each step a list of statements, `{id}` an
# identity key and `{ref}` a reference to one (INTEGER on SQLite, BIGINT on PostgreSQL).
# `"user"` and `"by"` are quoted: PostgreSQL reserves both words.
MIGRATIONS: list[list[str]] = [
    [  # 1: the core record
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
        """CREATE TABLE incidents (
            id {id}, title TEXT NOT NULL, severity TEXT NOT NULL, status TEXT NOT NULL,
            runbook_id TEXT NOT NULL, runbook_version TEXT, runbook_snapshot TEXT,
            phase_index INTEGER, declared_by TEXT, started_at TEXT NOT NULL, channel TEXT,
            mitigated_at TEXT, resolved_at TEXT, closed_at TEXT, last_update_at TEXT,
            summary TEXT, impact TEXT, cause TEXT)""",
        "CREATE INDEX idx_incidents_channel ON incidents (channel)",
        "CREATE INDEX idx_incidents_status ON incidents (status)",
        """CREATE TABLE events (
            id {id}, incident_id {ref} REFERENCES incidents (id), at TEXT, actor TEXT,
            kind TEXT, text TEXT, data TEXT)""",
        "CREATE INDEX idx_events_incident_id_id ON events (incident_id, id)",
        """CREATE TABLE holdings (
            id {id}, incident_id {ref} REFERENCES incidents (id), role_id TEXT, "user" TEXT,
            since TEXT, until TEXT)""",
        "CREATE INDEX idx_holdings_incident_id_role_id ON holdings (incident_id, role_id)",
        """CREATE TABLE handoffs (
            id {id}, incident_id {ref} REFERENCES incidents (id), role_id TEXT,
            from_user TEXT, to_user TEXT, requested_at TEXT, requested_by TEXT,
            accepted_at TEXT, cancelled_at TEXT)""",
        "CREATE INDEX idx_handoffs_incident_id_to_user ON handoffs (incident_id, to_user)",
        """CREATE TABLE steps (
            incident_id {ref} REFERENCES incidents (id), step_id TEXT, state TEXT, at TEXT,
            "by" TEXT, reason TEXT, PRIMARY KEY (incident_id, step_id))""",
        """CREATE TABLE phase_runs (
            id {id}, incident_id {ref} REFERENCES incidents (id), phase_id TEXT,
            started_at TEXT, ended_at TEXT)""",
        "CREATE INDEX idx_phase_runs_incident_id_id ON phase_runs (incident_id, id)",
        """CREATE TABLE actions (
            id {id}, incident_id {ref} REFERENCES incidents (id), text TEXT, owner TEXT,
            due TEXT, status TEXT, created_at TEXT)""",
    ],
    [  # 2: reminders, pending -> sending -> sent (see reminders.py)
        """CREATE TABLE reminders (
            id {id}, incident_id {ref} REFERENCES incidents (id), kind TEXT, ref TEXT,
            seq INTEGER, due_at TEXT, state TEXT, created_at TEXT, done_at TEXT)""",
        "CREATE UNIQUE INDEX idx_reminders_incident_id_kind_ref_seq "
        "ON reminders (incident_id, kind, ref, seq)",
        "CREATE INDEX idx_reminders_state_due_at ON reminders (state, due_at)",
    ],
    [  # 3: where the posted plan lives in chat (Slack: the message ts)
        "ALTER TABLE incidents ADD COLUMN plan_ref TEXT",
    ],
    [  # 4: the written reviews
        """CREATE TABLE postmortems (
            incident_id {ref} PRIMARY KEY REFERENCES incidents (id), path TEXT,
            language TEXT, compiled_at TEXT, uploaded_at TEXT, problem TEXT)""",
    ],
    [  # 5: requests, journaled before they are acknowledged (dispatch.receive)
        """CREATE TABLE inbox (
            id {id}, received_at TEXT, dedupe_key TEXT, actor TEXT, channel TEXT,
            incident_id {ref}, payload TEXT, reply_url TEXT, done_at TEXT)""",
        "CREATE INDEX idx_inbox_dedupe_key_received_at ON inbox (dedupe_key, received_at)",
        "CREATE INDEX idx_inbox_done_at ON inbox (done_at)",
    ],
    [  # 6: per-incident lanes, requests set aside, Slack's delivery ids; the outbox
        "ALTER TABLE inbox ADD COLUMN delivery TEXT",
        "ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE inbox ADD COLUMN error TEXT",
        "ALTER TABLE inbox ADD COLUMN dead_at TEXT",
        "CREATE INDEX inbox_delivery ON inbox (delivery) WHERE delivery IS NOT NULL",
        "CREATE INDEX inbox_pending ON inbox (incident_id, id) "
        "WHERE done_at IS NULL AND dead_at IS NULL",
        # times are wall-clock UTC: they pace Slack
        """CREATE TABLE outbox (
            id {id}, incident_id {ref}, kind TEXT NOT NULL, body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
            due_at TEXT NOT NULL, created_at TEXT NOT NULL, done_at TEXT, error TEXT)""",
        "CREATE INDEX outbox_pending ON outbox (incident_id, id) "
        "WHERE state IN ('pending', 'sending')",
    ],
    [  # 7: action items with priority and tracker link; the chart beside the review
        "ALTER TABLE actions ADD COLUMN priority TEXT",
        "ALTER TABLE actions ADD COLUMN link TEXT",
        "ALTER TABLE postmortems ADD COLUMN chart TEXT",
    ],
    [  # 8: replicas: a Slack delivery is journaled once, whichever replica it reached
        "DROP INDEX inbox_delivery",
        "CREATE UNIQUE INDEX inbox_delivery ON inbox (delivery) WHERE delivery IS NOT NULL",
    ],
    [  # 9: a follow-up action marked done (`/incident actions done N`), and when: the
        # report counts those done by their due date
        "ALTER TABLE actions ADD COLUMN done_at TEXT",
    ],
    [  # 10: incidents declared from Alertmanager alert groups (bot/alerts.py); outbound lanes
        # `open_key` holds the group key while the incident is open (UNIQUE: two deliveries
        # of one group can never both declare) and is cleared once it is closed
        """CREATE TABLE alert_groups (
            incident_id {ref} PRIMARY KEY REFERENCES incidents (id), group_key TEXT NOT NULL,
            open_key TEXT UNIQUE, status TEXT NOT NULL, receiver TEXT, announce TEXT,
            summary TEXT NOT NULL, received INTEGER NOT NULL DEFAULT 1,
            first_at TEXT NOT NULL, last_at TEXT NOT NULL)""",
        "CREATE INDEX alert_groups_key ON alert_groups (group_key)",
        # pages and event webhooks go out in a lane of their own per target (bot/outbox.py):
        # NULL is the incident's chat lane, as before
        "ALTER TABLE outbox ADD COLUMN lane TEXT",
        "CREATE INDEX outbox_lane_pending ON outbox (incident_id, lane, id) "
        "WHERE state IN ('pending', 'sending')",
    ],
]
# what Store.journal is given: received_at, dedupe_key, window_start, actor, channel,
# incident_id, payload, reply_url, delivery, delivery_since
_JournalArgs = tuple[
    datetime, str, datetime, str, str | None, int | None, str, str | None, str | None,
    datetime | None,
]  # fmt: skip
Journaled = tuple[int, int | None]  # an inbox id and the incident the request addresses
# what Store.journal answers: the request journaled, or why it is a repeat
JournalResult = Journaled | Literal["delivery", "double"]
# PostgreSQL: the journal's keys and deliveries, each checked by one transaction at a
# time across replicas (a delivery too: one journaled meanwhile under another key must be
# seen as the repeat it is); taken in sorted order (the server calls the locking function
# after the sort)
_JOURNAL_LOCK = (
    "SELECT pg_advisory_xact_lock(h) FROM "
    "(SELECT DISTINCT hashtext(k) AS h FROM unnest(?::text[]) AS k) AS keys ORDER BY h"
)
# one statement: this runs before every acknowledgement. A repeat inserts nothing: the
# same delivery since the signature window (or ever: the unique key), or the same key
# since the repeat window
_JOURNAL_INSERT = (
    "INSERT INTO inbox (received_at, dedupe_key, actor, channel, incident_id, "
    "payload, reply_url, delivery) "
    "SELECT ?, ?, ?, ?, COALESCE(?, (SELECT id FROM incidents WHERE channel = ? "
    "ORDER BY id DESC LIMIT 1)), ?, ?, ? "
    "WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE delivery = ? AND received_at >= ?) "
    "AND NOT EXISTS (SELECT 1 FROM inbox WHERE dedupe_key = ? AND received_at >= ?) "
    "ON CONFLICT (delivery) WHERE delivery IS NOT NULL DO NOTHING RETURNING id, incident_id"
)
# PostgreSQL, in a round: the insert, and for a repeat which kind it is, in one statement
# (the outer query sees the table as it was before this insert, with earlier ones of the
# round): nothing of a round is left to ask once it has committed
_JOURNAL_ENTRY = (
    f"WITH inserted AS ({_JOURNAL_INSERT}) "
    "SELECT id, incident_id, FALSE AS delivered FROM inserted UNION ALL "
    "SELECT NULL, NULL, EXISTS (SELECT 1 FROM inbox WHERE delivery = ?) "
    "WHERE NOT EXISTS (SELECT 1 FROM inserted)"
)


def _journal_params(args: _JournalArgs) -> list[Any]:
    (
        received_at, dedupe_key, window_start, actor, channel, incident_id, payload,
        reply_url, delivery, delivery_since,
    ) = args  # fmt: skip
    since = iso(delivery_since or window_start)
    return [
        iso(received_at), dedupe_key, actor, channel, incident_id, channel, payload,
        reply_url, delivery, delivery, since, dedupe_key, iso(window_start),
    ]  # fmt: skip


def _locked(batch: list[_JournalArgs]) -> list[str]:
    """What `_JOURNAL_LOCK` locks for these entries: their keys and deliveries."""
    return [a[1] for a in batch] + [a[8] for a in batch if a[8] is not None]


def _entry_params(args: _JournalArgs) -> list[Any]:
    return [*_journal_params(args), args[8]]  # and the delivery, for a repeat's kind


def _entry_result(row: dict[str, Any]) -> JournalResult:
    """What `_JOURNAL_ENTRY` answered, as `journal` answers it."""
    if row["id"] is not None:
        return _new_id(row["id"]), row["incident_id"]
    return "delivery" if row["delivered"] else "double"


_APP_ID = 0x1D3B07  # marks a SQLite file as this bot's database (PRAGMA application_id)
LEASE = timedelta(minutes=5)  # a row `sending` this long was left by a replica that died
_INCIDENT_COLUMNS = frozenset(
    "title severity status runbook_id runbook_version runbook_snapshot phase_index "
    "declared_by started_at channel mitigated_at resolved_at closed_at last_update_at "
    "summary impact cause plan_ref".split()
)


class Store:
    def __init__(self, location: str | Path) -> None:
        self.path = str(location)  # a file, or a postgresql:// URL
        self._pending = threading.local()  # per transaction: callbacks for after its commit
        try:
            self._db: Database = open_database(location)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        except DatabaseUnavailable as exc:
            raise StoreError(str(exc)) from None
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        except StoreError:
            self._db.close()
            raise
        self._journals: GroupCommit[_JournalArgs, JournalResult] = (
            GroupCommit(self._journal_round)
            if self.is_postgres
            else GroupCommit.in_one_transaction(
                self._synced_transaction, self._journal, intact=self._journal_intact
            )
        )

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @property
    def is_postgres(self) -> bool:
        return self._db.dialect == "postgresql"

    def close(self) -> None:
        self._db.close()

    def backup(self, target: str | Path) -> None:
        """Copy the whole database consistently, while other threads keep writing (SQLite;
        PostgreSQL is backed up with its own tools, `pg_dump`)."""
        if not isinstance(self._db, SQLiteDatabase):
            raise StoreError(
                "backup copies SQLite files; back up PostgreSQL with pg_dump, e.g. "
                "`pg_dump --format=custom --file=incident-bot.dump DATABASE_URL`"
            )
        destination = sqlite3.connect(str(target))
        try:
            with self._db.lock:
                self._db.conn.backup(destination)
        finally:
            destination.close()

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query (tests, benchmarks, `doctor`), `?` placeholders."""
        return self._db.rows(sql, params)

    # --- transactions and migrations ---------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """One transaction (SQLite: BEGIN IMMEDIATE); nested calls in the same thread join
        the outer one. (Whether *this thread* is inside one is kept here: SQLite's
        connection is shared, so its own flag would tell of another thread's.)"""
        depth = getattr(self._pending, "depth", 0)
        if depth:
            if isinstance(self._db, SQLiteDatabase) and not self._db.in_transaction:
                # SQLite rolled the outer transaction back by itself (a full disk, an I/O
                # error): what follows must not commit on its own, outside it
                raise StoreError("the transaction was rolled back by the database")
            self._pending.depth = depth + 1
            try:
                with self._db.transaction():
                    yield self
            finally:
                self._pending.depth = depth
            return
        self._pending.callbacks = []
        self._pending.depth = 1
        try:
            with self._db.transaction():
                yield self
        except BaseException:
            self._pending.callbacks = []
            raise
        finally:
            self._pending.depth = 0
        callbacks, self._pending.callbacks = self._pending.callbacks, []
        for callback in callbacks:  # after the commit: they wake other threads
            callback()

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside a transaction."""
        return bool(getattr(self._pending, "depth", 0))

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the current transaction has committed (never if it rolls
        back); outside a transaction, at once. Waking a worker for a row before the row
        is committed would let it look too early."""
        if self.in_transaction:
            self._pending.callbacks.append(callback)
            return
        callback()

    @contextmanager
    def _synced_transaction(self) -> Iterator[None]:
        """A transaction whose commit reaches the disk (SQLite: FULL for this one only;
        the others stay NORMAL, which WAL keeps consistent but may lose on power loss)."""
        assert isinstance(self._db, SQLiteDatabase)
        with self._db.lock.urgent():  # before the commands and posts waiting for the lock
            self._db.synchronous("FULL")
            try:
                with self.transaction():
                    yield
            finally:
                self._db.synchronous("NORMAL")

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Inside a transaction, on PostgreSQL: writes whose answer nobody reads
        (`Database.write`: no id, no row count) go out without a round trip each; a read,
        or a write whose row count is asked for, waits for them first. An error shows at
        the next such wait or at the end of the block. SQLite: nothing to save."""
        if isinstance(self._db, PostgresDatabase):
            with self._db.pipeline():
                yield
            return
        yield

    def before_statement(self, hook: Callable[[], object]) -> None:
        """PostgreSQL: call `hook` on the thread about to run a statement or to begin a
        transaction (the Slack server lets acknowledgements go first there). SQLite:
        never, since a thread waiting inside a transaction would hold the write lock."""
        if isinstance(self._db, PostgresDatabase):
            self._db.before_statement = hook

    @contextmanager
    def savepoint(self) -> Iterator[Store]:
        """Inside a transaction: undo only this block's writes when it raises."""
        with self._db.savepoint():
            yield self

    def incidents_by_id(self, incident_ids: list[int]) -> dict[int, Incident]:
        """Several incidents in one statement."""
        if not incident_ids:
            return {}
        marks = ",".join("?" * len(incident_ids))
        rows = self._db.rows(f"SELECT * FROM incidents WHERE id IN ({marks})", incident_ids)
        return {r["id"]: _incident(r) for r in rows}

    def incident_records(
        self, incident_ids: list[int]
    ) -> tuple[
        dict[int, list[PhaseRun]], dict[int, dict[str, StepRecord]], dict[int, dict[str, str]]
    ]:
        """The phase runs, step records and current role holders of several incidents, in
        three statements whatever their number (what `phase_runs`, `step_records` and
        `current_holders` give one at a time)."""
        runs: dict[int, list[PhaseRun]] = {i: [] for i in incident_ids}
        steps: dict[int, dict[str, StepRecord]] = {i: {} for i in incident_ids}
        holders: dict[int, dict[str, str]] = {i: {} for i in incident_ids}
        if not incident_ids:
            return runs, steps, holders
        marks = ",".join("?" * len(incident_ids))
        for r in self._db.rows(
            f"SELECT * FROM phase_runs WHERE incident_id IN ({marks}) ORDER BY incident_id, id",
            incident_ids,
        ):
            runs[r["incident_id"]].append(
                PhaseRun(r["phase_id"], parse_iso(r["started_at"]), _dt(r["ended_at"]), r["id"])
            )
        for r in self._db.rows(f"SELECT * FROM steps WHERE incident_id IN ({marks})", incident_ids):
            steps[r["incident_id"]][r["step_id"]] = StepRecord(
                r["step_id"], r["state"], parse_iso(r["at"]), r["by"], r["reason"] or ""
            )
        for r in self._db.rows(
            f"SELECT * FROM holdings WHERE incident_id IN ({marks}) AND until IS NULL ORDER BY id",
            incident_ids,
        ):
            holders[r["incident_id"]][r["role_id"]] = r["user"]
        return runs, steps, holders

    def risks_raised(self, incident_ids: list[int]) -> dict[int, list[tuple[str, datetime]]]:
        """For several incidents in one statement: each risk raised (its id, when), in order."""
        raised: dict[int, list[tuple[str, datetime]]] = {i: [] for i in incident_ids}
        if not incident_ids:
            return raised
        marks = ",".join("?" * len(incident_ids))
        for r in self._db.rows(
            f"SELECT incident_id, at, data FROM events WHERE incident_id IN ({marks}) "
            "AND kind = ? ORDER BY incident_id, id",
            [*incident_ids, str(EventKind.RISK_TRIGGERED)],
        ):
            risk = json.loads(r["data"] or "{}").get("risk")
            if isinstance(risk, str):
                raised[r["incident_id"]].append((risk, parse_iso(r["at"])))
        return raised

    def locked_incident(self, incident_id: int) -> Incident | None:
        """Inside a transaction: the incident, held until it commits, so that replicas carry
        out its commands (and its reminders) one at a time (SQLite's BEGIN IMMEDIATE
        already serialises all). One statement: one round trip on PostgreSQL."""
        lock = " FOR UPDATE" if self.is_postgres else ""
        rows = self._db.rows("SELECT * FROM incidents WHERE id = ?" + lock, [incident_id])
        return _incident(rows[0]) if rows else None

    def _migrate(self) -> None:
        if isinstance(self._db, PostgresDatabase):
            self._migrate_postgres()
            return
        with self.transaction():
            app_id = self._db.rows("PRAGMA application_id")[0]["application_id"]
            version = self._db.rows("PRAGMA user_version")[0]["user_version"]
            tables = self._db.rows("SELECT name FROM sqlite_master WHERE type = 'table'")
            if app_id not in (0, _APP_ID) or (app_id == 0 and tables):
                raise StoreError(f"{self.path} is not an incident-bot database")
            self._apply(version)
            self._db.run(f"PRAGMA application_id={_APP_ID}")
            self._db.run(f"PRAGMA user_version={len(MIGRATIONS)}")

    def _migrate_postgres(self) -> None:
        """Replicas start together: one migrates under an advisory lock, the others wait."""
        with self.transaction():
            self._db.rows("SELECT pg_advisory_xact_lock(?)", [_APP_ID])
            ours = self._db.rows("SELECT to_regclass('incident_bot_schema') AS t")[0]["t"]
            if ours is None:
                tables = self._db.rows(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
                if tables:
                    raise StoreError(
                        f"{self._redacted()} already holds other tables; "
                        "give the bot a database of its own"
                    )
                self._db.ddl("CREATE TABLE incident_bot_schema (version INTEGER NOT NULL)")
                self._db.run("INSERT INTO incident_bot_schema (version) VALUES (0)")
            version = self._db.rows("SELECT version FROM incident_bot_schema")[0]["version"]
            self._apply(version)
            self._db.run("UPDATE incident_bot_schema SET version = ?", [len(MIGRATIONS)])

    def _apply(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self._redacted()} was written by a newer incident-bot (schema {version}); "
                "upgrade the bot"
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                self._db.ddl(statement)

    def _redacted(self) -> str:
        from bot.database import _redact

        return _redact(self.path)

    # --- meta ---------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._db.rows("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, only_if_absent: bool = False) -> str:
        """Set a value; with `only_if_absent`, keep one another replica set first. Returns
        the value now stored."""
        conflict = "DO NOTHING" if only_if_absent else "DO UPDATE SET value = excluded.value"
        with self.transaction():
            self._db.run(
                f"INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) {conflict}",
                [key, value],
            )
            stored = self.get_meta(key)
        return stored if stored is not None else value

    # --- incidents ----------------------------------------------------------

    def insert_incident(self, **fields: Any) -> int:
        columns = _columns(fields)
        with self.transaction():
            return self._insert(
                f"INSERT INTO incidents ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [_value(fields[c]) for c in columns],
            )

    def update_incident(self, incident_id: int, **fields: Any) -> None:
        columns = _columns(fields)
        with self.transaction():
            self._db.run(
                f"UPDATE incidents SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                [*(_value(fields[c]) for c in columns), incident_id],
            )

    def incident(self, incident_id: int) -> Incident | None:
        rows = self._db.rows("SELECT * FROM incidents WHERE id = ?", [incident_id])
        return _incident(rows[0]) if rows else None

    def incident_by_channel(self, channel: str) -> Incident | None:
        rows = self._db.rows(
            "SELECT * FROM incidents WHERE channel = ? ORDER BY id DESC LIMIT 1", [channel]
        )
        return _incident(rows[0]) if rows else None

    def closed_incidents(self, incident_ids: set[int]) -> set[int]:
        """Which of these incidents are closed (one query for a batch of reminders)."""
        if not incident_ids:
            return set()
        marks = ",".join("?" * len(incident_ids))
        rows = self._db.rows(
            f"SELECT id FROM incidents WHERE status = 'closed' AND id IN ({marks})",
            list(incident_ids),
        )
        return {r["id"] for r in rows}

    def incidents(self, include_closed: bool = False) -> list[Incident]:
        where = "" if include_closed else "WHERE status != 'closed'"
        rows = self._db.rows(f"SELECT * FROM incidents {where} ORDER BY id")
        return [_incident(r) for r in rows]

    def change_severity(
        self,
        incident_id: int,
        severity: str,
        previous: str,
        at: datetime,
        actor: str,
        reason: str = "",
    ) -> Event:
        """The new severity and its timeline event, together (commands and escalations alike)."""
        with self.transaction():
            self.update_incident(incident_id, severity=severity)
            return self.append_event(
                incident_id, at, actor, SeverityChanged(severity, previous), reason
            )

    # --- events -------------------------------------------------------------

    def append_event(
        self, incident_id: int, at: datetime, actor: str, payload: Payload, text: str = ""
    ) -> Event:
        data = to_data(payload)
        with self.transaction():  # plain SQL: the busiest insert of all
            event_id = self._insert(
                "INSERT INTO events (incident_id, at, actor, kind, text, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    incident_id,
                    iso(at),
                    actor,
                    str(payload.kind),
                    text,
                    json.dumps(data, ensure_ascii=False, default=str),
                ],
            )
        return Event(
            id=event_id,
            incident_id=incident_id,
            at=at,
            actor=actor,
            kind=payload.kind,
            text=text,
            data=data,
        )

    def add_event(
        self, incident_id: int, at: datetime, actor: str, payload: Payload, text: str = ""
    ) -> None:
        """`append_event` for a caller that needs no id back: nothing to wait for, so inside
        `pipeline()` it goes out without a round trip of its own."""
        with self.transaction():
            self._db.write(
                "INSERT INTO events (incident_id, at, actor, kind, text, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    incident_id,
                    iso(at),
                    actor,
                    str(payload.kind),
                    text,
                    json.dumps(to_data(payload), ensure_ascii=False, default=str),
                ],
            )

    def events(self, incident_id: int, kinds: tuple[str, ...] | None = None) -> list[Event]:
        sql = "SELECT * FROM events WHERE incident_id = ?"
        params: list[Any] = [incident_id]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params += [str(k) for k in kinds]
        return [_event(r) for r in self._db.rows(sql + " ORDER BY id", params)]

    # --- roles --------------------------------------------------------------

    def holdings(self, incident_id: int) -> list[Holding]:
        rows = self._db.rows(
            "SELECT * FROM holdings WHERE incident_id = ? ORDER BY id", [incident_id]
        )
        return [
            Holding(r["role_id"], r["user"], parse_iso(r["since"]), _dt(r["until"])) for r in rows
        ]

    def current_holders(self, incident_id: int) -> dict[str, str]:
        return {h.role_id: h.user for h in self.holdings(incident_id) if h.until is None}

    def set_holder(self, incident_id: int, role_id: str, user: str, at: datetime) -> None:
        with self.transaction():
            self._db.run(
                "UPDATE holdings SET until = ? "
                "WHERE incident_id = ? AND role_id = ? AND until IS NULL",
                [iso(at), incident_id, role_id],
            )
            self._db.run(
                'INSERT INTO holdings (incident_id, role_id, "user", since) VALUES (?, ?, ?, ?)',
                [incident_id, role_id, user, iso(at)],
            )

    def release_roles(self, incident_id: int, at: datetime) -> None:
        with self.transaction():
            self._db.run(
                "UPDATE holdings SET until = ? WHERE incident_id = ? AND until IS NULL",
                [iso(at), incident_id],
            )

    # --- handoffs -----------------------------------------------------------

    def add_handoff(
        self,
        incident_id: int,
        role_id: str,
        from_user: str | None,
        to_user: str,
        at: datetime,
        by: str,
    ) -> int:
        with self.transaction():
            return self._insert(
                "INSERT INTO handoffs (incident_id, role_id, from_user, to_user, requested_at, "
                "requested_by) VALUES (?, ?, ?, ?, ?, ?)",
                [incident_id, role_id, from_user, to_user, iso(at), by],
            )

    def pending_handoffs(self, incident_id: int) -> list[Handoff]:
        rows = self._db.rows(
            "SELECT * FROM handoffs WHERE incident_id = ? "
            "AND accepted_at IS NULL AND cancelled_at IS NULL "
            "ORDER BY id",
            [incident_id],
        )
        return [_handoff(r) for r in rows]

    def handoffs(self, incident_id: int) -> list[Handoff]:
        rows = self._db.rows(
            "SELECT * FROM handoffs WHERE incident_id = ? ORDER BY id", [incident_id]
        )
        return [_handoff(r) for r in rows]

    def finish_handoff(self, handoff_id: int, at: datetime, accepted: bool) -> None:
        column = "accepted_at" if accepted else "cancelled_at"
        with self.transaction():
            self._db.run(f"UPDATE handoffs SET {column} = ? WHERE id = ?", [iso(at), handoff_id])

    # --- steps and phases ---------------------------------------------------

    def step_records(self, incident_id: int) -> dict[str, StepRecord]:
        rows = self._db.rows("SELECT * FROM steps WHERE incident_id = ?", [incident_id])
        return {
            r["step_id"]: StepRecord(
                r["step_id"], r["state"], parse_iso(r["at"]), r["by"], r["reason"] or ""
            )
            for r in rows
        }

    def record_step(
        self, incident_id: int, step_id: str, state: str, at: datetime, by: str, reason: str
    ) -> None:
        with self.transaction():
            self._db.run(
                'INSERT INTO steps (incident_id, step_id, state, at, "by", reason) '
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, step_id) DO UPDATE SET "
                'state = excluded.state, at = excluded.at, "by" = excluded."by", '
                "reason = excluded.reason",
                [incident_id, step_id, state, iso(at), by, reason],
            )

    def start_phase(self, incident_id: int, phase_id: str, at: datetime) -> None:
        with self.transaction():
            self.end_phases(incident_id, at)
            self._db.run(
                "INSERT INTO phase_runs (incident_id, phase_id, started_at) VALUES (?, ?, ?)",
                [incident_id, phase_id, iso(at)],
            )

    def end_phases(self, incident_id: int, at: datetime) -> None:
        with self.transaction():
            self._db.run(
                "UPDATE phase_runs SET ended_at = ? WHERE incident_id = ? AND ended_at IS NULL",
                [iso(at), incident_id],
            )

    def phase_runs(self, incident_id: int) -> list[PhaseRun]:
        rows = self._db.rows(
            "SELECT * FROM phase_runs WHERE incident_id = ? ORDER BY id", [incident_id]
        )
        return [
            PhaseRun(r["phase_id"], parse_iso(r["started_at"]), _dt(r["ended_at"]), r["id"])
            for r in rows
        ]

    # --- follow-up actions --------------------------------------------------

    def add_action(
        self,
        incident_id: int,
        text: str,
        owner: str | None,
        due: str | None,
        at: datetime,
        priority: str | None = None,
        link: str | None = None,
    ) -> int:
        with self.transaction():
            return self._insert(
                "INSERT INTO actions (incident_id, text, owner, due, status, created_at, "
                "priority, link) VALUES (?, ?, ?, ?, 'open', ?, ?, ?)",
                [incident_id, text, owner, due, iso(at), priority, link],
            )

    def actions(self, incident_id: int) -> list[Action]:
        rows = self._db.rows(
            "SELECT * FROM actions WHERE incident_id = ? ORDER BY id", [incident_id]
        )
        return [_action(r) for r in rows]

    def action(self, action_id: int) -> Action | None:
        rows = self._db.rows("SELECT * FROM actions WHERE id = ?", [action_id])
        return _action(rows[0]) if rows else None

    # --- postmortems ---------------------------------------------------------

    def record_postmortem(
        self,
        incident_id: int,
        path: str,
        language: str,
        at: datetime,
        problem: str | None,
        chart: str | None = None,
    ) -> None:
        with self.transaction():
            self._db.run(
                "INSERT INTO postmortems (incident_id, path, language, compiled_at, problem, "
                "chart) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET "
                "path = excluded.path, language = excluded.language, "
                "compiled_at = excluded.compiled_at, problem = excluded.problem, "
                "chart = excluded.chart",
                [incident_id, path, language, iso(at), problem, chart],
            )

    def mark_postmortem_uploaded(self, incident_id: int, at: datetime) -> None:
        with self.transaction():
            self._db.run(
                "UPDATE postmortems SET uploaded_at = ? WHERE incident_id = ?",
                [iso(at), incident_id],
            )

    def postmortem(self, incident_id: int) -> dict[str, Any] | None:
        rows = self._db.rows("SELECT * FROM postmortems WHERE incident_id = ?", [incident_id])
        return rows[0] if rows else None

    # --- the inbox of acknowledged requests ---------------------------------

    def journal(
        self,
        received_at: datetime,
        dedupe_key: str,
        window_start: datetime,
        actor: str,
        channel: str | None,
        incident_id: int | None,
        payload: str,
        reply_url: str | None,
        delivery: str | None = None,
        delivery_since: datetime | None = None,
    ) -> JournalResult:
        """Record a request, durably (synced to disk) before it is acknowledged; returns its
        id and its incident (`incident_id`, or else the incident whose channel is `channel`,
        found in the same transaction: no second wait for the database before the ack), or
        why it is a repeat: "delivery", the same Slack delivery since `delivery_since` (the
        signature window) or ever (a replica journaled it: the unique key refuses it), or
        "double", the same request from the same person since `window_start` (a double
        click)."""
        args = (
            received_at, dedupe_key, window_start, actor, channel, incident_id, payload,
            reply_url, delivery, delivery_since,
        )  # fmt: skip
        if self.in_transaction:  # the caller's transaction decides, as for any other write
            return self._journal(args)
        return self._journals.submit(args)  # with the requests in flight: one commit

    def _journal(self, args: _JournalArgs) -> JournalResult:
        """`journal`, given its arguments as one tuple, inside a transaction: a caller's (on
        either database), or SQLite's group commit round, where its one statement is
        undone alone when it fails."""
        with self.transaction():  # joins it (and fails if SQLite ended it by itself)
            if self.is_postgres:  # replicas: the same key is checked by one at a time
                self._db.rows(_JOURNAL_LOCK, [_locked([args])])
                return _entry_result(self._db.rows(_JOURNAL_ENTRY, _entry_params(args))[0])
            inserted = self._db.rows(_JOURNAL_INSERT, _journal_params(args))
            return self._journaled(args, inserted)

    def _journal_intact(self) -> bool:
        """Whether the group commit's transaction is still open after an entry failed."""
        return self._db.in_transaction

    def _journal_round(self, batch: list[_JournalArgs]) -> list[JournalResult | Exception]:
        """PostgreSQL: a round of the group commit as one transaction in one round trip:
        the round's keys locked (in one order on every replica: rounds that share a key
        wait for each other, never in a cycle), then each entry's insert, in arrival order
        (an insert sees those before it: a double click within one round is still a
        double). Every answer is in once it has committed, so no caller is told of an
        error after that. A failed entry fails the transaction: the round is then
        written again one entry at a time, so that only that entry's caller fails
        (also after a deadlock or a serialisation failure); not when the database
        itself failed."""
        statements: list[tuple[str, Params]] = [(_JOURNAL_LOCK, [_locked(batch)])]
        statements += [(_JOURNAL_ENTRY, _entry_params(a)) for a in batch]
        assert isinstance(self._db, PostgresDatabase)
        try:
            answers = self._db.rows_in_one_trip(statements)
        except Exception as exc:
            if len(batch) == 1 or (unavailable_error(exc) and not conflicted(exc)):
                raise
            return [self._journal_alone(args) for args in batch]
        return [_entry_result(row) for (row,) in answers[1:]]

    def _journal_alone(self, args: _JournalArgs) -> JournalResult | Exception:
        try:
            return self._journal_round([args])[0]
        except Exception as exc:
            return exc

    def _journaled(self, args: _JournalArgs, inserted: list[dict[str, Any]]) -> JournalResult:
        """SQLite: what the insert of `args` returned, as `journal` answers it (inside its
        transaction: a repeat is told apart before the commit)."""
        if inserted:
            return _new_id(inserted[0]["id"]), inserted[0]["incident_id"]
        delivery = args[8]
        seen = delivery is not None and self._db.rows(  # a repeat: which kind (rare)
            "SELECT 1 FROM inbox WHERE delivery = ? LIMIT 1", [delivery]
        )
        return "delivery" if seen else "double"

    def finish_request(self, inbox_id: int, at: datetime) -> None:
        with self.transaction():
            self._db.run(
                "UPDATE inbox SET done_at = ? WHERE id = ? AND done_at IS NULL", [iso(at), inbox_id]
            )

    def next_request(self, incident_id: int, channel: str | None = None) -> dict[str, Any] | None:
        """The oldest unfinished request of one incident: its requests run in journal order.
        With its `channel`, also requests typed there before the channel was known to be
        the incident's (journaled with no incident while it was being opened). Inside a
        transaction after `locked_incident`, no replica takes it meanwhile."""
        lock = " FOR UPDATE" if self.is_postgres and self.in_transaction else ""
        rows = self._db.rows(
            "SELECT * FROM inbox WHERE (incident_id = ? OR (incident_id IS NULL AND channel = ?)) "
            "AND done_at IS NULL AND dead_at IS NULL ORDER BY id LIMIT 1" + lock,
            [incident_id, channel],
        )
        return rows[0] if rows else None

    def adopt_requests(self, channel: str, incident_id: int) -> int:
        """Unfinished requests journaled in `channel` before it was the incident's join the
        incident's lane; returns how many. (A replica running one of them holds its row,
        and this waits for it: it either ran already or runs in the lane.)"""
        with self.transaction():
            return self._db.run(
                "UPDATE inbox SET incident_id = ? WHERE incident_id IS NULL AND channel = ? "
                "AND done_at IS NULL AND dead_at IS NULL",
                [incident_id, channel],
            )

    def request(self, inbox_id: int) -> dict[str, Any] | None:
        """One request if it is still unfinished (requests that name no incident); inside a
        transaction on PostgreSQL it is claimed: a replica working on it is skipped."""
        lock = " FOR UPDATE SKIP LOCKED" if self.is_postgres and self.in_transaction else ""
        rows = self._db.rows(
            "SELECT * FROM inbox WHERE id = ? AND done_at IS NULL AND dead_at IS NULL" + lock,
            [inbox_id],
        )
        return rows[0] if rows else None

    def request_failed(self, inbox_id: int, error: str, at: datetime, give_up_after: int) -> bool:
        """Count a failed try; after `give_up_after` tries the request is set aside (dead).
        Returns True when it was set aside."""
        with self.transaction():
            self._db.run(
                "UPDATE inbox SET attempts = attempts + 1, error = ? WHERE id = ?",
                [error[:500], inbox_id],
            )
            return (
                self._db.run(
                    "UPDATE inbox SET dead_at = ? WHERE id = ? AND attempts >= ?",
                    [iso(at), inbox_id, give_up_after],
                )
                == 1
            )

    def unfinished_requests(self) -> list[dict[str, Any]]:
        """Acknowledged requests still to run (not finished, not set aside), oldest first."""
        return self._db.rows(
            "SELECT * FROM inbox WHERE done_at IS NULL AND dead_at IS NULL ORDER BY id"
        )

    def dead_requests(self) -> list[dict[str, Any]]:
        return self._db.rows("SELECT * FROM inbox WHERE dead_at IS NOT NULL ORDER BY id")

    # --- the outbox: what changes say, delivered after they commit ------------

    def put_outgoing(
        self,
        incident_id: int | None,
        kind: str,
        body: dict[str, Any],
        at: datetime,
        lane: str | None = None,
    ) -> int:
        with self.transaction():
            return self._insert(
                "INSERT INTO outbox (incident_id, kind, body, due_at, created_at, lane) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [incident_id, kind, json.dumps(body, ensure_ascii=False), iso(at), iso(at), lane],
            )

    def next_outgoing(
        self, incident_id: int | None, outgoing_id: int | None = None, lane: str | None = None
    ) -> Outgoing | None:
        """The head of an incident's outbox in its chat lane, or in the outbound `lane`
        (oldest first, pending or still going out: a replica may be delivering it); without
        an incident, the one row `outgoing_id`."""
        if incident_id is None:
            rows = self._db.rows(
                "SELECT * FROM outbox WHERE id = ? AND state IN ('pending', 'sending')",
                [outgoing_id],
            )
        elif lane is None:
            rows = self._db.rows(
                "SELECT * FROM outbox WHERE incident_id = ? AND state IN ('pending', 'sending') "
                "AND lane IS NULL ORDER BY id LIMIT 1",
                [incident_id],
            )
        else:
            rows = self._db.rows(
                "SELECT * FROM outbox WHERE incident_id = ? AND lane = ? "
                "AND state IN ('pending', 'sending') ORDER BY id LIMIT 1",
                [incident_id, lane],
            )
        return _outgoing(rows[0]) if rows else None

    def set_outgoing(
        self,
        outgoing_id: int,
        state: str,
        at: datetime,
        error: str | None = None,
        expect: str | None = None,
    ) -> bool:
        sql = "UPDATE outbox SET state = ?, done_at = ?, error = ? WHERE id = ?"
        params: list[Any] = [state, iso(at), error and error[:500], outgoing_id]
        if expect is not None:
            sql, params = sql + " AND state = ?", [*params, expect]
        with self.transaction():
            return self._db.run(sql, params) == 1

    def retry_outgoing(self, outgoing_id: int, due_at: datetime, error: str) -> None:
        with self.transaction():
            self._db.run(
                "UPDATE outbox SET state = 'pending', attempts = attempts + 1, due_at = ?, "
                "error = ? WHERE id = ?",
                [iso(due_at), error[:500], outgoing_id],
            )

    def interrupted_outgoing(self, before: datetime | None = None) -> list[Outgoing]:
        """Rows left `sending`; with `before`, only those claimed before then (replicas:
        another, live one may be sending the newer ones right now)."""
        if before is None:
            rows = self._db.rows("SELECT * FROM outbox WHERE state = 'sending'")
        else:
            rows = self._db.rows(
                "SELECT * FROM outbox WHERE state = 'sending' AND done_at < ?", [iso(before)]
            )
        return [_outgoing(r) for r in rows]

    def pending_outgoing(self) -> list[Outgoing]:
        """Every undelivered row, oldest first (start-up: wake each incident's lane)."""
        rows = self._db.rows("SELECT * FROM outbox WHERE state = 'pending' ORDER BY id")
        return [_outgoing(r) for r in rows]

    def waiting_outgoing(self) -> list[tuple[int | None, int, str | None]]:
        """(incident, row, lane) of every row not yet delivered: each lane of an incident
        once (its first row), each row of no incident (replicas sweep these up; see
        bot/replicas.py)."""
        rows = self._db.rows(
            "SELECT incident_id, MIN(id) AS id, lane FROM outbox "
            "WHERE state IN ('pending', 'sending') AND incident_id IS NOT NULL "
            "GROUP BY incident_id, lane "
            "UNION ALL SELECT incident_id, id, lane FROM outbox "
            "WHERE state IN ('pending', 'sending') AND incident_id IS NULL"
        )
        return [(r["incident_id"], r["id"], r["lane"]) for r in rows]

    def failed_outgoing(self, limit: int = 50) -> list[Outgoing]:
        rows = self._db.rows(
            "SELECT * FROM outbox WHERE state IN ('failed', 'unknown') ORDER BY id DESC LIMIT ?",
            [limit],
        )
        return [_outgoing(r) for r in rows]

    def probe_write(self, at: datetime) -> None:
        """A real write (health checks): raises while the database cannot be written."""
        self.set_meta("healthz", iso(at))

    # --- reminders ----------------------------------------------------------

    def add_reminder(
        self,
        incident_id: int,
        kind: str,
        ref: str,
        seq: int,
        due_at: datetime,
        created_at: datetime,
    ) -> None:
        """Insert a pending reminder; one that already exists (same series and number) is kept."""
        with self.transaction():
            self._db.write(
                "INSERT INTO reminders (incident_id, kind, ref, seq, due_at, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?) "
                "ON CONFLICT (incident_id, kind, ref, seq) DO NOTHING",
                [incident_id, kind, ref, seq, iso(due_at), iso(created_at)],
            )

    def due_reminders(self, now: datetime, limit: int = 500) -> list[Reminder]:
        """Pending rows due by `now` of the `limit` incidents waiting longest, every due row
        of each: what fell due for one incident (say, while the bot was down) goes together."""
        rows = self._db.rows(
            "SELECT * FROM reminders WHERE state = 'pending' AND due_at <= ? "
            "AND incident_id IN (SELECT incident_id FROM reminders "
            "WHERE state = 'pending' AND due_at <= ? "
            "GROUP BY incident_id ORDER BY MIN(due_at), MIN(id) LIMIT ?) "
            "ORDER BY due_at, id",
            [iso(now), iso(now), limit],
        )
        return [_reminder(r) for r in rows]

    def due_chunk(self, now: datetime, limit: int) -> tuple[dict[int, Incident], list[Reminder]]:
        """Inside a transaction: up to `limit` of the incidents waiting longest for a
        reminder, locked until it ends, and their due rows. The incident is what is
        claimed: on PostgreSQL those another transaction holds (another replica's chunk, a
        command being carried out) are skipped, never waited for, and every row of an
        incident goes to the one replica that holds it. SQLite's one writer holds all."""
        if not self.is_postgres:
            due = self.due_reminders(now, limit)
            return self.incidents_by_id(sorted({r.incident_id for r in due})), due
        candidates = self._db.rows(
            "SELECT incident_id FROM reminders WHERE state = 'pending' AND due_at <= ? "
            "GROUP BY incident_id ORDER BY MIN(due_at), MIN(incident_id) LIMIT ?",
            [iso(now), 4 * limit],  # room for those other replicas hold right now
        )
        if not candidates:
            return {}, []
        marks = ",".join("?" * len(candidates))
        held = self._db.rows(
            f"SELECT * FROM incidents WHERE id IN ({marks}) "
            "ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
            [*(c["incident_id"] for c in candidates), limit],
        )
        incidents = {r["id"]: _incident(r) for r in held}
        if not incidents:
            return {}, []
        marks = ",".join("?" * len(incidents))
        rows = self._db.rows(
            f"SELECT * FROM reminders WHERE state = 'pending' AND due_at <= ? "
            f"AND incident_id IN ({marks}) ORDER BY due_at, id",
            [iso(now), *incidents],
        )
        return incidents, [_reminder(r) for r in rows]

    def reminders(self, incident_id: int | None = None, state: str | None = None) -> list[Reminder]:
        sql, params = "SELECT * FROM reminders WHERE 1=1", list[Any]()
        if incident_id is not None:
            sql, params = sql + " AND incident_id = ?", [*params, incident_id]
        if state is not None:
            sql, params = sql + " AND state = ?", [*params, state]
        return [_reminder(r) for r in self._db.rows(sql + " ORDER BY due_at, id", params)]

    def interrupted_reminders(self, before: datetime | None = None) -> list[Reminder]:
        """Rows left `sending`; with `before`, only those claimed before then (see
        interrupted_outgoing)."""
        if before is None:
            return self.reminders(state="sending")
        rows = self._db.rows(
            "SELECT * FROM reminders WHERE state = 'sending' AND done_at < ?", [iso(before)]
        )
        return [_reminder(r) for r in rows]

    def next_reminder_due(self) -> datetime | None:
        rows = self._db.rows("SELECT MIN(due_at) AS due FROM reminders WHERE state = 'pending'")
        return _dt(rows[0]["due"]) if rows else None

    def set_reminder_state(
        self, reminder_id: int, state: str, at: datetime, expect: str | None = None
    ) -> bool:
        """Move a reminder to `state`; with `expect`, only if it is still in that state."""
        sql = "UPDATE reminders SET state = ?, done_at = ? WHERE id = ?"
        params: list[Any] = [state, iso(at), reminder_id]
        if expect is not None:
            sql, params = sql + " AND state = ?", [*params, expect]
        with self.transaction():
            return self._db.run(sql, params) == 1

    def claim_reminders(self, reminder_ids: list[int], at: datetime) -> set[int]:
        """Move these rows from pending to `sending`; the ids that were still pending (the
        others another process took meanwhile)."""
        if not reminder_ids:
            return set()
        marks = ",".join("?" * len(reminder_ids))
        with self.transaction():
            rows = self._db.rows(
                f"UPDATE reminders SET state = 'sending', done_at = ? "
                f"WHERE state = 'pending' AND id IN ({marks}) RETURNING id",
                [iso(at), *reminder_ids],
            )
        return {r["id"] for r in rows}

    def set_reminder_states(self, states: list[tuple[int, str, datetime]]) -> None:
        """Record the outcomes (reminder id, state, when) of claimed rows in one transaction."""
        if not states:
            return
        with self.transaction():
            self._db.run_many(
                "UPDATE reminders SET state = ?, done_at = ? WHERE id = ? AND state = 'sending'",
                [(state, iso(at), reminder_id) for reminder_id, state, at in states],
            )

    def reschedule_reminder(self, reminder_id: int, due_at: datetime) -> None:
        with self.transaction():
            self._db.run("UPDATE reminders SET due_at = ? WHERE id = ?", [iso(due_at), reminder_id])

    def cancel_reminders(
        self, incident_id: int, at: datetime, keep_kinds: tuple[str, ...] = ()
    ) -> None:
        sql = (
            "UPDATE reminders SET state = 'cancelled', done_at = ? "
            "WHERE incident_id = ? AND state = 'pending'"
        )
        params: list[Any] = [iso(at), incident_id]
        if keep_kinds:
            sql += f" AND kind NOT IN ({','.join('?' * len(keep_kinds))})"
            params += list(keep_kinds)
        with self.transaction():
            self._db.run(sql, params)

    # --- alert groups (bot/alerts.py): one open incident per Alertmanager group ----

    def open_alert_incident(self, group_key: str) -> int | None:
        """The open incident of an alert group, if any. A group whose incident was closed
        is released first, so its next firing declares a new one. Call it inside the
        transaction that declares: on PostgreSQL it holds the group until that commits (two
        replicas or lanes with one group: the second waits, then finds the incident); the
        UNIQUE open key refuses a second declaration in any case."""
        with self.transaction():
            if self.is_postgres:  # (key space 2 of the two-int form: alert groups)
                self._db.rows("SELECT pg_advisory_xact_lock(2, hashtext(?))", [group_key])
            self._db.run(
                "UPDATE alert_groups SET open_key = NULL WHERE open_key = ? AND incident_id IN "
                "(SELECT id FROM incidents WHERE status = 'closed')",
                [group_key],
            )
            rows = self._db.rows(
                "SELECT incident_id FROM alert_groups WHERE open_key = ?", [group_key]
            )
        return int(rows[0]["incident_id"]) if rows else None

    def add_alert_group(
        self,
        incident_id: int,
        group_key: str,
        status: str,
        receiver: str | None,
        announce: str | None,
        summary: dict[str, Any],
        at: datetime,
    ) -> None:
        with self.transaction():
            self._db.run(
                "INSERT INTO alert_groups (incident_id, group_key, open_key, status, receiver, "
                "announce, summary, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    incident_id,
                    group_key,
                    group_key,
                    status,
                    receiver,
                    announce,
                    json.dumps(summary, ensure_ascii=False),
                    iso(at),
                    iso(at),
                ],
            )

    def update_alert_group(
        self, incident_id: int, status: str, summary: dict[str, Any], at: datetime
    ) -> None:
        with self.transaction():
            self._db.run(
                "UPDATE alert_groups SET status = ?, summary = ?, received = received + 1, "
                "last_at = ? WHERE incident_id = ?",
                [status, json.dumps(summary, ensure_ascii=False), iso(at), incident_id],
            )

    def alert_group(self, incident_id: int) -> dict[str, Any] | None:
        """The alert group an incident was declared from (its `summary` parsed), or None."""
        rows = self._db.rows("SELECT * FROM alert_groups WHERE incident_id = ?", [incident_id])
        if not rows:
            return None
        row = dict(rows[0])
        row["summary"] = json.loads(row["summary"])
        return row

    # --- helpers ------------------------------------------------------------

    def _insert(self, sql: str, params: list[Any]) -> int:
        """Run an INSERT and return the new row's id (`RETURNING id`, on both databases)."""
        rows = self._db.rows(sql + " RETURNING id", params)
        return _new_id(rows[0]["id"])

    # --- across incidents (issue 17): the report, the App Home, catch-ups ------------
    # Read-only queries over many incidents, plus marking a follow-up done. Portable SQL
    # (SQLite and PostgreSQL): `?` parameters, ISO-8601 UTC text compared as strings.

    @contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Several reads that see one moment of the database, without taking the write
        lock (SQLite: a deferred transaction, writers in WAL mode go on meanwhile, also
        another process's `serve`; PostgreSQL: a repeatable-read transaction). Inside a
        transaction it joins it. For reads only."""
        if self.in_transaction:
            yield self
            return
        if isinstance(self._db, SQLiteDatabase):
            with self._db.lock:
                self._db.conn.execute("BEGIN")
                try:
                    yield self
                finally:
                    if self._db.conn.in_transaction:
                        self._db.conn.execute("COMMIT")
            return
        with self.transaction():
            self._db.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield self

    def _closed_since(self, since: datetime | None) -> tuple[str, list[Any]]:
        """The report's selection: closed incidents declared at or after `since`."""
        if since is None:
            return "i.status = 'closed'", []
        return "i.status = 'closed' AND i.started_at >= ?", [iso(since)]

    def closed_incidents_since(
        self, since: datetime | None, not_responding: Iterable[str]
    ) -> list[tuple[Incident, datetime | None]]:
        """Closed incidents (oldest first), each with when its first responder acted: the
        first event, in timeline order, by someone other than the bot and the declarer,
        of no kind in `not_responding`, not after the incident was resolved (what
        metrics.response_metrics finds by reading the whole timeline; here each incident's
        timeline is read through its index only until that event)."""
        where, params = self._closed_since(since)
        kinds = list(not_responding)
        marks = ",".join("?" * len(kinds)) or "''"
        rows = self._db.rows(
            "SELECT i.*, (SELECT e.at FROM events e WHERE e.incident_id = i.id "
            "AND e.actor <> 'bot' AND (i.declared_by IS NULL OR e.actor <> i.declared_by) "
            f"AND e.kind NOT IN ({marks}) "
            "AND (i.resolved_at IS NULL OR e.at <= i.resolved_at) "
            f"ORDER BY e.id LIMIT 1) AS first_response FROM incidents i WHERE {where} "
            "ORDER BY i.id",
            [*kinds, *params],
        )
        result = []
        for row in rows:
            first = row.pop("first_response")
            result.append((_incident(row), _dt(first)))
        return result

    def step_records_since(self, since: datetime | None) -> dict[int, dict[str, StepRecord]]:
        """The step records of the report's incidents, by incident."""
        where, params = self._closed_since(since)
        rows = self._db.rows(
            'SELECT s.incident_id, s.step_id, s.state, s.at, s."by", s.reason FROM steps s '
            f"JOIN incidents i ON i.id = s.incident_id WHERE {where}",
            params,
        )
        records: dict[int, dict[str, StepRecord]] = {}
        for r in rows:
            records.setdefault(r["incident_id"], {})[r["step_id"]] = StepRecord(
                r["step_id"], r["state"], parse_iso(r["at"]), r["by"], r["reason"] or ""
            )
        return records

    def phase_runs_since(self, since: datetime | None) -> dict[int, list[PhaseRun]]:
        """The phase runs of the report's incidents, by incident, in order."""
        where, params = self._closed_since(since)
        rows = self._db.rows(
            "SELECT p.id, p.incident_id, p.phase_id, p.started_at, p.ended_at FROM phase_runs p "
            f"JOIN incidents i ON i.id = p.incident_id WHERE {where} ORDER BY p.incident_id, p.id",
            params,
        )
        runs: dict[int, list[PhaseRun]] = {}
        for r in rows:
            runs.setdefault(r["incident_id"], []).append(
                PhaseRun(r["phase_id"], parse_iso(r["started_at"]), _dt(r["ended_at"]), r["id"])
            )
        return runs

    def actions_since(self, since: datetime | None) -> list[Action]:
        """The follow-up actions of the report's incidents."""
        where, params = self._closed_since(since)
        rows = self._db.rows(
            f"SELECT a.* FROM actions a JOIN incidents i ON i.id = a.incident_id WHERE {where} "
            "ORDER BY a.id",
            params,
        )
        return [_action(r) for r in rows]

    def count_since(self, since: datetime | None, closed: bool) -> int:
        """How many incidents declared since `since` are closed (or not closed yet)."""
        sql = "SELECT COUNT(*) AS n FROM incidents WHERE status " + ("=" if closed else "<>")
        sql += " 'closed'"
        params: list[Any] = []
        if since is not None:
            sql, params = sql + " AND started_at >= ?", [iso(since)]
        return int(self._db.rows(sql, params)[0]["n"])

    def holders_of(self, incident_ids: list[int]) -> dict[int, dict[str, str]]:
        """Who holds which role now, for several incidents in one query."""
        if not incident_ids:
            return {}
        marks = ",".join("?" * len(incident_ids))
        rows = self._db.rows(
            'SELECT incident_id, role_id, "user" FROM holdings '
            f"WHERE until IS NULL AND incident_id IN ({marks}) ORDER BY id",
            list(incident_ids),
        )
        holders: dict[int, dict[str, str]] = {i: {} for i in incident_ids}
        for r in rows:
            holders[r["incident_id"]][r["role_id"]] = r["user"]
        return holders

    def open_actions_of(self, owner: str, limit: int = 200) -> list[Action]:
        """Open follow-up actions one person owns, across incidents (oldest first)."""
        rows = self._db.rows(
            "SELECT * FROM actions WHERE owner = ? AND status = 'open' ORDER BY id LIMIT ?",
            [owner, limit],
        )
        return [_action(r) for r in rows]

    def recently_closed(self, limit: int) -> list[tuple[Incident, dict[str, Any] | None]]:
        """The last `limit` incidents closed (newest first), each with its postmortem record."""
        rows = self._db.rows(
            "SELECT * FROM incidents WHERE status = 'closed' ORDER BY closed_at DESC, id DESC "
            "LIMIT ?",
            [limit],
        )
        incidents = [_incident(r) for r in rows]
        if not incidents:
            return []
        marks = ",".join("?" * len(incidents))
        reviews = {
            r["incident_id"]: r
            for r in self._db.rows(
                f"SELECT * FROM postmortems WHERE incident_id IN ({marks})",
                [i.id for i in incidents],
            )
        }
        return [(i, reviews.get(i.id)) for i in incidents]

    def last_events(
        self,
        incident_id: int,
        limit: int,
        kinds: tuple[str, ...] = (),
        leave_out: tuple[str, ...] = (),
    ) -> list[Event]:
        """The newest `limit` events of one incident (of `kinds`, if given; none of
        `leave_out`), oldest first."""
        sql = "SELECT * FROM events WHERE incident_id = ?"
        params: list[Any] = [incident_id]
        if kinds:
            sql, params = sql + f" AND kind IN ({','.join('?' * len(kinds))})", params + [*kinds]
        if leave_out:
            marks = ",".join("?" * len(leave_out))
            sql, params = sql + f" AND kind NOT IN ({marks})", params + [*leave_out]
        rows = self._db.rows(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_event(r) for r in reversed(rows)]

    def complete_action(self, action_id: int, at: datetime) -> bool:
        """Mark an open follow-up action done; False when it was not open."""
        with self.transaction():
            return (
                self._db.run(
                    "UPDATE actions SET status = 'done', done_at = ? "
                    "WHERE id = ? AND status = 'open'",
                    [iso(at), action_id],
                )
                == 1
            )


def _columns(fields: dict[str, Any]) -> list[str]:
    unknown = set(fields) - _INCIDENT_COLUMNS
    if unknown:
        raise ValueError(f"not incident columns: {sorted(unknown)}")
    return list(fields)


def _value(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def _new_id(value: object) -> int:
    """The integer primary key of a row just inserted."""
    assert isinstance(value, int), value
    return value


def _dt(value: str | None) -> datetime | None:
    return parse_iso(value) if value else None


def _incident(row: dict[str, Any]) -> Incident:
    times = ("started_at", "mitigated_at", "resolved_at", "closed_at", "last_update_at")
    values: dict[str, Any] = {k: (_dt(v) if k in times else v) for k, v in row.items()}
    return Incident(**values)


def _event(row: dict[str, Any]) -> Event:
    return Event(
        id=row["id"],
        incident_id=row["incident_id"],
        at=parse_iso(row["at"]),
        actor=row["actor"],
        kind=EventKind(row["kind"]),
        text=row["text"] or "",
        data=json.loads(row["data"] or "{}"),
    )


def _action(r: dict[str, Any]) -> Action:
    return Action(
        r["id"],
        r["incident_id"],
        r["text"],
        r["owner"],
        r["due"],
        r["status"],
        parse_iso(r["created_at"]),
        r.get("priority"),
        r.get("link"),
        _dt(r.get("done_at")),
    )


def _reminder(row: dict[str, Any]) -> Reminder:
    return Reminder(
        id=row["id"],
        incident_id=row["incident_id"],
        kind=row["kind"],
        ref=row["ref"],
        seq=row["seq"],
        due_at=parse_iso(row["due_at"]),
        state=row["state"],
        done_at=_dt(row["done_at"]),
    )


def _outgoing(row: dict[str, Any]) -> Outgoing:
    return Outgoing(
        id=row["id"],
        incident_id=row["incident_id"],
        kind=row["kind"],
        body=json.loads(row["body"]),
        state=row["state"],
        attempts=row["attempts"],
        due_at=parse_iso(row["due_at"]),
        created_at=parse_iso(row["created_at"]),
        error=row["error"],
        done_at=_dt(row["done_at"]),
        lane=row.get("lane"),
    )


def _handoff(row: dict[str, Any]) -> Handoff:
    return Handoff(
        id=row["id"],
        role_id=row["role_id"],
        from_user=row["from_user"],
        to_user=row["to_user"],
        requested_at=parse_iso(row["requested_at"]),
        requested_by=row["requested_by"],
        accepted_at=_dt(row["accepted_at"]),
    )


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` is the database failing (disk full, read-only, I/O, locked, the
    connection lost) rather than the request: such work is retried later, not set aside."""
    return unavailable_error(error)


__all__ = ["Store", "StoreError", "database_unavailable", "is_postgres"]
