"""One place where a typed `/incident …` command becomes an engine call.

Slack and the terminal both hand the raw text here. Each verb maps to one
engine method (see `_HANDLERS`). A command runs in one transaction: the
decision, the state change, what it says to people (outbox rows, delivered
afterwards in order; see outbox.py) and, for a journaled Slack request, the
request marked done. Answers meant for the typist go back privately.

Journaled requests (Slack) run per incident in journal order: `receive`
journals a request and names its lane (the incident it addresses, resolved
from the channel or the payload), `run_next` carries out the oldest unfinished
request of a lane. A request that keeps failing is set aside after
`GIVE_UP_AFTER` tries and never blocks the ones behind it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.alerts import ACTOR as ALERT_ACTOR
from bot.alerts import AlertGroup, digest, fingerprints
from bot.catchup import LEAVE_OUT, TIMELINE_LINES, catchup_text
from bot.chat import Button, ChatPort, title_left_out
from bot.clock import iso, utc_now
from bot.commands import REVIEW_VERBS, USAGE, Command, Mention, clean_text, parse, verb_of
from bot.engine import Change, IncidentService
from bot.errors import BotError, NotInIncident, ParseError
from bot.events import (
    AlertReceived,
    Closed,
    Declared,
    HandoffAccepted,
    HandoffRequested,
    RoleAssigned,
)
from bot.lanes import Lane
from bot.logs import current_incident
from bot.messages import Renderer, Safe
from bot.model import Event, Incident, Outgoing
from bot.outbound import Outbound, OutboundError
from bot.outbox import Outbox
from bot.plan import plan_view
from bot.postmortem import ReviewOptions, publish_review
from bot.render import (
    event_text,
    list_text,
    open_step_rows,
    runbooks_text,
    status_text,
)
from bot.store import database_unavailable

log = logging.getLogger(__name__)
REPEAT_WINDOW = timedelta(seconds=5)  # the same request again within this is a double click
DELIVERY_WINDOW = timedelta(minutes=5)  # Slack's signature window: a delivery is valid this long
READ_ONLY = {"status", "list", "runbooks", "help", "actions", "catchup", ""}
GIVE_UP_AFTER = 3  # tries of a request that fails before it is set aside
RETRY_AFTER = 1.0  # seconds before a failed request is tried again (times the tries so far)
UNAVAILABLE_RETRY = 5.0  # seconds between tries while the database cannot be written
BOT_ACTORS = ("bot", ALERT_ACTOR)  # who acts without being a person: nobody to answer
LONG_KEY = 500  # characters of a request's text kept in its repeat key; longer: its digest


@dataclass(frozen=True)
class Context:
    actor: str
    channel: str | None = None
    incident_id: int | None = None  # the terminal and buttons name the incident directly
    reply_url: str | None = None  # Slack: private answers go through the response_url


@dataclass
class Result:
    incident: Incident | None = None
    change: Change | None = None
    error: BotError | None = None


@dataclass(frozen=True)
class Received:
    """A journaled request and the lane it runs in; or why it was not journaled."""

    inbox_id: int | None
    lane: Lane | None
    repeat: str | None = None  # "delivery" (Slack sent it again) or "double" (a double click)


def request_lane(incident_id: int | None, inbox_id: int) -> Lane:
    """Requests to one incident share a lane; one that names none is a lane of its own."""
    return ("incident", incident_id) if incident_id is not None else ("request", inbox_id)


class CommandHandler:
    def __init__(
        self,
        service: IncidentService,
        chat: ChatPort,
        review: ReviewOptions,
        outbox: Outbox,
        render: Renderer,
        after_change: Callable[[], None] = lambda: None,
        plan_changed: Callable[[int], None] | None = None,
        accepts_user: Callable[[str], bool] = lambda user: True,
        wake_lane: Callable[[Lane], None] = lambda lane: None,
        wall: Callable[[], datetime] = utc_now,
        outbound: Outbound | None = None,
    ) -> None:
        """`after_change`: after a commit (re-arm the reminder alarm); `plan_changed`: the
        posted plan no longer matches the record (redraw it now, the default, or when
        paced); `accepts_user`: which mentioned ids are people (the terminal takes any
        @name, Slack only <@U…>); `wake_lane`: a request lane has work (Slack: the commands
        lanes); `wall`: real time, for the repeat windows (about people and Slack, not bot
        time); `outbound`: pages and event webhooks (bot/outbound.py)."""
        self.service = service
        self.chat = chat
        self.render = render
        self.review = review
        self.outbox = outbox
        self.wall = wall
        self.after_change = after_change
        self.plan_changed = plan_changed or self.refresh_plan
        self.accepts_user = accepts_user
        self.wake_lane = wake_lane
        self.outbound = outbound
        self._deliveries: dict[str, Callable[[Outgoing], None]] = {
            "post": self._deliver_post,
            "notify": lambda row: self.chat.notify(row.body["user"], row.body["text"]),
            "announce": lambda row: self.chat.announce(row.body["text"]),
            "reply": self._deliver_reply,
            "declare": self._deliver_declaration,
            "plan": self._deliver_plan,
            "review": self._deliver_review,
            "page": self._deliver_outbound,
            "webhook": self._deliver_outbound,
        }

    # --- the terminal and tests: run now, deliver now ---------------------------

    def handle(self, text: str, ctx: Context) -> Result:
        """Run one command and deliver what it says; a refusal is answered privately and
        returned, never raised."""
        return self._now({"text": text}, ctx)

    def declare(self, runbook: str, severity: str | None, title: str, ctx: Context) -> Result:
        """Declare from structured input (Slack's start form), with the same answers."""
        payload = {"declare": {"runbook": runbook, "severity": severity, "title": title}}
        return self._now(payload, ctx)

    def _now(self, payload: dict[str, Any], ctx: Context) -> Result:
        try:
            result = self._execute(payload, ctx, None)
        except Exception as exc:  # disk trouble: what was committed stays committed
            log.exception("command %r failed", str(payload)[:80])
            result = self.refuse(ctx, BotError("internal", error=type(exc).__name__), None)
        self.outbox.deliver_now(self)
        return result

    # --- journaled requests (Slack): nothing acknowledged is lost ---------------

    def receive(
        self,
        payload: dict[str, Any],
        ctx: Context,
        delivery: str | None = None,
        repeat_key: str | None = None,
    ) -> Received:
        """Journal a request before it is acknowledged and name its lane. A repeat (`repeat`
        set: the same Slack delivery again, or the same request from the same person
        moments ago, a double click) must not run twice; `repeat_key` names what counts as
        the same request (default: who, where, what). Raises BotError for a payload that
        does not match the incident it names."""
        if ctx.incident_id is not None:
            self._check_named_incident(ctx.incident_id, ctx.channel)
        typed = payload.get("text")
        # a command's text as the command reads it (which is also what PostgreSQL's text
        # can hold: no NUL); a form's or an alert's JSON escapes what it carries
        text = clean_text(typed) if typed else json.dumps(payload, sort_keys=True)
        verb = verb_of(text) if typed else ""
        now = self.wall()
        said = " ".join(text.split())
        if len(said) > LONG_KEY:  # a form or an alert: the key stays small, the index too
            said = "sha256:" + hashlib.sha256(said.encode("utf-8")).hexdigest()
        key = repeat_key or "|".join(
            [ctx.actor, ctx.channel or "", str(ctx.incident_id or ""), said]
        )
        if verb in READ_ONLY and repeat_key is None:
            key += f"|{now.isoformat()}"  # asking twice is fine: never a repeat
        journaled = self.service.store.journal(  # finds the channel's incident as well
            now,
            key,
            now - REPEAT_WINDOW,
            ctx.actor,
            ctx.channel,
            ctx.incident_id,
            json.dumps(payload),
            ctx.reply_url,
            delivery=delivery,
            delivery_since=now - DELIVERY_WINDOW,
        )
        if isinstance(journaled, str):
            return Received(None, None, repeat=journaled)
        inbox_id, incident_id = journaled
        return Received(inbox_id, request_lane(incident_id, inbox_id))

    def _check_named_incident(self, incident_id: int, channel: str | None) -> None:
        """A button or form names its incident: it must be used in that incident's channel."""
        incident = self.service.store.incident(incident_id)
        if incident is None:
            raise BotError("unknown_incident", given=f"INC-{incident_id}")
        if channel is not None and incident.channel != channel:
            raise BotError("wrong_channel", ref=incident.ref, channel=self.channel(incident))

    def run_next(self, lane: Lane) -> float | None:
        """Carry out the oldest unfinished request of a lane (see Lanes). None: none left;
        0: done, look again; else seconds until the head may be tried again."""
        kind, ident = lane
        store = self.service.store
        row: dict[str, Any] | None = None
        try:
            with store.transaction():  # the claim, the command and "done", together
                if kind == "incident":
                    # replicas: one lane, one replica at a time
                    incident = store.locked_incident(ident)
                    channel = incident.channel if incident else None
                    row = store.next_request(ident, channel)
                else:
                    row = store.request(ident)
                    if row is not None and self._now_in_an_incident(row):
                        return None  # it joins that incident's lane, in its turn
                if row is None:
                    return None
                ctx = Context(row["actor"], row["channel"], row["incident_id"], row["reply_url"])
                self._execute(json.loads(row["payload"]), ctx, row["id"])
                # whether another waits, asked here rather than in a transaction of its own
                # (one arriving from now on wakes the lane itself)
                more = kind == "incident" and store.next_request(ident, channel) is not None
        except Exception as exc:
            if row is None:
                raise  # the claim itself failed: the lane tries again (Lanes)
            return self._request_failed(row, ctx, exc)
        return 0 if more else None

    def _now_in_an_incident(self, row: dict[str, Any]) -> bool:
        """A request journaled in a channel before it was known as an incident's (typed
        while the channel was being opened): its incident's lane runs it, in journal order
        with the others, so it is handed over there."""
        if row["incident_id"] is not None:  # adopted when its channel became the incident's
            lane = request_lane(row["incident_id"], row["id"])
            self.service.store.on_commit(lambda: self.wake_lane(lane))
            return True
        if not row["channel"]:
            return False
        incident = self.service.incident_for_channel(row["channel"])
        if incident is None:
            return False
        lane = request_lane(incident.id, row["id"])
        self.service.store.on_commit(lambda: self.wake_lane(lane))
        return True

    def _request_failed(self, row: dict[str, Any], ctx: Context, exc: Exception) -> float:
        current_incident.set(f"INC-{row['incident_id']}" if row["incident_id"] else "-")
        if database_unavailable(exc):  # not the request's fault: try again, it keeps its turn
            log.warning("request %s waits: the database cannot be written (%s)", row["id"], exc)
            return UNAVAILABLE_RETRY
        log.exception("request %s failed (try %d)", row["id"], row["attempts"] + 1)
        reason = f"{type(exc).__name__}: {exc}"
        if not self.service.store.request_failed(row["id"], reason, self.wall(), GIVE_UP_AFTER):
            return RETRY_AFTER * (int(row["attempts"]) + 1)
        log.error("request %s set aside after %d tries: %s", row["id"], GIVE_UP_AFTER, reason)
        with self.service.store.transaction():
            self.answer(ctx, self.render("error.set_aside", error=type(exc).__name__))
        return 0

    def pending_lanes(self) -> list[Lane]:
        """Lanes with requests a crash (or a fault) left unfinished, for start-up."""
        lanes: list[Lane] = []
        for row in self.service.store.unfinished_requests():
            lane = request_lane(row["incident_id"], row["id"])
            if lane not in lanes:
                lanes.append(lane)
        return lanes

    def recover_declarations(self, active: list[Incident]) -> int:
        """Open incidents without a channel and nothing on the way to open one (a database
        written before the outbox existed): queue the step that opens it."""
        waiting = {r.incident_id for r in self.service.store.pending_outgoing()}
        orphans = [i for i in active if not i.channel and i.id not in waiting]
        for incident in orphans:
            with self.service.store.transaction():
                self.outbox.put(incident.id, "declare", actor=incident.declared_by, reply=None)
        return len(orphans)

    def repeat(self, ctx: Context) -> Result:
        with self.service.store.transaction():
            return self.answer(ctx, self.render("reply.repeat"))

    # --- running one command --------------------------------------------------

    def _execute(self, payload: dict[str, Any], ctx: Context, inbox_id: int | None) -> Result:
        """One transaction: the reads that decide, the change, its outbox rows, the request
        marked done. A refusal commits only its answer (and the request done)."""
        store = self.service.store
        with store.transaction():
            try:
                with store.savepoint():  # a refusal undoes whatever the command began
                    if payload.get("declare"):
                        args = payload["declare"]
                        command = Command(
                            "start",
                            runbook=args["runbook"],
                            severity=args.get("severity"),
                            title=args["title"],
                        )
                        result = _start(self, command, ctx)
                    elif isinstance(payload.get("review"), dict):  # the review form (Slack)
                        result = _revise(self, payload["review"], ctx)
                    elif isinstance(payload.get("alert"), dict):  # Alertmanager (bot/hooks.py)
                        result = _alert(self, payload, ctx)
                    else:
                        result = self._run(payload.get("text") or "", ctx)
            except BotError as error:
                return self.refuse(ctx, error, inbox_id)
            if inbox_id is not None:
                store.finish_request(inbox_id, self.service.clock.now())
            return result

    def refuse(self, ctx: Context, error: BotError, inbox_id: int | None = None) -> Result:
        """Answer a refusal privately (and mark its request done)."""
        with self.service.store.transaction():
            self.answer(ctx, self.render(f"error.{error.key}", **error.params))
            if inbox_id is not None:
                self.service.store.finish_request(inbox_id, self.service.clock.now())
        return Result(error=error)

    def _run(self, text: str, ctx: Context) -> Result:
        command = parse(text)
        self._check_mentions(command)
        return _HANDLERS[command.verb](self, command, ctx)

    def _check_mentions(self, command: Command) -> None:
        for mention in (command.user, command.owner):
            if mention is not None and not self.accepts_user(mention.id):
                raise ParseError("not_a_mention", given=f"@{mention.id}", usage=USAGE[command.verb])

    # --- helpers --------------------------------------------------------------

    def incident_id(self, ctx: Context) -> int:
        if ctx.incident_id is not None:
            current_incident.set(f"INC-{ctx.incident_id}")
            return ctx.incident_id
        incident = self.service.incident_for_channel(ctx.channel) if ctx.channel else None
        if incident is None:
            raise NotInIncident("not_in_incident")
        current_incident.set(incident.ref)
        return incident.id

    def publish(self, change: Change, ctx: Context | None = None) -> Result:
        """Queue the change's events for the channel, brief people; after the commit, re-arm
        the reminders and redraw the plan. Runs inside the command's transaction."""
        incident = change.incident
        tell = _reply_to(ctx) if ctx is not None else None
        for event in change.events:
            text = event_text(self.render, event, incident)
            if incident.channel:
                self.outbox.post(
                    incident.id, incident.channel, text, self._buttons(event, incident), tell
                )
            self._follow_up(event, incident)
        # pages and event webhooks: once the channel is open (they link to it); what
        # happened before that is published with the opening (_deliver_declaration)
        if self.outbound is not None and incident.channel:
            self.outbound.changed(incident, change.events)
        store = self.service.store
        store.on_commit(self.after_change)
        store.on_commit(lambda: self.plan_changed(incident.id))
        return Result(incident=incident, change=change)

    def severity_raised(self, incident_id: int, event: Event) -> None:
        """An escalation raised the severity (bot/reminders.py, inside its transaction): a
        lifecycle event like a typed `sev` for PagerDuty and the event webhooks."""
        incident = self.service.store.incident(incident_id)
        if self.outbound is not None and incident is not None and incident.channel:
            self.outbound.changed(incident, [event])

    def refresh_plan(self, incident_id: int) -> None:
        """Redraw the posted plan from the record (after a command or a reminder)."""
        view = self.service.view(incident_id)
        if view.incident.plan_ref:
            self.chat.refresh_plan(plan_view(view))

    def _follow_up(self, event: Event, incident: Incident) -> None:
        """What an event means beyond the channel: role briefings, announcements."""
        runbook = incident.runbook
        payload = event.payload
        if isinstance(payload, RoleAssigned | HandoffAccepted):
            user = payload.user if isinstance(payload, RoleAssigned) else payload.to_user
            role = runbook.role(payload.role)
            view = self.service.view(incident.id)
            text = self.render(
                "dm.briefing",
                ref=incident.ref,
                title=incident.title,
                channel=self.channel(incident),
                role_name=role.name if role else payload.role,
                responsibilities=role.responsibilities if role else [],
                steps=open_step_rows(self.render, incident, view.steps, view.holders),
                last_update=self.service.last_update(incident.id),
                handed_over=isinstance(payload, HandoffAccepted),
            )
            self.outbox.put(incident.id, "notify", user=user, text=text)
        elif isinstance(payload, Declared | Closed):
            group = self.service.store.alert_group(incident.id)
            route_channel = group["announce"] if group else None
            text = self.render(
                f"announce.{event.kind}",
                ref=incident.ref,
                title=incident.title,
                severity=incident.severity,
                channel=self.channel(incident),
                actor=event.actor,
                elapsed=event.at - incident.started_at,
                private=runbook.private,
            )
            if route_channel:  # the alert's route names where its incidents are announced
                self.outbox.post(incident.id, route_channel, text)
            else:
                self.outbox.put(incident.id, "announce", text=text)

    def _buttons(self, event: Event, incident: Incident) -> tuple[Button, ...]:
        if isinstance(event.payload, HandoffRequested):
            return (Button(self.render("label.accept"), "accept_handoff", str(incident.id)),)
        return ()

    def channel(self, incident: Incident) -> Safe:
        return Safe(self.chat.channel_link(incident.channel) if incident.channel else "")

    def answer(self, ctx: Context, text: str) -> Result:
        """A private answer to whoever asked, queued in their incident's lane (so it keeps
        its place among what the channel is told). The bot's own identities (an alert) have
        nobody to answer: logged instead."""
        if ctx.actor in BOT_ACTORS:
            log.info("not answered (%s acted): %s", ctx.actor, text[:300])
            return Result()
        self.outbox.put(ctx.incident_id, "reply", text=text, **_reply_to(ctx))
        return Result()

    # --- delivering what the outbox holds (outbox.Deliverer) ---------------------

    def deliver(self, row: Outgoing) -> None:
        self._deliveries[row.kind](row)

    def is_transient(self, error: Exception) -> bool:
        if isinstance(error, OutboundError):
            return error.transient
        return self.chat.is_transient(error)

    def failed(self, row: Outgoing, error: Exception) -> None:
        """A message that could not be posted for good: tell whoever caused it."""
        tell = row.body.get("tell")
        if row.kind == "post" and tell:
            text = self.render("error.not_posted", error=_slack_error(error))
            with self.service.store.transaction():
                self.outbox.put(None, "reply", text=text, **tell)

    def _deliver_post(self, row: Outgoing) -> None:
        buttons = tuple(Button(*b) for b in row.body.get("buttons") or [])
        self.chat.post(row.body["channel"], row.body["text"], buttons)

    def _deliver_reply(self, row: Outgoing) -> None:
        body = row.body
        self.chat.reply(body["user"], body.get("channel"), body["text"], body.get("url"))

    def _deliver_declaration(self, row: Outgoing) -> None:
        """Open the incident's channel, then queue what the channel is told first. Resumable:
        a channel already opened is not opened again."""
        store = self.service.store
        incident = store.incident(row.incident_id or 0)
        if incident is None or incident.is_closed or incident.channel:
            return
        try:
            channel = self.chat.open_channel(incident)
        except Exception as exc:
            if self.chat.is_transient(exc):
                raise  # the outbox tries again while Slack is away
            # no channel, no incident: never leave one nobody can reach
            log.exception("opening a channel for %s failed", incident.ref)
            with store.transaction():
                self.service.close(incident.id, incident.declared_by)
                reply = row.body.get("reply") or {"user": incident.declared_by}
                if reply["user"] not in BOT_ACTORS:
                    text = self.render("error.channel_failed", error=_slack_error(exc))
                    self.outbox.put(incident.id, "reply", text=text, **reply)
            return
        with store.transaction():
            incident = self.service.set_channel(incident.id, channel)
            # what was typed in the new channel before this commit joins its lane, in turn
            if store.adopt_requests(channel, incident.id):
                lane = request_lane(incident.id, 0)
                store.on_commit(lambda: self.wake_lane(lane))
            self.publish(Change(incident, store.events(incident.id)))
            self.outbox.put(incident.id, "plan")
            reply = row.body.get("reply")
            if reply and reply.get("url"):  # declared from another channel: say where it lives
                text = self.render(
                    "reply.declared",
                    ref=incident.ref,
                    channel=self.channel(incident),
                    ascii_only=title_left_out(incident.title),
                )
                self.outbox.put(incident.id, "reply", text=text, **reply)

    def _deliver_outbound(self, row: Outgoing) -> None:
        """A page or an event webhook (bot/outbound.py). Its first failure is said once in
        the channel (and kept in the timeline); the outbox retries what may pass."""
        assert self.outbound is not None, "outbound rows without outbound settings"
        try:
            self.outbound.send(row)
        except OutboundError as error:
            if row.incident_id is not None:
                self._outbound_failed(row.incident_id, error)
            raise

    def _outbound_failed(self, incident_id: int, error: OutboundError) -> None:
        try:
            with self.service.store.transaction():
                change = self.service.outbound_failed(
                    incident_id, error.target, error.reason, error.transient
                )
                if change is not None:
                    self.publish(change)
        except Exception:  # saying so is a courtesy; the row's own retry goes on
            log.exception("telling INC-%s that %s failed", incident_id, error.target)

    def _deliver_plan(self, row: Outgoing) -> None:
        view = self.service.view(row.incident_id or 0)
        incident = view.incident
        if incident.plan_ref or not incident.channel:
            return
        self.service.set_plan_ref(incident.id, self.chat.show_plan(plan_view(view)))

    def _deliver_review(self, row: Outgoing) -> None:
        now = self.service.clock.now()
        incident_id = row.incident_id or 0
        store = self.service.store
        written = publish_review(store, self.chat, self.render, incident_id, self.review, now)
        self.after_change()  # an upload retry may have been armed
        incident = store.incident(incident_id)
        if self.outbound is not None and incident is not None and incident.channel:
            with store.transaction():
                self.outbound.review_published(incident, str(written.path), iso(now))
        reply = row.body.get("reply")
        if reply:
            text = self.render(
                "reply.postmortem_written",
                path=str(written.path),
                kept=str(written.kept) if written.kept else None,
                edited=written.edited,
            )
            self.chat.reply(reply["user"], reply.get("channel"), text, reply.get("url"))


def _reply_to(ctx: Context) -> dict[str, Any]:
    return {"user": ctx.actor, "channel": ctx.channel, "url": ctx.reply_url}


def _start(h: CommandHandler, c: Command, ctx: Context) -> Result:
    assert c.runbook and c.title
    change = h.service.start(c.runbook, c.title, ctx.actor, severity=c.severity)
    h.outbox.put(change.incident.id, "declare", actor=ctx.actor, reply=_reply_to(ctx))
    h.service.store.on_commit(h.after_change)
    return Result(incident=change.incident, change=change)


def _alert(h: CommandHandler, payload: dict[str, Any], ctx: Context) -> Result:
    """An Alertmanager notification (journaled by bot/hooks.py): the first of a firing group
    declares from its route; later ones (a repeat, resolved, firing again) are a line of the
    open incident's timeline, posted only when something changed (no new channel, no
    mentions). Decided inside the transaction: of two deliveries of one group at once, the
    second finds the first's incident."""
    group = AlertGroup.model_validate(payload["alert"])
    route = payload.get("route")
    store = h.service.store
    now = h.service.clock.now()
    incident_id = store.open_alert_incident(group.groupKey)
    if incident_id is None:
        if group.status == "resolved" or not isinstance(route, dict):
            log.info("alert group %s: no open incident and nothing to declare", group.groupKey)
            return Result()
        change = h.service.start(
            route["runbook"],
            route["title"],
            ALERT_ACTOR,
            severity=route.get("severity"),
            take_lead=False,
        )
        incident = change.incident
        current_incident.set(incident.ref)
        store.add_alert_group(
            incident.id,
            group.groupKey,
            group.status,
            group.receiver or None,
            route.get("announce"),
            digest(group),
            now,
        )
        h.outbox.put(incident.id, "declare", actor=ALERT_ACTOR, reply=None)
        store.on_commit(h.after_change)
        log.info(
            "%s declared from alert group %s (route %s)",
            incident.ref,
            group.groupKey,
            route.get("route"),
        )
        return Result(incident=incident, change=change)
    current_incident.set(f"INC-{incident_id}")
    row = store.alert_group(incident_id)
    current = store.incident(incident_id)
    assert row is not None and current is not None
    before: dict[str, Any] = row["summary"]
    firing, resolved = group.counts()
    status = group.status
    new = len(fingerprints(group) - set(before.get("seen") or [])) if status == "firing" else 0
    again = status == "firing" and row["status"] == "resolved"
    ask = status == "resolved" and current.mitigated_at is None
    store.update_alert_group(incident_id, status, digest(group, before), now)
    change = h.service.alert_received(
        incident_id, AlertReceived(status, firing, resolved, new, again, ask)
    )
    if status == "firing" and not new and not again:  # the same again: recorded, not posted
        store.on_commit(lambda: h.plan_changed(incident_id))
        return Result(incident=change.incident, change=change)
    return h.publish(change)


def _slack_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("error")) if response is not None else type(exc).__name__


