"""Turns core records (events, views, runbooks) into message text.

Adapters share these so the terminal and Slack say the same things; Slack adds
Block Kit around the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.alerts import AlertInfo
from bot.clock import parse_iso
from bot.events import Declared, Factor, Lesson, ReviewRevised, RiskTriggered, Snoozed, to_data
from bot.messages import Renderer, Safe
from bot.model import Event, Incident
from bot.plan import PlanView
from bot.progress import IncidentView, StepStatus
from bot.runbook import LoadedRunbook, Runbook
from bot.timefmt import deadline


def role_name(runbook: Runbook, role_id: str | None) -> str:
    role = runbook.role(role_id) if role_id else None
    return role.name if role else str(role_id)


def event_text(render: Renderer, event: Event, incident: Incident, record: bool = False) -> str:
    """What an event says in the channel; `record=True`: in the review's timeline, where the
    bot's prompts ("type `/incident accept` …") are left out (`timeline.*` keys)."""
    runbook = incident.runbook
    payload = event.payload
    params: dict[str, Any] = {
        "from_user": None,
        "implied": False,
        "previous": None,
        **to_data(payload),
        "actor": event.actor,
        "text": event.text,
        "at": event.at,
        "ref": incident.ref,
        "title": event.text if isinstance(payload, Declared) else incident.title,
        "elapsed": event.at - incident.started_at,
    }
    role = getattr(payload, "role", None)  # roles, handoffs
    if role is not None:
        params["role_name"] = role_name(runbook, role)
    step = getattr(payload, "step", None)  # steps done or skipped, step reminders
    if step is not None:
        found = runbook.step(step)
        params["step_title"] = found[1].title if found else ""
    phase_id = getattr(payload, "phase", None)  # phases, snoozes, escalations, reminders
    if phase_id is not None:
        phase = runbook.phases[runbook.phase_index(phase_id)]
        params.update(
            phase_name=phase.name,
            goal=phase.goal,
            target=phase.target,
            phase_count=len(runbook.phases),
        )
    if isinstance(payload, Declared):
        params.update(lead_name=runbook.roles[0].name, lead_id=runbook.roles[0].id)
    elif isinstance(payload, Snoozed):
        params["until_at"] = parse_iso(payload.until)
    elif isinstance(payload, RiskTriggered):
        risk = next((r for r in runbook.risks if r.id == payload.risk), None)
        params["risk_text"] = risk.risk if risk else payload.risk
    elif isinstance(payload, Factor):
        params["category_name"] = render(f"label.factor_{payload.category}")
    elif isinstance(payload, Lesson):
        params["lesson_name"] = render(f"label.lesson_{payload.lesson}")
    elif isinstance(payload, ReviewRevised):
        params["parts"] = [render(f"label.review_{k}") for k in payload.changes]
    key = f"timeline.{event.kind}"
    return render(key if record and render.has(key) else f"event.{event.kind}", **params)


def owners_text(
    render: Renderer, runbook: Runbook, owners: list[str], holders: dict[str, str]
) -> str:
    """Owner roles as their holders' mentions, or the role name while nobody holds it."""
    return Safe(
        ("、" if render.language == "zh" else ", ").join(
            render.mention(holders[o]) if o in holders else role_name(runbook, o) for o in owners
        )
    )


def open_step_rows(
    render: Renderer, incident: Incident, statuses: list[StepStatus], holders: dict[str, str]
) -> list[dict[str, Any]]:
    """Open steps of the current phase plus overdue ones from any phase, ready for templates."""
    return [
        {
            "id": s.step.id,
            "title": s.step.title,
            "owners": owners_text(render, incident.runbook, s.step.owner, holders),
            "deadline": s.deadline,
            "state": s.state,
        }
        for s in statuses
        if s.is_open and (s.phase.id == incident.phase.id or s.state == "overdue")
    ]


def status_text(render: Renderer, view: IncidentView, now: datetime) -> str:
    incident = view.incident
    runbook = incident.runbook
    phase = incident.phase
    open_steps = open_step_rows(render, incident, view.steps, view.holders)
    return render(
        "reply.status",
        ref=incident.ref,
        title=incident.title,
        severity=incident.severity,
        status=incident.status,
        elapsed=now - incident.started_at,
        number=incident.phase_index + 1,
        phase_count=len(runbook.phases),
        phase_name=phase.name,
        phase_elapsed=now - view.phase_started_at,
        target=phase.target,
        roles=_roles(runbook, view.holders),
        pending=[
            {"role_name": role_name(runbook, p.role_id), "to_user": p.to_user} for p in view.pending
        ],
        steps=open_steps,
        last_update=incident.last_update_at,
    )


