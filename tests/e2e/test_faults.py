"""Faults from Slack and from people: rate limits, server errors, repeats, retries."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import Harness, declare
from tests.slackreq import block_action_body, post, sign, slash_body

SETUP_METHODS = [
    "conversations.create",
    "conversations.invite",
    "conversations.setTopic",
    "chat.postMessage",
    "pins.add",
    "conversations.open",
]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_incident_opens_and_every_message_arrives_when_slack_first_refuses(
    slack: Harness, status: int
):
    for method in SETUP_METHODS:
        slack.fake.fail(method, status=status, times=1, retry_after=0)
    channel = declare(slack)
    for needle in ("INC-1 declared", "Response lead (incident commander): <@U1>", "Phase 1/3"):
        slack.posted(channel, needle)
    slack.fake.wait_for("pins.add", lambda c: c.status == 200)
    assert "U1" in slack.fake.members(channel)
    assert "INC-1" in slack.fake.topic(channel)
    failed = [c for c in slack.fake.calls if c.status == status]
    assert {c.method for c in failed} >= {"conversations.create", "chat.postMessage"}


def test_a_courtesy_call_that_keeps_failing_is_said_once_and_does_not_stop_the_incident(
    slack: Harness,
):
    slack.fake.fail("pins.add", error="not_pinnable", times=5)
    slack.fake.fail("conversations.setTopic", error="too_long", times=5)
    channel = declare(slack)
    (notice,) = slack.posted(channel, "conversations.setTopic (too_long)")
    assert notice.startswith(":warning: Some setup steps failed")
    slack.command("done 1.1", channel=channel)
    slack.posted(channel, "Step 1.1 done")
    (pin_notice,) = slack.posted(channel, "pins.add (not_pinnable)")
    assert pin_notice


def test_a_double_clicked_button_moves_one_phase_only(slack: Harness):
    channel = declare(slack)
    for name in ("a", "b"):
        body = block_action_body(
            "next_phase",
            "1",
            user_id="U1",
            channel_id=channel,
            response_url=slack.fake.response_url(name),
        )
        assert slack.send(body) == 200
    slack.posted(channel, "Phase 2/3")
    assert "arrived twice" in slack.answer("b") or "arrived twice" in slack.answer("a")
    assert slack.running.bot.store.incident(1).phase_index == 1


def test_a_repeated_start_declares_one_incident(slack: Harness):
    first = slack.command("start service-outage sev1 Checkout is failing")
    second = slack.command("start service-outage sev1 Checkout is failing")
    answers = {slack.answer(first), slack.answer(second)}
    assert any("arrived twice" in a for a in answers)
    assert len(slack.running.bot.store.incidents()) == 1


def test_asking_for_status_twice_answers_twice(slack: Harness):
    channel = declare(slack)
    one, two = slack.command("status", channel=channel), slack.command("status", channel=channel)
    assert "INC-1" in slack.answer(one) and "INC-1" in slack.answer(two)


def test_a_retried_delivery_is_acknowledged_and_ignored(slack: Harness):
    body = slash_body(
        "start service-outage sev1 Once only", response_url=slack.fake.response_url("r")
    )
    headers = sign("test-signing-secret", body, int(time.time())) | {
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }
    status, response_headers, _ = post(slack.events_url, body, headers)
    assert status == 200 and response_headers.get("X-Slack-No-Retry") == "1"
    assert slack.fake.calls_to("conversations.create") == []
    assert slack.running.bot.store.incidents() == []