def _open_modal(h: CommandHandler, c: Command, ctx: Context) -> Result:
    return h.answer(ctx, h.render("error.modal_in_terminal"))


def _close(h: CommandHandler, c: Command, ctx: Context) -> Result:
    """Closing commits at once; the review is compiled and shared after (outbox)."""
    result = h.publish(h.service.close(h.incident_id(ctx), ctx.actor), ctx)
    assert result.incident is not None
    h.outbox.put(result.incident.id, "review", reply=None)
    return result


def _postmortem(h: CommandHandler, c: Command, ctx: Context) -> Result:
    """Rebuild the review from the record at any time (also after close); the answer with
    its path follows once it is written."""
    incident_id = h.incident_id(ctx)
    h.service.actions(incident_id)  # refuses an unknown incident now
    h.outbox.put(incident_id, "review", reply=_reply_to(ctx))
    return Result()


def _actions(h: CommandHandler, c: Command, ctx: Context) -> Result:
    if c.number is not None:  # `actions done N`
        return h.publish(h.service.complete_action(h.incident_id(ctx), c.number, ctx.actor), ctx)
    actions = [
        {
            "id": a.id,
            "text": a.text,
            "owner": a.owner,
            "due": a.due,
            "priority": a.priority,
            "link": a.link,
        }
        for a in h.service.actions(h.incident_id(ctx))
        if a.status == "open"
    ]
    return h.answer(ctx, h.render("reply.actions", actions=actions))


