"""The report across incidents (bot/report.py): figures with known answers on a small
record played through the engine, in Markdown, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.engine import IncidentService
from bot.metrics import response_metrics, step_outcomes
from bot.report import (
    DrillNote,
    build_report,
    follow_up_figures,
    gather,
    percentile,
    render_csv,
    render_json,
    render_markdown,
)
from bot.runbook import Catalog
from bot.store import Store
from tests.unit.conftest import NOW, REPORT_RUNBOOK


def report_of(store, since=None, tz="UTC", drills=None):
    start = datetime.combine(since, datetime.min.time(), UTC) if since else None
    return build_report(
        gather(store, start), NOW, "bot.db", since=since, timezone=tz, drills=drills
    )


def test_percentiles_interpolate_between_ranks():
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([5.0, 15.0], 50) == 10.0
    assert percentile([5.0, 15.0], 90) == 14.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 100.0], 50) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 90) == pytest.approx(3.7)


def test_counts_by_runbook_and_severity_leave_open_incidents_out(played, store):
    report = report_of(store)
    assert (report.incidents, report.not_closed) == (3, 1)
    (count,) = report.runbooks
    assert (count.runbook, count.name, count.total) == ("report", "Report drill", 3)
    assert count.severities == {"sev1": 0, "sev2": 3, "sev3": 0, "sev4": 0}


def test_response_times_median_p90_and_targets(played, store):
    times = {t.measure: t for t in report_of(store).times}
    assemble, mitigate, resolve = times["assemble"], times["mitigate"], times["resolve"]
    # assembled after 5m and 15m; the third never had a responder but the declarer
    assert (assemble.incidents, assemble.happened) == (3, 2)
    assert (assemble.median, assemble.p90) == (timedelta(minutes=10), timedelta(minutes=14))
    assert (assemble.targets, assemble.with_target, assemble.within) == (
        (timedelta(minutes=10),),
        3,
        1,
    )
    assert (mitigate.median, mitigate.p90) == (timedelta(minutes=55), timedelta(minutes=67))
    assert (mitigate.happened, mitigate.within) == (2, 1)
    assert (resolve.median, resolve.p90) == (timedelta(minutes=135), timedelta(minutes=171))
    assert (resolve.happened, resolve.within) == (2, 1)


def test_each_step_on_time_late_skipped_or_never_done(played, store):
    steps = {s.step: s for s in report_of(store).steps}
    assert list(steps) == ["a", "b", "c", "d"]  # the plan's order
    a, b, c, d = steps["a"], steps["b"], steps["c"], steps["d"]
    assert (a.on_time, a.late, a.skipped, a.not_done) == (1, 1, 0, 1)
    assert a.late_median == timedelta(minutes=5)
    assert (b.on_time, b.late, b.skipped, b.not_done) == (0, 2, 1, 0)
    assert (b.late_median, b.late_max) == (timedelta(minutes=17.5), timedelta(minutes=30))
    assert b.reasons == [("not needed", 1)]
    assert (c.on_time, c.skipped, c.not_done) == (1, 1, 1)  # #3 was never mitigated
    assert c.reasons == [("No users affected", 1)]  # whitespace folded
    assert (d.no_deadline, d.not_done) == (1, 2)
    assert all(s.incidents == 3 and s.phase for s in steps.values())


def test_the_steps_to_fix_come_worst_first(played, store):
    worst = [s.step for s in report_of(store).steps_to_fix]
    # b: 3 of 3 off plan; then 2 of 3 each, the one late by more first, then plan order
    assert worst == ["b", "a", "c", "d"]


def test_phases_against_their_targets(played, store):
    one, two = report_of(store).phases
    assert (one.phase, one.ran, one.over) == ("one", 3, 2)
    assert one.median == timedelta(minutes=45)  # 20m, 45m and 60m (never left it)
    assert one.over_median == timedelta(minutes=22.5)  # 15m and 30m over its 30m
    assert (two.phase, two.ran, two.incidents, two.targets) == ("two", 2, 3, (timedelta(hours=2),))


def test_follow_ups_done_by_their_due_date_in_the_team_s_time_zone(played, store):
    utc = report_of(store).follow_ups
    assert (utc.total, utc.with_due, utc.done_by_due, utc.done_late) == (5, 4, 1, 1)
    assert (utc.open_overdue, utc.open_not_due, utc.no_due_open, utc.no_due_done) == (1, 1, 1, 0)
    # done at 01:00 UTC on the 21st is the evening of the 20th in Los Angeles: on time there
    west = report_of(store, tz="America/Los_Angeles").follow_ups
    assert (west.done_by_due, west.done_late) == (2, 0)


def test_a_follow_up_due_today_is_not_overdue_until_tomorrow(store):
    from bot.model import Action

    due_today = Action(1, 1, "x", None, "2026-02-01", "open", NOW)
    assert follow_up_figures([due_today], NOW, "UTC").open_not_due == 1
    assert follow_up_figures([due_today], NOW + timedelta(days=1), "UTC").open_overdue == 1


def test_since_keeps_the_incidents_declared_from_that_day(played, store):
    report = report_of(store, since=date(2026, 1, 16))
    assert (report.incidents, report.not_closed) == (2, 1)
    assert report.since == date(2026, 1, 16)
    assert {s.step: s.not_done for s in report.steps}["a"] == 1


def test_the_report_agrees_with_each_incident_s_postmortem_figures(played, store):
    """The same record, read the report's way (a few queries) and the review's way."""
    record = gather(store, None)
    for item in record.incidents:
        incident = item.incident
        events = store.events(incident.id)
        assemble = next(m for m in response_metrics(incident, events) if m.name == "assemble")
        expected = incident.started_at + assemble.actual if assemble.actual else None
        assert item.first_response == expected
        review = step_outcomes(
            incident, store.step_records(incident.id), store.phase_runs(incident.id)
        )
        mine = step_outcomes(incident, item.steps, item.runs)
        assert [o.verdict for o in mine] == [o.verdict for o in review]


def test_the_first_response_ignores_the_bot_the_declarer_and_review_writing(tmp_path, clock):
    store = Store(tmp_path / "first.db")
    folder = tmp_path / "rb"
    folder.mkdir()
    (folder / "report.yaml").write_text(REPORT_RUNBOOK, encoding="utf-8")
    service = IncidentService(store, clock, Catalog(folder))
    try:
        incident = service.start("report", "Quiet", "ana").incident.id
        clock.advance(timedelta(minutes=1))
        service.assign(incident, "ops", "ben", "ana")  # the declarer's own assign
        clock.advance(timedelta(minutes=1))
        service.resolved(incident, "ana")
        clock.advance(timedelta(minutes=1))
        service.describe(incident, "summary", "after the fact", "ben")  # review writing
        service.add_action(incident, "later", "ben")
        service.note(incident, "after resolve", "ben")  # past the resolution: not assembling
        service.close(incident, "ana")
        ((_, first),) = store.closed_incidents_since(None, ["summary", "action_added"])
        assert first is None
    finally:
        store.close()


def test_markdown_has_every_section_with_the_figures(played, store):
    drills = DrillNote("drill.db", 4)
    text = render_markdown(report_of(store, drills=drills), "en", {"times": "r-times.png"})
    assert text.startswith("# Incidents across the record\n")
    assert (
        "3 closed incidents declared so far, from `bot.db`; 1 not closed yet is left out." in text
    )
    assert "Drills are counted apart: 4 closed in `drill.db`" in text
    assert "| Report drill (`report`) | 0 | 3 | 0 | 0 | 3 |" in text
    assert "| `report` | assemble | 2 of 3 | 10m | 14m | 10m | 1 (33 %) |" in text
    assert "| `report` | resolve | 2 of 3 | 2h15m | 2h51m | 2h00m | 1 (33 %) |" in text
    assert "![Response times: median and p90 against the target](r-times.png)" in text
    assert "(r-steps.png)" not in text  # only the charts that were drawn are linked
    assert "| `report` | b Roll back | 3 of 3 (100 %) | 2 (18m) | 1: not needed ×1 | 0 |" in text
    assert "| a Look at logs | Phase one | 3 | 1 | 1 | 5m | 0 | 1 | 0 |" in text
    assert "| `report` | Phase one | 3 of 3 | 2 (67 %) | 45m | 22m | 30m |" in text
    assert "| Done by the due date | 1 (25 %) |" in text
    assert "| Open and overdue | 1 |" in text


def test_markdown_in_chinese(played, store):
    text = render_markdown(report_of(store), "zh")
    assert text.startswith("# 跨事件统计\n")
    assert "| `report` | 集结 | 2 / 3 | 10分钟 | 14分钟 | 10分钟 | 1（33 %） |" in text
    assert "## 预案中需要改进的步骤" in text and "## 后续行动" in text


def test_markdown_of_an_empty_record_says_so(store):
    text = render_markdown(report_of(store), "en")
    assert "No closed incidents declared so far" in text
    assert "## Response times" not in text
    assert "No follow-up actions were recorded" in text


def test_a_reason_with_a_pipe_or_a_mention_stays_in_its_cell(played, store):
    played.skip(4, "a", "why | not, ask <@U1|ana>", "ana")
    played.close(4, "ana")
    text = render_markdown(report_of(store), "en")
    assert "why \\| not, ask @ana ×1" in text  # one cell; a Slack mention as a name


def test_json_carries_the_same_figures_in_seconds(played, store):
    data = json.loads(render_json(report_of(store, drills=DrillNote("drill.db", None))))
    assert data["incidents"]["closed"] == 3 and data["incidents"]["not_closed"] == 1
    assemble = next(t for t in data["response"] if t["measure"] == "assemble")
    assert (assemble["median_seconds"], assemble["p90_seconds"]) == (600.0, 840.0)
    assert assemble["targets_seconds"] == [600.0] and assemble["within_target"] == 1
    b = next(s for s in data["steps"] if s["step"] == "b")
    assert (b["late"], b["late_median_seconds"], b["skipped"]) == (2, 1050.0, 1)
    assert b["skip_reasons"] == [{"reason": "not needed", "count": 1}]
    assert data["steps_to_fix"][0] == {"runbook": "report", "step": "b"}
    assert data["follow_ups"]["done_by_due_date"] == 1
    assert data["drills"] == {"database": "drill.db", "closed": None}


def test_csv_has_one_figure_per_row(played, store):
    rows = list(csv.reader(io.StringIO(render_csv(report_of(store)))))
    assert rows[0] == ["section", "runbook", "item", "measure", "value"]
    table = {(r[0], r[1], r[2], r[3]): r[4] for r in rows[1:]}
    assert table[("incidents", "report", "all", "sev2")] == "3"
    assert table[("response", "report", "mitigate", "median_seconds")] == "3300.0"
    assert table[("steps", "report", "b", "late")] == "2"
    assert table[("steps", "report", "b", "skip_reasons")] == "not needed (1)"
    assert table[("follow_ups", "", "all", "open_overdue")] == "1"
    assert len({len(r) for r in rows}) == 1
