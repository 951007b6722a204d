"""The Slack app end to end: signed requests into the real bolt app over HTTP,
Web API calls out through the real slack_sdk WebClient to a fake Slack on loopback."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from bot.reminders import run_until
from tests.conftest import START
from tests.e2e.conftest import Harness, declare
from tests.slackreq import block_action_body, post, slash_body, view_submission_body


def test_whole_incident_from_start_to_close(slack: Harness, tmp_path: Path):
    fake = slack.fake
    channel = declare(slack)
    assert fake.channels[channel] == "inc-20260115-1-checkout-is-failing"
    assert "U1" in fake.members(channel)
    assert "INC-1" in fake.topic(channel) and "Checkout is failing" in fake.topic(channel)
    slack.posted(channel, "INC-1 declared")
    slack.posted("CANNOUNCE", "INC-1 (sev1) declared")
    (pin,) = fake.wait_for("pins.add")
    plan_ts = pin.args["timestamp"]
    plan = next(m for m in fake.messages(channel) if m["ts"] == plan_ts)
    assert "1.1" in json.dumps(plan["blocks"]) and "Response lead" in json.dumps(plan["blocks"])

    # roles: assign sends the responsibilities by direct message
    slack.command("assign tech-lead <@U2|ben>", channel=channel)
    slack.posted(channel, "Tech lead: <@U2>")
    slack.posted("DU2", "Diagnose the fault")
    slack.plan_updated("<@U2>")

    # handoff: pending until the new holder clicks Accept, then a briefing
    slack.command("update Rolling back the release", channel=channel)
    slack.posted(channel, "Rolling back the release")
    slack.command("handoff commander <@U3|ivy>", channel=channel)
    (ask,) = slack.posted(channel, "type `/incident accept`")
    request = fake.calls_to("chat.postMessage")[-1]
    assert request.args["blocks"][-1]["elements"][0]["action_id"] == "accept_handoff"
    accept = block_action_body(
        "accept_handoff",
        "1",
        user_id="U3",
        channel_id=channel,
        response_url=fake.response_url("accept"),
    )
    assert slack.send(accept) == 200
    slack.posted(channel, "<@U3> now holds *Response lead (incident commander)*")
    (brief,) = slack.posted("DU3", "You now hold")
    assert "Last update: Rolling back the release" in brief

    # steps: by command and from the plan's menu
    slack.command("done 1.1", channel=channel)
    slack.plan_updated(":white_check_mark: 1.1")
    pick = block_action_body(
        "step_done",
        "1:1.2",
        user_id="U2",
        channel_id=channel,
        action_type="static_select",
        response_url=fake.response_url("pick"),
    )
    assert slack.send(pick) == 200
    slack.posted(channel, "Step 1.2 done by <@U2>")

    # reminders at the phase cadence, in the channel, with owners mentioned
    run_until(slack.running.bot.reminders, slack.clock, START + timedelta(minutes=15))
    (reminder,) = slack.posted(channel, ":alarm_clock:")
    assert "1.3" in reminder and "<@U2>" in reminder
    run_until(slack.running.bot.reminders, slack.clock, START + timedelta(minutes=31))
    slack.posted(channel, "Step 1.3 is due now")
    slack.plan_updated(":red_circle: 1.3")  # the plan shows what became overdue

    # the "Post update" button opens a modal; submitting it posts the update
    button = block_action_body(
        "post_update", "1", user_id="U3", channel_id=channel, trigger_id="trig-update"
    )
    assert slack.send(button) == 200
    (opened,) = fake.wait_for("views.open")
    assert opened.args["trigger_id"] == "trig-update"
    submit = view_submission_body(
        "post_update",
        {"text": {"value": "Error rate back to normal"}},
        user_id="U3",
        private_metadata="1",
    )
    assert slack.send(submit) == 200
    slack.posted(channel, "Error rate back to normal")

    for verb, needle in (
        ("action Pin the pool size <@U2> due 2026-01-22", "Follow-up #1"),
        ("next", "Phase 2/3"),
        ("mitigated", "*Mitigated*"),
        ("resolved", "*Resolved*"),
        ("cause A pool default changed", "Cause recorded"),
        ("close", "INC-1 closed"),
    ):
        slack.command(verb, user="U3", channel=channel)
        slack.posted(channel, needle)
    slack.posted(channel, "Postmortem for INC-1")
    (upload,) = fake.wait_for("files.completeUploadExternal")
    assert upload.args["channel_id"] == channel
    uploaded, chart = sorted(fake.uploads.values(), key=lambda u: u["filename"])
    assert (uploaded["filename"], chart["filename"]) == ("INC-1.md", "INC-1.png")
    assert chart["channel"] == channel and chart["content"].startswith(b"\x89PNG")
    written = (tmp_path / "postmortems" / "INC-1.md").read_text(encoding="utf-8")
    assert uploaded["content"].decode("utf-8") == written
    for section in (
        "# Postmortem INC-1: Checkout is failing",
        "## Plan versus actual",
        "| Response lead (incident commander) | @U3 |",
        "Rolling back the release",
        "A pool default changed",
        "| 1 | — | Pin the pool size | @U2 | 2026-01-22 | — | open |",
        "| Step | Owner | Deadline | Done | Result |",
    ):
        assert section in written, section
    slack.posted("CANNOUNCE", "INC-1 closed")

    refused = [c for c in fake.calls if c.response is not None and c.response.get("ok") is False]
    assert refused == [], refused  # every Web API call passed the fake's Slack rules


def test_taken_channel_name_gets_a_suffix(slack: Harness):
    slack.fake.precreate("inc-20260115-1-checkout-is-failing")
    channel = _declare_with_collision(slack)
    assert slack.fake.channels[channel] == "inc-20260115-1-checkout-is-failing-2"


def _declare_with_collision(slack: Harness) -> str:
    slack.answer(slack.command("start service-outage sev1 Checkout is failing"))
    created = slack.fake.wait_for("conversations.create", count=2)
    assert created[0].response["error"] == "name_taken"
    return created[1].response["channel"]["id"]


def test_bare_command_opens_the_start_modal_and_submitting_declares(slack: Harness):
    body = slash_body(
        "",
        user_id="U1",
        channel_id="C0",
        trigger_id="trig-1",
        response_url=slack.fake.response_url("bare"),
    )
    assert slack.send(body) == 200
    (opened,) = slack.fake.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == "start_incident"
    values = {
        "runbook": {
            "value": {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "x"},
                    "value": "security-incident",
                },
            }
        },
        "title": {"value": "Leaked API key"},
    }
    submit = view_submission_body("start_incident", values, user_id="U1", private_metadata="C0")
    assert slack.send(submit) == 200
    (created,) = slack.fake.wait_for("conversations.create")
    assert created.args["name"].endswith("-leaked-api-key")


def test_bad_commands_get_a_private_answer_with_the_right_form(slack: Harness):
    assert "/incident help" in slack.answer(slack.command("frobnicate"))
    assert "not an incident channel" in slack.answer(slack.command("status"))
    assert "`/incident assign ROLE @user`" in slack.answer(slack.command("assign commander"))
    assert "Did you mean `service-outage`" in slack.answer(slack.command("start servce-outage x"))
    assert slack.fake.calls_to("chat.postMessage") == []


def test_user_text_cannot_ping_the_channel_or_hide_a_link(slack: Harness):
    channel = declare(slack)
    # as Slack sends it with should_escape: @channel, a labelled link, an escaped &, a mention
    slack.command(
        "note <!channel> look <https://evil.example|your bank> R&amp;D <@U2|ben>", channel=channel
    )
    (text,) = slack.posted(channel, "look")
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "your bank (https://evil.example)" in text and "<https://evil" not in text
    assert "R&amp;D" in text and "&amp;amp;" not in text
    assert "<@U2|ben>" in text  # a real mention stays a mention


def test_incident_titles_are_escaped_in_the_list_too(slack: Harness):
    declare(slack, "start service-outage sev2 <!everyone> checkout")
    listing = slack.answer(slack.command("list"))
    assert "&lt;!everyone&gt; checkout" in listing and "<!everyone>" not in listing
    assert "<#C" in listing  # the channel is a link


def test_plain_at_names_are_not_slack_users(slack: Harness):
    channel = declare(slack)
    answer = slack.answer(slack.command("assign tech-lead @ben", channel=channel))
    assert "`@ben` is not a person" in answer
    assert slack.running.bot.store.current_holders(1) == {"commander": "U1"}


def test_a_channel_slack_refuses_leaves_no_incident_behind(slack: Harness):
    slack.fake.fail("conversations.create", error="restricted_action")
    answer = slack.answer(slack.command("start service-outage sev1 Checkout is failing"))
    assert "could not open a channel" in answer and "restricted_action" in answer
    assert slack.running.bot.store.incidents() == []  # nothing left active


def test_a_slack_failure_after_saving_is_reported_not_swallowed(slack: Harness):
    channel = declare(slack)
    slack.fake.fail("chat.postMessage", error="is_archived")
    answer = slack.answer(slack.command("mitigated", channel=channel))
    assert "Saved, but I could not post it in the channel" in answer and "is_archived" in answer
    assert slack.running.bot.store.incident(1).status == "mitigated"


@pytest.mark.parametrize("case", ["unsigned", "wrong secret", "stale"])
def test_unverified_requests_are_refused_with_no_side_effect(slack: Harness, case: str):
    body = slash_body(
        "start service-outage sev1 Should not happen", response_url=slack.fake.response_url("x")
    )
    if case == "unsigned":
        status, _, _ = post(
            slack.events_url, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
    elif case == "wrong secret":
        status = slack.send(body, secret="not-the-secret")
    else:
        status = slack.send(body, timestamp=int(time.time()) - 60 * 10)
    assert status == 401
    assert slack.fake.calls_to("conversations.create") == []
    assert slack.running.bot.store.incidents(include_closed=True) == []


def test_healthz_reports_database_and_scheduler(slack: Harness):
    with urllib.request.urlopen(slack.running.url + "/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"ok": True, "db": "ok", "scheduler": "running"}
