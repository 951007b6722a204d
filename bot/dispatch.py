"""One place where a typed `/incident …` command becomes an engine call.

Slack and the terminal both hand the raw text here. Each verb maps to one
engine method (see `_HANDLERS`); the events it returns are posted to the
incident channel, and answers meant for the typist go back privately.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.chat import Button, ChatPort
from bot.clock import utc_now
from bot.commands import REVIEW_VERBS, USAGE, Command, Mention, parse
from bot.engine import Change, IncidentService
from bot.errors import BotError, NotInIncident, ParseError
from bot.logs import current_incident
from bot.messages import Renderer, Safe
from bot.model import Event, Incident
from bot.postmortem import ReviewOptions, Written, publish_review
from bot.render import (
    event_text,
    list_text,
    open_step_rows,
    plan_text,
    runbooks_text,
    status_text,
)

log = logging.getLogger(__name__)
REPEAT_WINDOW = timedelta(seconds=5)  # the same request again within this is a double click
READ_ONLY = {"status", "list", "runbooks", "help", "actions", ""}


@dataclass(frozen=True)
class Context:
    actor: str
    channel: str | None = None
    incident_id: int | None = None  # the terminal and buttons name the incident directly
    reply: Callable[[str], None] | None = None  # Slack: answer through the response_url


@dataclass
class Result:
    incident: Incident | None = None
    change: Change | None = None
    error: BotError | None = None


class CommandHandler:
    def __init__(
        self, service: IncidentService, chat: ChatPort, language: str, review: ReviewOptions
    ) -> None:
        self.service = service
        self.chat = chat
        self.render = Renderer(language, mention=chat.mention, escape=chat.escape)
        self.review = review
        self.after_change: Callable[[], None] = lambda: None  # e.g. re-arm the reminder alarm
        # the posted plan no longer matches the record: redraw now, or (Slack) when paced
        self.plan_changed: Callable[[int], None] = self.refresh_plan
        # which mentioned ids are real users: the terminal takes any @name, Slack only <@U…>
        self.accepts_user: Callable[[str], bool] = lambda user: True

    def handle(self, text: str, ctx: Context) -> Result:
        """Run one command; a refusal is answered privately and returned, never raised."""
        return self._guarded(ctx, text, lambda: self._run(text, ctx))

    def declare(self, runbook: str, severity: str | None, title: str, ctx: Context) -> Result:
        """Declare from structured input (Slack's start form), with the same answers."""
        command = Command("start", runbook=runbook, severity=severity, title=title)
        return self._guarded(ctx, "start", lambda: _start(self, command, ctx))

    def revise(self, submitted: dict[str, Any], ctx: Context) -> Result:
        """The review form's submission (Slack): what it holds replaces the review's parts."""
        return self._guarded(ctx, "review", lambda: _revise(self, submitted, ctx))

    # --- journaled requests (Slack): nothing acknowledged is lost ---------------

    def receive(
        self, payload: dict[str, Any], ctx: Context, reply_url: str | None = None
    ) -> int | None:
        """Journal a request before it is acknowledged. None: the same request from the same
        person arrived moments ago (a double click, a resend) and must not run twice."""
        text = payload.get("text") or json.dumps(payload, sort_keys=True)
        verb = text.split(maxsplit=1)[0].lower() if text.strip() else ""
        key = "|".join(
            [ctx.actor, ctx.channel or "", str(ctx.incident_id or ""), " ".join(text.split())]
        )
        if verb in READ_ONLY:
            key += f"|{utc_now().isoformat()}"  # asking twice is fine: never a repeat
        now = utc_now()
        return self.service.store.journal(
            now,
            key,
            now - REPEAT_WINDOW,
            ctx.actor,
            ctx.channel,
            ctx.incident_id,
            json.dumps(payload),
            reply_url,
        )

    def process(self, inbox_id: int, payload: dict[str, Any], ctx: Context) -> Result:
        """Run a journaled request; the engine marks it done with the change it makes."""
        with self.service.processing(inbox_id):
            if payload.get("declare"):
                args = payload["declare"]
                result = self.declare(args["runbook"], args.get("severity"), args["title"], ctx)
            elif isinstance(payload.get("review"), dict):  # the review form (Slack)
                result = self.revise(payload["review"], ctx)
            else:
                result = self.handle(payload.get("text") or "", ctx)
        self.service.store.finish_request(inbox_id, self.service.clock.now())
        return result

    def replay(self, reply_for: Callable[[str | None], Callable[[str], None] | None]) -> int:
        """After a crash: run every request that was acknowledged but never finished."""
        rows = self.service.store.unfinished_requests()
        for row in rows:
            ctx = Context(
                row["actor"], row["channel"], row["incident_id"], reply_for(row["reply_url"])
            )
            self.process(row["id"], json.loads(row["payload"]), ctx)
        return len(rows)

    def reopen_channels(self, active: list[Incident]) -> int:
        """Open incidents without a channel were cut off mid-declaration: finish opening them."""
        orphans = [i for i in active if not i.channel]
        for incident in orphans:
            try:
                channel = self.chat.open_channel(incident)
                _publish_declaration(
                    self, incident, channel, self.service.store.events(incident.id)
                )
            except Exception:
                log.exception("reopening a channel for %s failed", incident.ref)
        return len(orphans)

    def repeat(self, ctx: Context) -> Result:
        return self.answer(ctx, self.render("reply.repeat"))

    def _run(self, text: str, ctx: Context) -> Result:
        command = parse(text)
        self._check_mentions(command)
        return _HANDLERS[command.verb](self, command, ctx)

    def _guarded(self, ctx: Context, text: str, work: Callable[[], Result]) -> Result:
        try:
            return work()
        except BotError as error:
            self.answer(ctx, self.render(f"error.{error.key}", **error.params))
            return Result(error=error)
        except Exception as exc:  # Slack or disk trouble: what was committed stays committed
            log.exception("command %r failed", text[:80])
            self.answer(ctx, self.render("error.internal", error=type(exc).__name__))
            return Result(error=BotError("internal", error=type(exc).__name__))

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

    def publish(self, change: Change) -> Result:
        """Post the change's events in the channel, brief people, keep the plan current."""
        self.after_change()
        incident = change.incident
        for event in change.events:
            text = event_text(self.render, event, incident)
            if incident.channel:
                self.chat.post(incident.channel, text, self._buttons(event, incident))
            self._follow_up(event, incident)
        self.plan_changed(incident.id)
        return Result(incident=incident, change=change)

    def refresh_plan(self, incident_id: int) -> None:
        """Redraw the posted plan from the record (after a command or a reminder)."""
        view = self.service.view(incident_id)
        if view.incident.plan_ref:
            text = plan_text(self.render, view.incident.runbook, view.holders)
            self.chat.refresh_plan(view.incident, view, text)

    def _follow_up(self, event: Event, incident: Incident) -> None:
        """What an event means beyond the channel: role briefings, announcements."""
        runbook = incident.runbook
        if event.kind in ("role_assigned", "handoff_accepted"):
            user = event.data.get("user") or event.data["to_user"]
            role = runbook.role(event.data["role"])
            view = self.service.view(incident.id)
            self.chat.notify(
                user,
                self.render(
                    "dm.briefing",
                    ref=incident.ref,
                    title=incident.title,
                    channel=self.channel(incident),
                    role_name=role.name if role else event.data["role"],
                    responsibilities=role.responsibilities if role else [],
                    steps=open_step_rows(self.render, incident, view.steps, view.holders),
                    last_update=self.service.last_update(incident.id),
                    handed_over=event.kind == "handoff_accepted",
                ),
            )
        elif event.kind in ("declared", "closed"):
            self.chat.announce(
                self.render(
                    f"announce.{event.kind}",
                    ref=incident.ref,
                    title=incident.title,
                    severity=incident.severity,
                    channel=self.channel(incident),
                    actor=event.actor,
                    elapsed=event.at - incident.started_at,
                )
            )

    def _buttons(self, event: Event, incident: Incident) -> tuple[Button, ...]:
        if event.kind == "handoff_requested":
            return (Button(self.render("label.accept"), "accept_handoff", str(incident.id)),)
        return ()

    def channel(self, incident: Incident) -> Safe:
        return Safe(self.chat.channel_link(incident.channel) if incident.channel else "")

    def answer(self, ctx: Context, text: str) -> Result:
        if ctx.reply is not None:
            ctx.reply(text)
        else:
            self.chat.reply(ctx.actor, ctx.channel, text)
        return Result()


def _start(h: CommandHandler, c: Command, ctx: Context) -> Result:
    assert c.runbook and c.title
    change = h.service.start(c.runbook, c.title, ctx.actor, severity=c.severity)
    try:
        channel = h.chat.open_channel(change.incident)
    except Exception as exc:  # no channel, no incident: never leave one nobody can reach
        log.exception("opening a channel for %s failed", change.incident.ref)
        h.service.close(change.incident.id, ctx.actor)
        raise BotError("channel_failed", error=_slack_error(exc)) from None
    result = _publish_declaration(h, change.incident, channel, change.events)
    incident = result.incident
    assert incident is not None
    if ctx.reply is not None:  # declared from another channel: say where it lives
        ctx.reply(h.render("reply.declared", ref=incident.ref, channel=h.channel(incident)))
    return result


def _publish_declaration(
    h: CommandHandler, incident: Incident, channel: str, events: list[Event]
) -> Result:
    incident = h.service.set_channel(incident.id, channel)
    result = h.publish(Change(incident, events))
    view = h.service.view(incident.id)
    plan = plan_text(h.render, incident.runbook, view.holders)
    h.service.set_plan_ref(incident.id, h.chat.show_plan(incident, view, plan))
    return result


def _slack_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("error")) if response is not None else type(exc).__name__


