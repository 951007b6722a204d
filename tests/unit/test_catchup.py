"""`/incident catchup` (bot/catchup.py): where an incident stands, for someone joining."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.bootstrap import build
from bot.catchup import LEAVE_OUT, MAX_LINE, TIMELINE_LINES, catchup_text
from bot.dispatch import Context
from bot.messages import Renderer
from bot.slack.text import escape
from tests.conftest import START


def _mention(user: str | None) -> str:
    return f"<@{user}>" if user else "-"


def _renderer(language: str) -> Renderer:
    return Renderer(language, mention=_mention, escape=escape)  # as Slack escapes


def _played(service, clock) -> int:
    incident = service.start("service-outage", "Checkout is failing", "UANA").incident.id
    clock.advance(timedelta(minutes=3))
    service.assign(incident, "tech-lead", "UBEN", "UANA")
    service.handoff(incident, "ops-a", "UCY", "UANA")
    clock.advance(timedelta(minutes=4))
    service.update(incident, "Error rate 40 %; rolling back <@UBEN>", "UANA")
    clock.advance(timedelta(minutes=2))
    service.done(incident, "1.1", "UBEN")
    service.note(incident, "Dashboards & logs agree", "UBEN")
    clock.set(START + timedelta(minutes=25))  # 1.2 (due 20m) is overdue now
    return incident


def _text(service, clock, incident: int, language: str = "en") -> str:
    render = _renderer(language)
    updates = service.latest(incident, 1, kinds=("update",))
    recent = service.latest(incident, TIMELINE_LINES, leave_out=LEAVE_OUT)
    return catchup_text(render, service.view(incident), updates[-1], recent, clock.now())


def test_the_catch_up_says_where_things_stand(service, clock):
    incident = _played(service, clock)
    text = _text(service, clock, incident)
    lines = text.splitlines()
    assert lines[0] == (
        ":eyes: *Catching up on INC-1 Checkout is failing* — sev1, active, 25m since the start, "
        "declared by <@UANA>"
    )
    assert lines[1] == "Phase 1/3: Confirm the fault and restore service — 25m of 1h00m"
    assert lines[2].startswith(
        "Roles: Response lead (incident commander) <@UANA>, Tech lead <@UBEN> (open: Ops engineer A,"
    )
    assert lines[3] == "Waiting to accept: Ops engineer A → <@UCY>"
    assert lines[4] == (
        "Latest update (02:07, 18m ago, <@UANA>): Error rate 40 %; rolling back <@UBEN>"
    )
    assert lines[5] == "Open steps:"
    assert ":red_circle: 1.2 Check alert logs, server load and network connectivity" in lines[6]
    assert "(overdue)" in lines[6] and "1.1" not in text.split("Open steps:")[1].split("Lately")[0]
    lately = text.split("Lately:\n")[1].splitlines()
    assert lately[-2] == "• 02:09 :memo: <@UBEN>: Dashboards &amp; logs agree"  # escaped once
    assert lately[-1] == "`/incident status` shows the plan; `/incident catchup` shows this again."


def test_the_same_record_at_the_same_moment_gives_the_same_text(service, clock):
    incident = _played(service, clock)
    first = _text(service, clock, incident)
    assert _text(service, clock, incident) == first
    service.note(incident, "one more thing", "UCY")
    assert _text(service, clock, incident) != first
    assert _text(service, clock, incident).count("•") == TIMELINE_LINES  # the last lines only


def test_long_lines_are_cut_and_reminders_left_out(service, clock):
    incident = _played(service, clock)
    service.note(incident, "x" * 2000, "UCY")
    text = _text(service, clock, incident)
    (long_line,) = [line for line in text.splitlines() if "xxx" in line]
    assert long_line.endswith("x…") and long_line.count("x") == MAX_LINE - 1
    assert "reminder" in LEAVE_OUT and "why" in LEAVE_OUT


def test_the_catch_up_in_chinese(service, clock):
    incident = _played(service, clock)
    text = _text(service, clock, incident, "zh")
    assert text.startswith(":eyes: *INC-1 Checkout is failing 速览* — sev1，处理中，已持续 25分钟")
    assert "最新进展（02:07，18分钟前，<@UANA>）" in text
    assert "未完成的步骤：" in text and "最近动态：" in text


def test_a_closed_incident_s_catch_up_has_no_open_steps(service, clock):
    incident = _played(service, clock)
    clock.advance(timedelta(minutes=5))
    service.close(incident, "UANA")
    text = _text(service, clock, incident)
    assert "closed after 30m" in text
    assert "Open steps" not in text and "Roles:" not in text
    assert text.splitlines()[1].startswith("Latest update")  # no phase: it is over


def test_catchup_is_answered_privately_and_posts_nothing(settings, clock, chat):
    bot = build(settings, clock, chat)
    try:
        declared = bot.handler.handle("start service-outage sev2 Login slow", Context("UANA", "C9"))
        channel = declared.incident.channel or bot.store.incident(declared.incident.id).channel
        posted = len(chat.posts)
        result = bot.handler.handle("catchup", Context("UZED", channel))
        assert result.error is None
    finally:
        bot.close()
    assert len(chat.posts) == posted
    (user, text) = chat.replies[-1]
    assert user == "UZED" and text.startswith(":eyes: *Catching up on INC-1 Login slow*")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_catchup_outside_an_incident_channel_says_where_to_use_it(settings, clock, chat, language):
    bot = build(settings, clock, chat)
    try:
        result = bot.handler.handle("catchup", Context("UZED", "CRANDOM"))
    finally:
        bot.close()
    assert result.error is not None and result.error.key == "not_in_incident"
