"""The review people write, end to end through Slack: signed commands and the review form
into the real bolt app, the review file read back from disk."""

from __future__ import annotations

import io
import json
from pathlib import Path

from bot.console.demo import run_demo
from tests.e2e.conftest import Harness, declare
from tests.slackreq import slash_body, view_submission_body


def _review_file(slack: Harness, name: str = "INC-1.md") -> Path:
    return slack.running.bot.settings.postmortems / name


def _rebuild(slack: Harness, channel: str) -> str:
    """`/incident postmortem`; returns its private answer once the file is written."""
    return slack.answer(slack.command("postmortem", user="U3", channel=channel))


def _open_review_form(slack: Harness, channel: str, trigger: str) -> dict:
    body = slash_body(
        "review",
        user_id="U3",
        channel_id=channel,
        trigger_id=trigger,
        response_url=slack.fake.response_url(trigger),
    )
    assert slack.send(body) == 200
    (opened,) = slack.fake.wait_for("views.open", lambda c: c.args["trigger_id"] == trigger)
    return opened.args["view"]


def _initial(view: dict, block_id: str) -> str | None:
    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
    return block["element"].get("initial_value")


def test_review_commands_and_the_review_form_land_in_the_review(slack: Harness):
    channel = declare(slack)
    slack.command("assign tech-lead <@U2|ben>", channel=channel)
    for text, needle in (
        ("update Rolling back the release", "Rolling back"),
        ("mitigated", "*Mitigated*"),
        ("resolved", "*Resolved*"),
        ("trigger Release 42 halved the pool", "Trigger recorded"),
        ("detection The 502 alert paged on-call", "Detection recorded"),
        ("resolution Rolled back, then pinned the pool size", "Resolution recorded"),
        ("why Pods crash-looped waiting for connections", "Why #1"),
        ("why The pool was half its usual size", "Why #2"),
        ("factor tooling No alert on pool saturation", "Contributing factor (Tooling)"),
        ("factor 法 Config review skips library defaults", "Contributing factor (Process)"),
        ("lesson well The rollback was rehearsed", "Lesson (went well)"),
        (
            "action Pin the pool size <@U2|ben> due 2026-01-22 p1 <https://tracker.example.com/OPS-1>",
            "Follow-up #1 (p1)",
        ),
        ("close", "INC-1 closed"),
        # the review meeting, days later: review material is still taken after close
        ("why Library defaults changed between versions", "Why #3"),
        ("lesson lucky Traffic was at its lowest", "Lesson (got lucky)"),
    ):
        slack.command(text, user="U3" if text != "close" else "U1", channel=channel)
        slack.posted(channel, needle)

    # the review form, prefilled from the record; saving it replaces what it holds
    view = _open_review_form(slack, channel, "trig-review")
    assert view["callback_id"] == "review_form"
    assert _initial(view, "whys") == (
        "Pods crash-looped waiting for connections\n"
        "The pool was half its usual size\n"
        "Library defaults changed between versions"
    )
    assert _initial(view, "factor_process") == "Config review skips library defaults"
    assert _initial(view, "trigger") == "Release 42 halved the pool"
    values = {
        block["block_id"]: {"value": _initial(view, block["block_id"])}
        for block in view["blocks"]
        if block["type"] == "input"
    }
    values["whys"] = {"value": "Checkout pods crash-looped\nThe pool was half its usual size"}
    values["lesson_wrong"] = {"value": "Pool metrics were not on the dashboard"}
    values["summary"] = {"value": "Checkout failed for 50 minutes."}
    submit = view_submission_body(
        "review_form", values, user_id="U3", private_metadata=view["private_metadata"]
    )
    assert slack.send(submit) == 200
    slack.posted(channel, "edited the review in the form: Summary, 5 Whys, Lessons learned.")

    assert "Postmortem written" in _rebuild(slack, channel)
    review = _review_file(slack).read_text(encoding="utf-8")
    for expected in (
        "## Summary\n\nCheckout failed for 50 minutes.",
        "## Trigger\n\nRelease 42 halved the pool",
        "## Detection\n\nThe 502 alert paged on-call",
        "## Resolution\n\nRolled back, then pinned the pool size",
        "1. Checkout pods crash-looped\n2. The pool was half its usual size\n3. _✏️",
        "| Tooling (machines, monitoring, automation) | No alert on pool saturation |",
        "| Process (runbook, change control, review) | Config review skips library defaults |",
        "- The rollback was rehearsed",
        "- Pool metrics were not on the dashboard",
        "- Traffic was at its lowest",
        "| 1 | p1 | Pin the pool size | @U2 | 2026-01-22 | <https://tracker.example.com/OPS-1> | open |",
    ):
        assert expected in review, expected
    assert "Library defaults changed between versions" not in review  # removed in the form
    assert "type `/incident accept`" not in review and "Next: fix the cause" not in review
    refused = [
        c for c in slack.fake.calls if c.response is not None and c.response.get("ok") is False
    ]
    assert refused == [], refused  # the form passed the fake's Block Kit rules


