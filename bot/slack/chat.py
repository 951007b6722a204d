"""ChatPort on the Slack Web API (slack_sdk's WebClient).

Essential calls (create the channel, post) raise; courtesy calls (invite,
topic, pin) are logged and never stop an incident from opening.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.chat import Button, channel_name
from bot.messages import Renderer
from bot.model import Incident
from bot.plan import PlanView
from bot.render import plan_text
from bot.slack.blocks import message_payloads, plan_blocks
from bot.slack.pacing import Pacer
from bot.slack.text import escape, is_slack_user, one_line

log = logging.getLogger(__name__)
RESPONSE_URL_TIMEOUT = 10  # seconds; a response_url that hangs must not hold a lane long
# errors Slack answers with HTTP 200 that mean "later", not "never"
_TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


class SlackChat:
    def __init__(
        self,
        client: WebClient,
        language: str,
        announce_channel: str | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.client = client
        self.announce_channel = announce_channel
        self.render = Renderer(language, mention=self.mention, escape=self.escape)
        self.pacer = pacer or Pacer()

    # --- ChatPort -----------------------------------------------------------

    def open_channel(self, incident: Incident) -> str:
        channel = self._create_channel(channel_name(incident), incident.runbook.private)
        topic = one_line(f"{incident.ref} · {incident.severity} · {incident.title}", 250)
        failed = [
            # an alert declared it (not a person): nobody to invite; the announcement calls
            self._courtesy("conversations_invite", channel=channel, users=incident.declared_by)
            if is_slack_user(incident.declared_by)
            else None,
            self._courtesy("conversations_setTopic", channel=channel, topic=topic),
        ]
        self._mention_failures(channel, failed)
        return channel

    def post(self, channel: str, text: str, buttons: tuple[Button, ...] = ()) -> None:
        for payload in message_payloads(text, buttons):
            self.pacer.wait(channel)
            self.client.chat_postMessage(channel=channel, unfurl_links=False, **payload)

    def notify(self, user: str, text: str) -> None:
        opened = self.client.conversations_open(users=user)
        self.post(opened["channel"]["id"], text)

    def announce(self, text: str) -> None:
        if self.announce_channel:
            self.pacer.wait(self.announce_channel)
            self._courtesy("chat_postMessage", channel=self.announce_channel, text=text)

    def reply(
        self, user: str, channel: str | None, text: str, reply_url: str | None = None
    ) -> None:
        """Through the request's response_url when there is one; when that refuses (it
        expires after 30 minutes, a proxy may block it), ephemerally in the channel, and
        failing that, by direct message."""
        if reply_url and self._respond(reply_url, text):
            return
        if channel is None:
            self.notify(user, text)
            return
        try:
            for payload in message_payloads(text):
                self.client.chat_postEphemeral(channel=channel, user=user, **payload)
        except SlackApiError:  # e.g. the bot is not in that channel: say it directly instead
            self.notify(user, text)

    def is_transient(self, error: Exception) -> bool:
        if isinstance(error, SlackApiError):
            status = getattr(error.response, "status_code", 200)
            return status == 429 or status >= 500 or error.response.get("error") in _TRANSIENT
        return isinstance(error, OSError)  # no connection, reset, timeout

    def upload(self, channel: str, files: list[Path], title: str) -> None:
        uploads = [{"file": str(p), "filename": p.name, "title": title} for p in files]
        self.client.files_upload_v2(channel=channel, file_uploads=uploads)

    def show_plan(self, plan: PlanView) -> str | None:
        channel = plan.incident.channel
        assert channel
        posted = self.client.chat_postMessage(
            channel=channel,
            text=plan_text(self.render, plan)[:3900],
            blocks=plan_blocks(self.render, plan),
        )
        ts = str(posted["ts"])
        self._mention_failures(channel, [self._courtesy("pins_add", channel=channel, timestamp=ts)])
        return ts

    def refresh_plan(self, plan: PlanView) -> None:
        incident = plan.incident
        if incident.channel and incident.plan_ref:
            self.client.chat_update(
                channel=incident.channel,
                ts=incident.plan_ref,
                text=plan_text(self.render, plan)[:3900],
                blocks=plan_blocks(self.render, plan),
            )

    def mention(self, user: str | None) -> str:
        """A person as a mention; the bot's own identities (`bot`, `alertmanager`) by name."""
        if not user:
            return "—"
        return f"<@{user}>" if is_slack_user(user) else escape(user)

    def escape(self, text: str) -> str:
        return escape(text)

    def channel_link(self, channel: str) -> str:
        return f"<#{channel}>"

    # --- helpers ------------------------------------------------------------

    def _respond(self, url: str, text: str) -> bool:
        try:
            webhook = WebhookClient(url, timeout=RESPONSE_URL_TIMEOUT, retry_handlers=[])
            answer = webhook.send(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # refused, unreachable: answer another way
            log.warning("the reply could not use its response_url (%s)", type(exc).__name__)
            return False
        if answer.status_code != 200:
            log.warning("the reply could not use its response_url (HTTP %s)", answer.status_code)
            return False
        return True

    def _create_channel(self, name: str, private: bool = False) -> str:
        """conversations.create (private when the runbook says so), adding -2, -3 … while the
        name is taken."""
        for attempt in range(1, 50):
            candidate = name if attempt == 1 else f"{name[: 80 - len(str(attempt)) - 1]}-{attempt}"
            try:
                created = (
                    self.client.conversations_create(name=candidate, is_private=True)
                    if private
                    else self.client.conversations_create(name=candidate)
                )
                return str(created["channel"]["id"])
            except SlackApiError as exc:
                if exc.response.get("error") != "name_taken":
                    raise
        raise RuntimeError(f"no free channel name like {name}")

    def _courtesy(self, method: str, **args: Any) -> str | None:
        """A call the incident can do without; returns what failed, or None."""
        try:
            getattr(self.client, method)(**args)
            return None
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
        except OSError as exc:  # connection trouble that outlived the retries
            error = type(exc).__name__
        log.warning("%s failed: %s", method, error)
        return f"{method.replace('_', '.', 1)} ({error})"

    def _mention_failures(self, channel: str, failed: list[str | None]) -> None:
        """Say once in the channel what could not be set up, so people know to do it by hand."""
        problems = [f for f in failed if f]
        if problems:
            self.post(channel, self.render("reply.setup_failed", problems=", ".join(problems)))