def _open_modal(h: CommandHandler, c: Command, ctx: Context) -> Result:
    return h.answer(ctx, h.render("error.modal_in_terminal"))


def _close(h: CommandHandler, c: Command, ctx: Context) -> Result:
    result = h.publish(h.service.close(h.incident_id(ctx), ctx.actor))
    assert result.incident is not None
    _publish_review(h, result.incident.id)
    return result


def _postmortem(h: CommandHandler, c: Command, ctx: Context) -> Result:
    """Rebuild the review from the record at any time (also after close)."""
    written = _publish_review(h, h.incident_id(ctx))
    kept = str(written.kept) if written.kept else None
    text = h.render(
        "reply.postmortem_written", path=str(written.path), kept=kept, edited=written.edited
    )
    return h.answer(ctx, text)


def _publish_review(h: CommandHandler, incident_id: int) -> Written:
    now = h.service.clock.now()
    written = publish_review(h.service.store, h.chat, h.render, incident_id, h.review, now)
    h.after_change()  # an upload retry may have been armed
    return written


def _actions(h: CommandHandler, c: Command, ctx: Context) -> Result:
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
        return h.publish(method(h.service, h.incident_id(ctx), *args, ctx.actor))

    return run


def _describe(field_name: str) -> Callable[[CommandHandler, Command, Context], Result]:
    def run(h: CommandHandler, c: Command, ctx: Context) -> Result:
        return h.publish(
            h.service.describe(h.incident_id(ctx), field_name, c.text or "", ctx.actor)
        )

    return run