STATE_ICON = {"done": ":white_check_mark:", "skipped": ":fast_forward:", "overdue": ":red_circle:"}


@dataclass(frozen=True)
class PlanParts:
    """The plan's text, piece by piece: the terminal joins them, Slack lays them out."""

    header: str  # INC-7 · title
    summary: str  # severity · status · phase · runbook
    phases: list[str]  # one block of text per phase, its steps with their states
    roles: str  # who holds what, and the handoffs waiting
    alert: str = ""  # the alert group behind it: labels, annotations, where it came from


PLAN_VALUE = 200  # characters of a label or annotation value the plan shows


def alert_params(alert: AlertInfo, limit: int | None = None) -> dict[str, Any]:
    """The alert group for a template (the plan, the review); values cut to `limit`."""

    def cut(value: str) -> str:
        return value if limit is None or len(value) <= limit else value[: limit - 1] + "…"

    return {
        "group_key": alert.group_key,
        "status": alert.status,
        "receiver": alert.receiver,
        "labels": [(k, cut(v)) for k, v in alert.labels],
        "annotations": [(k, cut(v)) for k, v in alert.annotations],
        "links": list(alert.links),
        "firing": alert.firing,
        "resolved": alert.resolved,
        "received": alert.received,
    }


def plan_parts(render: Renderer, plan: PlanView) -> PlanParts:
    incident = plan.incident
    runbook = incident.runbook
    current = plan.phases[incident.phase_index] if plan.phases else None
    summary = render(
        "plan.summary",
        severity=incident.severity,
        status=incident.status,
        number=incident.phase_index + 1,
        phase_count=len(plan.phases),
        phase_name=current.name if current else "",
        runbook=runbook.id,
        version=incident.runbook_version,
    )
    phases = [
        render(
            "plan.phase",
            number=phase.number,
            name=phase.name,
            target=phase.target,
            remind_every=phase.remind_every,
            current=phase.current,
            steps=[
                {
                    "icon": STATE_ICON.get(step.state, ":white_circle:"),
                    "id": step.id,
                    "title": step.title,
                    "owners": owners_text(render, runbook, list(step.owners), plan.holders),
                    "deadline": step.deadline,
                    "due": deadline(step.due.offset, step.due.anchor, render.language)
                    if step.due
                    else "",
                }
                for step in phase.steps
            ],
        )
        for phase in plan.phases
    ]
    roles = render(
        "plan.roles",
        roles=[{"name": r.name, "holder": r.holder} for r in plan.roles],
        pending=[{"role_name": p.role_name, "to_user": p.to_user} for p in plan.pending],
    )
    alert = render("plan.alert", **alert_params(plan.alert, PLAN_VALUE)) if plan.alert else ""
    return PlanParts(f"{incident.ref} · {incident.title}", summary, phases, roles, alert)


def plan_text(render: Renderer, plan: PlanView) -> str:
    """The plan as text: the terminal's plan, and Slack's fallback for notifications."""
    parts = plan_parts(render, plan)
    alert = [parts.alert] if parts.alert else []
    return "\n".join(
        [f"*{render.escape(parts.header)}*", parts.summary, *alert, *parts.phases, parts.roles]
    )


def _roles(runbook: Runbook, holders: dict[str, str]) -> list[dict[str, Any]]:
    return [{"id": r.id, "name": r.name, "holder": holders.get(r.id)} for r in runbook.roles]


def runbooks_text(render: Renderer, runbooks: list[LoadedRunbook]) -> str:
    return render("reply.runbooks", runbooks=[item.runbook for item in runbooks])


def list_text(render: Renderer, incidents: list[Incident], link: Callable[[str], str]) -> str:
    rows = [
        {
            "ref": i.ref,
            "severity": i.severity,
            "status": i.status,
            "title": i.title,
            "private": i.runbook.private,  # only its members see the title
            "started_at": i.started_at,
            "channel": Safe(link(i.channel)) if i.channel and not i.runbook.private else "",
        }
        for i in incidents
    ]
    return render("reply.list", incidents=rows)
