"""Across incidents: what the record says about the plans, not about one incident.

`incident-bot report` (DESIGN §9). For the closed incidents of one database
(declared since a date): how many of each runbook and severity; time to
assemble, mitigate and resolve (median, p90) against each runbook's targets;
per runbook step how often it was done on time, late (by how much), skipped
(and why) or never done — the steps a team is always late on are the ones to
fix in the plan; phases against their targets; and follow-up actions done by
their due date. Drills live in their own database and are counted apart
(`--drill` reports on them).

The figures are the postmortem's own (`bot/metrics.py`: `metrics_at`,
`step_outcomes`, `phase_outcomes`), computed from the same record. To cover a
thousand incidents quickly the record is read with a few queries over all of
them (`Store.closed_incidents_since` and the ones beside it), never one review
at a time; the timeline is read only up to each incident's first responder.
`gather` reads; everything else here is pure: `build_report` computes,
`render_markdown`, `render_json` and `render_csv` write. Nothing here knows
about Slack.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined, Template, pass_context
from jinja2.runtime import Context

from bot import timefmt
from bot.clock import iso
from bot.messages import TEMPLATES
from bot.metrics import AFTERWORD, metrics_at, phase_outcomes, step_outcomes
from bot.model import Action, Incident, PhaseRun, StepRecord
from bot.runbook import SEVERITIES
from bot.store import Store
from bot.template_env import plain_mentions

FORMATS = ("md", "json", "csv")
MEASURES = ("assemble", "mitigate", "resolve")
VERDICTS = ("on_time", "late", "skipped", "not_done", "no_deadline")
STEPS_TO_FIX = 10  # the worst steps listed first
TOP_REASONS = 3  # reasons given for skipping, per step
MAX_REASON = 80  # characters of one reason as shown


# --- what the report reads ---------------------------------------------------------


@dataclass(frozen=True)
class ClosedIncident:
    incident: Incident
    first_response: datetime | None  # the first responder other than the declarer acted
    steps: dict[str, StepRecord]
    runs: list[PhaseRun]


@dataclass(frozen=True)
class Record:
    """What the report reads from one database."""

    incidents: list[ClosedIncident]
    actions: list[Action]
    not_closed: int  # declared in the period, not closed yet: left out


def gather(store: Store, since: datetime | None) -> Record:
    """Read the closed incidents declared at or after `since` (None: all), in five queries."""
    with store.snapshot():  # one consistent picture; serve's writes go on meanwhile
        incidents = store.closed_incidents_since(since, AFTERWORD)
        steps = store.step_records_since(since)
        runs = store.phase_runs_since(since)
        actions = store.actions_since(since)
        not_closed = store.count_since(since, closed=False)
    return Record(
        [
            ClosedIncident(i, first, steps.get(i.id, {}), runs.get(i.id, []))
            for i, first in incidents
        ],
        actions,
        not_closed,
    )


# --- the figures ----------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) by linear interpolation between the closest ranks
    (numpy's default); None for no values. The median is percentile 50."""
    data = sorted(values)
    if not data:
        return None
    rank = p / 100 * (len(data) - 1)
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def _spread(deltas: Iterable[timedelta]) -> tuple[timedelta | None, timedelta | None]:
    seconds = [d.total_seconds() for d in deltas]
    median, p90 = percentile(seconds, 50), percentile(seconds, 90)
    return (
        timedelta(seconds=median) if median is not None else None,
        timedelta(seconds=p90) if p90 is not None else None,
    )


@dataclass(frozen=True)
class RunbookCount:
    runbook: str
    name: str
    severities: dict[str, int]  # sev1..sev4 (the severity it was closed at)
    total: int


@dataclass(frozen=True)
class TimeFigure:
    """One response measure of one runbook's incidents against the runbook's target."""

    runbook: str
    measure: str  # assemble | mitigate | resolve
    incidents: int
    happened: int  # how many got there at all (mitigated, resolved, someone joined)
    median: timedelta | None
    p90: timedelta | None
    targets: tuple[timedelta, ...]  # the targets those incidents had (versions may differ)
    with_target: int  # incidents whose runbook had a target for it
    within: int  # of those, how many met it (never getting there misses it)


