"""The postmortem, compiled only from the stored record and the runbook snapshot.

Rendered with Jinja2 in its sandbox to Markdown and written to
`<postmortem dir>/<INC-n>.md`. Recompiling gives the same file for the same
record, so `incident-bot postmortem` can rebuild it at any time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from bot.durations import format_duration
from bot.messages import TEMPLATES, Renderer
from bot.model import Incident
from bot.render import event_text, role_name
from bot.store import Store

_EMOJI = re.compile(r"^:[a-z0-9_+-]+:\s*")
_BOLD = re.compile(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])")


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    kind: str
    text: str


def _markdown(slack_text: str) -> str:
    """Slack mrkdwn to Markdown: drop the leading emoji, *bold* → **bold**, one line."""
    text = _EMOJI.sub("", slack_text)
    text = _BOLD.sub(r"**\1**", text)
    return " ".join(text.split())


def compile_context(store: Store, incident: Incident, language: str) -> dict[str, Any]:
    render = Renderer(language)
    runbook = incident.runbook
    end = incident.closed_at or incident.resolved_at
    holdings = [
        {"role": role_name(runbook, h.role_id), "user": h.user, "since": h.since, "until": h.until}
        for h in store.holdings(incident.id)
    ]
    timeline = [
        TimelineEntry(e.at, e.actor, e.kind, _markdown(event_text(render, e, incident)))
        for e in store.events(incident.id)
    ]
    return {
        "incident": incident,
        "runbook": runbook,
        "duration": (end - incident.started_at) if end else None,
        "holdings": holdings,
        "timeline": timeline,
    }


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["dur"] = lambda d: format_duration(d) if d is not None else "—"
    env.filters["utc"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else "—"
    return env


def render_postmortem(store: Store, incident_id: int, language: str = "en") -> str:
    incident = store.incident(incident_id)
    if incident is None:
        raise LookupError(f"there is no incident {incident_id}")
    template = _environment().get_template(f"postmortem.{language}.md.j2")
    return template.render(**compile_context(store, incident, language))


def write_postmortem(store: Store, incident_id: int, folder: Path, language: str = "en") -> Path:
    incident = store.incident(incident_id)
    if incident is None:
        raise LookupError(f"there is no incident {incident_id}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{incident.ref}.md"
    text = render_postmortem(store, incident_id, language)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path
