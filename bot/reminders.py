"""Reminders: what falls due when, and posting each one exactly once at most.

Three parts:
- `arm` turns timeline events into reminder rows, inside the engine's
  transaction, so a phase start and its reminder series commit together.
- `ReminderService.fire_due` posts whatever is due now. It is clock-agnostic:
  tests and the demo call it after moving a fake clock.
- `ReminderScheduler` is the live driver: one APScheduler job that wakes at
  the earliest pending row (in real time, through the possibly scaled clock),
  fires, and re-arms. The database is the truth; the job is only an alarm.

Never twice. Slack has no idempotency key for chat.postMessage, so a crash
between posting and recording cannot be told apart from a crash before
posting. We therefore commit the row as `sending` *before* the post and as
`sent` after it. A row found in `sending` at start-up was interrupted: it is
marked `unknown` and not posted again. The cost is that a reminder may be lost
when the process dies inside that millisecond window; the next reminder of the
series (which lists the same open and overdue steps) follows at its usual
time. A lost reminder is recoverable; a duplicate page at 3 a.m. erodes trust.
Rows are claimed a chunk of incidents at a time (`CHUNK`), and the next chunk is
claimed while the previous one is posted, so a crash can leave at most two
chunks' worth in `sending`; with a handful of incidents that is only what fell
due that moment.

One message per incident. What falls due at once for one incident (a phase
reminder and a step deadline on the same minute; everything missed while the
bot was down) goes out as one message, the most urgent part first.

No burst. Only the next reminder of a phase series exists as a row. When it
fires late (the bot was down), the following one is placed at the next slot
of the cadence after now, so missed slots are skipped, not replayed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from time import monotonic as time_monotonic
from typing import cast
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from bot.chat import ChatPort
from bot.clock import Clock, FakeClock, utc_now
from bot.events import (
    ActionAdded,
    Closed,
    Declared,
    Escalated,
    Mitigated,
    PhaseStarted,
    ReminderSent,
    Resolved,
    RiskTriggered,
)
from bot.logs import Throttled, current_incident
from bot.messages import Renderer
from bot.model import Event, Incident, PhaseRun, Reminder, StepRecord
from bot.postmortem import upload_review
from bot.progress import step_statuses
from bot.render import open_step_rows, owners_text, role_name
from bot.runbook import SEVERITIES
from bot.store import LEASE, Store

log = logging.getLogger(__name__)


# --- arming: events in, reminder rows out ------------------------------------


AFTER_CLOSE = ("action", "upload")  # follow-ups outlive the incident
# reminders after which the posted plan looks different (a step turned overdue, severity rose);
# a phase reminder changes nothing there, so the plan is not redrawn after it
PLAN_CHANGING = ("step", "overrun", "risk")
CHANGES_INCIDENT = ("overrun", "risk")  # escalations may raise the severity
ACTION_REMINDER_TIME = time(9, 0)  # on the due date, in the team's time zone


def arm(
    store: Store,
    incident: Incident,
    events: Iterable[Event],
    tz: str = "UTC",
    follow_ups: bool = True,
) -> None:
    """Create the reminder rows the events call for; run inside the engine's transaction.
    `follow_ups=False` (drills): no follow-up action ever reminds anyone."""
    runbook = incident.runbook
    for event in events:
        now, payload = event.at, event.payload
        if isinstance(payload, Declared):
            for risk in runbook.risks:
                if risk.trigger:
                    due = incident.started_at + risk.trigger.within
                    store.add_reminder(incident.id, "risk", risk.id, 0, due, now)
            _arm_steps(store, incident, "start", now, incident.started_at)
        elif isinstance(payload, PhaseStarted):
            run = store.phase_runs(incident.id)[-1]
            phase = runbook.phases[runbook.phase_index(run.phase_id)]
            ref = str(run.id)
            store.add_reminder(incident.id, "phase", ref, 1, now + phase.remind_every, now)
            store.add_reminder(incident.id, "overrun", ref, 0, now + phase.target, now)
            first_start = min(
                r.started_at for r in store.phase_runs(incident.id) if r.phase_id == phase.id
            )
            if first_start == run.started_at:
                _arm_steps(store, incident, "phase", now, run.started_at, phase_id=phase.id)
        elif isinstance(payload, Mitigated) and incident.mitigated_at:
            _arm_steps(store, incident, "mitigated", now, incident.mitigated_at)
        elif isinstance(payload, Resolved) and incident.resolved_at:
            store.cancel_reminders(incident.id, now, keep_kinds=("postmortem", *AFTER_CLOSE))
            due = incident.resolved_at + runbook.postmortem.due
            store.add_reminder(incident.id, "postmortem", "review", 0, due, now)
        elif isinstance(payload, Closed):
            store.cancel_reminders(incident.id, now, keep_kinds=AFTER_CLOSE)
        elif isinstance(payload, ActionAdded) and payload.due and follow_ups:
            due = datetime.combine(
                date.fromisoformat(payload.due), ACTION_REMINDER_TIME, tzinfo=ZoneInfo(tz)
            )
            store.add_reminder(incident.id, "action", str(payload.action), 0, due, now)


def _arm_steps(
    store: Store,
    incident: Incident,
    anchor: str,
    now: datetime,
    at: datetime,
    phase_id: str | None = None,
) -> None:
    for phase, step in incident.runbook.steps():
        if step.due and step.due.anchor == anchor and phase_id in (None, phase.id):
            store.add_reminder(incident.id, "step", step.id, 0, at + step.due.offset, now)


# --- firing --------------------------------------------------------------------


# incidents whose due reminders are claimed in one transaction (and at risk in a crash):
# small enough that a command's journal never waits long for the store
CHUNK = 16
BACKOFF_BASE = 1.0  # seconds the alarm waits after a failed firing, doubled each time
BACKOFF_CAP = 60.0
CONTENDED = 0.05  # seconds the alarm waits when another replica holds every due row
# in one message, the most urgent first (what is due at once for one incident is posted once)
ORDER = {"overrun": 0, "risk": 1, "phase": 2, "step": 3, "postmortem": 4, "action": 5}


@dataclass(frozen=True)
class Outgoing:
    channel: str | None
    text: str
    user: str | None = None  # a direct message instead of the channel


@dataclass(frozen=True)
class _Reads:
    """What deciding a chunk's reminders reads, by incident, read for the whole chunk."""

    runs: dict[int, list[PhaseRun]]
    steps: dict[int, dict[str, StepRecord]]
    holders: dict[int, dict[str, str]]
    risks: dict[int, list[tuple[str, datetime]]]  # each risk raised: its id, when