def test_an_edited_review_survives_a_rebuild_and_the_new_one_is_written_beside_it(
    slack: Harness,
):
    channel = declare(slack)
    slack.command("close", channel=channel)
    slack.fake.wait_for("files.completeUploadExternal")
    path = _review_file(slack)
    edited = path.read_text(encoding="utf-8").replace(
        "## Summary\n", "## Summary\n\nWritten by hand at the review meeting.\n"
    )
    path.write_text(edited, encoding="utf-8")

    slack.command("cause A pool default changed", user="U1", channel=channel)
    slack.posted(channel, "Cause recorded")
    answer = _rebuild(slack, channel)
    beside = _review_file(slack, "INC-1.rebuilt.md")
    assert f"Postmortem written: {beside}" in answer
    assert f"{path} was edited since the bot wrote it, so it was kept as it is" in answer
    assert path.read_text(encoding="utf-8") == edited  # people's words are still there
    assert "A pool default changed" in beside.read_text(encoding="utf-8")
    (summary,) = slack.posted(channel, f"File: `{beside}`")
    assert "was edited since the bot wrote it" in summary
    uploads = slack.fake.wait_for("files.completeUploadExternal", count=2)
    assert len(uploads) == 2  # the rebuilt file was shared too

    # the file beside it is the bot's own: the next rebuild replaces it, nothing piles up
    _rebuild(slack, channel)
    assert sorted(p.name for p in path.parent.glob("INC-1*")) == [
        "INC-1.md",
        "INC-1.png",  # the chart is the record's picture: redrawn, never edited by people
        "INC-1.rebuilt.md",
    ]
    assert path.read_text(encoding="utf-8") == edited


def test_the_demo_never_touches_live_incidents_or_their_reviews(slack: Harness):
    channel = declare(slack)
    slack.command("close", channel=channel)
    slack.fake.wait_for("files.completeUploadExternal")
    live = _review_file(slack)
    before = live.read_bytes()
    store = slack.running.bot.store
    incidents = [(i.id, i.title) for i in store.incidents(include_closed=True)]
    events = len(store.events(1))

    demo = run_demo(slack.running.bot.settings, io.StringIO())  # same folders, same settings

    assert demo.review == live.parent / "drills" / "INC-1.md" and demo.review.exists()
    assert live.read_bytes() == before
    assert [(i.id, i.title) for i in store.incidents(include_closed=True)] == incidents
    assert len(store.events(1)) == events
    assert store.postmortem(1)["path"] == str(live)


def test_the_review_form_outside_an_incident_channel_says_where_to_go(slack: Harness):
    body = slash_body(
        "review", user_id="U1", channel_id="C0", response_url=slack.fake.response_url("here")
    )
    assert slack.send(body) == 200
    assert "not an incident channel" in slack.answer("here")
    assert slack.fake.calls_to("views.open") == []


def test_a_forged_review_form_is_acknowledged_and_changes_nothing(slack: Harness):
    channel = declare(slack)
    slack.posted(channel, "Phase 1/3")
    events = len(slack.running.bot.store.events(1))
    for metadata in ("", "not json", '["x"]', '{"incident": "one"}', '{"channel": "C1"}'):
        forged = view_submission_body(
            "review_form", {"whys": {"value": "Because"}}, private_metadata=metadata
        )
        assert slack.send(forged) == 200
    real = view_submission_body(
        "review_form",
        {"whys": {"value": "Because"}},
        private_metadata=json.dumps({"incident": 1, "channel": ["C1"]}),
    )
    assert slack.send(real) == 200  # a channel that is not a channel id is dropped
    slack.posted(channel, "edited the review in the form: 5 Whys.")
    assert len(slack.running.bot.store.events(1)) == events + 1
