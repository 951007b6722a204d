"""A corpus of bad `/incident` input sent through the real HTTP endpoint, as Slack sends it
(`should_escape: true`: mentions as `<@U2|ben>`, `&amp;` for &). Each refusal is answered
privately through the response_url with what was wrong, and nothing appears in a channel."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Harness, declare

INC = "incident"  # stands for the incident channel, which only exists once declared
ALL_STEPS = "Steps: 1.1, 1.2, 1.3, 1.4, 1.5, 2.1, 2.2, 2.3, 2.4, 3.1, 3.2, 3.3, 3.4."


@dataclass(frozen=True)
class Bad:
    text: str  # as Slack sends it
    expect: str  # in the private answer
    state: str = "none"  # none | active (INC-1 declared by U1) | closed (declared, then closed)
    channel: str = "C0"  # or INC
    user: str = "U1"


REFUSED = {
    # nothing usable
    "only invisible characters": Bad("\u200b\u202e", "`/incident help`"),
    "unknown verb": Bad("frobnicate the db", "Type `/incident help` for the forms."),
    "unknown verb that pings": Bad("<!here> help", "I don't know `&lt;!here&gt;`"),
    # start
    "start alone": Bad(
        "start", "Give a runbook and a title. Try: `/incident start RUNBOOK [SEV] TITLE…`"
    ),
    "start without title": Bad("start service-outage", "Give a runbook and a title"),
    "start sev without title": Bad("start service-outage sev1", "Give a runbook and a title"),
    "start sev9": Bad(
        "start service-outage sev9 Checkout",
        "`sev9` is not a severity; use one of sev1, sev2, sev3, sev4",
    ),
    "start unknown runbook": Bad(
        "start servce-outage sev1 R&amp;D is down",
        "There is no runbook `servce-outage`. Did you mean `service-outage`?",
    ),
    "start severity as runbook": Bad("start sev1 Checkout", "There is no runbook `sev1`."),
    # roles
    "assign without user": Bad(
        "assign commander",
        "Give a role and a person. Try: `/incident assign ROLE @user`",
        "active",
        INC,
    ),
    "assign three words": Bad(
        "assign tech-lead <@U2|ben> <@U3|ivy>", "Give a role and a person", "active", INC
    ),
    "assign plain @name": Bad(
        "assign tech-lead @ben", "`@ben` is not a person; mention them with @.", "active", INC
    ),
    "assign @channel": Bad(
        "assign tech-lead <!channel>", "`&lt;!channel&gt;` is not a person", "active", INC
    ),
    "handoff non-mention": Bad(
        "handoff commander ben",
        "`ben` is not a person; mention them with @. Try: `/incident handoff ROLE @user`",
        "active",
        INC,
    ),
    "unknown role": Bad(
        "assign comander <@U2|ben>",
        "There is no role `comander` in this runbook. Did you mean `commander`?",
        "active",
        INC,
    ),
    "unknown role, underscore": Bad(
        "handoff tech_lead <@U2|ben>", "Did you mean `tech-lead`?", "active", INC
    ),
    "assign to the holder": Bad(
        "assign commander <@U1|ana>",
        "<@U1> already holds *Response lead (incident commander)*. To give it to someone else: `/incident handoff commander @user`",
        "active",
        INC,
    ),
    "accept with nothing pending": Bad("accept", "Nobody is handing you a role", "active", INC),
    "accept please": Bad(
        "accept please", "`accept` takes nothing after it. Try: `/incident accept`", "active", INC
    ),
    # steps and phases
    "done without step": Bad(
        "done", "Give one step number. Try: `/incident done STEP`", "active", INC
    ),
    "done two steps": Bad("done 1.1 1.2", "Give one step number", "active", INC),
    "unknown step": Bad("done 9.9", "There is no step `9.9` in this runbook.", "active", INC),
    "skip without reason": Bad(
        "skip 1.2", "Say why the step is skipped. Try: `/incident skip STEP REASON…`", "active", INC
    ),
    "next now": Bad(
        "next now", "`next` takes nothing after it. Try: `/incident next`", "active", INC
    ),
    # text, severity, follow-ups, snooze
    "update without text": Bad(
        "update   ", "`update` needs text after it. Try: `/incident update TEXT…`", "active", INC
    ),
    "sev9": Bad(
        "sev sev9",
        "`sev9` is not a severity; use one of sev1, sev2, sev3, sev4. Try: `/incident sev SEV`",
        "active",
        INC,
    ),
    "p1": Bad("sev p1", "`p1` is not a severity", "active", INC),
    "sev escaped markup": Bad(
        "sev &lt;sev1&gt;", "`&lt;sev1&gt;` is not a severity", "active", INC
    ),
    "sev already sev1": Bad("sev sev1", "The severity is already sev1.", "active", INC),
    "bad due date": Bad(
        "action Pin the pool size due 2026-13-45",
        "`2026-13-45` is not a date; write the due date as YYYY-MM-DD",
        "active",
        INC,
    ),
    "action only a due date": Bad(
        "action due 2026-01-20", "`action` needs text after it", "active", INC
    ),
    "action owner plain @name": Bad(
        "action Pin the pool size @ben", "`@ben` is not a person", "active", INC
    ),
    "action due next friday": Bad(
        "action Tune pool <@U2|ben> due next friday",
        "`next friday` is not a date; write the due date as YYYY-MM-DD. "
        "Try: `/incident action TEXT… [@owner] [due YYYY-MM-DD] [p1|p2|p3] [LINK]`",
        "active",
        INC,
    ),
    "action owner inside the text": Bad(
        "action Ask <@U2|ben> to pin the pool", "the owner goes after the text", "active", INC
    ),
    "action two owners": Bad(
        "action Pin the pool <@U2|ben> <@U3|ivy>", "one per action", "active", INC
    ),
    "action p4": Bad("action Pin the pool p4", "`p4` is not a priority", "active", INC),
    "action ftp link": Bad(
        "action Pin the pool ftp://files.example.com/x",
        "give an http:// or https:// address",
        "active",
        INC,
    ),
    "factor without area": Bad(
        "factor the pool was too small", "Give the area first", "active", INC
    ),
    "factor without text": Bad("factor 人", "Give the area first", "active", INC),
    "lesson of no kind": Bad("lesson great teamwork", "well, wrong or lucky", "active", INC),
    "why without text": Bad("why", "`why` needs text after it", "active", INC),
    "review with words": Bad("review now", "`review` takes nothing after it", "active", INC),
    "snooze soon": Bad(
        "snooze soon", "`soon` is not a duration; write it like 15m or 1h30m", "active", INC
    ),
    # permissions
    "close by a bystander": Bad("close", "`/incident handoff commander @you`", "active", INC, "U9"),
    "sev by a bystander": Bad(
        "sev sev2", "Only the Response lead (incident commander) (<@U1>)", "active", INC, "U9"
    ),
    # outside an incident channel
    "status in general": Bad("status", "This is not an incident channel."),
    "update in general": Bad("update Rolling back", "not an incident channel", "active"),
    "close in general": Bad("close", "not an incident channel", "active"),
    "accept in general": Bad("accept", "not an incident channel", "active"),
    # a closed incident
    "update after close": Bad("update still broken", "INC-1 was closed at", "closed", INC),
    "done after close": Bad("done 1.1", "it can't change any more", "closed", INC),
    "sev after close": Bad("sev sev2", "INC-1 was closed at", "closed", INC),
    "close twice": Bad("close", "INC-1 is already closed", "closed", INC, "U3"),
    "next after close": Bad("next", "INC-1 was closed at", "closed", INC),
    "trigger in general": Bad("trigger A release", "not an incident channel", "active"),
}


def _prepare(slack: Harness, state: str) -> str | None:
    """Bring INC-1 into `state`; return its channel (None when nothing is declared)."""
    if state == "none":
        return None
    channel = declare(slack)
    slack.posted(channel, "Phase 1/3")
    if state == "closed":
        slack.command("close", channel=channel)
        slack.fake.wait_for("files.completeUploadExternal")  # the last thing closing does
    return channel


def _channel_traffic(slack: Harness) -> int:
    """Messages posted, edited or shown anywhere except through a response_url."""
    methods = ("chat.postMessage", "chat.update", "chat.postEphemeral")
    return sum(len(slack.fake.calls_to(m)) for m in methods)


def _events(slack: Harness) -> int:
    return len(slack.running.bot.store.events(1))


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_bad_input_is_answered_privately_and_changes_nothing(slack: Harness, case: Bad):
    incident_channel = _prepare(slack, case.state)
    channel = incident_channel if case.channel == INC else case.channel
    assert channel is not None
    traffic, events = _channel_traffic(slack), _events(slack)
    answer = slack.answer(slack.command(case.text, user=case.user, channel=channel))
    assert case.expect in answer, answer
    assert "<!" not in answer and "&amp;amp;" not in answer and "&amp;lt;" not in answer, answer
    assert _channel_traffic(slack) == traffic  # nothing posted for a refusal
    assert _events(slack) == events  # and nothing recorded
    if case.state == "none":
        assert slack.running.bot.store.incidents(include_closed=True) == []


def test_unknown_step_lists_the_steps(slack: Harness):
    channel = _prepare(slack, "active")
    answer = slack.answer(slack.command("skip 7.7 not in this runbook", channel=channel))
    assert "There is no step `7.7`" in answer and ALL_STEPS in answer, answer


@pytest.mark.parametrize(
    "text", ["   ", "\t", "\u3000\u00a0"], ids=["spaces", "tab", "wide spaces"]
)
def test_blank_text_opens_the_start_modal(slack: Harness, text: str):
    slack.command(text)
    (opened,) = slack.fake.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == "start_incident"
    assert not any(c.method.startswith("response_url:") for c in slack.fake.calls)
    assert _channel_traffic(slack) == 0


def test_a_form_slack_will_not_open_leaves_the_command_answered(slack: Harness):
    """views.open runs after the ack, off the request's thread: a trigger Slack refuses
    (it lasts 3 s) is logged, never turned into an error for the command."""

    class Seen(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.ERROR)
            self.failed = threading.Event()

        def emit(self, record: logging.LogRecord) -> None:
            if "views.open" in record.getMessage():
                self.failed.set()

    seen = Seen()
    logging.getLogger("bot.slack.app").addHandler(seen)
    try:
        slack.fake.fail("views.open", error="expired_trigger_id")
        slack.command("")  # answered 200 (asserted by `command`)
        assert seen.failed.wait(10), "the refused views.open was not logged"
    finally:
        logging.getLogger("bot.slack.app").removeHandler(seen)
    assert "/incident start" in slack.answer(slack.command("help"))


def test_a_5000_character_update_is_posted_cut_to_3000(slack: Harness):
    channel = _prepare(slack, "active")
    slack.command("update " + "x" * 5000, channel=channel)
    (posted,) = slack.posted(channel, "*Update* from <@U1>")
    # the cap applies to the whole command text, so the verb takes a few of the 3000
    assert 2990 <= posted.count("x") <= 3000, posted.count("x")
    (update,) = slack.running.bot.store.events(1, kinds=("update",))
    assert update.text == "x" * posted.count("x")


def test_control_and_bidi_characters_are_dropped_from_a_note(slack: Harness):
    channel = _prepare(slack, "active")
    hidden = "\x00\x07\x1b\r\u202e\u200b\u2066"
    slack.command("note before\x00\x07\x1b[2J\r\u202eafter\u200b\u2066end", channel=channel)
    (posted,) = slack.posted(channel, ":memo:")
    assert "before[2Jafterend" in posted, posted
    assert not set(hidden) & set(posted), posted
    (note,) = slack.running.bot.store.events(1, kinds=("note",))
    assert note.text == "before[2Jafterend"


def test_at_channel_in_a_title_is_posted_escaped(slack: Harness):
    answer = slack.answer(slack.command("start service-outage sev2 <!channel> R&amp;D checkout"))
    assert "Declared INC-1" in answer
    (created,) = slack.fake.wait_for("conversations.create", lambda c: c.status == 200)
    channel = created.response["channel"]["id"]
    (declared,) = slack.posted(channel, "INC-1 declared")
    assert "&lt;!channel&gt; R&amp;D checkout" in declared, declared
    (announced,) = slack.posted("CANNOUNCE", "INC-1 (sev2) declared")
    assert "&lt;!channel&gt; R&amp;D checkout" in announced, announced
    slack.fake.wait_for("pins.add")
    texts = [
        json.dumps(c.args.get("text"))
        for c in slack.fake.calls
        if c.method in ("chat.postMessage", "chat.update")
    ]
    assert texts and not any("<!channel>" in t or "&amp;amp;" in t for t in texts), texts
    assert slack.running.bot.store.incident(1).title == "<!channel> R&D checkout"
