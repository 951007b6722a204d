"""Alertmanager's notifications in: checked, routed, journaled, then answered.

`AlertIntake.receive` is what `POST /hooks/alertmanager` does with a body that
came with the right bearer token (bot/slack/http.py checks it before reading
the body): parse and validate it (bot/alerts.py; 400 with the reason), find the
open incident of its alert group or the route that would declare one
(bot/routes.py; no route and no open incident: 202, logged, nothing else), and
journal it like a Slack request, in the lane of that incident if there is one,
*before* answering 202. The commands lane then carries it out
(`CommandHandler._execute`, see `dispatch._alert`): declare, or a timeline
line. A crash after the 202 loses nothing: unfinished journal rows are run at
the next start, as Slack's are.

The route is decided here and journaled with the alert, so a replay declares
exactly what was decided when the notification was accepted, even if the
routes file changed in between; whether the group already has an open
incident is decided again inside the transaction that would declare
(`dispatch._alert`), so two deliveries of one group at once give one incident.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.alerts import ACTOR, MAX_VALUE, AlertGroup, PayloadError, parse
from bot.dispatch import Context, Received
from bot.lanes import Lane
from bot.routes import Routes
from bot.store import Store

log = logging.getLogger(__name__)

MAX_JOURNALED_ALERTS = 1000  # alerts of one notification kept in the journal (the rest counted)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class Journals(Protocol):
    """What the intake needs of the command handler (`CommandHandler.receive`)."""

    def receive(
        self,
        payload: dict[str, Any],
        ctx: Context,
        delivery: str | None = None,
        repeat_key: str | None = None,
    ) -> Received: ...


class AlertIntake:
    def __init__(
        self,
        handler: Journals,  # the command handler: journals and names the lane
        store: Store,
        routes: Routes,
        wake: Callable[[Lane], None],
    ) -> None:
        self.handler = handler
        self.store = store
        self.routes = routes
        self.wake = wake

    def receive(self, body: bytes) -> Answer:
        try:
            group = parse(body)
        except PayloadError as exc:
            log.warning("an Alertmanager notification was refused: %s", exc)
            return Answer(400, {"error": str(exc)})
        key = group.groupKey
        try:
            open_id = self.store.open_alert_incident(key)
        except Exception:
            log.exception("the alert group could not be looked up")
            return Answer(503, {"error": "the bot cannot read its database; try again"})
        decision = self.routes.decide(group)
        if open_id is None and decision is None:
            log.warning(
                "alert group %s (%s) matches no route in %s: no incident",
                _short(key),
                _labels(group),
                self.routes.path,
            )
            return Answer(202, {"status": "unrouted", "incident": None})
        if open_id is None and group.status == "resolved":
            log.info("alert group %s resolved with no open incident: nothing to do", _short(key))
            return Answer(202, {"status": "resolved", "incident": None})
        alert = journaled(group)
        payload = {"alert": alert, "route": decision.as_dict() if decision else None}
        try:
            received = self.handler.receive(
                payload, Context(ACTOR, None, open_id), repeat_key=_identity(alert)
            )
        except Exception:
            log.exception("an Alertmanager notification could not be journaled")
            return Answer(503, {"error": "the bot could not record this; send it again"})
        if received.lane is None:  # the same notification moments ago (Alertmanager in HA)
            return Answer(202, {"status": "duplicate", "incident": _ref(open_id)})
        self.wake(received.lane)
        return Answer(202, {"status": "accepted", "incident": _ref(open_id)})


def journaled(group: AlertGroup) -> dict[str, Any]:
    """The notification as the journal keeps it: at most MAX_JOURNALED_ALERTS alerts, each
    value cut to MAX_VALUE characters (a replay needs no more)."""
    data = group.model_dump(mode="json")
    alerts = data["alerts"]
    if len(alerts) > MAX_JOURNALED_ALERTS:
        data["truncatedAlerts"] += len(alerts) - MAX_JOURNALED_ALERTS
        data["alerts"] = alerts = alerts[:MAX_JOURNALED_ALERTS]
    for alert in alerts:
        for field in ("labels", "annotations"):
            alert[field] = {k: v[:MAX_VALUE] for k, v in alert[field].items()}
    return data


def _identity(alert: dict[str, Any]) -> str:
    """The same notification, whoever sent it (two Alertmanagers of a cluster) and whether
    or not its incident was declared in between: the digest of what it says."""
    text = json.dumps(alert, sort_keys=True, ensure_ascii=False)
    return f"{ACTOR}|sha256:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def _ref(incident_id: int | None) -> str | None:
    return f"INC-{incident_id}" if incident_id is not None else None


def _short(key: str) -> str:
    return key if len(key) <= 120 else key[:119] + "…"


def _labels(group: AlertGroup) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sorted(group.labels.items()))
    return text if len(text) <= 200 else text[:199] + "…"