class _DecisionFailed(Exception):
    """A reminder's decision raised while its chunk was decided without savepoints."""


@dataclass(frozen=True)
class _Claim:
    """A reminder committed as `sending`, with what it says."""

    reminder: Reminder
    outgoing: Outgoing


@dataclass(frozen=True)
class _Delivery:
    """Claimed reminders on their way: skipped ones, and each message with its outcome."""

    skipped: list[_Claim]
    messages: list[list[_Claim]]
    outcomes: list[Future[tuple[bool, datetime]]]


class ReminderService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        chat: ChatPort,
        render: Renderer,
        workers: int = 1,
        drill: bool = False,
        after_post: Callable[[int], None] = lambda incident_id: None,
        raised: Callable[[int, Event], None] = lambda incident_id, event: None,
    ) -> None:
        """`after_post` is called with the incident id after a reminder that changes the
        plan's picture went out (redraw the plan); `raised`, inside the transaction, with
        the event of a severity an escalation raised (pages and event webhooks follow it);
        `drill`: rehearsals never send follow-up reminders (nor old ones left over).
        `raised` may run twice for one escalation when its chunk is decided again (see
        `_claim`); only its writes in the transaction count, so it must do nothing else."""
        self.drill = drill
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="remind") if workers > 1 else None
        )
        self.store = store
        self.clock = clock
        self.chat = chat
        self.render = render
        self.after_post = after_post
        self.raised = raised
        # whether the last fire_due claimed anything: when it did not although rows were due,
        # another replica holds them (the scheduler then waits a moment, never spins)
        self.claimed_any = True
        self._local = threading.local()  # `reads`: what _holders keeps while a chunk is decided

    def fire_due(self) -> int:
        """Post every reminder due by now; returns how many were posted.

        Due rows are taken a chunk at a time: one transaction claims them (`sending`)
        and writes their events; the messages go out, one per incident and recipient,
        in parallel with `workers` > 1, while the next chunk is claimed; one
        transaction records their outcome. Few, short holds of the store's lock keep
        commands quick meanwhile."""
        now = self.clock.now()
        posted = 0
        in_flight: list[_Delivery] = []
        self.claimed_any = False
        try:
            while True:
                batch, claims = self._claim(now)
                if not batch:
                    break
                self.claimed_any = True
                for reminder in (r for r in batch if r.kind == "upload"):
                    posted += self._upload(reminder, now)
                in_flight.append(self._send(claims))
                if len(in_flight) > 1:
                    posted += self._finish(in_flight.pop(0))
        finally:
            # also when something above failed: what went out is recorded, not left `sending`
            while in_flight:
                try:
                    posted += self._finish(in_flight.pop(0))
                except Exception:
                    log.exception("recording the outcome of reminders failed")
        return posted

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def recover(self) -> int:
        """At start-up: rows left in `sending` by a crash become `unknown` (see module doc).
        With replicas (PostgreSQL) only rows claimed longer ago than the lease: a live
        replica may be posting the others right now."""
        now = self.clock.now()
        before = now - LEASE * self.clock.speed if self.store.is_postgres else None
        interrupted = self.store.interrupted_reminders(before)
        for reminder in interrupted:
            self.store.set_reminder_state(reminder.id, "unknown", now, expect="sending")
            log.warning(
                "reminder %s of INC-%s was interrupted while posting; not resent",
                reminder.id,
                reminder.incident_id,
            )
        return len(interrupted)

    def _upload(self, reminder: Reminder, now: datetime) -> bool:
        current_incident.set(f"INC-{reminder.incident_id}")
        if not self.store.set_reminder_state(reminder.id, "sending", now, expect="pending"):
            return False
        uploaded = upload_review(self.store, self.chat, self.render, reminder.incident_id, now)
        self.store.set_reminder_state(reminder.id, "sent" if uploaded else "failed", now)
        return uploaded

    def _claim(self, now: datetime) -> tuple[list[Reminder], list[_Claim]]:
        """Take the next chunk of due rows and commit each as `sending` with its events and
        next row; skip what no longer applies. A reminder whose decision fails is marked
        `failed`, the others go on. Returns the chunk (uploads included, for `_upload`) and
        the claims. Replicas (PostgreSQL) take disjoint chunks, and each incident is locked
        while its reminders are decided, as a command would lock it.

        Each row's decision is isolated only when one has failed: the chunk is decided in
        one go and, should a decision raise, rolled back and decided again with a savepoint
        per row (two more statements each, which on PostgreSQL are round trips)."""
        try:
            return self._claim_chunk(now, isolate=False)
        except _DecisionFailed:
            return self._claim_chunk(now, isolate=True)

    def _claim_chunk(self, now: datetime, isolate: bool) -> tuple[list[Reminder], list[_Claim]]:
        claims: list[_Claim] = []
        try:
            with self.store.transaction():
                # a statement for the chunk, not one per row or incident: on PostgreSQL every
                # statement is a round trip. The chunk's incidents, locked (those another
                # replica holds, for its chunk or a command, are left for later), their rows
                held, batch = self.store.due_chunk(now, CHUNK)
                loaded: dict[int, Incident | None] = dict(held)
                mine = self.store.claim_reminders([r.id for r in batch if r.kind != "upload"], now)
                # and what deciding their reminders reads, which no reminder changes
                ids = sorted(loaded)
                self._local.reads = _Reads(
                    *self.store.incident_records(ids), self.store.risks_raised(ids)
                )
                # the decisions' writes go out together (PostgreSQL's pipeline), unless one
                # has failed: then each row on its own, to tell which
                try:
                    with contextlib.nullcontext() if isolate else self.store.pipeline():
                        for reminder in (r for r in batch if r.id in mine):  # others: taken
                            claim = self._claim_one(reminder, loaded, now, isolate)
                            if claim is not None:
                                claims.append(claim)
                except _DecisionFailed:
                    raise
                except Exception as exc:  # a pipelined write that failed shows only here
                    if isolate:
                        raise
                    raise _DecisionFailed from exc
        finally:
            self._local.reads = None
        return batch, claims

    def _claim_one(
        self, reminder: Reminder, loaded: dict[int, Incident | None], now: datetime, isolate: bool
    ) -> _Claim | None:
        """Decide one row claimed by `_claim` (in its transaction): a claim to post, or
        None when the row was marked skipped or failed (`isolate`; else a failure raises
        _DecisionFailed, and the chunk is decided again, isolated)."""
        current_incident.set(f"INC-{reminder.incident_id}")
        try:
            with self.store.savepoint() if isolate else contextlib.nullcontext():
                if reminder.incident_id not in loaded:  # changed by the row before: read again
                    loaded[reminder.incident_id] = self.store.locked_incident(reminder.incident_id)
                incident = loaded[reminder.incident_id]
                if reminder.kind in CHANGES_INCIDENT:
                    del loaded[reminder.incident_id]  # the severity may rise
                outgoing = self._decide(reminder, incident, now) if incident else None
        except Exception as exc:
            if not isolate:
                raise _DecisionFailed from exc
            log.exception("reminder %s of INC-%s", reminder.id, reminder.incident_id)
            self.store.set_reminder_state(reminder.id, "failed", now)
            return None
        if outgoing is None:
            self.store.set_reminder_state(reminder.id, "skipped", now)
            return None
        return _Claim(reminder, outgoing)

    def _reads(self) -> _Reads | None:
        return cast("_Reads | None", getattr(self._local, "reads", None))

    def _holders(self, incident_id: int) -> dict[str, str]:
        """Who holds which role (while `_claim` decides a chunk: as read for the chunk)."""
        reads = self._reads()
        if reads is None or incident_id not in reads.holders:
            return self.store.current_holders(incident_id)
        return reads.holders[incident_id]

    def _step_records(self, incident_id: int) -> dict[str, StepRecord]:
        reads = self._reads()
        if reads is None or incident_id not in reads.steps:
            return self.store.step_records(incident_id)
        return reads.steps[incident_id]

    def _phase_runs(self, incident_id: int) -> list[PhaseRun]:
        reads = self._reads()
        if reads is None or incident_id not in reads.runs:
            return self.store.phase_runs(incident_id)
        return reads.runs[incident_id]

    def _send(self, claims: list[_Claim]) -> _Delivery:
        """Start posting the claimed reminders: one message per incident and recipient."""
        # committed as `sending`: from here on none is posted again. A close that landed
        # in between wins (narrows, not closes, the window; see module doc)
        closed = self.store.closed_incidents({c.reminder.incident_id for c in claims})
        skipped: list[_Claim] = []
        groups: dict[tuple[int, str | None, str | None], list[_Claim]] = {}
        for claim in claims:
            if claim.reminder.incident_id in closed and claim.reminder.kind not in AFTER_CLOSE:
                skipped.append(claim)
            else:
                key = (claim.reminder.incident_id, claim.outgoing.channel, claim.outgoing.user)
                groups.setdefault(key, []).append(claim)
        messages = [sorted(g, key=lambda c: ORDER.get(c.reminder.kind, 9)) for g in groups.values()]
        outcomes: list[Future[tuple[bool, datetime]]] = []
        for message in messages:
            if self._pool is not None:
                outcomes.append(self._pool.submit(self._post, message))
            else:
                done: Future[tuple[bool, datetime]] = Future()
                done.set_result(self._post(message))
                outcomes.append(done)
        return _Delivery(skipped, messages, outcomes)

    def _finish(self, delivery: _Delivery) -> int:
        """Wait for a delivery's posts, record every row's outcome at once; returns posted."""
        states = [(c.reminder.id, "skipped", self.clock.now()) for c in delivery.skipped]
        sent: list[list[_Claim]] = []
        for message, outcome in zip(delivery.messages, delivery.outcomes, strict=True):
            ok, at = outcome.result()
            states += [(c.reminder.id, "sent" if ok else "failed", at) for c in message]
            if ok:
                sent.append(message)
        self.store.set_reminder_states(states)
        for message in sent:
            if any(c.reminder.kind in PLAN_CHANGING for c in message):
                try:
                    self.after_post(message[0].reminder.incident_id)
                except Exception:  # a cosmetic follow-up never undoes a sent reminder
                    log.exception("after reminders of INC-%s", message[0].reminder.incident_id)
        return sum(len(m) for m in sent)

    def _post(self, message: list[_Claim]) -> tuple[bool, datetime]:
        first = message[0]
        current_incident.set(f"INC-{first.reminder.incident_id}")
        text = "\n\n".join(c.outgoing.text for c in message)
        try:
            if first.outgoing.user:
                self.chat.notify(first.outgoing.user, text)
            else:
                assert first.outgoing.channel
                self.chat.post(first.outgoing.channel, text)
        except Exception:
            ids = ", ".join(str(c.reminder.id) for c in message)
            log.exception("posting reminder(s) %s of %s failed", ids, first.reminder.incident_id)
            return False, self.clock.now()
        return True, self.clock.now()

    def _decide(self, reminder: Reminder, incident: Incident, now: datetime) -> Outgoing | None:
        """Whether the reminder still applies, its text, and its side effects (events, next row)."""
        if reminder.kind == "action":
            return self._action(reminder, incident, now)
        if incident.is_closed or not incident.channel:
            return None
        if incident.status == "resolved" and reminder.kind != "postmortem":
            return None
        decide = {
            "phase": self._phase,
            "step": self._step,
            "overrun": self._overrun,
            "risk": self._risk,
            "postmortem": self._postmortem,
        }[reminder.kind]
        text = decide(reminder, incident, now)
        return Outgoing(incident.channel, text) if text else None

    def _phase(self, reminder: Reminder, incident: Incident, now: datetime) -> str | None:
        runs = self._phase_runs(incident.id)
        if not runs or str(runs[-1].id) != reminder.ref:
            return None  # the phase has changed; its series ends
        phase = incident.phase
        due = reminder.due_at + phase.remind_every
        seq = reminder.seq + 1
        while due <= now:  # skip slots missed while the bot was down
            due += phase.remind_every
            seq += 1
        self.store.add_reminder(incident.id, "phase", reminder.ref, seq, due, now)
        holders = self._holders(incident.id)
        statuses = step_statuses(incident, self._step_records(incident.id), runs, now)
        steps = open_step_rows(self.render, incident, statuses, holders)
        last_update = incident.last_update_at or incident.started_at
        sent = ReminderSent("phase", phase=phase.id, number=reminder.seq)
        self.store.add_event(incident.id, now, "bot", sent)
        return self.render(
            "reminder.phase",
            ref=incident.ref,
            phase_name=phase.name,
            elapsed=now - runs[-1].started_at,
            target=phase.target,
            over=now - runs[-1].started_at > phase.target,
            steps=steps,
            ask_update=now - last_update >= phase.remind_every,
            since_update=now - last_update,
            commander=holders.get(incident.runbook.roles[0].id),
            next_at=due,
        )

    def _step(self, reminder: Reminder, incident: Incident, now: datetime) -> str | None:
        found = incident.runbook.step(reminder.ref)
        if found is None or reminder.ref in self._step_records(incident.id):
            return None  # done or skipped in time
        _, step = found
        holders = self._holders(incident.id)
        self.store.add_event(incident.id, now, "bot", ReminderSent("step", step=step.id))
        return self.render(
            "reminder.step",
            ref=incident.ref,
            step=step.id,
            title=step.title,
            owners=owners_text(self.render, incident.runbook, step.owner, holders),
            deadline=reminder.due_at,
        )

    def _overrun(self, reminder: Reminder, incident: Incident, now: datetime) -> str | None:
        runs = self._phase_runs(incident.id)
        if not runs or str(runs[-1].id) != reminder.ref:
            return None  # the phase ended in time
        phase = incident.phase
        escalation = phase.escalation
        self.store.add_event(incident.id, now, "bot", Escalated(phase.id))
        raised = self._raise_severity(incident, escalation.severity if escalation else None, now)
        return self.render(
            "reminder.overrun",
            ref=incident.ref,
            phase_name=phase.name,
            target=phase.target,
            message=escalation.message if escalation else "",
            severity=raised,
            commander=self._holders(incident.id).get(incident.runbook.roles[0].id),
        )

    def _risk(self, reminder: Reminder, incident: Incident, now: datetime) -> str | None:
        risk = next((r for r in incident.runbook.risks if r.id == reminder.ref), None)
        if risk is None or risk.trigger is None:
            return None
        if risk.trigger.milestone == "update":
            if not self._silent(reminder, incident, risk.id, risk.trigger.within, now):
                return None
        elif incident.milestone(risk.trigger.milestone):
            return None  # the milestone came in time
        self.store.add_event(incident.id, now, "bot", RiskTriggered(risk.id), risk.fallback)
        raised = self._raise_severity(incident, risk.escalate_to, now)
        text = self.render(
            "reminder.risk",
            ref=incident.ref,
            risk=risk.risk,
            trigger=risk.trigger.milestone,
            within=risk.trigger.within,
            fallback=risk.fallback,
            severity=raised,
            commander=self._holders(incident.id).get(incident.runbook.roles[0].id),
        )
        # the chunk's reads see it too; last, so a decision that failed above (its savepoint
        # undid the event) leaves no trace there
        self._risks(incident.id).append((risk.id, now))
        return text

    def _silent(
        self, reminder: Reminder, incident: Incident, risk_id: str, within: timedelta, now: datetime
    ) -> bool:
        """`no update within …`: whether a new stretch without a status update has lasted
        `within` by now. Either way the next check is armed: when the current quiet would
        reach `within`, or (already that quiet) one `within` later."""
        last = incident.last_update_at or incident.started_at
        quiet = now - last >= within
        check = now + within if quiet else last + within
        self.store.add_reminder(incident.id, "risk", risk_id, reminder.seq + 1, check, now)
        if not quiet:
            return False
        return not any(risk == risk_id and at >= last for risk, at in self._risks(incident.id))

    def _risks(self, incident_id: int) -> list[tuple[str, datetime]]:
        """Each risk raised for the incident (its id, when); while `_claim` decides a
        chunk, as read for the chunk plus what the chunk raised."""
        reads = self._reads()
        if reads is None or incident_id not in reads.risks:
            return self.store.risks_raised([incident_id])[incident_id]
        return reads.risks[incident_id]

    def _postmortem(self, reminder: Reminder, incident: Incident, now: datetime) -> str | None:
        self.store.add_event(incident.id, now, "bot", ReminderSent("postmortem"))
        owner_role = incident.runbook.postmortem.owner or incident.runbook.roles[0].id
        holder = self._holders(incident.id).get(owner_role)
        return self.render(
            "reminder.postmortem",
            ref=incident.ref,
            owner=holder,
            owner_role=role_name(incident.runbook, owner_role),
            due=incident.runbook.postmortem.due,
        )

    def _action(self, reminder: Reminder, incident: Incident, now: datetime) -> Outgoing | None:
        """A follow-up action due today: a direct message to its owner (or the declarer)."""
        action = self.store.action(int(reminder.ref))
        if action is None or action.status != "open" or self.drill:
            return None
        self.store.add_event(incident.id, now, "bot", ReminderSent("action", action=action.id))
        text = self.render(
            "reminder.action", ref=incident.ref, number=action.id, text=action.text, due=action.due
        )
        return Outgoing(None, text, user=action.owner or incident.declared_by)

    def _raise_severity(self, incident: Incident, target: str | None, now: datetime) -> str | None:
        """Raise to `target` when it is more severe than now; returns the new severity or None."""
        if target is None or SEVERITIES.index(target) >= SEVERITIES.index(incident.severity):
            return None
        event = self.store.change_severity(
            incident.id, target, incident.severity, now, "bot", "escalation"
        )
        self.raised(incident.id, event)
        return target


