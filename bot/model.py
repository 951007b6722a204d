"""Plain records of an incident's state, as the store returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from bot.events import EventKind, Payload, payload_of
from bot.runbook import Phase, Runbook

STATUSES = ("active", "mitigated", "resolved", "closed")


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    severity: str
    status: str
    runbook_id: str
    runbook_version: str
    runbook_snapshot: str
    phase_index: int
    declared_by: str
    started_at: datetime
    channel: str | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    last_update_at: datetime | None = None
    summary: str | None = None
    impact: str | None = None
    cause: str | None = None
    plan_ref: str | None = None

    @property
    def ref(self) -> str:
        return f"INC-{self.id}"

    @cached_property
    def runbook(self) -> Runbook:
        return Runbook.from_snapshot(self.runbook_snapshot)

    @property
    def phase(self) -> Phase:
        return self.runbook.phases[self.phase_index]

    @property
    def is_closed(self) -> bool:
        return self.status == "closed"

    def milestone(self, name: str) -> datetime | None:
        return {
            "start": self.started_at,
            "mitigated": self.mitigated_at,
            "resolved": self.resolved_at,
        }.get(name)


@dataclass(frozen=True)
class Event:
    """One line of the timeline; `payload` is its typed content (see bot/events.py)."""

    id: int
    incident_id: int
    at: datetime
    actor: str
    kind: EventKind
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # the payload as stored

    @cached_property
    def payload(self) -> Payload:
        return payload_of(self.kind, self.data)


@dataclass(frozen=True)
class Holding:
    """One person holding one role for a stretch of time."""

    role_id: str
    user: str
    since: datetime
    until: datetime | None = None


@dataclass(frozen=True)
class Handoff:
    id: int
    role_id: str
    from_user: str | None
    to_user: str
    requested_at: datetime
    requested_by: str
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    state: str  # done | skipped
    at: datetime
    by: str
    reason: str = ""


@dataclass(frozen=True)
class PhaseRun:
    phase_id: str
    started_at: datetime
    ended_at: datetime | None = None
    id: int = 0


@dataclass(frozen=True)
class Reminder:
    """A durable timer: what falls due when, and whether it went out."""

    id: int
    incident_id: int
    kind: str  # phase | step | overrun | risk | postmortem
    ref: str  # phase run id, step id, risk id …
    seq: int
    due_at: datetime
    state: str  # pending | sending | sent | skipped | cancelled | unknown
    done_at: datetime | None = None


@dataclass(frozen=True)
class Outgoing:
    """A message (or a step such as opening the channel) a change calls for, kept in the
    outbox until it is delivered; see bot/outbox.py."""

    id: int
    incident_id: int | None
    kind: str
    body: dict[str, Any]
    state: str  # pending | sending | sent | failed | unknown
    attempts: int
    due_at: datetime  # when it may be tried (next)
    created_at: datetime
    error: str | None = None
    done_at: datetime | None = None  # when its state last changed (claimed, sent, failed)
    # None: the incident's chat lane; else the outbound target it goes to, in order of its own
    # ("pagerduty", a webhook URL), so a slow receiver never holds up the channel
    lane: str | None = None


@dataclass(frozen=True)
class Action:
    id: int
    incident_id: int
    text: str
    owner: str | None
    due: str | None  # YYYY-MM-DD
    status: str
    created_at: datetime
    priority: str | None = None  # p1 (most urgent) | p2 | p3
    link: str | None = None  # the tracker issue (http/https)
    done_at: datetime | None = None  # when it was marked done (status "done")
