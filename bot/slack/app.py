"""The bolt app: every Slack listener, registered in this one place.

Each listener journals the request and acknowledges it (Slack allows 3 s), then
hands one call into the shared command handler (`bot/dispatch.py`) to a worker
pool, which runs the engine and posts the results. `/incident handoff ROLE @user`
arrives in `incident_command` like every other verb and is routed by
`dispatch._HANDLERS["handoff"]`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.bootstrap import Bot
from bot.dispatch import Context
from bot.slack.blocks import (
    REVIEW_FORM,
    review_modal,
    review_submission,
    selected,
    start_modal,
    update_modal,
)
from bot.slack.priority import RequestsFirst
from bot.slack.text import SLACK_USER, from_slack

log = logging.getLogger(__name__)


def create_app(
    bot: Bot,
    client: WebClient,
    signing_secret: str | None,
    executor: ThreadPoolExecutor,
    work: ThreadPoolExecutor,
    priority: RequestsFirst,
) -> App:
    """`executor` runs listeners (journal and ack: quick); `work` runs what follows the ack
    once no request is waiting for its own (see priority.py), so a burst of commands is
    acknowledged first and carried out right after."""
    app = App(
        client=client,
        listener_executor=executor,  # ours, so shutdown can wait for commands in flight
        signing_secret=signing_secret or "",
        request_verification_enabled=bool(signing_secret),
        token_verification_enabled=False,  # `serve` checks the token once, with a clear error
        process_before_response=False,  # ack first; the work runs after the response
    )
    handler = bot.handler
    handler.accepts_user = lambda user: bool(SLACK_USER.match(user))  # `@ben` is not a user here

    def journaled(ack: Ack, payload: dict[str, Any], ctx: Context, reply_url: str | None) -> None:
        """Journal, acknowledge, run: a crash after the ack still runs the request on restart."""
        try:
            inbox_id = handler.receive(payload, ctx, reply_url)
        finally:
            ack()
        if inbox_id is None:
            work.submit(_after_ack, priority, handler.repeat, ctx)
        else:
            work.submit(_after_ack, priority, handler.process, inbox_id, payload, ctx)

    # before `incident_command`: bolt runs the first listener that matches
    @app.command("/incident", matchers=[_asks_for_review_form])
    def review_form(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        """`/incident review`: the review form, prefilled from the record. Opened at once
        (the trigger id lasts 3 s); it only reads, so nothing is journaled until it is saved."""
        ack()
        incident = bot.service.incident_for_channel(command["channel_id"])
        if incident is None:
            respond(text=handler.render("error.not_in_incident"), response_type="ephemeral")
            return
        modal = review_modal(handler.render, incident, bot.service.review(incident.id))
        client.views_open(trigger_id=command["trigger_id"], view=modal)

    @app.view(REVIEW_FORM)
    def review_saved(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            meta = json.loads(view.get("private_metadata") or "")
            incident_id, channel = int(meta["incident"]), meta.get("channel")
            channel = channel if isinstance(channel, str) else None
        except (ValueError, TypeError, KeyError):  # not our form's metadata: nothing to do
            ack()
            return
        ctx = Context(actor=body["user"]["id"], channel=channel, incident_id=incident_id)
        submitted = review_submission(view["state"]["values"])
        journaled(ack, {"review": submitted}, ctx, None)

    @app.command("/incident")
    def incident_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        text = command.get("text") or ""
        if not text.strip():
            ack()
            modal = start_modal(handler.render, bot.catalog.all(), command["channel_id"])
            client.views_open(trigger_id=command["trigger_id"], view=modal)
            return
        ctx = _command_context(command, respond)
        journaled(ack, {"text": from_slack(text)}, ctx, command.get("response_url"))

    @app.action("accept_handoff")
    def accept_handoff(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ctx = _button_context(body, int(action["value"]), respond)
        journaled(ack, {"text": "accept"}, ctx, body.get("response_url"))

    @app.action("step_done")
    def step_done(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        incident_id, _, step = action["selected_option"]["value"].partition(":")
        ctx = _button_context(body, int(incident_id), respond)
        journaled(ack, {"text": f"done {step}"}, ctx, body.get("response_url"))

    @app.action("next_phase")
    def next_phase(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ctx = _button_context(body, int(action["value"]), respond)
        journaled(ack, {"text": "next"}, ctx, body.get("response_url"))

    @app.action("post_update")
    def post_update_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        modal = update_modal(handler.render, int(action["value"]))
        client.views_open(trigger_id=body["trigger_id"], view=modal)

    @app.view("start_incident")
    def start_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        ctx = Context(actor=body["user"]["id"], channel=view.get("private_metadata") or None)
        declare = {  # structured: a title starting with "sev2" stays a title
            "runbook": selected(values, "runbook") or "",
            "severity": selected(values, "severity"),
            "title": (selected(values, "title") or "").strip(),
        }
        journaled(ack, {"declare": declare}, ctx, None)

    @app.view("post_update")
    def update_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = selected(view["state"]["values"], "text") or ""
        ctx = Context(actor=body["user"]["id"], incident_id=int(view["private_metadata"]))
        journaled(ack, {"text": f"update {text}"}, ctx, None)

    return app


def _asks_for_review_form(body: dict[str, Any]) -> bool:
    return (body.get("text") or "").strip().lower() == "review"


def _after_ack(priority: RequestsFirst, work: Callable[..., object], *args: object) -> None:
    """Run after-the-ack work once requests are answered; a failure is logged (the pool
    would keep it to itself)."""
    try:
        priority.run(work, *args)
    except Exception:
        log.exception("processing a request failed")


def _command_context(command: dict[str, Any], respond: Respond) -> Context:
    return Context(
        actor=command["user_id"],
        channel=command["channel_id"],
        reply=lambda text: respond(text=text, response_type="ephemeral"),
    )


def _button_context(body: dict[str, Any], incident_id: int, respond: Respond) -> Context:
    channel = (body.get("channel") or {}).get("id")
    return Context(
        actor=body["user"]["id"],
        channel=channel,
        incident_id=incident_id,
        reply=lambda text: respond(text=text, response_type="ephemeral", replace_original=False),
    )