def _snooze(h: CommandHandler, c: Command, ctx: Context) -> Result:
    return h.publish(h.service.snooze(h.incident_id(ctx), ctx.actor, c.duration))


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
        )
    )


def _review_part(kind: str) -> Callable[[CommandHandler, Command, Context], Result]:
    """`trigger`, `detection`, `resolution`, `why`, `factor`, `lesson`: one more piece."""

    def run(h: CommandHandler, c: Command, ctx: Context) -> Result:
        change = h.service.add_to_review(
            h.incident_id(ctx), kind, c.text or "", ctx.actor, c.category
        )
        return h.publish(change)

    return run


def _review_form(h: CommandHandler, c: Command, ctx: Context) -> Result:
    """`/incident review` outside Slack (the form opens in Slack's listener): the verbs."""
    usage = [USAGE[verb] for verb in REVIEW_VERBS]
    return h.answer(ctx, h.render("reply.review_in_terminal", usage=usage))


def _revise(h: CommandHandler, submitted: dict[str, Any], ctx: Context) -> Result:
    return h.publish(h.service.revise_review(h.incident_id(ctx), submitted, ctx.actor))


def _status(h: CommandHandler, c: Command, ctx: Context) -> Result:
    view = h.service.view(h.incident_id(ctx))
    return h.answer(ctx, status_text(h.render, view, h.service.clock.now()))


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
    "list": _list,
    "runbooks": _runbooks,
    "help": _help,
}
