"""Alerts in, pages and events out, end to end: Alertmanager's webhook through the bot's
real HTTP server, the bolt app against the fake Slack, PagerDuty and an event webhook as
receivers on loopback."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

from bot.clock import FakeClock
from bot.config import Settings
from bot.runbook import shipped_runbooks_dir
from bot.slack.server import start_bot
from tests.alerting import NOTIFY_SECRET, ROUTES, TOKEN, alert, group, post_hook
from tests.conftest import START
from tests.fakeslack import FakeSlack


def _inbox(harness) -> int:
    return harness.running.bot.store._db.rows("SELECT COUNT(*) AS n FROM inbox")[0]["n"]


def _created(harness) -> str:
    (created,) = harness.fake.wait_for("conversations.create", lambda c: c.status == 200)
    return created.response["channel"]["id"]


def test_a_firing_alert_opens_the_incident_pages_and_tells(alerting):
    status, answer = alerting.hook(group())
    assert (status, answer) == (202, {"status": "accepted", "incident": None})
    channel = _created(alerting)
    declared = alerting.posted(channel, "declared* by alertmanager")[0]
    assert "CHECKOUT: Checkout answers 500 for 12% of requests" in declared
    assert "Nobody holds *Response lead (incident commander)* yet" in declared
    (pinned,) = alerting.fake.wait_for("pins.add")
    plan = json.dumps(alerting.fake.messages(channel), ensure_ascii=False)
    assert "`service=checkout`" in plan and "`alertname=CheckoutDown`" in plan
    assert "Source: http://prometheus.example.com:9090/graph?g0.expr=up%3D%3D0&amp;g0.tab=1" in plan
    # the route's announce channel; nobody invited (an alert is not a person)
    alerting.posted("CPAYMENTS", "INC-1 (sev1) declared by alertmanager")
    assert alerting.fake.calls_to("conversations.invite") == []
    (trigger,) = alerting.pagerduty.wait_for(1, event_action="trigger")
    assert trigger.json["dedup_key"] == "INC-1"
    assert trigger.json["payload"]["severity"] == "critical"
    assert (
        trigger.json["payload"]["summary"] == "CHECKOUT: Checkout answers 500 for 12% of requests"
    )
    assert trigger.json["links"][0]["href"] == f"https://slack.com/app_redirect?channel={channel}"
    assert trigger.json["payload"]["custom_details"]["alert_labels"]["service"] == "checkout"
    (told,) = alerting.webhook.wait_for(1, type="declared")
    assert told.signed_with(NOTIFY_SECRET)
    assert told.json["incident"]["channel"] == channel
    assert told.json["incident"]["declared_by"] == "alertmanager"


def test_repeats_and_resolution_are_notes_and_the_lead_is_taken_in_slack(alerting):
    alerting.hook(group())
    channel = _created(alerting)
    alerting.fake.wait_for("pins.add")
    more = group(alerts=[alert(), alert(fingerprint="2b", labels={"instance": "checkout-2"})])
    assert alerting.hook(more) == (202, {"status": "accepted", "incident": "INC-1"})
    alerting.posted(channel, "still firing, 2 alerts (1 new)")
    alerting.command("assign commander <@U2>", user="U2", channel=channel)
    (ack,) = alerting.pagerduty.wait_for(1, event_action="acknowledge")
    assert ack.json["dedup_key"] == "INC-1"
    assert alerting.hook(group(status="resolved"))[0] == 202
    resolved = alerting.posted(channel, "alert group is *resolved*")[0]
    assert "say so: `/incident mitigated`" in resolved
    alerting.command("resolved", user="U2", channel=channel)
    alerting.pagerduty.wait_for(1, event_action="resolve")
    assert len(alerting.fake.calls_to("conversations.create")) == 1  # one channel throughout
    assert [i.id for i in alerting.incidents()] == [1]
    kinds = [r.json["type"] for r in alerting.webhook.wait_for(5)]
    assert kinds == ["declared", "phase", "role", "mitigated", "resolved"]  # no alert lines


def test_without_the_right_token_nothing_happens(alerting):
    for token, scheme in ((None, "Bearer"), ("wrong-token-0123456789", "Bearer"), (TOKEN, "Basic")):
        status, answer = post_hook(alerting.running.url, group(), token, scheme)
        assert status == 401
        assert "Authorization: Bearer" in answer["error"]
    assert _inbox(alerting) == 0
    assert alerting.incidents() == []
    assert alerting.fake.calls_to("conversations.create") == []


def test_an_unauthenticated_hook_is_refused_before_its_body_is_read(alerting):
    """A client that announces a big body and never sends it gets 401 at once."""
    host, port = alerting.running.server.server_address
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(
            b"POST /hooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n"
        )
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401")
    assert b'WWW-Authenticate: Bearer realm="hooks"' in answer


def test_malformed_and_oversized_bodies_are_refused_with_the_reason(alerting):
    status, answer = alerting.hook(b"{not json")
    assert status == 400 and answer["error"].startswith("the body is not JSON")
    status, answer = alerting.hook({**group(), "version": "3"})
    assert status == 400
    assert answer["error"] == (
        "not an Alertmanager webhook (version 4): version: '3' is not supported; send version \"4\""
    )
    status, answer = alerting.hook(b"\xff\xfe")
    assert status == 400 and answer["error"].startswith("the body is not JSON")
    status, answer = alerting.hook(b"[" * 1_000_000)  # nesting for ever: the parser stops
    assert status == 400 and "recursion limit exceeded" in answer["error"]
    host, port = alerting.running.server.server_address
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(
            b"POST /hooks/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: 3000000\r\n\r\n"
        )
        assert conn.recv(4096).startswith(b"HTTP/1.1 413")
    assert _inbox(alerting) == 0
    assert alerting.incidents() == []


def test_an_alert_no_route_matches_is_answered_and_declares_nothing(alerting, caplog):
    quiet = group(
        key='{}:{alertname="DiskFull"}', common={"alertname": "DiskFull", "severity": "warning"}
    )
    with caplog.at_level("WARNING", logger="bot.hooks"):
        assert alerting.hook(quiet) == (202, {"status": "unrouted", "incident": None})
    assert "matches no route" in caplog.text and "alertname=DiskFull" in caplog.text
    assert alerting.incidents() == []
    assert _inbox(alerting) == 0


def test_two_deliveries_of_one_group_at_once_give_one_incident(alerting):
    """Not the same notification (that would be a duplicate): two of one group, racing."""
    first = group(alerts=[alert(fingerprint="one")])
    second = group(alerts=[alert(fingerprint="one"), alert(fingerprint="two")])
    start = threading.Barrier(2)
    answers: list = []

    def send(body: dict) -> None:
        start.wait()
        answers.append(alerting.hook(body))

    threads = [threading.Thread(target=send, args=(b,)) for b in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(a[0] for a in answers) == [202, 202]
    channel = _created(alerting)
    alerting.fake.wait_for("pins.add")
    alerting.posted(channel, "Alertmanager: still firing")  # the second is a line of the first
    assert [i.id for i in alerting.incidents()] == [1]
    assert alerting.running.bot.store.unfinished_requests() == []
    assert len(alerting.pagerduty.wait_for(1, event_action="trigger")) == 1


def test_hooks_are_off_without_a_token(slack):
    status, _ = post_hook(slack.running.url, group())
    assert status == 404


def test_in_socket_mode_the_port_serves_the_hooks_but_no_slack_events(tmp_path):
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        (tmp_path / "routes.yaml").write_text(ROUTES, encoding="utf-8")
        settings = Settings.of(
            db=tmp_path / "bot.db",
            runbooks=shipped_runbooks_dir(),
            postmortems=tmp_path / "pm",
            slack_bot_token="xoxb-test",
            slack_api_url=fake.url,
            webhook_token=TOKEN,
            routes=tmp_path / "routes.yaml",
        )
        running = start_bot(
            settings, clock=FakeClock(START), port=0, host="127.0.0.1", events_over_http=False
        )
        try:
            assert post_hook(running.url, group())[0] == 202
            fake.wait_for("conversations.create")
            assert post_hook(running.url, b"{}", TOKEN)[0] == 400
            try:
                urllib.request.urlopen(
                    urllib.request.Request(running.url + "/slack/events", data=b"x", method="POST"),
                    timeout=5,
                )
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
            else:
                raise AssertionError("/slack/events answered in Socket Mode")
        finally:
            running.stop()
