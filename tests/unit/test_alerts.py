"""Alertmanager's webhook payload (version 4): validation, and what an incident keeps of it."""

from __future__ import annotations

import json

import pytest

from bot.alerts import (
    MAX_KEPT_ALERTS,
    MAX_VALUE,
    PayloadError,
    alert_info,
    digest,
    fingerprints,
    parse,
)
from bot.hooks import MAX_JOURNALED_ALERTS, journaled
from tests.alerting import alert, group


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_a_version_4_notification_is_read_with_its_group_and_alerts():
    parsed = parse(body(group()))
    assert parsed.groupKey == '{}/{severity="critical"}:{alertname="CheckoutDown"}'
    assert parsed.status == "firing"
    assert parsed.labels == {
        "alertname": "CheckoutDown",
        "service": "checkout",
        "severity": "critical",
    }
    assert parsed.commonAnnotations["summary"].startswith("Checkout answers 500")
    (only,) = parsed.alerts
    assert only.fingerprint == "1a30ba71cca2921f"
    assert only.generatorURL.startswith("http://prometheus.example.com:9090/graph")
    assert parsed.counts() == (1, 0)


def test_fields_alertmanager_or_grafana_add_are_ignored():
    data = group()
    data["orgId"] = 1
    data["alerts"][0]["silenceURL"] = "https://grafana.example.com/silence"
    data["alerts"][0]["values"] = {"B": 44.2}
    assert parse(body(data)).alerts[0].fingerprint == "1a30ba71cca2921f"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "the body is not a JSON object"),
        (body({**group(), "version": "3"}), "version: '3' is not supported; send version \"4\""),
        (body({k: v for k, v in group().items() if k != "groupKey"}), "groupKey: Field required"),
        (body({**group(), "status": "pending"}), "status: Input should be 'firing' or 'resolved'"),
        (body({**group(), "alerts": []}), "alerts: List should have at least 1 item"),
        (
            body({**group(), "alerts": [{**alert(), "labels": {"code": 500}}]}),
            "alerts[0].labels.code: Input should be a valid string",
        ),
        (
            body({**group(), "commonLabels": {f"l{i}": "x" for i in range(200)}}),
            "commonLabels: more than 128 entries",
        ),
        (body({**group(), "groupKey": "k" * 9000}), "groupKey: String should have at most"),
    ],
)
def test_what_is_not_alertmanagers_webhook_is_refused_with_the_reason(raw, reason):
    with pytest.raises(PayloadError) as refused:
        parse(raw)
    assert reason in str(refused.value)


def test_the_incident_keeps_a_bounded_digest_merged_by_fingerprint():
    many = [alert(fingerprint=f"fp{i}", summary="x" * 5000) for i in range(MAX_KEPT_ALERTS + 30)]
    first = digest(parse(body(group(alerts=many))))
    assert len(first["alerts"]) == MAX_KEPT_ALERTS
    assert len(first["alerts"][0]["annotations"]["summary"]) == MAX_VALUE
    assert len(first["seen"]) == MAX_KEPT_ALERTS + 30
    # the same alert resolved replaces its entry; a new one is added while there is room
    later = parse(body(group(alerts=[alert(fingerprint="fp0", status="resolved")])))
    merged = digest(later, first)
    assert len(merged["alerts"]) == MAX_KEPT_ALERTS
    assert merged["alerts"][0]["status"] == "resolved"
    assert fingerprints(later) == {"fp0"}


def test_the_plan_and_review_see_labels_annotations_and_only_web_links():
    data = group(
        alerts=[
            alert(fingerprint="a"),
            {**alert(fingerprint="b"), "generatorURL": "javascript:alert(1)"},
            {**alert(fingerprint="c", status="resolved"), "generatorURL": "http://x/<script>"},
        ]
    )
    row = {"group_key": data["groupKey"], "status": "firing", "received": 2}
    info = alert_info({**row, "summary": digest(parse(body(data)))})
    assert info is not None
    assert ("service", "checkout") in info.labels
    assert info.annotations == (("summary", "Checkout answers 500 for 12% of requests"),)
    assert info.links == ("http://prometheus.example.com:9090/graph?g0.expr=up%3D%3D0&g0.tab=1",)
    assert (info.firing, info.resolved, info.received) == (2, 1, 2)
    assert alert_info(None) is None


def test_the_journal_keeps_a_bounded_copy_that_reads_back_the_same():
    many = [
        alert(fingerprint=f"fp{i}", summary="y" * 3000) for i in range(MAX_JOURNALED_ALERTS + 5)
    ]
    kept = journaled(parse(body(group(alerts=many))))
    assert len(kept["alerts"]) == MAX_JOURNALED_ALERTS
    assert kept["truncatedAlerts"] == 5
    assert len(kept["alerts"][0]["annotations"]["summary"]) == MAX_VALUE
    again = parse(body(kept))  # a replay validates what was journaled
    assert again.groupKey == group()["groupKey"]