@dataclass(frozen=True)
class StepFigure:
    """How one step of one runbook went, over every incident whose plan had it."""

    runbook: str
    step: str
    title: str
    phase: str  # the phase's name
    incidents: int
    on_time: int
    late: int
    skipped: int
    not_done: int
    no_deadline: int  # done, with no deadline to be late for
    late_median: timedelta | None
    late_max: timedelta | None
    reasons: list[tuple[str, int]]  # the most given reasons for skipping it

    @property
    def off_plan(self) -> int:
        """Late, skipped or never done: not as the plan says."""
        return self.late + self.skipped + self.not_done

    @property
    def off_plan_share(self) -> float:
        return self.off_plan / self.incidents if self.incidents else 0.0


@dataclass(frozen=True)
class PhaseFigure:
    runbook: str
    phase: str
    name: str
    incidents: int
    ran: int  # started at least once
    over: int  # spent longer than its target
    median: timedelta | None  # time spent (re-entered runs add up), of those that ran
    over_median: timedelta | None  # by how much, of those over
    targets: tuple[timedelta, ...]


@dataclass(frozen=True)
class FollowUpFigures:
    total: int = 0
    with_due: int = 0
    done_by_due: int = 0
    done_late: int = 0
    open_overdue: int = 0
    open_not_due: int = 0
    no_due_done: int = 0
    no_due_open: int = 0


@dataclass(frozen=True)
class DrillNote:
    """Drills are counted apart: how many closed drills the drill database holds."""

    database: str
    closed: int | None  # None: there is no drill database


@dataclass(frozen=True)
class Report:
    database: str
    drill: bool  # a report on the drill database
    since: date | None
    generated: datetime
    timezone: str
    incidents: int
    not_closed: int
    runbooks: list[RunbookCount]
    times: list[TimeFigure]
    steps: list[StepFigure]
    phases: list[PhaseFigure]
    follow_ups: FollowUpFigures
    drills: DrillNote | None = None
    names: dict[str, str] = field(default_factory=dict)  # runbook id -> name

    @property
    def steps_to_fix(self) -> list[StepFigure]:
        """The steps most often not done as planned, worst first."""
        worst = [s for s in self.steps if s.off_plan]
        worst.sort(
            key=lambda s: (
                -s.off_plan_share,
                -s.off_plan,
                -(s.late_median or timedelta()).total_seconds(),
                s.runbook,
            )
        )
        return worst[:STEPS_TO_FIX]


def build_report(
    record: Record,
    now: datetime,
    database: str,
    since: date | None = None,
    timezone: str = "UTC",
    drill: bool = False,
    drills: DrillNote | None = None,
) -> Report:
    """Every figure of the report, from what `gather` read."""
    by_runbook: dict[str, list[ClosedIncident]] = {}
    for item in record.incidents:
        by_runbook.setdefault(item.incident.runbook_id, []).append(item)
    order = sorted(by_runbook, key=lambda r: (-len(by_runbook[r]), r))
    # names and titles as the newest plan of each runbook has them
    names = {r: by_runbook[r][-1].incident.runbook.name for r in order}
    counts = []
    for runbook in order:
        items = by_runbook[runbook]
        seen = Counter(i.incident.severity for i in items)
        counts.append(
            RunbookCount(
                runbook, names[runbook], {s: seen.get(s, 0) for s in SEVERITIES}, len(items)
            )
        )
    times: list[TimeFigure] = []
    steps: list[StepFigure] = []
    phases: list[PhaseFigure] = []
    for runbook in order:
        items = by_runbook[runbook]
        times += _times(runbook, items)
        steps += _steps(runbook, items)
        phases += _phases(runbook, items)
    return Report(
        database=database,
        drill=drill,
        since=since,
        generated=now,
        timezone=timezone,
        incidents=len(record.incidents),
        not_closed=record.not_closed,
        runbooks=counts,
        times=times,
        steps=steps,
        phases=phases,
        follow_ups=follow_up_figures(record.actions, now, timezone),
        drills=drills,
        names=names,
    )


