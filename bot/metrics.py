"""Plan versus actual: the numbers a postmortem is built on.

Pure functions over the stored record and the runbook snapshot, so every
figure in a review can be traced back to timeline events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.events import Declared, SeverityChanged
from bot.model import Event, Incident, PhaseRun, StepRecord
from bot.progress import deadline_of, phase_starts
from bot.review import KINDS as REVIEW_KINDS
from bot.runbook import SEVERITIES, Phase, Step

# writing the review and planning follow-ups is not responding to the incident
AFTERWORD = frozenset((*REVIEW_KINDS, "action_added", "action_done"))


@dataclass(frozen=True)
class Metric:
    name: str  # assemble | mitigate | resolve
    actual: timedelta | None  # None: it never happened
    target: timedelta | None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.actual is None:
            return None if self.target is None else False
        return self.actual <= self.target


@dataclass(frozen=True)
class PhaseOutcome:
    phase: Phase
    target: timedelta
    actual: timedelta | None  # summed over every run of the phase; None if never started
    runs: int

    @property
    def over(self) -> timedelta | None:
        """How far past the target (negative when within it); None if never started."""
        return self.actual - self.target if self.actual is not None else None

    @property
    def overran(self) -> bool:
        return self.over is not None and self.over > timedelta()


@dataclass(frozen=True)
class StepOutcome:
    phase: Phase
    step: Step
    deadline: datetime | None
    record: StepRecord | None
    verdict: str  # on_time | late | skipped | not_done | no_deadline
    late_by: timedelta | None = None
    before_phase: bool = False  # done before its phase started


def response_metrics(incident: Incident, events: list[Event]) -> list[Metric]:
    """Time to assemble, mitigate and resolve. Assembling ends with the first thing someone
    other than the declarer does in the response (the declarer's own `assign` is not a
    responder arriving; neither is the bot, nor review writing)."""
    joined = next((e.at for e in events if counts_as_responding(incident, e)), None)
    return metrics_at(incident, joined)


def counts_as_responding(incident: Incident, event: Event) -> bool:
    """Whether `event` is someone arriving in the response (see response_metrics). The
    report asks the database the same question (Store.closed_incidents_since)."""
    return (
        event.actor not in ("bot", incident.declared_by)
        and event.kind not in AFTERWORD
        and (incident.resolved_at is None or event.at <= incident.resolved_at)
    )


def metrics_at(incident: Incident, joined: datetime | None) -> list[Metric]:
    """The three response metrics, given when the first responder other than the declarer
    acted (None: nobody did)."""
    targets = incident.runbook.targets

    def since_start(moment: datetime | None) -> timedelta | None:
        return moment - incident.started_at if moment else None

    return [
        Metric("assemble", since_start(joined), targets.assemble),
        Metric("mitigate", since_start(incident.mitigated_at), targets.mitigate),
        Metric("resolve", since_start(incident.resolved_at), targets.resolve),
    ]


def peak_severity(incident: Incident, events: list[Event]) -> str:
    """The most severe level the incident reached (sev1 is the worst)."""
    reached = [incident.severity] + [
        e.payload.severity for e in events if isinstance(e.payload, Declared | SeverityChanged)
    ]
    known = [s for s in reached if s in SEVERITIES]
    return min(known, key=SEVERITIES.index) if known else incident.severity


def phase_outcomes(incident: Incident, runs: list[PhaseRun], end: datetime) -> list[PhaseOutcome]:
    """Target against time actually spent in each phase (re-entered phases add up)."""
    outcomes = []
    for phase in incident.runbook.phases:
        mine = [r for r in runs if r.phase_id == phase.id]
        actual = (
            sum(((r.ended_at or end) - r.started_at for r in mine), timedelta()) if mine else None
        )
        outcomes.append(PhaseOutcome(phase, phase.target, actual, len(mine)))
    return outcomes


def step_outcomes(
    incident: Incident, records: dict[str, StepRecord], runs: list[PhaseRun]
) -> list[StepOutcome]:
    """Each step's deadline against what happened: on time, late by how much, skipped, not done."""
    starts = phase_starts(runs)
    outcomes = []
    for phase, step in incident.runbook.steps():
        record = records.get(step.id)
        deadline = deadline_of(step, phase, incident, starts)
        before_phase = bool(
            record
            and record.state == "done"
            and (phase.id not in starts or record.at < starts[phase.id])
        )
        if record is None:
            verdict, late_by = "not_done", None
        elif record.state == "skipped":
            verdict, late_by = "skipped", None
        elif deadline is None:
            verdict, late_by = "no_deadline", None
        elif record.at <= deadline:
            verdict, late_by = "on_time", None
        else:
            verdict, late_by = "late", record.at - deadline
        outcomes.append(StepOutcome(phase, step, deadline, record, verdict, late_by, before_phase))
    return outcomes


@dataclass(frozen=True)
class Silence:
    """A stretch longer than the update cadence without a status update."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start


def silences(
    start: datetime, end: datetime, updates: list[datetime], every: timedelta
) -> list[tuple[datetime, datetime]]:
    """Stretches longer than the update cadence without a status update: (from, to) each,
    from the start (or an update) to the next update (or the end)."""
    gaps = []
    last = start
    for moment in [*sorted(updates), end]:
        if moment - last > every:
            gaps.append((last, moment))
        last = max(last, moment)
    return gaps
