"""The timeline's events: one kind each, with a typed payload.

An event is one immutable line of the record (who, when, what). Its `kind` is
an `EventKind` and its payload one of the small dataclasses below, so code that
reads the record branches on types (`isinstance(event.payload, RoleAssigned)`)
instead of on strings and dictionary keys. The store keeps the payload as JSON
(`to_data`); `payload_of` reads it back, tolerating rows written before a field
existed (it takes its default) or after one was dropped (it is ignored).
Free text (an update, a note, a reason) is the event's `text`, not payload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar


class EventKind(StrEnum):
    DECLARED = "declared"
    ROLE_ASSIGNED = "role_assigned"
    HANDOFF_REQUESTED = "handoff_requested"
    HANDOFF_ACCEPTED = "handoff_accepted"
    UPDATE = "update"
    NOTE = "note"
    SUMMARY = "summary"
    IMPACT = "impact"
    CAUSE = "cause"
    TRIGGER = "trigger"
    DETECTION = "detection"
    RESOLUTION = "resolution"
    WHY = "why"
    FACTOR = "factor"
    LESSON = "lesson"
    REVIEW_REVISED = "review_revised"
    ACTION_ADDED = "action_added"
    ACTION_DONE = "action_done"
    STEP_DONE = "step_done"
    STEP_SKIPPED = "step_skipped"
    PHASE_STARTED = "phase_started"
    SEVERITY_CHANGED = "severity_changed"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    SNOOZED = "snoozed"
    REMINDER = "reminder"
    ESCALATED = "escalated"
    RISK_TRIGGERED = "risk_triggered"
    ALERT = "alert"
    OUTBOUND_FAILED = "outbound_failed"


@dataclass(frozen=True)
class Payload:
    """What an event of one kind carries besides who, when and its text."""

    kind: ClassVar[EventKind]


@dataclass(frozen=True)
class Declared(Payload):
    kind = EventKind.DECLARED
    severity: str
    runbook: str
    version: str
    lead_open: bool = False  # declared from an alert: nobody holds the lead role yet


@dataclass(frozen=True)
class RoleAssigned(Payload):
    kind = EventKind.ROLE_ASSIGNED
    role: str
    user: str
    declarer: bool = False  # the declarer takes the lead role on declaring


@dataclass(frozen=True)
class HandoffRequested(Payload):
    kind = EventKind.HANDOFF_REQUESTED
    role: str
    from_user: str | None
    to_user: str
    replaces: str | None = None  # the person an earlier, still waiting handoff named


@dataclass(frozen=True)
class HandoffAccepted(Payload):
    kind = EventKind.HANDOFF_ACCEPTED
    role: str
    from_user: str | None
    to_user: str
    waited_seconds: float = 0.0


@dataclass(frozen=True)
class Update(Payload):
    kind = EventKind.UPDATE


@dataclass(frozen=True)
class Note(Payload):
    kind = EventKind.NOTE


@dataclass(frozen=True)
class Summary(Payload):
    kind = EventKind.SUMMARY


@dataclass(frozen=True)
class Impact(Payload):
    kind = EventKind.IMPACT


@dataclass(frozen=True)
class Cause(Payload):
    kind = EventKind.CAUSE


@dataclass(frozen=True)
class Trigger(Payload):
    kind = EventKind.TRIGGER


@dataclass(frozen=True)
class Detection(Payload):
    kind = EventKind.DETECTION


@dataclass(frozen=True)
class Resolution(Payload):
    kind = EventKind.RESOLUTION


@dataclass(frozen=True)
class Why(Payload):
    kind = EventKind.WHY
    number: int = 0  # which of the 5 Whys


@dataclass(frozen=True)
class Factor(Payload):
    kind = EventKind.FACTOR
    category: str = ""  # people | tooling | data | process | environment


@dataclass(frozen=True)
class Lesson(Payload):
    kind = EventKind.LESSON
    lesson: str = ""  # well | wrong | lucky


@dataclass(frozen=True)
class ReviewRevised(Payload):
    """The review form saved: each part it names replaces what the record had."""

    kind = EventKind.REVIEW_REVISED
    changes: dict[str, Any]


@dataclass(frozen=True)
class ActionAdded(Payload):
    kind = EventKind.ACTION_ADDED
    action: int
    owner: str | None = None
    due: str | None = None  # YYYY-MM-DD
    priority: str | None = None  # p1 | p2 | p3
    link: str | None = None


@dataclass(frozen=True)
class ActionDone(Payload):
    """A follow-up action marked done (its text is the event's text)."""

    kind = EventKind.ACTION_DONE
    action: int
    due: str | None = None  # YYYY-MM-DD, as it was due


@dataclass(frozen=True)
class StepDone(Payload):
    kind = EventKind.STEP_DONE
    step: str


@dataclass(frozen=True)
class StepSkipped(Payload):
    kind = EventKind.STEP_SKIPPED
    step: str  # the reason is the event's text


@dataclass(frozen=True)
class PhaseStarted(Payload):
    kind = EventKind.PHASE_STARTED
    phase: str
    number: int
    previous: str | None = None


@dataclass(frozen=True)
class SeverityChanged(Payload):
    kind = EventKind.SEVERITY_CHANGED
    severity: str
    previous: str


@dataclass(frozen=True)
class Mitigated(Payload):
    kind = EventKind.MITIGATED
    implied: bool = False  # resolved without a mitigation first


@dataclass(frozen=True)
class Resolved(Payload):
    kind = EventKind.RESOLVED


@dataclass(frozen=True)
class Closed(Payload):
    kind = EventKind.CLOSED
    previous: str = ""  # the status it was closed from


@dataclass(frozen=True)
class Snoozed(Payload):
    kind = EventKind.SNOOZED
    until: str  # ISO time of the next phase reminder
    phase: str


@dataclass(frozen=True)
class ReminderSent(Payload):
    kind = EventKind.REMINDER
    reminder: str  # phase | step | postmortem | action
    phase: str | None = None
    number: int | None = None
    step: str | None = None
    action: int | None = None


@dataclass(frozen=True)
class Escalated(Payload):
    kind = EventKind.ESCALATED
    phase: str


@dataclass(frozen=True)
class RiskTriggered(Payload):
    kind = EventKind.RISK_TRIGGERED
    risk: str  # the fallback is the event's text


@dataclass(frozen=True)
class AlertReceived(Payload):
    """Alertmanager told about the incident's alert group again (see bot/alerts.py)."""

    kind = EventKind.ALERT
    status: str  # firing | resolved: the group's status in this notification
    firing: int = 0  # alerts firing in it
    resolved: int = 0  # alerts resolved in it
    new: int = 0  # firing alerts not seen before in this group
    again: bool = False  # firing after the group had been resolved
    ask_mitigated: bool = False  # resolved while the incident is not mitigated: suggest it


@dataclass(frozen=True)
class OutboundFailed(Payload):
    """Paging or an event webhook failed; said once per incident and target."""

    kind = EventKind.OUTBOUND_FAILED
    target: str  # "PagerDuty", or the host of a webhook URL
    error: str
    retrying: bool = False


PAYLOADS: dict[EventKind, type[Payload]] = {
    cls.kind: cls
    for cls in (
        Declared,
        RoleAssigned,
        HandoffRequested,
        HandoffAccepted,
        Update,
        Note,
        Summary,
        Impact,
        Cause,
        Trigger,
        Detection,
        Resolution,
        Why,
        Factor,
        Lesson,
        ReviewRevised,
        ActionAdded,
        ActionDone,
        StepDone,
        StepSkipped,
        PhaseStarted,
        SeverityChanged,
        Mitigated,
        Resolved,
        Closed,
        Snoozed,
        ReminderSent,
        Escalated,
        RiskTriggered,
        AlertReceived,
        OutboundFailed,
    )
}
# the kinds whose text is a part of the review people write, by name
TEXT_KINDS: dict[str, type[Payload]] = {
    "summary": Summary,
    "impact": Impact,
    "cause": Cause,
    "trigger": Trigger,
    "detection": Detection,
    "resolution": Resolution,
}


def to_data(payload: Payload) -> dict[str, Any]:
    """The payload as the store keeps it (a JSON object)."""
    if isinstance(payload, ReviewRevised):
        return dict(payload.changes)
    return asdict(payload)


def payload_of(kind: EventKind, data: dict[str, Any]) -> Payload:
    """The typed payload of a stored event."""
    cls = PAYLOADS[kind]
    if cls is ReviewRevised:
        return ReviewRevised(dict(data))
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
