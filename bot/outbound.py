"""Pages and events out: PagerDuty's Events API v2 and signed event webhooks.

What an incident does is told to the tools around it, from the outbox (so it
survives restarts and never blocks the incident):

- PagerDuty (`INCIDENT_BOT_PAGERDUTY_ROUTING_KEY`): a `trigger` when the
  incident is declared (once its channel is open, so the page links to it),
  again when the severity changes, `acknowledge` when someone takes the lead
  role, `resolve` when it is resolved (or closed without being resolved).
  `dedup_key` is the incident's id (`INC-7`), so PagerDuty folds repeats into
  one alert; sev1→critical, sev2→error, sev3→warning, sev4→info.
- Event webhooks (`INCIDENT_BOT_NOTIFY_URLS`): every lifecycle event
  (declared, severity, role, phase, mitigated, resolved, closed, postmortem)
  is POSTed as JSON to each URL, signed `X-Incident-Bot-Signature:
  sha256=<hex HMAC-SHA256 of the body with INCIDENT_BOT_NOTIFY_SECRET>`. Each
  body carries an `id`: delivery is at least once, so receivers dedupe by it.

Each target has its own lane per incident (bot/outbox.py): order is kept per
incident and target, and a receiver that is down delays only itself. A 2xx is
delivered; 408, 429, 5xx and connection failures are retried with backoff (up
to an hour); any other answer (400: PagerDuty refused the event) is not retried.
The first failure of a target is said once in the incident's channel.
Secrets (the routing key, the signing secret) are added when sending and never
stored with the rows. Drills and the demo never page or send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.alerts import alert_info
from bot.clock import iso
from bot.events import (
    Closed,
    Declared,
    HandoffAccepted,
    Mitigated,
    Payload,
    PhaseStarted,
    Resolved,
    RoleAssigned,
    SeverityChanged,
    to_data,
)
from bot.model import Event, Incident, Outgoing
from bot.outbox import Outbox
from bot.store import Store

log = logging.getLogger(__name__)

PAGERDUTY = "pagerduty"  # the lane (and target) of pages
SIGNATURE_HEADER = "X-Incident-Bot-Signature"
EVENT_HEADER = "X-Incident-Bot-Event"  # the event id, also in the body
TIMEOUT = 10.0  # seconds per request: a receiver that hangs holds only its own lane
MAX_ANSWER = 4096  # bytes of a receiver's answer read (for the error message)
SEVERITY = {"sev1": "critical", "sev2": "error", "sev3": "warning", "sev4": "info"}
USER_AGENT = "incident-bot"

# the lifecycle events webhooks receive, by payload type: the `type` field of the body
EVENT_TYPES: dict[type[Payload], str] = {
    Declared: "declared",
    SeverityChanged: "severity",
    RoleAssigned: "role",
    HandoffAccepted: "role",
    PhaseStarted: "phase",
    Mitigated: "mitigated",
    Resolved: "resolved",
    Closed: "closed",
}
POSTMORTEM = "postmortem"


class OutboundError(Exception):
    """A target did not take a page or an event; `transient`: it may if tried again."""

    def __init__(self, target: str, reason: str, transient: bool) -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason
        self.transient = transient


# (url, body, headers, timeout) -> (HTTP status, the start of the answer)
Post = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer like any other (refused): a POST is never sent on elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST with the standard library; connection failures raise OSError."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return int(answer.status), answer.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(MAX_ANSWER) if exc.fp is not None else b""


def sign(secret: str, body: bytes) -> str:
    """The X-Incident-Bot-Signature value of a body: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def host_of(url: str) -> str:
    """How a webhook is named to people: its host, never its path or query (secrets)."""
    return urlsplit(url).hostname or "a webhook"


@dataclass(frozen=True)
class OutboundSettings:
    pagerduty_key: str | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    notify_urls: tuple[str, ...] = ()
    notify_secret: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.pagerduty_key or self.notify_urls)


