"""`/incident catchup`: where an incident stands, for someone joining it.

A pure function of the record read at one moment (the incident view, its latest
status update, the last lines of its timeline) and the clock: the same record
at the same time always gives the same text. It is answered privately to
whoever asks, and offered the same way to whoever joins the incident's channel.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.messages import Renderer, Safe
from bot.model import Event
from bot.progress import IncidentView
from bot.render import event_text, open_step_rows, role_name
from bot.review import KINDS as REVIEW_KINDS

TIMELINE_LINES = 8  # the last lines of the timeline shown
# what the catch-up's timeline leaves out, as the review's does: routine reminders and
# review material (and the updates' own line: the latest update is shown on its own)
LEAVE_OUT = (*REVIEW_KINDS, "reminder")
MAX_LINE = 280  # characters of one timeline line's own text
MAX_UPDATE = 1500  # characters of the latest update


def _shortened(event: Event, limit: int) -> Event:
    text = event.text
    return event if len(text) <= limit else replace(event, text=text[: limit - 1] + "…")


def catchup_text(
    render: Renderer,
    view: IncidentView,
    latest_update: Event | None,
    recent: list[Event],
    now: datetime,
) -> str:
    """The catch-up: status, phase and elapsed time, who holds which role, the latest
    update, open and overdue steps, and the last lines of the timeline."""
    incident = view.incident
    runbook = incident.runbook
    phase = incident.phase
    steps = [] if incident.is_closed else open_step_rows(render, incident, view.steps, view.holders)
    timeline: list[dict[str, Any]] = [
        # rendered (and escaped) already: Safe, so the catch-up does not escape it again
        {
            "at": e.at,
            "text": Safe(event_text(render, _shortened(e, MAX_LINE), incident, record=True)),
        }
        for e in recent[-TIMELINE_LINES:]
    ]
    update = None
    if latest_update is not None:
        update = {
            "at": latest_update.at,
            "ago": now - latest_update.at,
            "by": latest_update.actor,
            "text": _shortened(latest_update, MAX_UPDATE).text,
        }
    return render(
        "reply.catchup",
        ref=incident.ref,
        title=incident.title,
        severity=incident.severity,
        status=incident.status,
        elapsed=(incident.closed_at or now) - incident.started_at,
        closed=incident.is_closed,
        declared_by=incident.declared_by,
        number=incident.phase_index + 1,
        phase_count=len(runbook.phases),
        phase_name=phase.name,
        phase_elapsed=now - view.phase_started_at,
        target=phase.target,
        roles=[
            {"name": r.name, "holder": view.holders.get(r.id)}
            for r in runbook.roles
            if r.id in view.holders
        ],
        open_roles=[r.name for r in runbook.roles if r.id not in view.holders],
        pending=[
            {"role_name": role_name(runbook, p.role_id), "to_user": p.to_user} for p in view.pending
        ],
        update=update,
        steps=steps,
        timeline=timeline,
    )