def _simple(
    method: Callable[..., Change], *fields: str
) -> Callable[[CommandHandler, Command, Context], Result]:
    """A verb that is one engine call on the context's incident."""

    def run(h: CommandHandler, c: Command, ctx: Context) -> Result:
        args = [getattr(c, f) for f in fields]
        args = [a.id if isinstance(a, Mention) else a for a in args]
        return h.publish(method(h.service, h.incident_id(ctx), *args, ctx.actor), ctx)

    return run


def _describe(field_name: str) -> Callable[[CommandHandler, Command, Context], Result]:
    def run(h: CommandHandler, c: Command, ctx: Context) -> Result:
        return h.publish(
            h.service.describe(h.incident_id(ctx), field_name, c.text or "", ctx.actor), ctx
        )

    return run


def _snooze(h: CommandHandler, c: Command, ctx: Context) -> Result:
    return h.publish(h.service.snooze(h.incident_id(ctx), ctx.actor, c.duration), ctx)


def _action(h: CommandHandler, c: Command, ctx: Context) -> Result:
    owner = c.owner.id if c.owner else None
    return h.publish(
        h.service.add_action(
            h.incident_id(ctx),
            c.text or "",
            ctx.actor,
            owner=owner,
            due=c.due,
            priority=c.priority,
            link=c.link,
        ),
        ctx,
    )