def run_until(reminders: ReminderService, clock: FakeClock, target: datetime) -> int:
    """Move a fake clock to `target`, firing each reminder at its own due time on the way."""
    posted = 0
    while (due := reminders.store.next_reminder_due()) is not None and due <= target:
        if due > clock.now():
            clock.set(due)
        posted += reminders.fire_due()
    clock.set(target)
    return posted


# --- the live driver -----------------------------------------------------------


REARM_RETRY = 1.0  # seconds before the alarm is re-read again after that read failed


class ReminderScheduler:
    """One APScheduler job that sleeps until the earliest pending reminder.

    When firing fails (say, the database cannot be written), the alarm backs off
    exponentially up to `BACKOFF_CAP` instead of re-firing at once for the same
    overdue row, and the failure is logged once a minute."""

    def __init__(
        self,
        reminders: ReminderService,
        clock: Clock,
        wall: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time_monotonic,
    ) -> None:
        self.reminders = reminders
        self.clock = clock
        self._wall = wall
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._lock = threading.Lock()
        self._wakes = itertools.count()
        self._job_id: str | None = None
        self._stopping = False
        self.failures = 0  # firings in a row that failed
        self.next_wake: datetime | None = None  # when the alarm rings next (wall clock)
        # changes to re-arm for: noted by the committing threads, read by one re-arming
        # thread (started by the first change), so a command's thread never waits for it
        self._changes = threading.Condition()
        self._changed_since = False  # a change committed since the last read began
        self._rearming = False  # that thread is reading (and setting the alarm) now
        self._rearmer: threading.Thread | None = None
        self._stop = threading.Event()
        self._log = Throttled(60.0, monotonic)

    def start(self) -> None:
        """Re-arm from the database: settle interrupted rows, then wake for what is due."""
        self.reminders.recover()
        self._scheduler.start()
        self.poke()

    def shutdown(self) -> None:
        # Stop pokes first: a job poking while APScheduler shuts down would
        # wait on a lock that the shutdown holds while it waits for the job.
        with self._lock:
            self._stopping = True
        with self._changes:
            self._stop.set()
            self._changes.notify_all()
        if self._rearmer is not None:
            self._rearmer.join(timeout=10)
        if self._scheduler.running:
            # Empty the store first (this waits out a firing in progress): a date
            # job that came due while the shutdown flips the state would
            # otherwise fail its own removal and kill APScheduler's thread loudly.
            self._scheduler.remove_all_jobs()
            self._scheduler.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def poke(self, not_before: datetime | None = None, contended: bool = False) -> None:
        """Re-read the earliest due row and set the alarm for it (call after any change);
        `not_before` holds the alarm back (backoff after a failure); `contended`: the last
        firing found every due row held by another replica, so an alarm due now waits
        `CONTENDED` for that replica to commit instead of re-firing at once."""
        with self._lock:
            if self._stopping:
                return
            # A fresh job id per alarm: APScheduler removes a finished date job
            # after submitting it, which could otherwise delete the alarm that
            # the running job just set under the same id.
            if self._job_id is not None:
                with contextlib.suppress(JobLookupError):
                    self._scheduler.remove_job(self._job_id)
                self._job_id = None
            due = self.reminders.store.next_reminder_due()
            if due is None:
                self.next_wake = None
                return
            now = self._wall()
            wake = now + timedelta(seconds=self.clock.real_seconds_until(due))
            if contended and wake <= now:
                wake = now + timedelta(seconds=CONTENDED)
            if not_before is not None and wake < not_before:
                wake = not_before
            self.next_wake = wake
            self._job_id = f"reminders-{next(self._wakes)}"
            self._scheduler.add_job(
                self._run, "date", run_date=wake, id=self._job_id, misfire_grace_time=None
            )

    def changed(self) -> None:
        """After a commit that may have added, moved or ended a reminder: have the alarm
        re-set. Not on the caller's thread (a command's, which holds its incident's
        lane): one re-arming thread reads for all the changes committed since its last
        read began, so a burst of commands costs a read or two, not one each."""
        with self._changes:
            if self._stop.is_set():
                return
            self._changed_since = True
            if self._rearmer is None:
                self._rearmer = threading.Thread(target=self._rearm_loop, name="alarm", daemon=True)
                self._rearmer.start()
            self._changes.notify_all()

    def settled(self, timeout: float) -> bool:
        """Wait until every change noted so far has been read (for tests)."""
        with self._changes:
            return self._changes.wait_for(
                lambda: not self._changed_since and not self._rearming, timeout
            )

    def _rearm_loop(self) -> None:
        while True:
            with self._changes:
                self._changes.wait_for(lambda: self._changed_since or self._stop.is_set())
                if self._stop.is_set():
                    return
                self._changed_since, self._rearming = False, True
            failed = False
            try:
                self.poke()
            except Exception:  # the database cannot be read: try again, never give up
                failed = True
                if self._log.due():
                    log.exception("re-arming the reminder alarm failed; trying again in 1 s")
            with self._changes:
                self._rearming = False
                self._changed_since = self._changed_since or failed
                self._changes.notify_all()
            if failed:
                self._stop.wait(REARM_RETRY)

    def backoff(self) -> timedelta:
        """How long the alarm waits after `failures` failed firings in a row."""
        seconds = BACKOFF_BASE * 2 ** max(self.failures - 1, 0)
        return timedelta(seconds=min(seconds, BACKOFF_CAP))

    def _run(self) -> None:
        try:
            self.reminders.fire_due()
        except Exception:  # keep the alarm alive whatever happened, but not in a tight loop
            self.failures += 1
            if self._log.due():
                log.exception(
                    "firing reminders failed (%d time(s) in a row); next try in %s",
                    self.failures,
                    self.backoff(),
                )
            try:
                self.poke(not_before=self._wall() + self.backoff())
            except Exception:
                if self._log.due():
                    log.exception("re-arming the reminder alarm failed")
            return
        self.failures = 0
        self.poke(contended=not self.reminders.claimed_any)
