"""The App Home tab and the catch-up, through the real bolt app over HTTP (Events API)."""

from __future__ import annotations

import json
import sqlite3
import time

from tests.e2e.conftest import SECRET, Harness, declare
from tests.slackreq import (
    block_action_body,
    event_body,
    home_opened,
    member_joined,
    post,
    sign,
    view_submission_body,
)


def _texts(view: dict) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def _drain(slack: Harness) -> None:
    """Let every request already received run to its end: listeners, commands, deliveries,
    Home tabs (the pools are stopped; the fixture stops the rest afterwards)."""
    running = slack.running
    running.pools[0].shutdown(wait=True)  # listeners: everything received is journaled
    assert running.commands.wait_idle(10)
    assert running.deliveries.wait_idle(10)
    for pool in running.pools[1:]:
        pool.shutdown(wait=True)


def test_opening_the_home_tab_publishes_incidents_roles_and_follow_ups(slack: Harness):
    channel = declare(slack)  # U1 declares: the lead
    slack.command("assign tech-lead <@U2>", channel=channel)
    slack.posted(channel, "Tech lead: <@U2>")
    slack.command("action Pin the pool size <@U2> due 2026-01-20 p1", channel=channel)
    slack.posted(channel, "Follow-up #1")
    assert slack.send(event_body(home_opened("U2"), event_id="EvHome1")) == 200
    (published,) = slack.fake.wait_for("views.publish", lambda c: c.args["user_id"] == "U2")
    view = published.args["view"]
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    text = _texts(view)
    assert "*INC-1* sev1 · Checkout is failing" in text
    assert "lead <@U1>" in text and f"<#{channel}>" in text
    assert "You: Tech lead" in text
    assert "INC-1 #1 p1 Pin the pool size — due 2026-01-20" in text
    assert "Recently closed" in text and "No incident closed yet." in text
    (button,) = [b for b in view["blocks"] if b["type"] == "actions"][0]["elements"]
    assert (button["action_id"], button["text"]["text"]) == (
        "declare_from_home",
        "Declare an incident",
    )
    assert slack.fake.homes["U2"]["blocks"] == view["blocks"]

    # the lead sees no follow-up of their own, and no role marked "You" but their own
    assert slack.send(event_body(home_opened("U1"), event_id="EvHome2")) == 200
    (lead,) = slack.fake.wait_for("views.publish", lambda c: c.args["user_id"] == "U1")
    assert "You: Response lead (incident commander)" in _texts(lead.args["view"])
    assert "No open follow-ups of yours." in _texts(lead.args["view"])


def test_a_closed_incident_shows_under_recently_closed_with_its_review(slack: Harness):
    channel = declare(slack)
    slack.command("close", channel=channel)
    slack.fake.wait_for("files.completeUploadExternal")
    assert slack.send(event_body(home_opened("U3"), event_id="EvHome3")) == 200
    (published,) = slack.fake.wait_for("views.publish")
    text = _texts(published.args["view"])
    assert "No open incidents." in text
    assert "*INC-1* sev1 · Checkout is failing — closed 2026-01-15 02:00 after 0s" in text
    assert "review written 2026-01-15 02:00" in text and f"shared in <#{channel}>" in text


def test_the_declare_button_opens_the_start_form_and_declares(slack: Harness):
    click = block_action_body("declare_from_home", "declare", user_id="U4", channel_id="")
    assert slack.send(click) == 200
    (opened,) = slack.fake.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == "start_incident"
    values = {
        "runbook": {
            "value": {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "x"},
                    "value": "service-outage",
                },
            }
        },
        "title": {"value": "Declared from home"},
    }
    meta = opened.args["view"].get("private_metadata", "")  # no channel: from the Home tab
    assert slack.send(view_submission_body("start_incident", values, "U4", meta)) == 200
    (created,) = slack.fake.wait_for("conversations.create")
    assert created.args["name"].endswith("-declared-from-home")
    slack.fake.wait_for("conversations.invite", lambda c: c.args.get("users") == "U4")


def test_only_the_home_tab_publishes_and_slack_retries_are_ignored(slack: Harness):
    assert slack.send(event_body(home_opened("U5", tab="messages"), event_id="EvMsg")) == 200
    opened = event_body(home_opened("U6"), event_id="EvHome6")
    assert slack.send(opened) == 200
    slack.fake.wait_for("views.publish", lambda c: c.args["user_id"] == "U6")
    retry = sign(SECRET, opened, int(time.time())) | {"X-Slack-Retry-Num": "1"}
    status, headers, _ = post(slack.events_url, opened, retry)
    assert status == 200 and headers.get("X-Slack-No-Retry") == "1"
    _drain(slack)
    assert [c.args["user_id"] for c in slack.fake.calls_to("views.publish")] == ["U6"]


def test_catchup_by_command_is_private(slack: Harness):
    channel = declare(slack)
    slack.command("update Rolling back the deploy", channel=channel)
    slack.posted(channel, "Rolling back the deploy")
    answer = slack.answer(slack.command("catchup", user="U7", channel=channel))
    assert answer.startswith(":eyes: *Catching up on INC-1 Checkout is failing*")
    assert "Latest update (02:00, 0s ago, <@U1>): Rolling back the deploy" in answer
    assert not slack.fake.calls_to("chat.postEphemeral")
    posts = [c.args.get("text") or "" for c in slack.fake.calls_to("chat.postMessage")]
    assert not any("Catching up" in text for text in posts)  # nobody else saw it


def test_joining_the_channel_offers_the_catch_up_to_the_one_who_joined(slack: Harness, tmp_path):
    channel = declare(slack)
    slack.command("note Checked the dashboards", channel=channel)
    slack.posted(channel, "Checked the dashboards")
    # the bot itself and the declarer (invited as the channel opened) are not offered one
    assert slack.send(event_body(member_joined("UBOT", channel), event_id="EvJoinBot")) == 200
    assert slack.send(event_body(member_joined("U1", channel), event_id="EvJoinLead")) == 200
    assert slack.send(event_body(member_joined("U8", "C0"), event_id="EvJoinOther")) == 200
    joined = event_body(member_joined("U8", channel, inviter="U1"), event_id="EvJoin8")
    assert slack.send(joined) == 200
    assert slack.send(joined) == 200  # Slack sent the same event again: offered once
    (offer,) = slack.fake.wait_for("chat.postEphemeral")
    assert (offer.args["user"], offer.args["channel"]) == ("U8", channel)
    assert offer.args["text"].startswith(":eyes: *Catching up on INC-1 Checkout is failing*")
    assert ":memo: <@U1>: Checked the dashboards" in offer.args["text"]
    _drain(slack)
    assert len(slack.fake.calls_to("chat.postEphemeral")) == 1
    db = sqlite3.connect(tmp_path / "bot.db")
    try:
        journal = db.execute(
            "SELECT actor, channel, delivery FROM inbox WHERE payload LIKE '%catchup%'"
        ).fetchall()
    finally:
        db.close()
    assert journal == [("U8", channel, "evt:EvJoin8")]