def _times(runbook: str, items: list[ClosedIncident]) -> list[TimeFigure]:
    per_measure: dict[str, list[tuple[timedelta | None, timedelta | None]]] = {
        m: [] for m in MEASURES
    }
    for item in items:
        for metric in metrics_at(item.incident, item.first_response):
            per_measure[metric.name].append((metric.actual, metric.target))
    figures = []
    for measure in MEASURES:
        pairs = per_measure[measure]
        actual = [a for a, _ in pairs if a is not None]
        median, p90 = _spread(actual)
        targeted = [(a, t) for a, t in pairs if t is not None]
        figures.append(
            TimeFigure(
                runbook=runbook,
                measure=measure,
                incidents=len(pairs),
                happened=len(actual),
                median=median,
                p90=p90,
                targets=tuple(sorted({t for _, t in targeted})),
                with_target=len(targeted),
                within=sum(1 for a, t in targeted if a is not None and a <= t),
            )
        )
    return figures


def _plan_order(items: list[ClosedIncident], ids: Callable[[Incident], list[str]]) -> list[str]:
    """Ids in the newest plan's order, then those only older plans had."""
    order = list(ids(items[-1].incident))
    for item in reversed(items[:-1]):
        order += [i for i in ids(item.incident) if i not in order]
    return order


