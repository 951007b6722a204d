"""The port through which incidents talk to people: Slack, the terminal, tests.

The core calls these few methods and never knows which chat is behind them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.model import Incident
from bot.plan import PlanView


@dataclass(frozen=True)
class Button:
    """A one-click answer offered with a message (the terminal shows it as a hint)."""

    label: str
    action: str  # what the click does, e.g. "accept_handoff"
    value: str  # usually the incident id


class ChatPort(Protocol):
    def open_channel(self, incident: Incident) -> str:
        """Create the incident's channel, bring the declarer in, return its id."""
        ...

    def post(self, channel: str, text: str, buttons: tuple[Button, ...] = ()) -> None:
        """Post a message everyone in the channel sees."""
        ...

    def notify(self, user: str, text: str) -> None:
        """A direct message to one person (role briefings)."""
        ...

    def announce(self, text: str) -> None:
        """Tell the wider organisation (e.g. #incidents); a no-op where there is none."""
        ...

    def upload(self, channel: str, files: list[Path], title: str) -> None:
        """Share files (the postmortem and its chart) in the channel, together; raises when
        they did not go through."""
        ...

    def show_plan(self, plan: PlanView) -> str | None:
        """Post the plan; return a reference to keep it current, or None."""
        ...

    def refresh_plan(self, plan: PlanView) -> None:
        """Bring the posted plan up to date (steps, roles, phase)."""
        ...

    def reply(
        self, user: str, channel: str | None, text: str, reply_url: str | None = None
    ) -> None:
        """Answer one person only (Slack: ephemeral, through the request's response_url
        when there is one)."""
        ...

    def is_transient(self, error: Exception) -> bool:
        """Whether a failed call may succeed if tried again later (rate limit, outage)."""
        ...

    def mention(self, user: str | None) -> str:
        """How a user is written so that they are notified."""
        ...

    def escape(self, text: str) -> str:
        """Make user-written text safe to echo (no @channel pings, no fake links)."""
        ...

    def channel_link(self, channel: str) -> str:
        """How a channel is written so that it is a link."""
        ...


def channel_name(incident: Incident, limit: int = 80) -> str:
    """`inc-20260115-12-checkout-is-failing`: date, number and title, lowercase, ≤ 80 chars."""
    prefix = f"inc-{incident.started_at:%Y%m%d}-{incident.id}"
    ascii_title = unicodedata.normalize("NFKD", incident.title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    name = f"{prefix}-{slug}" if slug else prefix
    return name[:limit].rstrip("-")


def title_left_out(title: str) -> bool:
    """Whether channel_name drops letters of `title` that have no ASCII form (Chinese, say):
    the declarer is then told why the channel is a bare `inc-YYYYMMDD-N`."""
    decomposed = unicodedata.normalize("NFKD", title)
    return any(not ch.isascii() and ch.isalnum() for ch in decomposed)
