"""`incident-bot demo`: a whole outage played from the shipped runbook.

The script is a list of (minutes since start, who, command). Time is a fake
clock moved forward between lines, so a three-hour incident plays in about a
second and reads like the channel's transcript. Reminders, deadline nudges
and escalations fire at their own bot times on the way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TextIO

from bot.bootstrap import build
from bot.clock import FakeClock
from bot.config import Settings
from bot.console.chat import ConsoleChat
from bot.dispatch import Context
from bot.reminders import run_until
from bot.store import Store

RUNBOOK = "service-outage"
START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # the seed plan's 2 a.m. alert

SCRIPT: list[tuple[int, str, str]] = [
    (0, "ana", f"start {RUNBOOK} sev1 Checkout API returns 502 for every user"),
    (1, "ana", "assign tech-lead @ben"),
    (1, "ana", "assign ops-a @chen"),
    (2, "ana", "assign ops-b @dana"),
    (2, "ana", "assign developer @eli"),
    (3, "ana", "assign support-lead @fay"),
    (3, "ana", "assign product @gus"),
    (11, "ana", "done 1.1"),
    (14, "chen", "update 502s come from the API gateway; checkout pods crash-loop since 01:52"),
    (22, "chen", "done 1.2"),
    (24, "ben", "note Release 2026.01.15-1 went out at 01:50 and halved the DB pool size"),
    (28, "eli", "done 1.3"),
    (36, "ana", "done 1.4"),
    (37, "ana", "update Rolling back release 2026.01.15-1; ETA 10 minutes"),
    (40, "ana", "handoff commander @ivy"),
    (42, "ivy", "accept"),
    (49, "dana", "done 1.5"),
    (50, "ivy", "mitigated"),
    (51, "ivy", "next"),
    (55, "fay", "done 3.1"),
    (58, "ivy", "status"),
    (70, "fay", "done 3.2"),
    (80, "ben", "done 2.1"),
    (82, "ivy", "update Root cause: the release halved the DB pool; permanent fix in review"),
    (83, "ivy", "snooze 30m"),
    (85, "ivy", "sev sev2"),
    (100, "ben", "done 2.2"),
    (130, "eli", "done 2.3"),
    (150, "chen", "done 2.4"),
    (151, "ivy", "next"),
    (160, "ivy", "done 3.3"),
    (165, "ivy", "resolved"),
    (
        170,
        "ivy",
        "summary Checkout failed for 50 minutes after a release halved the DB connection pool.",
    ),
    (170, "ivy", "impact About 12,000 checkout attempts failed; no data was lost."),
    (171, "ben", "cause A config default changed in the pool library; our release did not pin it."),
    (172, "ben", "action Pin connection pool settings in the service config @eli due 2026-01-22"),
    (172, "ivy", "action Alert on pool exhaustion before errors reach users @chen due 2026-01-29"),
    (175, "ivy", "close"),
]


def run_demo(settings: Settings, out: TextIO) -> int:
    """Play SCRIPT; return the id of the incident it played."""
    start = START
    clock = FakeClock(start)
    chat = ConsoleChat(clock, out, show_direct=False)
    bot = build(settings, clock, chat, store=Store(settings.drill_db))
    incident_id: int | None = None
    runbook = "service-outage-zh" if settings.language == "zh" else RUNBOOK
    try:
        for minute, user, command in SCRIPT:
            if command.startswith("start"):
                command = command.replace(RUNBOOK, runbook, 1)
            run_until(bot.reminders, clock, start + timedelta(minutes=minute))
            chat.said(user, f"/incident {command}")
            result = bot.handler.handle(command, Context(actor=user, incident_id=incident_id))
            if result.error is not None:
                raise RuntimeError(f"demo script step failed: {command!r}: {result.error}")
            if incident_id is None and result.incident is not None:
                incident_id = result.incident.id
    finally:
        bot.close()
    assert incident_id is not None
    return incident_id
