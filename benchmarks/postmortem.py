"""Postmortem compile time for incidents with 100, 1,000 and 10,000 timeline events.

Each incident is played through the engine on a fake clock (10 bot seconds between
commands) with the reminder service firing on the way, as in a real incident: the lead
assigns the other roles, people post updates and notes, mark steps done, hand a role
over, raise the severity; the phases move on at a third and two thirds of the way, the
incident is mitigated at 40 % and resolved at the end, with summary, impact, cause,
follow-up actions and the review meeting's material (trigger, detection, resolution, the
5 Whys, contributing factors, lessons). Timeline reminders (phase, step, overrun, risk)
land in the record like the live bot's. Then `bot.postmortem.render_review` (what
`/incident postmortem` and `incident-bot postmortem` run: compile the record, render the
Jinja2 template) is timed several times on the same database; each figure is the
median. The compile step alone (`compile_review`, reading the record and computing the
figures) is timed too, to show how the time splits between the data and the template.

The 10,000-event incident's review is also timed with its chart (the budget: under 1.5 s):
`render_review`, then `bot.chart.draw_incident_chart` (reads the phase runs and step
records, draws, writes the PNG), in one sequence per run; the figure is the median. The
first chart of the process is shown apart: it imports matplotlib and loads the fonts,
which the bot does once per process.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import RUNBOOK, Outcome, Row, log, median

SIZES = (100, 1_000, 10_000)
BUDGET = 1.0  # the budget: a 10,000-event incident compiles its postmortem in under 1 s
CHART_BUDGET = 1.5  # the budget: a 10,000-event review with its chart under 1.5 s
GAP = timedelta(seconds=10)
START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
ROLES = ("tech-lead", "ops-a", "ops-b", "developer", "support-lead", "product")
STEPS = ("1.1", "1.2", "1.3", "1.4", "1.5", "3.1", "2.1", "2.2", "3.2", "3.3", "2.3", "2.4")


class NullChat:
    """A ChatPort that drops everything: only the record matters here."""

    def open_channel(self, incident):  # noqa: ANN001, ANN201
        return "CPM"

    def post(self, channel, text, buttons=()):  # noqa: ANN001, ANN201
        pass

    def notify(self, user, text):  # noqa: ANN001, ANN201
        pass

    def announce(self, text):  # noqa: ANN001, ANN201
        pass

    def upload(self, channel, path, title):  # noqa: ANN001, ANN201
        pass

    def show_plan(self, plan):  # noqa: ANN001, ANN201
        return None

    def refresh_plan(self, plan):  # noqa: ANN001, ANN201
        pass

    def reply(self, user, channel, text):  # noqa: ANN001, ANN201
        pass

    def mention(self, user):  # noqa: ANN001, ANN201
        return f"<@{user}>" if user else "—"

    def escape(self, text):  # noqa: ANN001, ANN201
        return text

    def channel_link(self, channel):  # noqa: ANN001, ANN201
        return f"<#{channel}>"


def seed_incident(service, reminders, clock, size: int) -> int:  # noqa: ANN001
    """One incident whose timeline holds about `size` events (a few more at most)."""
    from bot.errors import BotError
    from bot.reminders import run_until

    store = service.store
    lead = "UPMLEAD"
    # resolved, summary, impact, cause, three actions, and the review meeting's material:
    # trigger, detection, resolution, five whys, five factors, three lessons
    epilogue = 23

    def count() -> int:
        # every event since this incident's first is its own (one writer, earlier incidents'
        # reminders cancelled), so the newest id tells the count without scanning
        newest = store.query("SELECT MAX(id) AS newest FROM events")[0]["newest"]
        return int(newest) - first_event + 1

    with store.transaction():
        clock.set(START)
        change = service.start(RUNBOOK, f"Postmortem bench {size}", lead, severity="sev2")
        iid, first_event = change.incident.id, change.events[0].id
        service.set_channel(iid, f"CPM{size}")
        for n, role in enumerate(ROLES):
            if count() >= size - epilogue:
                break
            service.assign(iid, role, f"U{role.upper().replace('-', '')}{n}", lead)
        steps = list(STEPS)
        phase_marks = [size // 3, 2 * size // 3]
        mitigated_at = int(size * 0.4)
        severity_at = size // 10
        i = 0
        while (events := count()) < size - epilogue:
            i += 1
            run_until(reminders, clock, clock.now() + GAP)
            try:
                if phase_marks and events >= phase_marks[0]:
                    phase_marks.pop(0)
                    service.next_phase(iid, lead)
                elif mitigated_at and events >= mitigated_at:
                    mitigated_at = 0
                    service.mitigated(iid, lead)
                elif severity_at and events >= severity_at:
                    severity_at = 0
                    service.set_severity(iid, "sev1", lead, "customers affected")
                elif i % 997 == 0:
                    service.handoff(iid, "tech-lead", f"UTECH{i}", lead)
                elif i % 997 == 1 and i > 1:
                    service.accept(iid, f"UTECH{i - 1}")
                elif i % 10 == 9 and steps:
                    service.done(iid, steps.pop(0), f"U{i % 7}")
                elif i % 3 == 0:
                    text = f"Note {i}: checked dashboard {i % 13}, no change"
                    service.note(iid, text, f"U{i % 7}")
                else:
                    service.update(
                        iid, f"Update {i}: error rate {i % 50} %, working on mitigation", lead
                    )
            except BotError:  # e.g. an escalation raised the severity first: a note instead
                service.note(iid, f"Note {i}", lead)
        clock.advance(GAP)
        service.resolved(iid, lead)
        service.describe(iid, "summary", "Checkout failed for most users after a deploy.", lead)
        service.describe(iid, "impact", "Orders dropped by 80 % for the duration.", lead)
        service.describe(iid, "cause", "A configuration change removed the payment route.", lead)
        for n in range(3):
            service.add_action(
                iid, f"Follow-up {n}: add a canary check", lead, owner=f"U{n}", priority="p2"
            )
        for kind in ("trigger", "detection", "resolution"):
            service.add_to_review(iid, kind, f"The {kind}, as the review meeting put it.", lead)
        for n in range(5):
            service.add_to_review(iid, "why", f"Why {n + 1}: because of the layer below.", lead)
        for area in ("people", "tooling", "data", "process", "environment"):
            service.add_to_review(iid, "factor", f"A {area} factor.", lead, area)
        for kind in ("well", "wrong", "lucky"):
            service.add_to_review(iid, "lesson", f"Where we {kind}.", lead, kind)
        # the next incident replays the same bot hours: none of this one's reminders may fire
        store.cancel_reminders(iid, clock.now())
    return iid


def chart_row(store, iid: int, runs: int, workdir: Path) -> Row:  # noqa: ANN001
    """The review of one incident with its chart, as delivered: render, then draw; median."""
    from bot.chart import draw_incident_chart
    from bot.postmortem import render_review

    path = workdir / f"INC-{iid}.png"
    t0 = time.perf_counter()
    drawn = draw_incident_chart(store, store.incident(iid), path)
    first = time.perf_counter() - t0
    if drawn is None:
        raise RuntimeError("the chart was not drawn (see the log line above)")
    total, review, chart = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        render_review(store, iid)
        t1 = time.perf_counter()
        draw_incident_chart(store, store.incident(iid), path)
        t2 = time.perf_counter()
        total.append(t2 - t0)
        review.append(t1 - t0)
        chart.append(t2 - t1)
    t = median(total)
    log(f"postmortem: review with chart {t:.3f} s (first chart {first:.3f} s)")
    return Row(
        "postmortem: 10,000 events with its chart",
        f"{t * 1000:.0f} ms (review {median(review) * 1000:.0f} ms + chart "
        f"{median(chart) * 1000:.0f} ms; {path.stat().st_size / 1024:.0f} KiB PNG; the first "
        f"chart of a process {first * 1000:.0f} ms, as it imports matplotlib)",
        f"< {CHART_BUDGET:g} s",
        t < CHART_BUDGET,
    )


def run(quick: bool, workdir: Path) -> Outcome:
    from bot.clock import FakeClock
    from bot.engine import IncidentService
    from bot.messages import Renderer
    from bot.postmortem import compile_review, render_review
    from bot.reminders import ReminderService
    from bot.runbook import Catalog, shipped_runbooks_dir
    from bot.store import Store

    runs = 3 if quick else 7
    workdir.mkdir(parents=True, exist_ok=True)
    outcome = Outcome()
    store = Store(workdir / "postmortem.db")
    try:
        clock = FakeClock(START)
        chat = NullChat()
        service = IncidentService(store, clock, Catalog(shipped_runbooks_dir()))
        reminders = ReminderService(store, clock, chat, Renderer("en", mention=chat.mention))
        totals: dict[int, float] = {}
        for size in SIZES:
            started = time.perf_counter()
            iid = seed_incident(service, reminders, clock, size)
            events = len(store.events(iid))
            seeded_in = time.perf_counter() - started
            render_review(store, iid)  # warm-up: template compile caches, page cache
            total, data = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                review = render_review(store, iid)
                total.append(time.perf_counter() - t0)
                incident = store.incident(iid)
                t0 = time.perf_counter()
                compile_review(store, incident, "en")
                data.append(time.perf_counter() - t0)
            t, d = median(total), median(data)
            totals[size] = t
            log(f"postmortem: {events:,} events seeded in {seeded_in:.1f} s, render {t:.3f} s")
            outcome.rows.append(
                Row(
                    f"postmortem: {size:,} events",
                    f"{t * 1000:.0f} ms ({events:,} events; compile {d * 1000:.0f} ms + "
                    f"template {max(t - d, 0) * 1000:.0f} ms; {len(review.text) / 1024:.0f} KiB)",
                    f"< {BUDGET:g} s" if size == 10_000 else "—",
                    t < BUDGET if size == 10_000 else None,
                )
            )
            if size == 10_000:
                outcome.rows.append(chart_row(store, iid, runs, workdir))
        g1 = totals[1_000] / totals[100]
        g2 = totals[10_000] / totals[1_000]
        outcome.rows.append(
            Row(
                "postmortem: growth per 10× events",
                f"×{g1:.1f} (100 → 1,000), ×{g2:.1f} (1,000 → 10,000); "
                f"exponent {math.log10(g2):.2f} (1 = linear)",
                "—",
                None,
            )
        )
        outcome.notes.append(
            f"postmortem: median of {runs} runs of render_review after one warm-up run; "
            f"with its chart: median of {runs} runs of render_review + draw_incident_chart "
            "after the process's first chart"
        )
    finally:
        store.close()
    return outcome
