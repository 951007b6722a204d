"""`incident-bot report` over 1,000 closed incidents of about 1,000 events each.

DESIGN §7: the report over 1,000 closed incidents (about a million events) in under 2 s.

Seeding a million events through the engine would take minutes, so the rows are
written straight into a fresh database (its schema made by `bot.store.Store`), in
one transaction with `executemany`, shaped as the engine writes them: each
incident of the shipped `service-outage` runbook (its real snapshot) is declared,
gets its lead, a first responder 1–25 minutes later, ~970 updates, notes and
bot reminders, each plan step done on time, late, skipped (one of a few reasons)
or never, three phase runs, mitigated, resolved and closed, and two follow-ups
(some done on time, some late, some open). Outcomes are drawn from a seeded
random generator, so every run reports on the same record.

Measured, each the median of several runs after one warm-up:
- the report itself in this process: `bot.report.gather` + `build_report` +
  `render_markdown` (the queries, the figures, the text);
- the command as an operator runs it, `python -m bot report` to stdout, as a
  subprocess: Python's start-up and imports included (scored: the budget's row);
- `python -m bot report --out report.md`, which also draws the two pictures
  (matplotlib's import and two PNGs): shown, not scored.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import REPO, RUNBOOK, Outcome, Row, log, median

INCIDENTS = 1_000
EVENTS_PER_INCIDENT = 1_000
BUDGET = 2.0  # seconds, DESIGN §7
START = datetime(2025, 1, 1, tzinfo=UTC)
REASONS = ("not needed for this fault", "done by the vendor", "no users affected", "duplicate")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def seed(db: Path, incidents: int = INCIDENTS, per_incident: int = EVENTS_PER_INCIDENT) -> int:
    """Write `incidents` closed incidents of about `per_incident` events each; returns the
    number of events written."""
    from bot.runbook import Catalog, shipped_runbooks_dir
    from bot.store import Store

    Store(db).close()  # the schema, as the bot makes it
    loaded = Catalog(shipped_runbooks_dir()).get(RUNBOOK)
    assert loaded is not None
    runbook = loaded.runbook
    snapshot = runbook.snapshot()
    rng = random.Random(17)
    incident_rows, event_rows, step_rows, run_rows, holding_rows, action_rows = (
        [],
        [],
        [],
        [],
        [],
        [],
    )
    action_id = 0
    for n in range(incidents):
        iid = n + 1
        t0 = START + timedelta(hours=7 * n)
        lead, responder = f"UDECL{n % 20:02d}", f"URESP{n % 37:02d}"
        joined = t0 + timedelta(minutes=rng.uniform(1, 25))
        mitigated = t0 + timedelta(minutes=rng.uniform(20, 180))
        resolved = mitigated + timedelta(minutes=rng.uniform(30, 300))
        closed = resolved + timedelta(minutes=30)
        fix_start = min(t0 + timedelta(minutes=rng.uniform(30, 90)), mitigated)
        comms_start = resolved - timedelta(minutes=20)
        starts = {"restore": t0, "fix": fix_start, "comms": comms_start}
        run_rows += [
            (iid, "restore", _iso(t0), _iso(fix_start)),
            (iid, "fix", _iso(fix_start), _iso(comms_start)),
            (iid, "comms", _iso(comms_start), _iso(closed)),
        ]
        events: list[tuple[datetime, str, str, dict[str, object], str]] = [
            (t0, lead, "declared", {"severity": "sev1", "runbook": RUNBOOK, "version": "v"}, ""),
            (t0, lead, "role_assigned", {"role": "commander", "user": lead, "declarer": True}, ""),
            (t0, lead, "phase_started", {"phase": "restore", "number": 1, "previous": None}, ""),
            (joined, responder, "note", {}, "on it"),
            (fix_start, lead, "phase_started", {"phase": "fix", "number": 2}, ""),
            (comms_start, lead, "phase_started", {"phase": "comms", "number": 3}, ""),
            (mitigated, lead, "mitigated", {"implied": False}, ""),
            (resolved, lead, "resolved", {}, ""),
            (closed, lead, "closed", {"previous": "resolved"}, ""),
        ]
        holding_rows.append((iid, "commander", lead, _iso(t0), _iso(closed)))
        anchors = {"start": t0, "mitigated": mitigated, "resolved": resolved}
        for phase, step in runbook.steps():
            fate = rng.random()
            if fate < 0.1 or step.due is None:
                continue  # never done
            anchor = starts[phase.id] if step.due.anchor == "phase" else anchors[step.due.anchor]
            deadline = anchor + step.due.offset
            if fate < 0.2:
                at = min(deadline, closed) - timedelta(minutes=1)
                reason = rng.choice(REASONS)
                step_rows.append((iid, step.id, "skipped", _iso(at), responder, reason))
                events.append((at, responder, "step_skipped", {"step": step.id}, reason))
                continue
            late = fate > 0.65
            at = deadline + timedelta(minutes=rng.uniform(1, 40) if late else -rng.uniform(1, 10))
            at = min(max(at, t0 + timedelta(minutes=1)), closed)
            step_rows.append((iid, step.id, "done", _iso(at), responder, ""))
            events.append((at, responder, "step_done", {"step": step.id}, ""))
        for k in range(2):
            action_id += 1
            due = (resolved + timedelta(days=3 + 4 * k)).date()
            fate = rng.random()
            done = None
            if fate < 0.5:
                done = _iso(datetime.combine(due, datetime.min.time(), UTC) - timedelta(hours=8))
            elif fate < 0.75:
                done = _iso(datetime.combine(due, datetime.min.time(), UTC) + timedelta(days=2))
            action_rows.append(
                (
                    action_id,
                    iid,
                    f"Follow-up {k}",
                    responder,
                    due.isoformat(),
                    "done" if done else "open",
                    _iso(resolved),
                    "p2",
                    done,
                )
            )
        filler = per_incident - len(events)
        span = (closed - t0) / (filler + 1)
        for k in range(filler):
            at = t0 + span * (k + 1)
            if k % 3 == 0:
                events.append((at, "bot", "reminder", {"reminder": "phase", "number": k}, ""))
            elif k % 3 == 1:
                events.append((at, lead, "update", {}, f"Update {k}: error rate {k % 50} %"))
            else:
                events.append((at, responder if k % 2 else lead, "note", {}, f"Note {k}"))
        events.sort(key=lambda e: e[0])
        event_rows += [
            (iid, _iso(at), actor, kind, text, json.dumps(data))
            for at, actor, kind, data, text in events
        ]
        incident_rows.append(
            (
                iid,
                f"Seeded outage {n}",
                "sev1" if n % 3 else "sev2",
                "closed",
                RUNBOOK,
                loaded.version,
                snapshot,
                2,
                lead,
                _iso(t0),
                f"CREP{n:05d}",
                _iso(mitigated),
                _iso(resolved),
                _iso(closed),
                _iso(resolved),
            )
        )
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO incidents (id, title, severity, status, runbook_id, runbook_version, "
            "runbook_snapshot, phase_index, declared_by, started_at, channel, mitigated_at, "
            "resolved_at, closed_at, last_update_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            incident_rows,
        )
        conn.executemany(
            "INSERT INTO events (incident_id, at, actor, kind, text, data) VALUES (?,?,?,?,?,?)",
            event_rows,
        )
        conn.executemany(
            "INSERT INTO steps (incident_id, step_id, state, at, by, reason) VALUES (?,?,?,?,?,?)",
            step_rows,
        )
        conn.executemany(
            "INSERT INTO phase_runs (incident_id, phase_id, started_at, ended_at) VALUES (?,?,?,?)",
            run_rows,
        )
        conn.executemany(
            "INSERT INTO holdings (incident_id, role_id, user, since, until) VALUES (?,?,?,?,?)",
            holding_rows,
        )
        conn.executemany(
            "INSERT INTO actions (id, incident_id, text, owner, due, status, created_at, priority, "
            "done_at) VALUES (?,?,?,?,?,?,?,?,?)",
            action_rows,
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return len(event_rows)


def _in_process(db: Path) -> float:
    from bot.clock import utc_now
    from bot.report import build_report, gather, render_markdown
    from bot.store import Store

    t0 = time.perf_counter()
    store = Store(db)
    try:
        record = gather(store, None)
    finally:
        store.close()
    report = build_report(record, utc_now(), str(db))
    text = render_markdown(report)
    elapsed = time.perf_counter() - t0
    if report.incidents != INCIDENTS or "Steps to fix" not in text:
        raise RuntimeError(f"the report covered {report.incidents} incidents")
    return elapsed


def _command(db: Path, workdir: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    env.update(INCIDENT_BOT_DB=str(db), INCIDENT_BOT_DRILL_DB=str(workdir / "drill.db"))
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "report", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"incident-bot report failed: {done.stderr.strip()[-300:]}")
    return elapsed


def run(quick: bool, workdir: Path) -> Outcome:
    runs = 3 if quick else 7
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "report.db"
    t0 = time.perf_counter()
    events = seed(db)
    log(
        f"report: {INCIDENTS:,} incidents, {events:,} events seeded "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    _in_process(db)  # warm-up: the page cache, the snapshot's parse, the template
    inside = median([_in_process(db) for _ in range(runs)])
    _command(db, workdir)
    command = median([_command(db, workdir) for _ in range(runs)])
    out = workdir / "out" / "report.md"
    charts = median([_command(db, workdir, "--out", str(out)) for _ in range(runs)])
    drawn = sorted(p.name for p in out.parent.glob("*.png"))
    log(f"report: in process {inside:.3f} s, command {command:.3f} s, with charts {charts:.3f} s")
    size = db.stat().st_size / 1024 / 1024
    return Outcome(
        rows=[
            Row(
                f"report over {INCIDENTS:,} closed incidents (≈{events / 1e6:.1f}M events)",
                f"{command:.2f} s for `incident-bot report` (the queries, figures and Markdown "
                f"{inside * 1000:.0f} ms; the rest is Python's start-up and imports)",
                f"< {BUDGET:g} s",
                command < BUDGET,
            ),
            Row(
                "report with its charts (`--out report.md`)",
                f"{charts:.2f} s ({len(drawn)} PNGs beside it; matplotlib is imported for them)",
                "—",
                None,
            ),
        ],
        notes=[
            f"report: median of {runs} runs after one warm-up; {events:,} events in a "
            f"{size:.0f} MB database seeded straight into SQLite (benchmarks/report.py)"
        ],
    )