def _reason(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= MAX_REASON else words[: MAX_REASON - 1] + "…"


def _steps(runbook: str, items: list[ClosedIncident]) -> list[StepFigure]:
    verdicts: dict[str, Counter[str]] = {}
    lateness: dict[str, list[timedelta]] = {}
    reasons: dict[str, Counter[str]] = {}
    titles: dict[str, tuple[str, str]] = {}
    for item in items:  # oldest first: the newest plan's titles win
        for outcome in step_outcomes(item.incident, item.steps, item.runs):
            sid = outcome.step.id
            verdicts.setdefault(sid, Counter())[outcome.verdict] += 1
            titles[sid] = (outcome.step.title, outcome.phase.name)
            if outcome.late_by is not None:
                lateness.setdefault(sid, []).append(outcome.late_by)
            if outcome.verdict == "skipped" and outcome.record is not None:
                reason = _reason(outcome.record.reason) or "—"
                reasons.setdefault(sid, Counter())[reason] += 1
    figures = []
    for sid in _plan_order(items, lambda i: [s.id for _, s in i.runbook.steps()]):
        seen = verdicts[sid]
        late = lateness.get(sid, [])
        median, _ = _spread(late)
        top = sorted((reasons.get(sid) or Counter()).items(), key=lambda r: (-r[1], r[0]))
        figures.append(
            StepFigure(
                runbook=runbook,
                step=sid,
                title=titles[sid][0],
                phase=titles[sid][1],
                incidents=sum(seen.values()),
                on_time=seen["on_time"],
                late=seen["late"],
                skipped=seen["skipped"],
                not_done=seen["not_done"],
                no_deadline=seen["no_deadline"],
                late_median=median,
                late_max=max(late) if late else None,
                reasons=top[:TOP_REASONS],
            )
        )
    return figures


def _phases(runbook: str, items: list[ClosedIncident]) -> list[PhaseFigure]:
    spent: dict[str, list[timedelta]] = {}
    overs: dict[str, list[timedelta]] = {}
    had: Counter[str] = Counter()
    targets: dict[str, set[timedelta]] = {}
    names: dict[str, str] = {}
    for item in items:
        incident = item.incident
        end = incident.closed_at or incident.resolved_at or incident.started_at
        for outcome in phase_outcomes(incident, item.runs, end):
            pid = outcome.phase.id
            had[pid] += 1
            names[pid] = outcome.phase.name
            targets.setdefault(pid, set()).add(outcome.target)
            if outcome.actual is not None:
                spent.setdefault(pid, []).append(outcome.actual)
            if outcome.overran and outcome.over is not None:
                overs.setdefault(pid, []).append(outcome.over)
    figures = []
    for pid in _plan_order(items, lambda i: [p.id for p in i.runbook.phases]):
        ran = spent.get(pid, [])
        over = overs.get(pid, [])
        figures.append(
            PhaseFigure(
                runbook=runbook,
                phase=pid,
                name=names[pid],
                incidents=had[pid],
                ran=len(ran),
                over=len(over),
                median=_spread(ran)[0],
                over_median=_spread(over)[0],
                targets=tuple(sorted(targets[pid])),
            )
        )
    return figures


def _due(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def follow_up_figures(actions: list[Action], now: datetime, timezone: str) -> FollowUpFigures:
    """Follow-ups done by their due date: a due date is a day in the team's time zone,
    so one done at any time that day is on time; an open one is overdue from the next."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    counts: Counter[str] = Counter()
    for action in actions:
        due = _due(action.due)
        done = action.done_at.astimezone(zone).date() if action.done_at else None
        if due is None:
            counts["no_due_done" if done else "no_due_open"] += 1
        elif done is not None:
            counts["done_by_due" if done <= due else "done_late"] += 1
        else:
            counts["open_overdue" if today > due else "open_not_due"] += 1
    with_due = counts["done_by_due"] + counts["done_late"]
    with_due += counts["open_overdue"] + counts["open_not_due"]
    return FollowUpFigures(
        total=len(actions),
        with_due=with_due,
        done_by_due=counts["done_by_due"],
        done_late=counts["done_late"],
        open_overdue=counts["open_overdue"],
        open_not_due=counts["open_not_due"],
        no_due_done=counts["no_due_done"],
        no_due_open=counts["no_due_open"],
    )


# --- writing it ----------------------------------------------------------------------


def _seconds(delta: timedelta | None) -> float | None:
    return round(delta.total_seconds(), 3) if delta is not None else None


def report_data(report: Report) -> dict[str, Any]:
    """The report as plain data (the JSON format): durations in seconds, ids as stored."""
    return {
        "database": report.database,
        "drill": report.drill,
        "since": report.since.isoformat() if report.since else None,
        "generated_at": iso(report.generated),
        "timezone": report.timezone,
        "incidents": {
            "closed": report.incidents,
            "not_closed": report.not_closed,
            "by_runbook": [
                {"runbook": c.runbook, "name": c.name, "severities": c.severities, "total": c.total}
                for c in report.runbooks
            ],
        },
        "response": [
            {
                "runbook": t.runbook,
                "measure": t.measure,
                "incidents": t.incidents,
                "happened": t.happened,
                "median_seconds": _seconds(t.median),
                "p90_seconds": _seconds(t.p90),
                "targets_seconds": [_seconds(x) for x in t.targets],
                "with_target": t.with_target,
                "within_target": t.within,
            }
            for t in report.times
        ],
        "steps": [
            {
                "runbook": s.runbook,
                "step": s.step,
                "title": s.title,
                "phase": s.phase,
                "incidents": s.incidents,
                "on_time": s.on_time,
                "late": s.late,
                "late_median_seconds": _seconds(s.late_median),
                "late_max_seconds": _seconds(s.late_max),
                "skipped": s.skipped,
                "skip_reasons": [{"reason": r, "count": n} for r, n in s.reasons],
                "not_done": s.not_done,
                "done_without_deadline": s.no_deadline,
                "off_plan_share": round(s.off_plan_share, 4),
            }
            for s in report.steps
        ],
        "steps_to_fix": [{"runbook": s.runbook, "step": s.step} for s in report.steps_to_fix],
        "phases": [
            {
                "runbook": p.runbook,
                "phase": p.phase,
                "name": p.name,
                "incidents": p.incidents,
                "ran": p.ran,
                "over_target": p.over,
                "median_seconds": _seconds(p.median),
                "over_median_seconds": _seconds(p.over_median),
                "targets_seconds": [_seconds(x) for x in p.targets],
            }
            for p in report.phases
        ],
        "follow_ups": {
            "total": report.follow_ups.total,
            "with_due_date": report.follow_ups.with_due,
            "done_by_due_date": report.follow_ups.done_by_due,
            "done_late": report.follow_ups.done_late,
            "open_overdue": report.follow_ups.open_overdue,
            "open_not_yet_due": report.follow_ups.open_not_due,
            "without_due_date_done": report.follow_ups.no_due_done,
            "without_due_date_open": report.follow_ups.no_due_open,
        },
        "drills": (
            {"database": report.drills.database, "closed": report.drills.closed}
            if report.drills
            else None
        ),
    }


def render_json(report: Report) -> str:
    return json.dumps(report_data(report), ensure_ascii=False, indent=2) + "\n"


def render_csv(report: Report) -> str:
    """One figure per row (`section,runbook,item,measure,value`), for a spreadsheet's pivot
    table: durations in seconds, counts as counts."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "runbook", "item", "measure", "value"])
    data = report_data(report)

    def rows(section: str, runbook: str, item: str, values: dict[str, Any]) -> None:
        for measure, value in values.items():
            if isinstance(value, list):
                value = ";".join(str(v) for v in value)
            writer.writerow([section, runbook, item, measure, "" if value is None else value])

    rows("report", "", "", {k: data[k] for k in ("database", "drill", "since", "generated_at")})
    rows("incidents", "", "all", {k: data["incidents"][k] for k in ("closed", "not_closed")})
    for count in data["incidents"]["by_runbook"]:
        rows("incidents", count["runbook"], "all", {**count["severities"], "total": count["total"]})
    for t in data["response"]:
        rows("response", t["runbook"], t["measure"], _without(t, "runbook", "measure"))
    for s in data["steps"]:
        values = _without(s, "runbook", "step")
        values["skip_reasons"] = [f"{r['reason']} ({r['count']})" for r in s["skip_reasons"]]
        rows("steps", s["runbook"], s["step"], values)
    for p in data["phases"]:
        rows("phases", p["runbook"], p["phase"], _without(p, "runbook", "phase"))
    rows("follow_ups", "", "all", data["follow_ups"])
    if data["drills"]:
        rows("drills", "", "all", data["drills"])
    return out.getvalue()


def _without(values: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in keys}


@pass_context
def _dur(context: Context, delta: timedelta | None) -> str:
    return timefmt.duration(delta, str(context.get("language") or "en"))


def _targets(targets: Sequence[timedelta], language: str) -> str:
    if not targets:
        return timefmt.NONE
    if len(targets) == 1:
        return timefmt.duration(targets[0], language)
    return f"{timefmt.duration(targets[0], language)}–{timefmt.duration(targets[-1], language)}"


def _share(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)} %" if whole else timefmt.NONE


@cache
def _environment() -> Environment:
    # not sandboxed: these templates ship with the bot; the record only arrives as values
    env = Environment(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["dur"] = _dur
    env.filters["share"] = _share
    env.filters["num"] = lambda n: f"{n:,}"
    # one table cell: Slack's mention tokens as names (`<@U1|ana>` → `@ana`), one line, no `|`
    env.filters["cell"] = lambda s: " ".join(plain_mentions(str(s or "")).split()).replace(
        "|", "\\|"
    )
    return env


def render_markdown(
    report: Report, language: str = "en", charts: dict[str, str] | None = None
) -> str:
    """The report in Markdown; `charts` names the pictures drawn beside it (`times`,
    `steps`), which it links."""
    source = (TEMPLATES / f"report.{language}.md.j2").read_text(encoding="utf-8")
    return _compiled(source).render(
        report=report,
        language=language,
        charts=charts or {},
        severities=SEVERITIES,
        targets=lambda t: _targets(t, language),
        utc=timefmt.utc_time,
    )


@cache
def _compiled(source: str) -> Template:
    return _environment().from_string(source)
