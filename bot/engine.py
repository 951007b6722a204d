"""The incident service: commands in, events out.

Each public method loads the incident, checks the request against its state,
changes the store and appends the timeline events in one transaction, and
returns a `Change`. Refusals raise a `BotError` whose message says what to
type instead. Nothing here knows about Slack or the terminal.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.alerts import ACTOR as ALERT_ACTOR
from bot.alerts import alert_info
from bot.clock import Clock
from bot.errors import (
    BotError,
    IncidentClosed,
    InvalidTransition,
    NoPendingHandoff,
    NotAllowed,
    UnknownName,
)
from bot.events import (
    TEXT_KINDS,
    ActionAdded,
    ActionDone,
    AlertReceived,
    Closed,
    Declared,
    EventKind,
    Factor,
    HandoffAccepted,
    HandoffRequested,
    Lesson,
    Mitigated,
    Note,
    OutboundFailed,
    Payload,
    PhaseStarted,
    Resolved,
    ReviewRevised,
    RoleAssigned,
    Snoozed,
    StepDone,
    StepSkipped,
    Update,
    Why,
)
from bot.model import Action, Event, Incident
from bot.progress import IncidentView, step_statuses
from bot.reminders import arm
from bot.review import KINDS as REVIEW_KINDS
from bot.review import MAX_ITEMS, ReviewMaterial, fold, revised
from bot.runbook import SEVERITIES, Catalog
from bot.store import Store


@dataclass(frozen=True)
class Policy:
    """Who may close, change severity or move the lead role (the runbook's first role).

    `lead` (default): the current lead, the declarer or an admin. `anyone`: everybody.
    Updates, notes, steps and the other roles are open to everyone in the channel."""

    mode: str = "lead"
    admins: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Change:
    """What a command did: the incident after it, and the events it wrote."""

    incident: Incident
    events: list[Event] = field(default_factory=list)


def closest(name: str, choices: list[str]) -> str | None:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return match[0] if match else None


class IncidentService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        catalog: Catalog,
        timezone: str = "UTC",
        policy: Policy | None = None,
        drill: bool = False,
    ) -> None:
        self.policy = policy or Policy()
        self.drill = drill  # a rehearsal: nobody gets follow-up reminders
        self.store = store
        self.clock = clock
        self.catalog = catalog
        self.timezone = timezone  # follow-up reminders fire in the morning of their due date

    # --- declaring ------------------------------------------------------------

    def start(
        self,
        runbook_id: str,
        title: str,
        actor: str,
        severity: str | None = None,
        channel: str | None = None,
        take_lead: bool = True,
    ) -> Change:
        """Declare. The declarer takes the lead role (the runbook's first) unless
        `take_lead=False` (an alert declared it): then it stays open until someone takes it."""
        loaded = self.catalog.get(runbook_id)
        if loaded is None:
            ids = self.catalog.ids()
            raise UnknownName(
                "unknown_runbook",
                given=runbook_id,
                known=", ".join(ids),
                suggestion=closest(runbook_id, ids),
            )
        runbook = loaded.runbook
        severity = severity or runbook.default_severity
        now = self.clock.now()
        with self.store.transaction():
            incident_id = self.store.insert_incident(
                title=title,
                severity=severity,
                status="active",
                runbook_id=runbook.id,
                runbook_version=loaded.version,
                runbook_snapshot=runbook.snapshot(),
                phase_index=0,
                declared_by=actor,
                started_at=now,
                channel=channel,
            )
            declared = Declared(severity, runbook.id, loaded.version, lead_open=not take_lead)
            events = [self.store.append_event(incident_id, now, actor, declared, title)]
            lead = runbook.roles[0]
            if take_lead:
                self.store.set_holder(incident_id, lead.id, actor, now)
                events.append(
                    self.store.append_event(
                        incident_id, now, actor, RoleAssigned(lead.id, actor, declarer=True)
                    )
                )
            self.store.start_phase(incident_id, runbook.phases[0].id, now)
            events.append(
                self.store.append_event(
                    incident_id, now, actor, PhaseStarted(runbook.phases[0].id, 1)
                )
            )
            return self._commit(incident_id, events)

    def set_channel(self, incident_id: int, channel: str) -> Incident:
        self.store.update_incident(incident_id, channel=channel)
        return self._get(incident_id)

    def set_plan_ref(self, incident_id: int, ref: str | None) -> None:
        self.store.update_incident(incident_id, plan_ref=ref)

    def last_update(self, incident_id: int) -> str | None:
        updates = self.store.events(incident_id, kinds=("update",))
        return updates[-1].text if updates else None

    # --- roles ------------------------------------------------------------------

    def assign(self, incident_id: int, role: str, user: str, actor: str) -> Change:
        with self.store.transaction():
            incident = self._open(incident_id)
            role_id = self._role(incident, role)
            if role_id == incident.runbook.roles[0].id and not self._lead_open(incident):
                self._require_lead(incident, actor, "assign")
            if self.store.current_holders(incident_id).get(role_id) == user:
                raise InvalidTransition(
                    "already_holds",
                    user=user,
                    role=role_id,
                    role_name=_role_name(incident, role_id),
                )
            now = self.clock.now()
            self.store.set_holder(incident_id, role_id, user, now)
            for handoff in self.store.pending_handoffs(incident_id):
                if handoff.role_id == role_id:
                    self.store.finish_handoff(handoff.id, now, accepted=False)
            event = self.store.append_event(incident_id, now, actor, RoleAssigned(role_id, user))
            return self._commit(incident_id, [event])

    def handoff(self, incident_id: int, role: str, user: str, actor: str) -> Change:
        """Ask `user` to take `role`; it stays with the current holder until they accept."""
        with self.store.transaction():
            incident = self._open(incident_id)
            role_id = self._role(incident, role)
            if role_id == incident.runbook.roles[0].id and not self._lead_open(incident):
                self._require_lead(incident, actor, "handoff")
            holder = self.store.current_holders(incident_id).get(role_id)
            if holder == user:
                raise InvalidTransition(
                    "already_holds",
                    user=user,
                    role=role_id,
                    role_name=_role_name(incident, role_id),
                )
            waiting = [
                h
                for h in self.store.pending_handoffs(incident_id)
                if h.role_id == role_id and h.to_user == user
            ]
            if waiting:  # the same handoff again: still waiting, nothing new to say
                raise InvalidTransition(
                    "handoff_waiting",
                    user=user,
                    role=role_id,
                    role_name=_role_name(incident, role_id),
                )
            now = self.clock.now()
            replaced = [h for h in self.store.pending_handoffs(incident_id) if h.role_id == role_id]
            for handoff in replaced:
                self.store.finish_handoff(handoff.id, now, accepted=False)
            self.store.add_handoff(incident_id, role_id, holder, user, now, actor)
            replaces = replaced[-1].to_user if replaced else None
            event = self.store.append_event(
                incident_id, now, actor, HandoffRequested(role_id, holder, user, replaces)
            )
            return self._commit(incident_id, [event])

    def accept(self, incident_id: int, actor: str) -> Change:
        """Accept every role handed to `actor` that is still waiting."""
        with self.store.transaction():
            self._open(incident_id)
            mine = [h for h in self.store.pending_handoffs(incident_id) if h.to_user == actor]
            if not mine:
                raise NoPendingHandoff("no_pending_handoff", user=actor)
            now = self.clock.now()
            events = []
            for handoff in mine:
                previous = self.store.current_holders(incident_id).get(handoff.role_id)
                self.store.finish_handoff(handoff.id, now, accepted=True)
                self.store.set_holder(incident_id, handoff.role_id, actor, now)
                waited = (now - handoff.requested_at).total_seconds()
                events.append(
                    self.store.append_event(
                        incident_id,
                        now,
                        actor,
                        HandoffAccepted(handoff.role_id, previous, actor, waited),
                    )
                )
            return self._commit(incident_id, events)

    # --- the record -------------------------------------------------------------

    def update(self, incident_id: int, text: str, actor: str) -> Change:
        with self.store.transaction():
            self._open(incident_id)
            now = self.clock.now()
            self.store.update_incident(incident_id, last_update_at=now)
            event = self.store.append_event(incident_id, now, actor, Update(), text)
            return self._commit(incident_id, [event])

    def note(self, incident_id: int, text: str, actor: str) -> Change:
        with self.store.transaction():
            self._open(incident_id)
            event = self.store.append_event(incident_id, self.clock.now(), actor, Note(), text)
            return self._commit(incident_id, [event])

    def describe(self, incident_id: int, field_name: str, text: str, actor: str) -> Change:
        """Set the summary, impact or cause text of the postmortem (allowed after close too)."""
        if field_name not in ("summary", "impact", "cause"):
            raise ValueError(field_name)
        with self.store.transaction():
            self._existing(incident_id)
            self.store.update_incident(incident_id, **{field_name: text})
            payload = TEXT_KINDS[field_name]()
            event = self.store.append_event(incident_id, self.clock.now(), actor, payload, text)
            return self._commit(incident_id, [event])

    def add_to_review(
        self, incident_id: int, kind: str, text: str, actor: str, category: str | None = None
    ) -> Change:
        """Review material: `trigger`, `detection`, `resolution` (the latest counts), `why`
        (the next of the 5 Whys), `factor` (category people…environment), `lesson` (well,
        wrong, lucky). Allowed after resolve and after close: reviews happen days later."""
        with self.store.transaction():
            self._existing(incident_id)
            material = self.review(incident_id)
            payload: Payload
            if kind == "why":
                payload = Why(self._room(material.whys, kind))
            elif kind == "factor" and category is not None and category in material.factors:
                self._room(material.factors[category], kind)
                payload = Factor(category)
            elif kind == "lesson" and category is not None and category in material.lessons:
                self._room(material.lessons[category], kind)
                payload = Lesson(category)
            elif kind in ("trigger", "detection", "resolution"):
                payload = TEXT_KINDS[kind]()
            else:
                raise ValueError(f"{kind} {category}")
            event = self.store.append_event(incident_id, self.clock.now(), actor, payload, text)
            return self._commit(incident_id, [event])

    def revise_review(self, incident_id: int, submitted: dict[str, object], actor: str) -> Change:
        """The review form: every part it carries replaces what the record had (see review.py).
        One `review_revised` event names what changed; summary, impact and cause also stay on
        the incident row, as when typed."""
        with self.store.transaction():
            self._existing(incident_id)
            changes = revised(self.review(incident_id), submitted)
            if not changes:
                raise InvalidTransition("review_unchanged")
            on_row = ("summary", "impact", "cause")
            columns = {k: v or None for k, v in changes.items() if k in on_row}
            if columns:
                self.store.update_incident(incident_id, **columns)
            event = self.store.append_event(
                incident_id, self.clock.now(), actor, ReviewRevised(changes)
            )
            return self._commit(incident_id, [event])

    def review(self, incident_id: int) -> ReviewMaterial:
        """What people have written for the review so far."""
        return fold(self.store.events(incident_id, kinds=REVIEW_KINDS))

    def add_action(
        self,
        incident_id: int,
        text: str,
        actor: str,
        owner: str | None = None,
        due: date | None = None,
        priority: str | None = None,
        link: str | None = None,
    ) -> Change:
        """Follow-up work for after the incident; allowed after close, when reviews happen."""
        with self.store.transaction():
            self._existing(incident_id)
            now = self.clock.now()
            due_text = due.isoformat() if due else None
            action_id = self.store.add_action(
                incident_id, text, owner, due_text, now, priority=priority, link=link
            )
            event = self.store.append_event(
                incident_id,
                now,
                actor,
                ActionAdded(action_id, owner, due_text, priority, link),
                text,
            )
            return self._commit(incident_id, [event])

    def complete_action(self, incident_id: int, action_id: int, actor: str) -> Change:
        """Mark one of the incident's follow-up actions done; allowed after close (that is
        when follow-ups get done). The report counts which were done by their due date."""
        with self.store.transaction():
            incident = self._existing(incident_id)
            action = self.store.action(action_id)
            if action is None or action.incident_id != incident_id:
                raise UnknownName("unknown_action", given=f"#{action_id}", ref=incident.ref)
            now = self.clock.now()
            if not self.store.complete_action(action_id, now):
                raise InvalidTransition("action_already_done", number=action_id, at=action.done_at)
            event = self.store.append_event(
                incident_id, now, actor, ActionDone(action_id, action.due), action.text
            )
            return self._commit(incident_id, [event])

    # --- the plan -----------------------------------------------------------------

    def done(self, incident_id: int, step: str, actor: str) -> Change:
        with self.store.transaction():
            incident = self._open(incident_id)
            step_id = self._step(incident, step)
            record = self.store.step_records(incident_id).get(step_id)
            if record is not None and record.state == "done":
                raise InvalidTransition(
                    "step_already_done", step=step_id, at=record.at, by=record.by
                )
            now = self.clock.now()
            self.store.record_step(incident_id, step_id, "done", now, actor, "")
            event = self.store.append_event(incident_id, now, actor, StepDone(step_id))
            return self._commit(incident_id, [event])

    def skip(self, incident_id: int, step: str, reason: str, actor: str) -> Change:
        with self.store.transaction():
            incident = self._open(incident_id)
            step_id = self._step(incident, step)
            record = self.store.step_records(incident_id).get(step_id)
            if record is not None:
                key = "step_already_done" if record.state == "done" else "step_already_skipped"
                raise InvalidTransition(key, step=step_id, at=record.at, by=record.by)
            now = self.clock.now()
            self.store.record_step(incident_id, step_id, "skipped", now, actor, reason)
            event = self.store.append_event(incident_id, now, actor, StepSkipped(step_id), reason)
            return self._commit(incident_id, [event])

    def next_phase(self, incident_id: int, actor: str) -> Change:
        with self.store.transaction():
            incident = self._open(incident_id)
            phases = incident.runbook.phases
            if incident.phase_index + 1 >= len(phases):
                raise InvalidTransition("last_phase", phase=incident.phase.name, count=len(phases))
            now = self.clock.now()
            index = incident.phase_index + 1
            self.store.update_incident(incident_id, phase_index=index)
            self.store.start_phase(incident_id, phases[index].id, now)
            started = PhaseStarted(phases[index].id, index + 1, previous=incident.phase.id)
            event = self.store.append_event(incident_id, now, actor, started)
            return self._commit(incident_id, [event])

    def set_severity(self, incident_id: int, severity: str, actor: str, reason: str = "") -> Change:
        if severity not in SEVERITIES:
            raise InvalidTransition(
                "bad_severity",
                given=severity,
                choices=", ".join(SEVERITIES),
                usage="/incident sev SEV",
            )
        with self.store.transaction():
            incident = self._open(incident_id)
            self._require_lead(incident, actor, "sev")
            if incident.severity == severity:
                raise InvalidTransition("same_severity", severity=severity)
            event = self.store.change_severity(
                incident_id, severity, incident.severity, self.clock.now(), actor, reason
            )
            return self._commit(incident_id, [event])

    def snooze(self, incident_id: int, actor: str, duration: timedelta | None = None) -> Change:
        """Push the next phase reminder to now + duration (default: the phase's interval)."""
        with self.store.transaction():
            incident = self._open(incident_id)
            runs = self.store.phase_runs(incident_id)
            pending = [
                r
                for r in self.store.reminders(incident_id, state="pending")
                if r.kind == "phase" and runs and r.ref == str(runs[-1].id)
            ]
            if incident.status == "resolved" or not pending:
                raise InvalidTransition("nothing_to_snooze")
            now = self.clock.now()
            until = now + (duration or incident.phase.remind_every)
            self.store.reschedule_reminder(pending[0].id, until)
            snoozed = Snoozed(until.isoformat(), incident.phase.id)
            event = self.store.append_event(incident_id, now, actor, snoozed)
            return self._commit(incident_id, [event])

    # --- status -------------------------------------------------------------------

    def mitigated(self, incident_id: int, actor: str) -> Change:
        with self.store.transaction():
            incident = self._open(incident_id)
            if incident.mitigated_at is not None:
                raise InvalidTransition("already_mitigated", at=incident.mitigated_at)
            now = self.clock.now()
            self.store.update_incident(incident_id, status="mitigated", mitigated_at=now)
            event = self.store.append_event(incident_id, now, actor, Mitigated())
            return self._commit(incident_id, [event])

    def resolved(self, incident_id: int, actor: str) -> Change:
        with self.store.transaction():
            incident = self._open(incident_id)
            if incident.resolved_at is not None:
                raise InvalidTransition("already_resolved", at=incident.resolved_at)
            now = self.clock.now()
            events = []
            if incident.mitigated_at is None:
                self.store.update_incident(incident_id, mitigated_at=now)
                events.append(
                    self.store.append_event(incident_id, now, actor, Mitigated(implied=True))
                )
            self.store.update_incident(incident_id, status="resolved", resolved_at=now)
            events.append(self.store.append_event(incident_id, now, actor, Resolved()))
            return self._commit(incident_id, events)

    def close(self, incident_id: int, actor: str) -> Change:
        with self.store.transaction():
            incident = self._existing(incident_id)
            if incident.is_closed:
                raise IncidentClosed("already_closed", ref=incident.ref, at=incident.closed_at)
            self._require_lead(incident, actor, "close")
            now = self.clock.now()
            self.store.update_incident(incident_id, status="closed", closed_at=now)
            self.store.end_phases(incident_id, now)
            self.store.release_roles(incident_id, now)
            for handoff in self.store.pending_handoffs(incident_id):
                self.store.finish_handoff(handoff.id, now, accepted=False)
            event = self.store.append_event(incident_id, now, actor, Closed(incident.status))
            return self._commit(incident_id, [event])

    # --- alerts and outbound integrations ----------------------------------------------

    def alert_received(self, incident_id: int, alert: AlertReceived) -> Change:
        """Alertmanager spoke of the incident's alert group again: a line of the timeline."""
        with self.store.transaction():
            self._open(incident_id)
            event = self.store.append_event(incident_id, self.clock.now(), ALERT_ACTOR, alert)
            return self._commit(incident_id, [event])

    def outbound_failed(
        self, incident_id: int, target: str, error: str, retrying: bool
    ) -> Change | None:
        """Paging or an event webhook failed: recorded (and said) once per target; None when
        it was said already."""
        with self.store.transaction():
            self._existing(incident_id)
            said = self.store.events(incident_id, kinds=(EventKind.OUTBOUND_FAILED,))
            if any(
                isinstance(e.payload, OutboundFailed) and e.payload.target == target for e in said
            ):
                return None
            failed = OutboundFailed(target, error[:300], retrying)
            event = self.store.append_event(incident_id, self.clock.now(), "bot", failed)
            return Change(self._get(incident_id), [event])

    # --- reading ------------------------------------------------------------------

    def view(self, incident_id: int) -> IncidentView:
        with self.store.transaction():
            incident = self._existing(incident_id)
            runs = self.store.phase_runs(incident_id)
            return IncidentView(
                incident=incident,
                holders=self.store.current_holders(incident_id),
                pending=self.store.pending_handoffs(incident_id),
                steps=step_statuses(
                    incident, self.store.step_records(incident_id), runs, self.clock.now()
                ),
                phase_started_at=runs[-1].started_at if runs else incident.started_at,
                alert=alert_info(self.store.alert_group(incident_id)),
            )

    def latest(
        self,
        incident_id: int,
        limit: int,
        kinds: tuple[str, ...] = (),
        leave_out: tuple[str, ...] = (),
    ) -> list[Event]:
        """The newest `limit` events of the timeline (of `kinds`; none of `leave_out`),
        oldest first: what a catch-up shows without reading the whole record."""
        self._existing(incident_id)
        return self.store.last_events(incident_id, limit, kinds, leave_out)

    def actions(self, incident_id: int) -> list[Action]:
        self._existing(incident_id)
        return self.store.actions(incident_id)

    def incident_for_channel(self, channel: str) -> Incident | None:
        return self.store.incident_by_channel(channel)

    def active(self) -> list[Incident]:
        return self.store.incidents()

    # --- checks ---------------------------------------------------------------------

    def _commit(self, incident_id: int, events: list[Event]) -> Change:
        """Finish a command inside its transaction: arm the reminders its events call for."""
        incident = self._get(incident_id)
        arm(self.store, incident, events, self.timezone, follow_ups=not self.drill)
        return Change(incident, events)

    def _get(self, incident_id: int) -> Incident:
        incident = self.store.incident(incident_id)
        assert incident is not None
        return incident

    def _existing(self, incident_id: int) -> Incident:
        incident = self.store.incident(incident_id)
        if incident is None:
            raise UnknownName("unknown_incident", given=str(incident_id))
        return incident

    def _open(self, incident_id: int) -> Incident:
        incident = self._existing(incident_id)
        if incident.is_closed:
            raise IncidentClosed("incident_closed", ref=incident.ref, at=incident.closed_at)
        return incident

    def _room(self, items: tuple[str, ...], what: str) -> int:
        """The number the next item gets; refused once the list is full."""
        if len(items) >= MAX_ITEMS:
            raise InvalidTransition("review_list_full", count=MAX_ITEMS, what=what)
        return len(items) + 1

    def _lead_open(self, incident: Incident) -> bool:
        """Nobody holds the lead role (an alert declared the incident): anyone may take it."""
        return incident.runbook.roles[0].id not in self.store.current_holders(incident.id)

    def _require_lead(self, incident: Incident, actor: str, action: str) -> None:
        """Refuse `action` unless the policy lets `actor` do it (see Policy)."""
        if self.policy.mode == "anyone" or actor in self.policy.admins or actor == "bot":
            return
        lead_role = incident.runbook.roles[0]
        lead = self.store.current_holders(incident.id).get(lead_role.id)
        if actor in (lead, incident.declared_by):
            return
        if lead is None:
            raise NotAllowed(
                "lead_open",
                action=action,
                ref=incident.ref,
                role=lead_role.name,
                lead_id=lead_role.id,
            )
        raise NotAllowed(
            "not_allowed",
            action=action,
            ref=incident.ref,
            role=lead_role.name,
            lead=lead,
            declarer=incident.declared_by,
            lead_id=lead_role.id,
        )

    def _role(self, incident: Incident, given: str) -> str:
        roles = incident.runbook.roles
        wanted = given.lower().lstrip("#")
        for role in roles:
            if wanted in (role.id.lower(), role.name.lower()):
                return role.id
        ids = [r.id for r in roles]
        raise UnknownName(
            "unknown_role", given=given, known=", ".join(ids), suggestion=closest(wanted, ids)
        )

    def _step(self, incident: Incident, given: str) -> str:
        ids = [s.id for _, s in incident.runbook.steps()]
        for step_id in ids:
            if step_id.lower() == given.lower():
                return step_id
        raise UnknownName(
            "unknown_step", given=given, known=", ".join(ids), suggestion=closest(given, ids)
        )


def _role_name(incident: Incident, role_id: str) -> str:
    """What people call a role (技术主管, Tech lead); its id is what they type."""
    role = incident.runbook.role(role_id)
    return role.name if role else role_id


__all__ = ["BotError", "Change", "IncidentService", "IncidentView"]
