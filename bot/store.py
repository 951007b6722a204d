"""SQLite persistence with sqlite-utils: WAL, numbered migrations, one lock.

Everything the bot knows lives here; nothing is kept only in memory. The engine
wraps each command in `transaction()`, so a state change and its timeline
event are committed together or not at all. One connection is shared between
threads behind a re-entrant lock: SQLite serialises writers anyway, and the
lock keeps a transaction's statements from interleaving with another thread's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlite_utils import Database

from bot.clock import iso, parse_iso
from bot.events import EventKind, Payload, SeverityChanged, to_data
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


def _m1_initial(db: Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("incidents").create(
        {
            "id": int,
            "title": str,
            "severity": str,
            "status": str,
            "runbook_id": str,
            "runbook_version": str,
            "runbook_snapshot": str,
            "phase_index": int,
            "declared_by": str,
            "started_at": str,
            "channel": str,
            "mitigated_at": str,
            "resolved_at": str,
            "closed_at": str,
            "last_update_at": str,
            "summary": str,
            "impact": str,
            "cause": str,
        },
        pk="id",
        not_null={"title", "severity", "status", "runbook_id", "started_at"},
    )
    db.table("incidents").create_index(["channel"])
    db.table("incidents").create_index(["status"])
    db.table("events").create(
        {
            "id": int,
            "incident_id": int,
            "at": str,
            "actor": str,
            "kind": str,
            "text": str,
            "data": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("events").create_index(["incident_id", "id"])
    db.table("holdings").create(
        {"id": int, "incident_id": int, "role_id": str, "user": str, "since": str, "until": str},
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("holdings").create_index(["incident_id", "role_id"])
    db.table("handoffs").create(
        {
            "id": int,
            "incident_id": int,
            "role_id": str,
            "from_user": str,
            "to_user": str,
            "requested_at": str,
            "requested_by": str,
            "accepted_at": str,
            "cancelled_at": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("handoffs").create_index(["incident_id", "to_user"])
    db.table("steps").create(
        {"incident_id": int, "step_id": str, "state": str, "at": str, "by": str, "reason": str},
        pk=("incident_id", "step_id"),
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("phase_runs").create(
        {"id": int, "incident_id": int, "phase_id": str, "started_at": str, "ended_at": str},
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("phase_runs").create_index(["incident_id", "id"])
    db.table("actions").create(
        {
            "id": int,
            "incident_id": int,
            "text": str,
            "owner": str,
            "due": str,
            "status": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )


def _m2_reminders(db: Database) -> None:
    # One row per reminder that will (or did) fall due. `state` moves
    # pending -> sending -> sent, or pending -> skipped/cancelled; see reminders.py
    # for why "sending" is committed before the message goes out.
    db.table("reminders").create(
        {
            "id": int,
            "incident_id": int,
            "kind": str,
            "ref": str,
            "seq": int,
            "due_at": str,
            "state": str,
            "created_at": str,
            "done_at": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("reminders").create_index(["incident_id", "kind", "ref", "seq"], unique=True)
    db.table("reminders").create_index(["state", "due_at"])


def _m3_plan_ref(db: Database) -> None:
    # where the posted plan lives in chat (Slack: the message ts), to update it in place
    db.table("incidents").add_column("plan_ref", str)


def _m4_postmortems(db: Database) -> None:
    db.table("postmortems").create(
        {
            "incident_id": int,
            "path": str,
            "language": str,
            "compiled_at": str,
            "uploaded_at": str,
            "problem": str,
        },
        pk="incident_id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )


def _m5_inbox(db: Database) -> None:
    # Requests from Slack, journaled before they are acknowledged; see dispatch.receive.
    db.table("inbox").create(
        {
            "id": int,
            "received_at": str,  # wall-clock UTC, for the repeat window
            "dedupe_key": str,
            "actor": str,
            "channel": str,
            "incident_id": int,
            "payload": str,
            "reply_url": str,
            "done_at": str,
        },
        pk="id",
    )
    db.table("inbox").create_index(["dedupe_key", "received_at"])
    db.table("inbox").create_index(["done_at"])


def _m6_lanes_and_outbox(db: Database) -> None:
    # The inbox becomes per-incident lanes (incident_id, resolved when journaling, orders
    # the requests of one incident); a request is tried a few times and then set aside
    # (dead_at). `delivery` is Slack's identity of one delivery (the request signature or
    # the Socket Mode envelope id): the same delivery again is acknowledged and ignored.
    db.table("inbox").add_column("delivery", str)
    db.table("inbox").add_column("attempts", int, not_null_default=0)
    db.table("inbox").add_column("error", str)
    db.table("inbox").add_column("dead_at", str)
    db.execute("CREATE INDEX inbox_delivery ON inbox (delivery) WHERE delivery IS NOT NULL")
    db.execute(
        "CREATE INDEX inbox_pending ON inbox (incident_id, id) "
        "WHERE done_at IS NULL AND dead_at IS NULL"
    )
    # What a change says to people, committed with the change and delivered after it, in
    # order per incident (see bot/outbox.py). Times are wall-clock UTC: they pace Slack.
    db.execute(
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            incident_id INTEGER,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            due_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            done_at TEXT,
            error TEXT
        )"""
    )
    db.execute(
        "CREATE INDEX outbox_pending ON outbox (incident_id, id) "
        "WHERE state IN ('pending', 'sending')"
    )


