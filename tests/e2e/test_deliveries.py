"""Each Slack delivery runs once, journaled first, and only in the incident it names."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from bot.clock import utc_now
from tests.e2e.conftest import SECRET, Harness, declare
from tests.slackreq import block_action_body, post, sign, slash_body, view_submission_body


def test_a_signed_request_replayed_ten_seconds_later_is_ignored(slack: Harness):
    channel = declare(slack)
    wall = [utc_now()]
    slack.running.bot.handler.wall = lambda: wall[0]
    body = slash_body(
        "note replayed once", channel_id=channel, response_url=slack.fake.response_url("n")
    )
    headers = sign(SECRET, body, int(time.time()))
    assert post(slack.events_url, body, headers)[0] == 200
    slack.posted(channel, "replayed once")
    wall[0] += timedelta(seconds=10)  # past the 5-second double-click window
    assert post(slack.events_url, body, headers)[0] == 200  # the same bytes, the same signature
    slack.command("note marker", channel=channel)  # same lane: runs after the replay would
    slack.posted(channel, "marker")
    notes = [e.text for e in slack.running.bot.store.events(1, kinds=("note",))]
    assert notes == ["replayed once", "marker"]
    assert slack.fake.calls_to("response_url:n") == []  # ignored, not even "arrived twice"


def test_the_first_request_while_slack_is_away_is_journaled_and_carried_out(slack: Harness):
    channel = declare(slack)
    # Slack goes away after start-up: auth.test would fail, posting fails for a while
    slack.fake.fail("auth.test", status=503, times=50)
    slack.fake.fail("chat.postMessage", status=503, times=5)
    body = slash_body("update the gateway is back", channel_id=channel)
    status, _, _ = post(slack.events_url, body, sign(SECRET, body, int(time.time())))
    assert status == 200  # acknowledged: journaled, no auth.test on the request's path
    slack.fake.wait_for(
        "chat.postMessage",
        lambda c: c.status == 200 and "the gateway is back" in (c.args.get("text") or ""),
        timeout=20,
    )
    assert [e.text for e in slack.running.bot.store.events(1, kinds=("update",))] == [
        "the gateway is back"
    ]
    assert not [c for c in slack.fake.calls_to("auth.test") if c.status != 200]


def test_a_button_used_outside_its_incidents_channel_is_refused(slack: Harness):
    channel = declare(slack)
    body = block_action_body(
        "next_phase", "1", channel_id="C0", response_url=slack.fake.response_url("x")
    )
    assert post(slack.events_url, body, sign(SECRET, body, int(time.time())))[0] == 200
    assert f"That button or form belongs to INC-1; use it in <#{channel}>" in slack.answer("x")
    assert slack.running.bot.store.incident(1).phase_index == 0
    assert slack.running.bot.store.unfinished_requests() == []


def test_an_update_form_must_come_back_to_its_incidents_channel(slack: Harness):
    channel = declare(slack)
    values = {"text": {"value": "from elsewhere"}}
    forged = json.dumps({"incident": 1, "channel": "C0"})
    body = view_submission_body("post_update", values, private_metadata=forged)
    assert post(slack.events_url, body, sign(SECRET, body, int(time.time())))[0] == 200
    (refusal,) = slack.fake.wait_for("chat.postEphemeral")  # a form has no response_url
    assert (
        refusal.args["channel"] == "C0"
        and "That button or form belongs to INC-1" in refusal.args["text"]
    )
    genuine = json.dumps({"incident": 1, "channel": channel})
    body = view_submission_body("post_update", values, private_metadata=genuine)
    assert post(slack.events_url, body, sign(SECRET, body, int(time.time())))[0] == 200
    slack.posted(channel, "from elsewhere")
    assert [e.text for e in slack.running.bot.store.events(1, kinds=("update",))] == [
        "from elsewhere"
    ]
