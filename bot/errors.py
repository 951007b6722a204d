"""Errors a user can cause, each naming what to type instead.

An error carries a catalog key and its parameters, so each adapter renders it
in the user's language; `str(error)` gives the English text for logs and tests.
"""

from __future__ import annotations

from typing import Any


class BotError(Exception):
    """A request the bot refuses; rendered from `error.<key>` in the catalog."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(key)

    def __str__(self) -> str:
        from bot.messages import english

        return english(f"error.{self.key}", **self.params)


class ParseError(BotError):
    """The command text does not follow the `/incident` grammar."""


class IncidentClosed(BotError):
    """The incident is closed; nothing more can change it."""


class UnknownName(BotError):
    """A runbook, role or step name that does not exist."""


class NoPendingHandoff(BotError):
    """`accept` typed by someone nobody handed a role to."""


class InvalidTransition(BotError):
    """A status or phase change that does not follow from the current state."""


class NotInIncident(BotError):
    """A command that needs an incident, used outside any incident."""


class NotAllowed(BotError):
    """The settings' policy does not let this person do this (close, severity, lead role)."""
