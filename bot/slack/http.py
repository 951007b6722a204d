"""What the bot's HTTP port answers: `GET /healthz`, signed `POST /slack/events`, and
`POST /hooks/alertmanager` when INCIDENT_BOT_WEBHOOK_TOKEN is set.

Verify first, then parse: a Slack request's signature (HMAC-SHA256 of
`v0:{timestamp}:{body}` with the signing secret, within 5 minutes) is checked
on the raw bytes before bolt or anything else reads them. What fails is
answered 401 at once and never logged with its body. In Socket Mode there is
no signing secret, so `/slack/events` is not served at all (404): the port
answers health checks (and the hooks) only.

A hook must bring `Authorization: Bearer <token>`, compared in constant time
with the headers alone, before its body is read: without it, 401 and nothing
else happens. What an accepted hook does is bot/hooks.py's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Protocol

from slack_bolt import App, BoltRequest

from bot.alerts import MAX_BODY as MAX_HOOK_BODY
from bot.hooks import AlertIntake
from bot.http_server import Request, Response, Route

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
ALERTMANAGER_PATH = "/hooks/alertmanager"
MAX_BODY = 1_000_000  # Slack's payloads are far smaller; a form can hold 3,000-character texts
SIGNATURE_WINDOW = 300  # seconds: Slack's replay window for a signed request


class Served(Protocol):
    """What the HTTP port serves: a bolt app and its health. (Who goes first is counted
    by the server around each request: `BoundedHTTPServer(busy=RequestsFirst.request)`.)"""

    app: App
    events_over_http: bool

    def healthy(self) -> dict[str, str]: ...


def slack_routes(
    served: Served,
    signing_secret: str | None,
    wall: Callable[[], float] = time.time,
    alerts: AlertIntake | None = None,
    webhook_token: str | None = None,
) -> dict[tuple[str, str], Route]:
    routes = {("GET", HEALTH_PATH): Route(lambda request: _health(served))}
    if alerts is not None and webhook_token:
        intake = alerts
        token = webhook_token.encode("utf-8")
        routes[("POST", ALERTMANAGER_PATH)] = Route(
            handle=lambda request: _alertmanager(intake, request),
            max_body=MAX_HOOK_BODY,
            check=lambda request: _bearer(request, token),
        )
    if served.events_over_http and signing_secret:
        secret = signing_secret.encode("utf-8")
        routes[("POST", EVENTS_PATH)] = Route(
            handle=lambda request: _events(served, request),
            max_body=MAX_BODY,
            check=lambda request: _signed_headers(request, wall()),
            verify=lambda request: _signature(request, secret, wall()),
        )
    return routes


def _health(served: Served) -> Response:
    status = served.healthy()
    ok = status.get("db") == "ok" and status.get("scheduler") == "running"
    return Response.json(200 if ok else 503, json.dumps({"ok": ok, **status}))


def _refused(why: str) -> Response:
    return Response.json(401, json.dumps({"error": why}))


def _bearer(request: Request, token: bytes) -> Response | None:
    """Before the body is read: `Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = (request.header("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), token):
        return None
    return Response(
        401,
        json.dumps({"error": "send Authorization: Bearer <INCIDENT_BOT_WEBHOOK_TOKEN>"}).encode(),
        [("Content-Type", "application/json"), ("WWW-Authenticate", 'Bearer realm="hooks"')],
    )


def _alertmanager(intake: AlertIntake, request: Request) -> Response:
    answer = intake.receive(request.body)
    return Response.json(answer.status, json.dumps(answer.body))


def _signed_headers(request: Request, now: float) -> Response | None:
    """Before the body is read: a signature and a fresh numeric timestamp must be there."""
    timestamp = request.header("x-slack-request-timestamp") or ""
    signature = request.header("x-slack-signature") or ""
    if not timestamp.isdigit() or len(timestamp) > 12 or not signature.startswith("v0="):
        return _refused("not signed")
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW:
        return _refused("stale or future timestamp")
    return None


def _signature(request: Request, secret: bytes, now: float) -> Response | None:
    refused = _signed_headers(request, now)
    if refused is not None:
        return refused
    timestamp = request.header("x-slack-request-timestamp") or ""
    base = b"v0:" + timestamp.encode("ascii") + b":" + request.body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.header("x-slack-signature") or ""):
        return _refused("bad signature")
    return None


def _events(served: Served, request: Request) -> Response:
    if request.header("x-slack-retry-num"):
        # Slack re-sends what it thinks timed out; the first delivery is already journaled
        # and running, so acknowledge and do nothing
        return Response(200, headers=[("X-Slack-No-Retry", "1")])
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return Response.json(400, '{"error": "the body is not UTF-8"}')
    headers: dict[str, str | list[str]] = {k: [v] for k, v in request.headers.items()}
    answer = served.app.dispatch(
        BoltRequest(body=body, query=request.query, headers=headers)  # type: ignore[arg-type]
    )
    out = [(name, value) for name, values in answer.headers.items() for value in values]
    out = [(n, v) for n, v in out if n.lower() not in ("content-length", "connection")]
    payload = answer.body.encode("utf-8") if isinstance(answer.body, str) else b""
    return Response(answer.status, payload, out)