def _review_part(kind: str) -> Callable[[CommandHandler, Command, Context], Result]:
    """`trigger`, `detection`, `resolution`, `why`, `factor`, `lesson`: one more piece."""

    def run(h: CommandHandler, c: Command, ctx: Context) -> Result:
        change = h.service.add_to_review(
            h.incident_id(ctx), kind, c.text or "", ctx.actor, c.category
        )
        return h.publish(change, ctx)

    return run


def _review_form(h: CommandHandler, c: Command, ctx: Context) -> Result:
    """`/incident review` outside Slack (the form opens in Slack's listener): the verbs."""
    usage = [USAGE[verb] for verb in REVIEW_VERBS]
    return h.answer(ctx, h.render("reply.review_in_terminal", usage=usage))


def _revise(h: CommandHandler, submitted: dict[str, Any], ctx: Context) -> Result:
    return h.publish(h.service.revise_review(h.incident_id(ctx), submitted, ctx.actor), ctx)


def _status(h: CommandHandler, c: Command, ctx: Context) -> Result:
    view = h.service.view(h.incident_id(ctx))
    return h.answer(ctx, status_text(h.render, view, h.service.clock.now()))


def _catchup(h: CommandHandler, c: Command, ctx: Context) -> Result:
    """Where the incident stands, privately: also offered to whoever joins its channel."""
    incident_id = h.incident_id(ctx)
    view = h.service.view(incident_id)
    updates = h.service.latest(incident_id, 1, kinds=("update",))
    recent = h.service.latest(incident_id, TIMELINE_LINES, leave_out=LEAVE_OUT)
    text = catchup_text(
        h.render, view, updates[-1] if updates else None, recent, h.service.clock.now()
    )
    return h.answer(ctx, text)


