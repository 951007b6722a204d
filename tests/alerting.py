"""Alertmanager webhook payloads (version 4) as Alertmanager sends them, and a poster."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

TOKEN = "test-webhook-token-0123456789"
NOTIFY_SECRET = "test-notify-secret"
ROUTES = """
routes:
  - match: {alertname: CheckoutDown}
    match_re: {service: "checkout|payments"}
    runbook: service-outage
    severity: sev1
    title: "{{ commonLabels.service | upper }}: {{ commonAnnotations.summary }}"
    announce: CPAYMENTS
  - match: {team: security}
    runbook: security-incident
  - match_re: {severity: "critical|page"}
    runbook: service-outage
"""


def alert(
    fingerprint: str = "1a30ba71cca2921f",
    status: str = "firing",
    labels: dict[str, str] | None = None,
    summary: str = "Checkout answers 500 for 12% of requests",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "CheckoutDown",
            "service": "checkout",
            "severity": "critical",
            "instance": "checkout-7f9c:8080",
            **(labels or {}),
        },
        "annotations": {"summary": summary, "runbook_url": "https://wiki.example.com/checkout"},
        "startsAt": "2026-01-15T01:58:30.123Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-15T02:40:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up%3D%3D0&g0.tab=1",
        "fingerprint": fingerprint,
    }


def group(
    key: str = '{}/{severity="critical"}:{alertname="CheckoutDown"}',
    status: str = "firing",
    alerts: list[dict[str, Any]] | None = None,
    common: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    alerts = alerts if alerts is not None else [alert(status=status)]
    return {
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incident-bot",
        "groupLabels": {"alertname": "CheckoutDown"},
        "commonLabels": common
        if common is not None
        else {"alertname": "CheckoutDown", "service": "checkout", "severity": "critical"},
        "commonAnnotations": annotations
        if annotations is not None
        else {"summary": "Checkout answers 500 for 12% of requests"},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": alerts,
    }


def post_hook(
    base_url: str, body: bytes | dict[str, Any], token: str | None = TOKEN, scheme: str = "Bearer"
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    request = urllib.request.Request(
        base_url + "/hooks/alertmanager", data=data, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text or b"{}")
        except ValueError:
            return exc.code, {"raw": text.decode("latin-1")}
