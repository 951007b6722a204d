"""The plan as people see it: one view, drawn by the terminal and by Slack alike.

`PlanView` is everything the posted plan shows at one moment: the incident's
header, each phase with its steps (state and deadline), who holds which role
and which handoffs wait to be accepted. `bot/render.py` turns it into text (the
terminal, and Slack's notification fallback) and `bot/slack/blocks.py` into
Block Kit; both from the same parts, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.alerts import AlertInfo
from bot.model import Incident
from bot.progress import IncidentView
from bot.runbook import Deadline


@dataclass(frozen=True)
class PlanStep:
    id: str
    title: str
    owners: tuple[str, ...]  # role ids
    state: str  # open | overdue | done | skipped
    deadline: datetime | None  # when it falls due, once its anchor happened
    due: Deadline | None  # as the runbook states it (`30m after phase`)

    @property
    def is_open(self) -> bool:
        return self.state in ("open", "overdue")


@dataclass(frozen=True)
class PlanPhase:
    number: int
    name: str
    goal: str
    target: timedelta
    remind_every: timedelta
    current: bool
    steps: tuple[PlanStep, ...]


@dataclass(frozen=True)
class RoleRow:
    id: str
    name: str
    holder: str | None


@dataclass(frozen=True)
class PendingRow:
    role_name: str
    to_user: str


@dataclass(frozen=True)
class PlanView:
    incident: Incident
    phases: tuple[PlanPhase, ...]
    roles: tuple[RoleRow, ...]
    pending: tuple[PendingRow, ...]
    holders: dict[str, str]  # role id -> user, for step owners
    alert: AlertInfo | None = None  # declared from an Alertmanager alert group

    @property
    def open_steps(self) -> list[PlanStep]:
        return [s for p in self.phases for s in p.steps if s.is_open]

    @property
    def has_next_phase(self) -> bool:
        return self.incident.phase_index + 1 < len(self.phases)


def plan_view(view: IncidentView) -> PlanView:
    """The plan of an incident as its record stands (see IncidentView)."""
    incident = view.incident
    runbook = incident.runbook
    by_phase: dict[str, list[PlanStep]] = {}
    for status in view.steps:
        by_phase.setdefault(status.phase.id, []).append(
            PlanStep(
                status.step.id,
                status.step.title,
                tuple(status.step.owner),
                status.state,
                status.deadline,
                status.step.due,
            )
        )
    names = {r.id: r.name for r in runbook.roles}
    return PlanView(
        incident=incident,
        phases=tuple(
            PlanPhase(
                number=index + 1,
                name=phase.name,
                goal=phase.goal,
                target=phase.target,
                remind_every=phase.remind_every,
                current=index == incident.phase_index,
                steps=tuple(by_phase.get(phase.id, [])),
            )
            for index, phase in enumerate(runbook.phases)
        ),
        roles=tuple(RoleRow(r.id, r.name, view.holders.get(r.id)) for r in runbook.roles),
        pending=tuple(PendingRow(names.get(p.role_id, p.role_id), p.to_user) for p in view.pending),
        holders=dict(view.holders),
        alert=view.alert,
    )
