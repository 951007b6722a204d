"""Where an incident stands against its plan: step deadlines and states.

Pure functions over records, used by status replies, reminders and the
postmortem alike, so all three agree on what is open and what is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.alerts import AlertInfo
from bot.model import Handoff, Incident, PhaseRun, StepRecord
from bot.runbook import Phase, Step


@dataclass(frozen=True)
class StepStatus:
    phase: Phase
    step: Step
    state: str  # open | overdue | done | skipped
    deadline: datetime | None
    record: StepRecord | None

    @property
    def is_open(self) -> bool:
        return self.state in ("open", "overdue")


def phase_starts(runs: list[PhaseRun]) -> dict[str, datetime]:
    """When each phase first started (a phase re-entered keeps its first start)."""
    starts: dict[str, datetime] = {}
    for run in runs:
        starts.setdefault(run.phase_id, run.started_at)
    return starts


def deadline_of(
    step: Step, phase: Phase, incident: Incident, starts: dict[str, datetime]
) -> datetime | None:
    """The step's deadline, or None while its anchor (phase start, milestone) has not happened."""
    if step.due is None:
        return None
    anchor = (
        starts.get(phase.id) if step.due.anchor == "phase" else incident.milestone(step.due.anchor)
    )
    return anchor + step.due.offset if anchor else None


def step_statuses(
    incident: Incident, records: dict[str, StepRecord], runs: list[PhaseRun], now: datetime
) -> list[StepStatus]:
    starts = phase_starts(runs)
    result = []
    for phase, step in incident.runbook.steps():
        record = records.get(step.id)
        deadline = deadline_of(step, phase, incident, starts)
        if record is not None:
            state = record.state
        elif deadline is not None and now >= deadline:
            state = "overdue"
        else:
            state = "open"
        result.append(StepStatus(phase, step, state, deadline, record))
    return result


@dataclass(frozen=True)
class IncidentView:
    """Everything a status reply or a reminder needs, read at one moment."""

    incident: Incident
    holders: dict[str, str]
    pending: list[Handoff]
    steps: list[StepStatus]
    phase_started_at: datetime
    alert: AlertInfo | None = None  # the alert group it was declared from (bot/alerts.py)