def _list(h: CommandHandler, c: Command, ctx: Context) -> Result:
    return h.answer(ctx, list_text(h.render, h.service.active(), h.chat.channel_link))


def _runbooks(h: CommandHandler, c: Command, ctx: Context) -> Result:
    return h.answer(ctx, runbooks_text(h.render, h.service.catalog.all()))


def _help(h: CommandHandler, c: Command, ctx: Context) -> Result:
    return h.answer(ctx, h.render("reply.help", usage=list(USAGE.values())))


S = IncidentService
_HANDLERS: dict[str, Callable[[CommandHandler, Command, Context], Result]] = {
    "open": _open_modal,
    "start": _start,
    "assign": _simple(S.assign, "role", "user"),
    "handoff": _simple(S.handoff, "role", "user"),
    "accept": _simple(S.accept),
    "update": _simple(S.update, "text"),
    "note": _simple(S.note, "text"),
    "done": _simple(S.done, "step"),
    "skip": _simple(S.skip, "step", "text"),
    "next": _simple(S.next_phase),
    "sev": _simple(S.set_severity, "severity"),
    "snooze": _snooze,
    "mitigated": _simple(S.mitigated),
    "resolved": _simple(S.resolved),
    "close": _close,
    "summary": _describe("summary"),
    "impact": _describe("impact"),
    "cause": _describe("cause"),
    "trigger": _review_part("trigger"),
    "detection": _review_part("detection"),
    "resolution": _review_part("resolution"),
    "why": _review_part("why"),
    "factor": _review_part("factor"),
    "lesson": _review_part("lesson"),
    "review": _review_form,
    "action": _action,
    "actions": _actions,
    "postmortem": _postmortem,
    "status": _status,
    "catchup": _catchup,
    "list": _list,
    "runbooks": _runbooks,
    "help": _help,
}
