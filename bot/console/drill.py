"""`incident-bot drill RUNBOOK`: rehearse a runbook by typing `/incident …` commands.

The drill runs on the drill database and a scaled clock, so a drill can be
stopped and resumed: starting it again continues the open drill incident.
`quit` (or the end of input, or Ctrl-C) pauses the bot clock with it, so the
drill resumes at the bot time it was left at, however long it was away; only a
crash lets bot time run on. Type `@name: /incident accept` (or without the
colon) to speak as another responder; `/incident` may be typed or left out.

A drill follows one incident and ends when that incident closes. A second
`start` is refused (one incident at a time, as the reminders and nudges would
otherwise interleave); anything another drill left open still reminds, labelled
with its channel.
"""

from __future__ import annotations

import getpass
import re
from typing import TextIO

from bot.bootstrap import build
from bot.clock import Clock
from bot.commands import parse
from bot.config import Settings
from bot.console.chat import ConsoleChat
from bot.dispatch import Context
from bot.errors import ParseError
from bot.messages import Renderer
from bot.persistence_clock import pause_clock, persisted_clock
from bot.reminders import ReminderScheduler
from bot.store import Store
from bot.writer_lock import DatabaseInUse, hold_writer_lock

# `@ben: /incident accept`, also without the colon: `@ben /incident accept`
_SPEAKER = re.compile(r"^@([\w.\-]+)(?::\s*|\s+)(.*)$")
_QUIT = ("quit", "exit", "/quit", "/exit")


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
    clock = clock or persisted_clock(store, speed, pausable=True)
    chat = ConsoleChat(clock, out, language=settings.language)
    scheduler: ReminderScheduler  # built next: each command re-arms the reminder alarm
    bot = build(
        settings, clock, chat, store=store, drill=True, after_change=lambda: scheduler.poke()
    )
    user = _drill_user()
    scheduler = ReminderScheduler(bot.reminders, clock)
    incident = None
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
        chat.focus = incident.channel  # posts for any other open drill incident say where
        scheduler.start()  # re-arms from the database: a resumed drill catches up once
        try:
            for line in inp:
                line = line.strip()
                if not line:
                    continue
                if line.lower() in _QUIT:
                    break
                speaker = _SPEAKER.match(line)
                actor, text = (speaker.group(1), speaker.group(2)) if speaker else (user, line)
                if _is_start(text):
                    chat.reply(
                        actor,
                        None,
                        bot.handler.render(
                            "reply.drill_one_incident",
                            ref=incident.ref,
                            title=incident.title,
                            runbook=runbook_id,
                        ),
                    )
                    continue
                result = bot.handler.handle(text, Context(actor=actor, incident_id=incident.id))
                current = store.incident(incident.id)
                if current is not None and current.is_closed:
                    chat.reply(user, None, bot.handler.render("reply.drill_over", ref=incident.ref))
                    incident = None
                    return 0
        except KeyboardInterrupt:
            pass  # Ctrl-C: like `quit`
        return 0
    finally:
        scheduler.shutdown()
        if incident is not None:  # left open: stop its clock until the drill is run again
            paused_at = pause_clock(store, clock)
            chat.reply(
                user,
                None,
                bot.handler.render(
                    "reply.drill_paused",
                    ref=incident.ref,
                    runbook=runbook_id,
                    at=paused_at,
                    paused=paused_at is not None,
                ),
            )
        bot.close()


def _is_start(text: str) -> bool:
    """`/incident start …` in any of its typed forms (a refusal of it is left to the parser)."""
    try:
        return parse(text).verb == "start"
    except ParseError:
        return False
