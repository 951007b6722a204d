"""ChatPort for the terminal: every message becomes a transcript line."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import TextIO

from bot.chat import Button, channel_name, title_left_out
from bot.clock import Clock
from bot.messages import Renderer
from bot.model import Incident
from bot.plan import PlanView
from bot.render import plan_text
from bot.timefmt import clock_time

_EMOJI = {
    "rotating_light": "🚨",
    "bust_in_silhouette": "👤",
    "handshake": "🤝",
    "white_check_mark": "✅",
    "mega": "📣",
    "memo": "📝",
    "page_facing_up": "📄",
    "pushpin": "📌",
    "ballot_box_with_check": "☑️",
    "fast_forward": "⏩",
    "arrow_forward": "▶️",
    "warning": "⚠️",
    "large_yellow_circle": "🟡",
    "large_green_circle": "🟢",
    "checkered_flag": "🏁",
    "bookmark_tabs": "📑",
    "red_circle": "🔴",
    "white_circle": "⚪",
    "alarm_clock": "⏰",
    "hourglass": "⏳",
    "bell": "🔔",
    "zzz": "💤",
}
_SHORTCODE = re.compile(r":([a-z0-9_+-]+):")
_BOLD = re.compile(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])")


def to_terminal(text: str) -> str:
    """Slack mrkdwn to plain terminal text: emoji shortcodes to emoji, no * or `."""
    text = _SHORTCODE.sub(lambda m: _EMOJI.get(m.group(1), ""), text)
    text = _BOLD.sub(r"\1", text)
    return text.replace("`", "")


class ConsoleChat:
    def __init__(
        self,
        clock: Clock,
        out: TextIO | None = None,
        show_direct: bool = True,
        language: str = "en",
    ) -> None:
        self.clock = clock
        self.out = out or sys.stdout
        self.show_direct = show_direct  # direct messages make a long demo; drills show them
        self.render = Renderer(language, self.mention)  # the plan is drawn here, as in Slack
        self._lock = threading.Lock()
        self.channels: list[str] = []
        # the channel a drill follows: posts to any other channel are labelled with theirs,
        # so two incidents' reminders never read as one
        self.focus: str | None = None

    def _write(self, head: str, text: str) -> None:
        stamp = clock_time(self.clock.now())
        lines = to_terminal(text).splitlines() or [""]
        with self._lock:
            print(f"{stamp}  {head}{lines[0]}", file=self.out)
            for line in lines[1:]:
                print(f"{' ' * (7 + len(head))}{line}", file=self.out)
            self.out.flush()

    def said(self, user: str, text: str) -> None:
        """Echo what a person typed, so a scripted run reads like a chat."""
        self._write(f"@{user} › ", text)

    def open_channel(self, incident: Incident) -> str:
        name = f"#{channel_name(incident)}"
        self.channels.append(name)
        opened = self.render(
            "console.channel_opened", channel=name, ascii_only=title_left_out(incident.title)
        )
        self._write("bot ", opened)
        return name

    def post(self, channel: str, text: str, buttons: tuple[Button, ...] = ()) -> None:
        hint = "".join(f"  [{b.label}]" for b in buttons)
        self._write(self._head(channel), text + hint)

    def _head(self, channel: str | None) -> str:
        return f"bot {channel} › " if self.focus and channel and channel != self.focus else "bot › "

    def notify(self, user: str, text: str) -> None:
        if self.show_direct:
            self._write(f"bot (DM to @{user}) › ", text)

    def announce(self, text: str) -> None:
        self._write("bot (#incidents) › ", text)

    def upload(self, channel: str, files: list[Path], title: str) -> None:
        self._write(self._head(channel), f":bookmark_tabs: {title} — {', '.join(map(str, files))}")

    def show_plan(self, plan: PlanView) -> str | None:
        self._write(self._head(plan.incident.channel), plan_text(self.render, plan))
        return None  # a terminal cannot edit what it printed

    def refresh_plan(self, plan: PlanView) -> None:
        return None

    def channel_link(self, channel: str) -> str:
        return channel

    def reply(
        self, user: str, channel: str | None, text: str, reply_url: str | None = None
    ) -> None:
        self._write(f"bot (to @{user}) › ", text)

    def is_transient(self, error: Exception) -> bool:
        return False  # a terminal has no outage to wait out

    def mention(self, user: str | None) -> str:
        return f"@{user}" if user else "—"

    def escape(self, text: str) -> str:
        return text
