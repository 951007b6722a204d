"""`incident-bot drill RUNBOOK`: rehearse a runbook by typing `/incident …` commands.

The drill runs on the configured database and a scaled clock, so a drill can
be stopped and resumed: starting it again continues the open drill incident.
Type `@name: /incident accept` to speak as another responder.
"""

from __future__ import annotations

import getpass
import re
from typing import TextIO

from bot.bootstrap import build
from bot.clock import Clock
from bot.config import Settings
from bot.console.chat import ConsoleChat
from bot.dispatch import Context
from bot.messages import Renderer
from bot.persistence_clock import persisted_clock
from bot.reminders import ReminderScheduler
from bot.store import Store
from bot.writer_lock import DatabaseInUse, hold_writer_lock

_SPEAKER = re.compile(r"^@([\w.\-]+):\s*(.*)$")


def _drill_user() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no user database in some containers
        name = "you"
    return re.sub(r"[^\w.\-]", "", name) or "you"


def run_drill(
    settings: Settings,
    runbook_id: str,
    speed: float,
    inp: TextIO,
    out: TextIO,
    clock: Clock | None = None,
) -> int:
    try:
        writer = hold_writer_lock(settings.drill_db, "drill")
    except DatabaseInUse as exc:
        print(f"incident-bot: {exc}", file=out)
        return 2
    try:
        return _drill(settings, runbook_id, speed, inp, out, clock)
    finally:
        writer.release()


def _drill(
    settings: Settings,
    runbook_id: str,
    speed: float,
    inp: TextIO,
    out: TextIO,
    clock: Clock | None,
) -> int:
    store = Store(settings.drill_db)
    clock = clock or persisted_clock(store, speed)
    chat = ConsoleChat(clock, out, language=settings.language)
    scheduler: ReminderScheduler  # built next: each command re-arms the reminder alarm
    bot = build(
        settings, clock, chat, store=store, drill=True, after_change=lambda: scheduler.poke()
    )
    user = _drill_user()
    scheduler = ReminderScheduler(bot.reminders, clock)
    try:
        if bot.catalog.get(runbook_id) is None:
            chat.reply(
                user,
                None,
                f"There is no runbook '{runbook_id}'. Runbooks: {', '.join(bot.catalog.ids())}",
            )
            return 1
        incident = next((i for i in bot.service.active() if i.runbook_id == runbook_id), None)
        chat.reply(
            user,
            None,
            bot.handler.render(
                "reply.drill_welcome", runbook=runbook_id, speed=f"{speed:g}", user=user
            ),
        )
        if incident is None:
            runbook = bot.catalog.get(runbook_id).runbook  # type: ignore[union-attr]
            title = Renderer(runbook.language)("label.drill_title", name=runbook.name)
            result = bot.handler.handle(f"start {runbook_id} {title}", Context(actor=user))
            incident = result.incident
        else:
            resuming = bot.handler.render(
                "reply.drill_resuming", ref=incident.ref, title=incident.title
            )
            chat.reply(user, None, resuming)
        assert incident is not None
        incident_id = incident.id
        scheduler.start()  # re-arms from the database: a resumed drill catches up once
        for line in inp:
            line = line.strip()
            if not line:
                continue
            if line.lower() in ("quit", "exit", "/quit"):
                break
            speaker = _SPEAKER.match(line)
            actor, text = (speaker.group(1), speaker.group(2)) if speaker else (user, line)
            result = bot.handler.handle(text, Context(actor=actor, incident_id=incident_id))
            if result.incident is not None and result.incident.id != incident_id:
                incident_id = result.incident.id  # a new `start` moves the drill to it
            if result.incident is not None and result.incident.is_closed:
                break
        return 0
    finally:
        scheduler.shutdown()
        bot.close()
