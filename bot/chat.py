"""The port through which incidents talk to people: Slack, the terminal, tests.

The core calls these few methods and never knows which chat is behind them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Protocol

from bot.model import Incident


class ChatPort(Protocol):
    def open_channel(self, incident: Incident) -> str:
        """Create the incident's channel, bring the declarer in, return its id."""
        ...

    def post(self, channel: str, text: str) -> None:
        """Post a message everyone in the channel sees."""
        ...

    def reply(self, user: str, channel: str | None, text: str) -> None:
        """Answer one person only (Slack: ephemeral)."""
        ...

    def mention(self, user: str | None) -> str:
        """How a user is written so that they are notified."""
        ...

    def escape(self, text: str) -> str:
        """Make user-written text safe to echo (no @channel pings, no fake links)."""
        ...


def channel_name(incident: Incident, limit: int = 80) -> str:
    """`inc-20260115-12-checkout-is-failing`: date, number and title, lowercase, ≤ 80 chars."""
    prefix = f"inc-{incident.started_at:%Y%m%d}-{incident.id}"
    ascii_title = unicodedata.normalize("NFKD", incident.title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    name = f"{prefix}-{slug}" if slug else prefix
    return name[:limit].rstrip("-")
