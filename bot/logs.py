"""Logging: one line per event, the incident id on every line, secrets never shown.

`INCIDENT_BOT_LOG_FORMAT=json` gives one JSON object per line for log shippers.
The incident a line belongs to comes from a context variable that the command
handler and the reminder service set while they work on an incident.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable

current_incident: contextvars.ContextVar[str] = contextvars.ContextVar("incident", default="-")
_TOKENS = re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]+")


class _Redact(logging.Filter):
    """Adds the incident id; replaces Slack tokens and the given secrets with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def _scrub(self, text: str) -> str:
        text = _TOKENS.sub("xox-***", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.incident = current_incident.get()
        message = record.getMessage()
        clean = self._scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "incident": getattr(record, "incident", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(
    json_lines: bool = False, secrets: Iterable[str] = (), level: int = logging.INFO
) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_Redact(secrets))
    if json_lines:
        handler.setFormatter(_Json())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(incident)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler says "Added job" / "Removed job" at INFO each time the alarm moves
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class Throttled:
    """True at most once per `every` seconds: a fault that repeats is logged once a minute,
    not once per request or per try."""

    def __init__(
        self, every: float = 60.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self._monotonic = monotonic
        self._last = float("-inf")
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = self._monotonic()
            if now - self._last < self.every:
                return False
            self._last = now
            return True
