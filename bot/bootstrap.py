"""Wires the bot together in one place, so tests can swap the clock or the chat."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.chat import ChatPort
from bot.clock import Clock
from bot.config import Settings, admin_ids
from bot.dispatch import CommandHandler
from bot.engine import IncidentService, Policy
from bot.outbox import Outbox
from bot.postmortem import ReviewOptions
from bot.reminders import ReminderService
from bot.runbook import Catalog, shipped_runbooks_dir
from bot.store import Store


@dataclass
class Bot:
    settings: Settings
    store: Store
    clock: Clock
    catalog: Catalog
    service: IncidentService
    handler: CommandHandler
    reminders: ReminderService

    def close(self) -> None:
        self.reminders.close()
        self.store.close()


def runbook_folder(settings: Settings) -> Path:
    """The configured folder, or the runbooks shipped with the bot when it does not exist."""
    return settings.runbooks if settings.runbooks.is_dir() else shipped_runbooks_dir()


def build(
    settings: Settings,
    clock: Clock,
    chat: ChatPort,
    store: Store | None = None,
    reminder_workers: int = 1,
    drill: bool = False,
) -> Bot:
    """`drill=True` (drills, the demo): reviews go to `postmortems/drills/`, and no follow-up
    action ever reminds anyone."""
    store = store or Store(settings.db)
    catalog = Catalog(runbook_folder(settings))
    policy = Policy(settings.policy, admin_ids(settings))
    service = IncidentService(store, clock, catalog, settings.timezone, policy, drill=drill)
    review = ReviewOptions(
        settings.postmortems,
        settings.postmortem_language,
        settings.postmortem_template,
        settings.timezone,
        runbooks=catalog.folder,
        drill=drill,
    )
    outbox = Outbox(store, chat)
    handler = CommandHandler(service, chat, settings.language, review, outbox)
    reminders = ReminderService(store, clock, chat, handler.render, reminder_workers, drill=drill)
    reminders.after_post = (
        handler.refresh_plan
    )  # overdue steps and raised severity show in the plan
    return Bot(settings, store, clock, catalog, service, handler, reminders)
