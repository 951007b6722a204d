"""The bolt app: every Slack listener, registered in this one place.

Each listener journals the request (durably, naming the incident it addresses)
and acknowledges it (Slack allows 3 s), then wakes that incident's lane, where
the shared command handler (`bot/dispatch.py`) carries it out after the
requests before it. `/incident handoff ROLE @user` arrives in
`incident_command` like every other verb and is routed by
`dispatch._HANDLERS["handoff"]`.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_sdk import WebClient

from bot.bootstrap import Bot
from bot.dispatch import Context
from bot.errors import BotError, NotInIncident
from bot.lanes import Lanes
from bot.logs import Throttled
from bot.slack.blocks import (
    REVIEW_FORM,
    review_modal,
    review_submission,
    selected,
    start_modal,
    update_modal,
)
from bot.slack.home import DECLARE_ACTION, HomeTab
from bot.slack.text import from_slack

log = logging.getLogger(__name__)
ENVELOPE_HEADER = "x-incident-bot-envelope-id"  # set by our Socket Mode handler (socket.py)
UNRECORDED_LOG_EVERY = 60.0  # seconds: a database that cannot be written is logged this often


class _SameToken(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from the environment by itself and, as we hand it our own
    client (carrying that same token, with our retries), warns that "`token` will be unused".
    It is the same token, so the warning tells an operator nothing: it is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_SAME_TOKEN = _SameToken()


def create_app(
    bot: Bot,
    client: WebClient,
    signing_secret: str | None,
    executor: ThreadPoolExecutor,
    commands: Lanes,
    home: HomeTab | None = None,
) -> App:
    """Listeners journal and ack on the request's thread; `executor` makes the Web API
    calls that follow an ack (`open_view`); `commands` carries requests out
    afterwards, one at a time per incident; `home` publishes Home tabs (none: not shown)."""
    logging.getLogger("slack_bolt.App").addFilter(_SAME_TOKEN)  # once: addFilter skips repeats
    app = App(
        name="incident-bot",  # else bolt reads the whole call stack to name it (~25 ms)
        client=client,
        listener_executor=executor,  # ours, so shutdown can wait for what is in flight
        signing_secret=signing_secret or "",
        request_verification_enabled=bool(signing_secret),
        # auth.test once, here at start-up: never on a request's path, where Slack being
        # away would fail the request before it is journaled
        token_verification_enabled=True,
        # A listener only journals and acknowledges (well under a millisecond), so it runs
        # on the request's own thread and the answer leaves the moment it returns. (Bolt's
        # default runs it on another thread and polls for the ack every 10 ms.) What is
        # slow comes after the ack, elsewhere: commands in their lanes, `open_view`.
        process_before_response=True,
    )
    handler = bot.handler
    unrecorded = Throttled(UNRECORDED_LOG_EVERY)

    def open_view(trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal off the request's thread, so the ack does not wait for Slack
        (the trigger id lasts 3 s; the pool starts it at once)."""

        def call() -> None:
            try:
                client.views_open(trigger_id=trigger_id, view=view)
            except Exception:
                log.exception("opening a form (views.open) failed")

        executor.submit(call)

    def journaled(
        ack: Ack,
        payload: dict[str, Any],
        ctx: Context,
        request: BoltRequest,
        delivery: str | None = None,
    ) -> None:
        """Journal, acknowledge, wake the lane: a crash after the ack still runs it on restart."""
        try:
            received = handler.receive(payload, ctx, delivery=delivery or _delivery(request))
        except BotError as error:  # e.g. a button used outside its incident's channel
            ack()
            try:  # privately, like every refusal (a button's ack shows none)
                handler.refuse(ctx, error)
            except Exception:  # acknowledged: a failure here must not turn the ack into a 500
                log.exception("answering a refused request failed")
            return
        except Exception:  # the database cannot be written: say so now, never a silent 404
            if unrecorded.due():
                log.exception("a request could not be journaled; answered 'try again'")
            ack(text=handler.render("error.not_recorded"))
            return
        ack()
        if received.lane is not None:
            commands.wake(received.lane)
        elif received.repeat == "double":
            try:  # acknowledged and journaled: a failure here must not turn the ack into a 500
                handler.repeat(ctx)
            except Exception:
                log.exception("answering a repeated request failed")
        # "delivery": Slack (or someone) sent the same signed request again: ignored

    def review_form(ack: Ack, command: dict[str, Any]) -> None:
        """`/incident review`: the review form, prefilled from the record. Opened at once
        (the trigger id lasts 3 s); it only reads, so nothing is journaled until it is saved."""
        ack()
        try:  # acknowledged: a failure from here on is logged, never a 500 for the ack
            incident = bot.service.incident_for_channel(command["channel_id"])
            if incident is None:
                ctx = Context(
                    command["user_id"], command["channel_id"], None, command.get("response_url")
                )
                handler.refuse(ctx, NotInIncident("not_in_incident"))
                return
            modal = review_modal(handler.render, incident, bot.service.review(incident.id))
        except Exception:
            log.exception("preparing the review form failed")
            return
        open_view(command["trigger_id"], modal)

    # first: bolt tries listeners in this order, and slash commands are most of the traffic
    @app.command("/incident")
    def incident_command(ack: Ack, command: dict[str, Any], request: BoltRequest) -> None:
        """Every `/incident …`: one listener, so bolt matches once per request (a second
        listener with a matcher of its own cost more CPU than the journal)."""
        text = command.get("text") or ""
        if text.strip().lower() == "review":
            review_form(ack, command)
            return
        if not text.strip():
            ack()
            modal = start_modal(handler.render, bot.catalog.all(), command["channel_id"])
            open_view(command["trigger_id"], modal)
            return
        ctx = Context(
            actor=command["user_id"],
            channel=command["channel_id"],
            reply_url=command.get("response_url"),
        )
        journaled(ack, {"text": from_slack(text)}, ctx, request)

    @app.view(REVIEW_FORM)
    def review_saved(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], request: BoltRequest
    ) -> None:
        try:
            meta = json.loads(view.get("private_metadata") or "")
            incident_id, channel = int(meta["incident"]), meta.get("channel")
            channel = channel if isinstance(channel, str) else None
        except (ValueError, TypeError, KeyError):  # not our form's metadata: nothing to do
            ack()
            return
        ctx = Context(actor=body["user"]["id"], channel=channel, incident_id=incident_id)
        submitted = review_submission(view["state"]["values"])
        journaled(ack, {"review": submitted}, ctx, request)

    @app.action("accept_handoff")
    def accept_handoff(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], request: BoltRequest
    ) -> None:
        journaled(ack, {"text": "accept"}, _button_context(body, action["value"]), request)

    @app.action("step_done")
    def step_done(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], request: BoltRequest
    ) -> None:
        incident_id, _, step = action["selected_option"]["value"].partition(":")
        journaled(ack, {"text": f"done {step}"}, _button_context(body, incident_id), request)

    @app.action("next_phase")
    def next_phase(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], request: BoltRequest
    ) -> None:
        journaled(ack, {"text": "next"}, _button_context(body, action["value"]), request)

    @app.action("post_update")
    def post_update_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        channel = (body.get("channel") or {}).get("id")
        open_view(body["trigger_id"], update_modal(handler.render, int(action["value"]), channel))

    @app.view("start_incident")
    def start_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], request: BoltRequest
    ) -> None:
        values = view["state"]["values"]
        ctx = Context(actor=body["user"]["id"], channel=view.get("private_metadata") or None)
        declare = {  # structured: a title starting with "sev2" stays a title
            "runbook": selected(values, "runbook") or "",
            "severity": selected(values, "severity"),
            "title": (selected(values, "title") or "").strip(),
        }
        journaled(ack, {"declare": declare}, ctx, request)

    @app.view("post_update")
    def update_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], request: BoltRequest
    ) -> None:
        text = selected(view["state"]["values"], "text") or ""
        meta = _metadata(view.get("private_metadata"))
        ctx = Context(
            actor=body["user"]["id"], channel=meta.get("channel"), incident_id=meta["incident"]
        )
        journaled(ack, {"text": f"update {text}"}, ctx, request)

    # --- the Events API (issue 17): bolt acknowledges these when the listener returns, so
    # each only queues its work (the Home tab's pool, the incident's lane) ---

    @app.event("app_home_opened", matchers=[home_tab_opened])
    def home_opened(event: dict[str, Any]) -> None:
        if home is not None:
            home.opened(event["user"])

    @app.event("app_home_opened")
    def other_tab_opened() -> None:
        """The Messages or About tab: nothing to publish."""

    @app.action(DECLARE_ACTION)
    def declare_from_home(ack: Ack, body: dict[str, Any]) -> None:
        """The Home tab's *Declare an incident*: the start form, as a bare `/incident` opens."""
        ack()
        open_view(body["trigger_id"], start_modal(handler.render, bot.catalog.all(), ""))

    @app.event("member_joined_channel")
    def member_joined(
        ack: Ack,
        body: dict[str, Any],
        event: dict[str, Any],
        context: BoltContext,
        request: BoltRequest,
    ) -> None:
        """Whoever joins an open incident's channel is offered the catch-up, privately (an
        ephemeral message): a journaled `catchup` in the incident's lane, so it shows the
        record as of the commands before it. Not the bot itself, not the declarer (invited
        as the channel opened)."""
        user, channel = event.get("user"), event.get("channel")
        if not isinstance(user, str) or not isinstance(channel, str) or user == context.bot_user_id:
            return
        incident = bot.service.incident_for_channel(channel)
        if incident is None or incident.is_closed or user == incident.declared_by:
            return
        event_id = body.get("event_id")
        delivery = f"evt:{event_id}" if isinstance(event_id, str) and event_id else None
        journaled(ack, {"text": "catchup"}, Context(actor=user, channel=channel), request, delivery)

    return app


def _delivery(request: BoltRequest) -> str | None:
    """Slack's identity of this delivery: the request signature (HTTP) or the envelope id
    (Socket Mode). The same delivery twice is a replay or a retry, never a new request."""
    for header, prefix in (("x-slack-signature", "sig"), (ENVELOPE_HEADER, "env")):
        values = request.headers.get(header) or []
        if values and values[0]:
            return f"{prefix}:{values[0]}"
    return None


def home_tab_opened(event: dict[str, Any]) -> bool:
    """`app_home_opened` for the Home tab (not Messages or About) of a person."""
    return event.get("tab") == "home" and isinstance(event.get("user"), str)


def _button_context(body: dict[str, Any], incident_id: str) -> Context:
    channel = (body.get("channel") or {}).get("id")
    return Context(
        actor=body["user"]["id"],
        channel=channel,
        incident_id=int(incident_id),
        reply_url=body.get("response_url"),
    )


def _metadata(text: str | None) -> dict[str, Any]:
    """A form's private_metadata: `{"incident": 7, "channel": "C…"}` (older forms: `7`)."""
    data = json.loads(text or "null")
    return data if isinstance(data, dict) else {"incident": int(data)}