class Outbound:
    """Queues pages and events with the change that causes them, and sends them later."""

    def __init__(
        self,
        settings: OutboundSettings,
        store: Store,
        outbox: Outbox,
        channel_url: Callable[[str], str | None] = lambda channel: None,
        post: Post = http_post,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        """`channel_url`: a link people can open to the incident's channel (Slack's)."""
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.channel_url = channel_url
        self.post = post
        self.new_id = new_id

    # --- queueing, inside the change's transaction ------------------------------------

    def changed(self, incident: Incident, events: list[Event]) -> None:
        """Queue what the events mean for PagerDuty and the webhooks (lifecycle events only)."""
        if not self.settings.enabled:
            return
        for event in events:
            payload = event.payload
            kind = EVENT_TYPES.get(type(payload))
            if kind is None:
                continue
            if self.settings.pagerduty_key:
                self._page(incident, payload)
            data = {"event": event.id, **to_data(payload)}
            self._notify(incident, kind, iso(event.at), event.actor, data)

    def review_published(self, incident: Incident, path: str, at: str) -> None:
        """The review was (re)written and shared: a `postmortem` event for the webhooks."""
        if self.settings.notify_urls:
            self._notify(incident, POSTMORTEM, at, "bot", {"path": path})

    def _page(self, incident: Incident, payload: Payload) -> None:
        lead = incident.runbook.roles[0].id
        ongoing = incident.status in ("active", "mitigated")
        if isinstance(payload, Declared | SeverityChanged) and ongoing:
            self._put_page(incident, self._trigger(incident))
        elif isinstance(payload, RoleAssigned | HandoffAccepted) and ongoing:
            declaring = isinstance(payload, RoleAssigned) and payload.declarer
            if payload.role == lead and not declaring:
                self._put_page(incident, {"event_action": "acknowledge", "dedup_key": incident.ref})
        elif isinstance(payload, Resolved) or (
            isinstance(payload, Closed) and payload.previous != "resolved"
        ):
            self._put_page(incident, {"event_action": "resolve", "dedup_key": incident.ref})

    def _trigger(self, incident: Incident) -> dict[str, Any]:
        private = incident.runbook.private
        url = self.channel_url(incident.channel) if incident.channel else None
        details: dict[str, Any] = {
            "incident": incident.ref,
            "severity": incident.severity,
            "status": incident.status,
            "runbook": incident.runbook_id,
            "declared_by": incident.declared_by,
        }
        links = [{"href": url, "text": f"{incident.ref} channel in Slack"}] if url else []
        alert = alert_info(self.store.alert_group(incident.id))
        if alert is not None and not private:
            details["alert_labels"] = dict(alert.labels)
            details["alert_annotations"] = dict(alert.annotations)
            links += [{"href": link, "text": "Alert source"} for link in alert.links[:3]]
        summary = f"{incident.ref} (private incident)" if private else incident.title
        body: dict[str, Any] = {
            "event_action": "trigger",
            "dedup_key": incident.ref,
            "payload": {
                "summary": summary[:1024],
                "source": USER_AGENT,
                "severity": SEVERITY.get(incident.severity, "error"),
                "component": incident.runbook_id,
                "class": "incident",
                "custom_details": details,
            },
            "client": USER_AGENT,
            "links": links,
        }
        if url:
            body["client_url"] = url
        return body

    def _put_page(self, incident: Incident, event: dict[str, Any]) -> None:
        self.outbox.put(incident.id, "page", lane=PAGERDUTY, event=event)

    def _notify(
        self, incident: Incident, kind: str, at: str, actor: str, data: dict[str, Any]
    ) -> None:
        if not self.settings.notify_urls:
            return
        event_id = self.new_id()
        body = json.dumps(
            {
                "id": event_id,
                "type": kind,
                "at": at,
                "actor": actor,
                "incident": self._incident(incident),
                "data": data,
            },
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )
        for url in self.settings.notify_urls:  # one row per receiver: each keeps its own pace
            self.outbox.put(incident.id, "webhook", lane=url, url=url, id=event_id, body=body)

    def _incident(self, incident: Incident) -> dict[str, Any]:
        private = incident.runbook.private
        channel = incident.channel if not private else None
        return {
            "id": incident.ref,
            "number": incident.id,
            "title": None if private else incident.title,
            "private": private,
            "severity": incident.severity,
            "status": incident.status,
            "runbook": incident.runbook_id,
            "declared_by": incident.declared_by,
            "channel": channel,
            "channel_url": self.channel_url(channel) if channel else None,
            "started_at": _at(incident.started_at),
            "mitigated_at": _at(incident.mitigated_at),
            "resolved_at": _at(incident.resolved_at),
            "closed_at": _at(incident.closed_at),
        }

    # --- sending, from the outbox --------------------------------------------------------

    def target(self, row: Outgoing) -> str:
        """How the row's receiver is named to people."""
        return "PagerDuty" if row.kind == "page" else host_of(str(row.body.get("url") or ""))

    def send(self, row: Outgoing) -> None:
        """Deliver one row; raises OutboundError when the receiver did not take it."""
        if row.kind == "page":
            key = self.settings.pagerduty_key
            if not key:  # paging was switched off since the row was queued
                log.warning(
                    "a page for INC-%s was dropped: no PagerDuty routing key", row.incident_id
                )
                return
            url = self.settings.pagerduty_url
            body = json.dumps({"routing_key": key, **row.body["event"]}).encode("utf-8")
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        else:
            secret = self.settings.notify_secret
            if not secret:
                raise OutboundError(
                    self.target(row), "INCIDENT_BOT_NOTIFY_SECRET is not set", False
                )
            url = str(row.body["url"])
            body = str(row.body["body"]).encode("utf-8")
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: sign(secret, body),
                EVENT_HEADER: str(row.body.get("id") or ""),
            }
        target = self.target(row)
        try:
            status, answer = self.post(url, body, headers, TIMEOUT)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, no such host
            raise OutboundError(target, f"{type(exc).__name__}: {exc}"[:200], True) from None
        if 200 <= status < 300:
            return
        said = _said(answer)
        reason = f"HTTP {status}" + (f": {said}" if said else "")
        raise OutboundError(target, reason, status in (408, 425, 429) or status >= 500)


def _at(moment: Any) -> str | None:
    return iso(moment) if moment is not None else None


def _said(answer: bytes) -> str:
    """The gist of an error answer: PagerDuty's `message` and `errors`, else its first line."""
    text = answer.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        parts = [str(data.get("message") or "")]
        errors = data.get("errors")
        if isinstance(errors, list):
            parts += [str(e) for e in errors[:3]]
        text = "; ".join(p for p in parts if p)
    return " ".join(text.split())[:200]
