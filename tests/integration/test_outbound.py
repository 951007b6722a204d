"""Pages and events out, through the real core and HTTP receivers on loopback: PagerDuty's
Events API v2 (trigger, acknowledge, resolve) and signed event webhooks, from the outbox."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from bot.bootstrap import build, slack_channel_url
from bot.clock import utc_now
from bot.config import Settings
from bot.dispatch import Context
from bot.events import OutboundFailed
from bot.outbound import sign
from bot.outbox import lane_of
from bot.reminders import run_until
from bot.runbook import shipped_runbooks_dir
from tests.alerting import NOTIFY_SECRET
from tests.conftest import START, RecordingChat
from tests.receivers import Receiver

ROUTING_KEY = "R0123456789abcdef0123456789abcdef"


@pytest.fixture
def pagerduty():
    with Receiver(pagerduty=True) as receiver:
        yield receiver


@pytest.fixture
def webhook():
    with Receiver() as receiver:
        yield receiver


def make(tmp_path, clock, pagerduty, webhook, runbooks=None, drill=False):
    settings = Settings.of(
        db=tmp_path / "bot.db",
        runbooks=runbooks or shipped_runbooks_dir(),
        postmortems=tmp_path / "postmortems",
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_url=pagerduty.url,
        notify_urls=webhook.url,
        notify_secret=NOTIFY_SECRET,
    )
    chat = RecordingChat()
    return build(settings, clock, chat, drill=drill, channel_url=slack_channel_url), chat


@pytest.fixture
def core(tmp_path, clock, pagerduty, webhook):
    bot, chat = make(tmp_path, clock, pagerduty, webhook)
    yield bot, chat
    bot.close()


def type_(bot, text: str, user: str = "U1", channel: str = "C0001") -> None:
    bot.handler.handle(text, Context(user, channel))


def test_an_incidents_life_pages_and_tells_every_lifecycle_event(core, pagerduty, webhook):
    bot, chat = core
    type_(bot, "start service-outage sev1 Checkout is failing", channel="C0")
    (trigger,) = pagerduty.taken()
    page = trigger.json
    assert page["routing_key"] == ROUTING_KEY
    assert (page["event_action"], page["dedup_key"]) == ("trigger", "INC-1")
    assert page["payload"]["summary"] == "Checkout is failing"
    assert page["payload"]["severity"] == "critical"
    assert page["payload"]["source"] == "incident-bot"
    assert page["links"] == [
        {"href": "https://slack.com/app_redirect?channel=C0001", "text": "INC-1 channel in Slack"}
    ]
    assert [r.json["type"] for r in webhook.taken()] == ["declared", "role", "phase"]

    type_(bot, "sev sev3")  # re-trigger with the new severity
    type_(bot, "handoff commander <@U2>")
    type_(bot, "accept", user="U2")  # the lead role taken: acknowledged
    type_(bot, "next")
    type_(bot, "mitigated", user="U2")
    type_(bot, "resolved", user="U2")
    type_(bot, "close", user="U2")
    pages = [
        (r.json["event_action"], r.json["payload"]["severity"] if "payload" in r.json else None)
        for r in pagerduty.taken()
    ]
    assert pages == [
        ("trigger", "critical"),
        ("trigger", "warning"),
        ("acknowledge", None),
        ("resolve", None),  # closing a resolved incident sends no second resolve
    ]
    assert all(r.json["dedup_key"] == "INC-1" for r in pagerduty.taken())
    told = webhook.wait_for(10)
    assert [r.json["type"] for r in told] == [
        "declared",
        "role",
        "phase",
        "severity",
        "role",
        "phase",
        "mitigated",
        "resolved",
        "closed",
        "postmortem",
    ]
    severity = told[3].json
    assert severity["data"]["severity"] == "sev3" and severity["data"]["previous"] == "sev1"
    assert severity["actor"] == "U1"
    assert severity["incident"]["id"] == "INC-1" and severity["incident"]["severity"] == "sev3"
    assert told[-1].json["data"]["path"].endswith("INC-1.md")
    assert told[-2].json["incident"]["closed_at"] is not None
    ids = [r.json["id"] for r in told]
    assert len(set(ids)) == len(ids)  # an id per event: receivers dedupe by it
    for request in told:
        assert request.signed_with(NOTIFY_SECRET)
        assert request.headers["x-incident-bot-event"] == request.json["id"]
        assert request.headers["content-type"] == "application/json"


def test_the_signature_is_the_hmac_of_the_exact_body():
    body = b'{"id": "e1", "type": "declared"}'
    expected = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign("k", body) == expected
    assert sign("k", body + b" ") != expected


def test_secrets_are_added_when_sending_never_kept_with_the_rows(core, pagerduty, webhook):
    bot, _ = core
    type_(bot, "start service-outage sev2 Disk filling", channel="C0")
    rows = bot.store._db.rows("SELECT body FROM outbox WHERE kind IN ('page', 'webhook')")
    assert rows
    assert all(ROUTING_KEY not in r["body"] and NOTIFY_SECRET not in r["body"] for r in rows)


def test_closing_an_incident_that_was_never_resolved_resolves_the_page(core, pagerduty):
    bot, _ = core
    type_(bot, "start service-outage sev4 False alarm", channel="C0")
    type_(bot, "close")
    actions = [
        (r.json["event_action"], r.json.get("payload", {}).get("severity"))
        for r in pagerduty.taken()
    ]
    assert actions == [("trigger", "info"), ("resolve", None)]


def test_a_private_incident_pages_and_tells_without_its_title_or_channel(core, pagerduty, webhook):
    bot, _ = core
    type_(bot, "start security-incident sev2 Leaked key for payments", channel="C0")
    (trigger,) = pagerduty.taken()
    assert trigger.json["payload"]["summary"] == "INC-1 (private incident)"
    assert "Leaked" not in trigger.body.decode()
    for request in webhook.taken():
        assert request.json["incident"]["title"] is None
        assert request.json["incident"]["channel"] is None
        assert "Leaked" not in request.body.decode()


def test_a_failing_receiver_is_retried_and_said_once_in_the_channel(core, pagerduty, webhook):
    bot, chat = core
    pagerduty.fail(503, 0)  # PagerDuty away, then a dropped connection, then back
    type_(bot, "start service-outage sev1 Checkout is failing", channel="C0")
    assert pagerduty.taken() == []
    said = [t for c, t in chat.posts if "PagerDuty could not be told" in t]
    assert said == [
        ":warning: PagerDuty could not be told about INC-1 (HTTP 503: Event object is invalid; "
        "Length of 'routing_key' is incorrect); the bot keeps trying for up to an hour. "
        "This is said once."
    ]
    assert [r.json["type"] for r in webhook.taken()] == ["declared", "role", "phase"]  # not held
    outbox = bot.handler.outbox
    lane = lane_of(1, 0, "pagerduty")
    for seconds in (2, 6):  # each retry when its backoff has passed
        outbox.wall = lambda s=seconds: utc_now() + timedelta(seconds=s)
        outbox.step(lane, bot.handler)
    (trigger,) = pagerduty.wait_for(1)
    assert trigger.json["event_action"] == "trigger"
    assert len([t for c, t in chat.posts if "could not be told" in t]) == 1  # said once
    (failed,) = bot.store.events(1, kinds=("outbound_failed",))
    assert failed.payload == OutboundFailed("PagerDuty", failed.payload.error, retrying=True)


def test_a_refused_event_is_not_retried_and_the_channel_is_told(core, pagerduty, webhook):
    bot, chat = core
    webhook.fail(400)
    type_(bot, "start service-outage sev1 Checkout is failing", channel="C0")
    said = [t for c, t in chat.posts if "could not be told" in t]
    assert len(said) == 1
    assert "127.0.0.1 could not be told about INC-1 (HTTP 400" in said[0]
    assert "it is not sent again" in said[0]
    assert "/hook" not in said[0]  # a URL's path or query may hold a secret: only the host
    states = bot.store._db.rows("SELECT state FROM outbox WHERE kind = 'webhook' ORDER BY id")
    assert [s["state"] for s in states] == ["failed", "sent", "sent"]  # the lane went on


def test_an_escalation_that_raises_the_severity_re_triggers_the_page(
    tmp_path, clock, pagerduty, webhook, drill_catalog
):
    bot, _ = make(tmp_path, clock, pagerduty, webhook, runbooks=drill_catalog.folder)
    try:
        type_(bot, "start drill sev3 Slow checkout", channel="C0")
        run_until(bot.reminders, clock, START + timedelta(minutes=31))  # phase one overran
        bot.handler.outbox.deliver_now(bot.handler)
        severities = [r.json["payload"]["severity"] for r in pagerduty.taken()]
        assert severities == ["warning", "critical"]
        escalated = [r.json for r in webhook.taken() if r.json["type"] == "severity"]
        assert [(e["actor"], e["data"]["severity"]) for e in escalated] == [("bot", "sev1")]
    finally:
        bot.close()


def test_drills_never_page_or_send(tmp_path, clock, pagerduty, webhook):
    bot, chat = make(tmp_path, clock, pagerduty, webhook, drill=True)
    try:
        type_(bot, "start service-outage sev1 Rehearsal", channel="C0")
        type_(bot, "resolved")
        assert chat.posts  # the drill ran
        assert pagerduty.requests == [] and webhook.requests == []
    finally:
        bot.close()