def _m7_review(db: Database) -> None:
    # follow-up actions as the review's action items: priority p1..p3 and a tracker link;
    # the postmortem record names the chart written beside the Markdown (bot/chart.py)
    db.table("actions").add_column("priority", str)
    db.table("actions").add_column("link", str)
    db.table("postmortems").add_column("chart", str)


def _m8_alerts(db: Database) -> None:
    # Incidents declared from an Alertmanager alert group (bot/alerts.py): one open incident
    # per group key. `open_key` holds the group key while the incident is open (UNIQUE: two
    # deliveries of one group can never both declare) and is cleared once it is closed.
    db.execute(
        """CREATE TABLE alert_groups (
            incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
            group_key TEXT NOT NULL,
            open_key TEXT UNIQUE,
            status TEXT NOT NULL,
            receiver TEXT,
            announce TEXT,
            summary TEXT NOT NULL,
            received INTEGER NOT NULL DEFAULT 1,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX alert_groups_key ON alert_groups (group_key)")
    # Outbound rows (pages, event webhooks) go out in a lane of their own per target
    # (bot/outbox.py): NULL is the incident's chat lane, as before.
    db.execute("ALTER TABLE outbox ADD COLUMN lane TEXT")
    db.execute(
        "CREATE INDEX outbox_lane_pending ON outbox (incident_id, lane, id) "
        "WHERE state IN ('pending', 'sending')"
    )


MIGRATIONS: list[Callable[[Database], None]] = [
    _m1_initial,
    _m2_reminders,
    _m3_plan_ref,
    _m4_postmortems,
    _m5_inbox,
    _m6_lanes_and_outbox,
    _m7_review,
    _m8_alerts,
]
_APP_ID = 0x1D3B07  # marks a file as this bot's database (PRAGMA application_id)


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._after_commit: list[Callable[[], object]] = []
        try:
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self.db = Database(conn)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def backup(self, target: str | Path) -> None:
        """Copy the whole database consistently, while other threads keep writing."""
        destination = sqlite3.connect(str(target))
        try:
            with self._lock:
                self.db.conn.backup(destination)
        finally:
            destination.close()

    # --- transactions and migrations ---------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """BEGIN IMMEDIATE … COMMIT; nested calls join the outer transaction."""
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                yield self
                return
            conn.execute("BEGIN IMMEDIATE")
            self._after_commit = []
            try:
                yield self
                conn.execute("COMMIT")
            except BaseException:
                # also after a failed COMMIT: never leave the shared connection inside
                # a transaction that later calls would silently join
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._after_commit = []
                raise
            callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:  # outside the lock: they wake other threads
            callback()

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the current transaction has committed (never if it rolls
        back); outside a transaction, at once. Waking a worker for a row before the row
        is committed would let it look too early."""
        with self._lock:
            if self.db.conn.in_transaction:
                self._after_commit.append(callback)
                return
        callback()

    @contextmanager
    def savepoint(self) -> Iterator[Store]:
        """Inside a transaction: undo only this block's writes when it raises."""
        with self._lock:
            conn = self.db.conn
            assert conn.in_transaction, "a savepoint lives inside transaction()"
            conn.execute("SAVEPOINT block")
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK TO block")
                conn.execute("RELEASE block")
                raise
            conn.execute("RELEASE block")

    def _migrate(self) -> None:
        with self.transaction():
            app_id = self.db.execute("PRAGMA application_id").fetchone()[0]
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            has_tables = bool(self.db.table_names())
            if app_id not in (0, _APP_ID) or (app_id == 0 and has_tables):
                raise StoreError(f"{self.path} is not an incident-bot database")
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} was written by a newer incident-bot (schema {version}); "
                    "upgrade the bot"
                )
            for number in range(version, len(MIGRATIONS)):
                MIGRATIONS[number](self.db)
            self.db.execute(f"PRAGMA application_id={_APP_ID}")
            self.db.execute(f"PRAGMA user_version={len(MIGRATIONS)}")

    # --- meta ---------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    # --- incidents ----------------------------------------------------------

    def insert_incident(self, **fields: Any) -> int:
        with self.transaction():
            return _new_id(self.db.table("incidents").insert(_encode(fields)).last_pk)

    def update_incident(self, incident_id: int, **fields: Any) -> None:
        with self.transaction():
            self.db.table("incidents").update(incident_id, _encode(fields))

    def incident(self, incident_id: int) -> Incident | None:
        rows = self._rows("SELECT * FROM incidents WHERE id = ?", [incident_id])
        return _incident(rows[0]) if rows else None

    def incident_by_channel(self, channel: str) -> Incident | None:
        rows = self._rows(
            "SELECT * FROM incidents WHERE channel = ? ORDER BY id DESC LIMIT 1", [channel]
        )
        return _incident(rows[0]) if rows else None

    def closed_incidents(self, incident_ids: set[int]) -> set[int]:
        """Which of these incidents are closed (one query for a batch of reminders)."""
        if not incident_ids:
            return set()
        marks = ",".join("?" * len(incident_ids))
        rows = self._rows(
            f"SELECT id FROM incidents WHERE status = 'closed' AND id IN ({marks})",
            list(incident_ids),
        )
        return {r["id"] for r in rows}

    def incidents(self, include_closed: bool = False) -> list[Incident]:
        where = "" if include_closed else "WHERE status != 'closed'"
        return [_incident(r) for r in self._rows(f"SELECT * FROM incidents {where} ORDER BY id")]

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
        row = {
            "incident_id": incident_id,
            "at": iso(at),
            "actor": actor,
            "kind": str(payload.kind),
            "text": text,
            "data": json.dumps(data, ensure_ascii=False, default=str),
        }
        with self.transaction():  # plain SQL: the busiest insert of all
            event_id = _new_id(
                self.db.execute(
                    "INSERT INTO events (incident_id, at, actor, kind, text, data) "
                    "VALUES (:incident_id, :at, :actor, :kind, :text, :data)",
                    row,
                ).lastrowid
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

    def events(self, incident_id: int, kinds: tuple[str, ...] | None = None) -> list[Event]:
        sql = "SELECT * FROM events WHERE incident_id = ?"
        params: list[Any] = [incident_id]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params += list(kinds)
        return [_event(r) for r in self._rows(sql + " ORDER BY id", params)]

    # --- roles --------------------------------------------------------------

    def holdings(self, incident_id: int) -> list[Holding]:
        rows = self._rows("SELECT * FROM holdings WHERE incident_id = ? ORDER BY id", [incident_id])
        return [
            Holding(r["role_id"], r["user"], parse_iso(r["since"]), _dt(r["until"])) for r in rows
        ]

    def current_holders(self, incident_id: int) -> dict[str, str]:
        return {h.role_id: h.user for h in self.holdings(incident_id) if h.until is None}

    def set_holder(self, incident_id: int, role_id: str, user: str, at: datetime) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE holdings SET until = ? "
                "WHERE incident_id = ? AND role_id = ? AND until IS NULL",
                [iso(at), incident_id, role_id],
            )
            self.db.table("holdings").insert(
                {
                    "incident_id": incident_id,
                    "role_id": role_id,
                    "user": user,
                    "since": iso(at),
                    "until": None,
                }
            )

    def release_roles(self, incident_id: int, at: datetime) -> None:
        with self.transaction():
            self.db.execute(
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
            row = {
                "incident_id": incident_id,
                "role_id": role_id,
                "from_user": from_user,
                "to_user": to_user,
                "requested_at": iso(at),
                "requested_by": by,
                "accepted_at": None,
                "cancelled_at": None,
            }
            return _new_id(self.db.table("handoffs").insert(row).last_pk)

    def pending_handoffs(self, incident_id: int) -> list[Handoff]:
        rows = self._rows(
            "SELECT * FROM handoffs WHERE incident_id = ? "
            "AND accepted_at IS NULL AND cancelled_at IS NULL "
            "ORDER BY id",
            [incident_id],
        )
        return [_handoff(r) for r in rows]

    def handoffs(self, incident_id: int) -> list[Handoff]:
        rows = self._rows("SELECT * FROM handoffs WHERE incident_id = ? ORDER BY id", [incident_id])
        return [_handoff(r) for r in rows]

    def finish_handoff(self, handoff_id: int, at: datetime, accepted: bool) -> None:
        column = "accepted_at" if accepted else "cancelled_at"
        with self.transaction():
            self.db.execute(f"UPDATE handoffs SET {column} = ? WHERE id = ?", [iso(at), handoff_id])

    # --- steps and phases ---------------------------------------------------

    def step_records(self, incident_id: int) -> dict[str, StepRecord]:
        rows = self._rows("SELECT * FROM steps WHERE incident_id = ?", [incident_id])
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
            self.db.table("steps").insert(
                {
                    "incident_id": incident_id,
                    "step_id": step_id,
                    "state": state,
                    "at": iso(at),
                    "by": by,
                    "reason": reason,
                },
                replace=True,
            )

    def start_phase(self, incident_id: int, phase_id: str, at: datetime) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE phase_runs SET ended_at = ? WHERE incident_id = ? AND ended_at IS NULL",
                [iso(at), incident_id],
            )
            self.db.table("phase_runs").insert(
                {
                    "incident_id": incident_id,
                    "phase_id": phase_id,
                    "started_at": iso(at),
                    "ended_at": None,
                }
            )

    def end_phases(self, incident_id: int, at: datetime) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE phase_runs SET ended_at = ? WHERE incident_id = ? AND ended_at IS NULL",
                [iso(at), incident_id],
            )

    def phase_runs(self, incident_id: int) -> list[PhaseRun]:
        rows = self._rows(
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
            row = {
                "incident_id": incident_id,
                "text": text,
                "owner": owner,
                "due": due,
                "status": "open",
                "created_at": iso(at),
                "priority": priority,
                "link": link,
            }
            return _new_id(self.db.table("actions").insert(row).last_pk)

    def actions(self, incident_id: int) -> list[Action]:
        rows = self._rows("SELECT * FROM actions WHERE incident_id = ? ORDER BY id", [incident_id])
        return [_action(r) for r in rows]

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
            self.db.table("postmortems").upsert(
                {
                    "incident_id": incident_id,
                    "path": path,
                    "language": language,
                    "compiled_at": iso(at),
                    "problem": problem,
                    "chart": chart,
                },
                pk="incident_id",
            )

    def mark_postmortem_uploaded(self, incident_id: int, at: datetime) -> None:
        with self.transaction():
            self.db.table("postmortems").update(incident_id, {"uploaded_at": iso(at)})

    def postmortem(self, incident_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM postmortems WHERE incident_id = ?", [incident_id])
        return rows[0] if rows else None

    def action(self, action_id: int) -> Action | None:
        rows = self._rows("SELECT * FROM actions WHERE id = ?", [action_id])
        return _action(rows[0]) if rows else None

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
    ) -> int | Literal["delivery", "double"]:
        """Record a request, durably (fsync) before it is acknowledged; returns its id, or
        why it is a repeat: "delivery", the same Slack delivery since `delivery_since` (the
        signature window), or "double", the same request from the same person since
        `window_start` (a double click)."""
        with self._lock:
            self.db.execute("PRAGMA synchronous=FULL")  # acknowledged means on the disk
            try:
                with self.transaction():
                    if (
                        delivery is not None
                        and self.db.execute(
                            "SELECT 1 FROM inbox WHERE delivery = ? AND received_at >= ? LIMIT 1",
                            [delivery, iso(delivery_since or window_start)],
                        ).fetchone()
                    ):
                        return "delivery"
                    if self.db.execute(
                        "SELECT 1 FROM inbox WHERE dedupe_key = ? AND received_at >= ? LIMIT 1",
                        [dedupe_key, iso(window_start)],
                    ).fetchone():
                        return "double"
                    cursor = self.db.execute(  # plain SQL: this runs before every ack
                        "INSERT INTO inbox (received_at, dedupe_key, actor, channel, incident_id, "
                        "payload, reply_url, delivery) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            iso(received_at),
                            dedupe_key,
                            actor,
                            channel,
                            incident_id,
                            payload,
                            reply_url,
                            delivery,
                        ],
                    )
                    return _new_id(cursor.lastrowid)
            finally:
                self.db.execute("PRAGMA synchronous=NORMAL")

    def finish_request(self, inbox_id: int, at: datetime) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE inbox SET done_at = ? WHERE id = ? AND done_at IS NULL", [iso(at), inbox_id]
            )

    def next_request(self, incident_id: int) -> dict[str, Any] | None:
        """The oldest unfinished request of one incident: its requests run in journal order."""
        rows = self._rows(
            "SELECT * FROM inbox WHERE incident_id = ? AND done_at IS NULL AND dead_at IS NULL "
            "ORDER BY id LIMIT 1",
            [incident_id],
        )
        return rows[0] if rows else None

    def request(self, inbox_id: int) -> dict[str, Any] | None:
        """One request if it is still unfinished (requests that name no incident)."""
        rows = self._rows(
            "SELECT * FROM inbox WHERE id = ? AND done_at IS NULL AND dead_at IS NULL", [inbox_id]
        )
        return rows[0] if rows else None

    def request_failed(self, inbox_id: int, error: str, at: datetime, give_up_after: int) -> bool:
        """Count a failed try; after `give_up_after` tries the request is set aside (dead).
        Returns True when it was set aside."""
        with self.transaction():
            self.db.execute(
                "UPDATE inbox SET attempts = attempts + 1, error = ? WHERE id = ?",
                [error[:500], inbox_id],
            )
            return (
                self.db.execute(
                    "UPDATE inbox SET dead_at = ? WHERE id = ? AND attempts >= ?",
                    [iso(at), inbox_id, give_up_after],
                ).rowcount
                == 1
            )

    def unfinished_requests(self) -> list[dict[str, Any]]:
        """Acknowledged requests still to run (not finished, not set aside), oldest first."""
        return self._rows(
            "SELECT * FROM inbox WHERE done_at IS NULL AND dead_at IS NULL ORDER BY id"
        )

    def dead_requests(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM inbox WHERE dead_at IS NOT NULL ORDER BY id")

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
            cursor = self.db.execute(
                "INSERT INTO outbox (incident_id, kind, body, due_at, created_at, lane) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [incident_id, kind, json.dumps(body, ensure_ascii=False), iso(at), iso(at), lane],
            )
            return _new_id(cursor.lastrowid)

    def next_outgoing(
        self, incident_id: int | None, outgoing_id: int | None = None, lane: str | None = None
    ) -> Outgoing | None:
        """The head of an incident's outbox (pending, oldest first) in its chat lane, or in
        the outbound `lane`; without an incident, the one row `outgoing_id`."""
        if incident_id is None:
            rows = self._rows(
                "SELECT * FROM outbox WHERE id = ? AND state = 'pending'", [outgoing_id]
            )
        elif lane is None:
            rows = self._rows(
                "SELECT * FROM outbox WHERE incident_id = ? AND state = 'pending' "
                "AND lane IS NULL ORDER BY id LIMIT 1",
                [incident_id],
            )
        else:
            rows = self._rows(
                "SELECT * FROM outbox WHERE incident_id = ? AND lane = ? AND state = 'pending' "
                "ORDER BY id LIMIT 1",
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
            return self.db.execute(sql, params).rowcount == 1

    def retry_outgoing(self, outgoing_id: int, due_at: datetime, error: str) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE outbox SET state = 'pending', attempts = attempts + 1, due_at = ?, "
                "error = ? WHERE id = ?",
                [iso(due_at), error[:500], outgoing_id],
            )

    def interrupted_outgoing(self) -> list[Outgoing]:
        return [_outgoing(r) for r in self._rows("SELECT * FROM outbox WHERE state = 'sending'")]

    def pending_outgoing(self) -> list[Outgoing]:
        """Every undelivered row, oldest first (start-up: wake each incident's lane)."""
        return [
            _outgoing(r)
            for r in self._rows("SELECT * FROM outbox WHERE state = 'pending' ORDER BY id")
        ]

    def failed_outgoing(self, limit: int = 50) -> list[Outgoing]:
        rows = self._rows(
            "SELECT * FROM outbox WHERE state IN ('failed', 'unknown') ORDER BY id DESC LIMIT ?",
            [limit],
        )
        return [_outgoing(r) for r in rows]

    def probe_write(self, at: datetime) -> None:
        """A real write (health checks): raises while the database cannot be written."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES ('healthz', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [iso(at)],
            )

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
            self.db.execute(
                "INSERT OR IGNORE INTO reminders (incident_id, kind, ref, seq, due_at, state, "
                "created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                [incident_id, kind, ref, seq, iso(due_at), iso(created_at)],
            )

    def due_reminders(self, now: datetime, limit: int = 500) -> list[Reminder]:
        """Pending rows due by `now` of the `limit` incidents waiting longest, every due row
        of each: what fell due for one incident (say, while the bot was down) goes together."""
        rows = self._rows(
            "SELECT * FROM reminders WHERE state = 'pending' AND due_at <= :now "
            "AND incident_id IN (SELECT incident_id FROM reminders "
            "WHERE state = 'pending' AND due_at <= :now "
            "GROUP BY incident_id ORDER BY MIN(due_at), MIN(id) LIMIT :limit) "
            "ORDER BY due_at, id",
            {"now": iso(now), "limit": limit},
        )
        return [_reminder(r) for r in rows]

    def reminders(self, incident_id: int | None = None, state: str | None = None) -> list[Reminder]:
        sql, params = "SELECT * FROM reminders WHERE 1=1", list[Any]()
        if incident_id is not None:
            sql, params = sql + " AND incident_id = ?", [*params, incident_id]
        if state is not None:
            sql, params = sql + " AND state = ?", [*params, state]
        return [_reminder(r) for r in self._rows(sql + " ORDER BY due_at, id", params)]

    def next_reminder_due(self) -> datetime | None:
        rows = self._rows("SELECT MIN(due_at) AS due FROM reminders WHERE state = 'pending'")
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
            return self.db.execute(sql, params).rowcount == 1

    def set_reminder_states(self, states: list[tuple[int, str, datetime]]) -> None:
        """Record the outcomes (reminder id, state, when) of claimed rows in one transaction."""
        if not states:
            return
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE reminders SET state = ?, done_at = ? WHERE id = ? AND state = 'sending'",
                [(state, iso(at), reminder_id) for reminder_id, state, at in states],
            )

    def reschedule_reminder(self, reminder_id: int, due_at: datetime) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE reminders SET due_at = ? WHERE id = ?", [iso(due_at), reminder_id]
            )

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
            self.db.execute(sql, params)

    # --- alert groups (bot/alerts.py): one open incident per Alertmanager group ----

    def open_alert_incident(self, group_key: str) -> int | None:
        """The open incident of an alert group, if any. A group whose incident was closed
        is released first, so its next firing declares a new one. Call it inside the
        transaction that declares: the UNIQUE open key makes a second declaration fail."""
        with self.transaction():
            self.db.execute(
                "UPDATE alert_groups SET open_key = NULL WHERE open_key = ? AND incident_id IN "
                "(SELECT id FROM incidents WHERE status = 'closed')",
                [group_key],
            )
            rows = self._rows(
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
            self.db.execute(
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
            self.db.execute(
                "UPDATE alert_groups SET status = ?, summary = ?, received = received + 1, "
                "last_at = ? WHERE incident_id = ?",
                [status, json.dumps(summary, ensure_ascii=False), iso(at), incident_id],
            )

    def alert_group(self, incident_id: int) -> dict[str, Any] | None:
        """The alert group an incident was declared from (its `summary` parsed), or None."""
        rows = self._rows("SELECT * FROM alert_groups WHERE incident_id = ?", [incident_id])
        if not rows:
            return None
        row = rows[0]
        row["summary"] = json.loads(row["summary"])
        return row

    # --- helpers ------------------------------------------------------------

    def _rows(
        self, sql: str, params: list[Any] | dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self.db.execute(sql, params or [])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _new_id(value: object) -> int:
    """The integer primary key of a row just inserted."""
    assert isinstance(value, int), value
    return value


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}


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
    """Whether `error` is the database failing (disk full, read-only, I/O, locked) rather
    than the request: such work is retried later, not set aside."""
    return isinstance(error, sqlite3.OperationalError)
