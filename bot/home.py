"""What a person's Home tab lists: the data, read at one moment, without any Slack.

For the viewer: every open incident (id, title, severity, phase, elapsed time,
lead, channel) with the roles the viewer holds in it, their own open follow-up
actions with due dates, and the incidents closed most recently with their
reviews. `bot/slack/home.py` lays it out in Block Kit and pages it; the reads
here are a handful of queries, whatever the number of incidents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.metrics import metrics_at
from bot.model import Action, Incident
from bot.runbook import SEVERITIES
from bot.store import Store

RECENTLY_CLOSED = 5


@dataclass(frozen=True)
class OpenIncident:
    incident: Incident
    elapsed: timedelta
    lead: str | None  # who holds the runbook's first role
    mine: tuple[str, ...]  # names of the roles the viewer holds in it

    @property
    def visible(self) -> bool:
        """Whether the viewer may see its title and channel: a private incident's only
        to those holding a role in it (as `/incident list` hides them)."""
        return bool(self.mine) or not self.incident.runbook.private


@dataclass(frozen=True)
class FollowUp:
    action: Action
    ref: str  # its incident
    overdue: bool  # past its due date in the team's time zone


@dataclass(frozen=True)
class ClosedIncident:
    incident: Incident
    duration: timedelta
    mitigate: timedelta | None  # time to mitigate
    review_at: datetime | None  # when its review was last written
    review: str | None  # the review file's name


@dataclass(frozen=True)
class HomeData:
    user: str
    now: datetime
    open: list[OpenIncident]  # the viewer's own first, then by severity, oldest first
    follow_ups: list[FollowUp]  # soonest due first, those without a due date last
    closed: list[ClosedIncident]  # newest first


def home_data(
    store: Store, user: str, now: datetime, timezone: str = "UTC", closed: int = RECENTLY_CLOSED
) -> HomeData:
    with store.snapshot():  # one consistent picture, without the write lock
        incidents = store.incidents()
        holders = store.holders_of([i.id for i in incidents])
        actions = store.open_actions_of(user)
        refs = {i.id: i.ref for i in incidents}
        missing = {a.incident_id for a in actions} - set(refs)
        for incident_id in sorted(missing):  # follow-ups of closed incidents
            found = store.incident(incident_id)
            refs[incident_id] = found.ref if found else f"INC-{incident_id}"
        recent = store.recently_closed(closed)
    open_incidents = []
    for incident in incidents:
        held = holders.get(incident.id, {})
        runbook = incident.runbook
        mine = tuple(r.name for r in runbook.roles if held.get(r.id) == user)
        open_incidents.append(
            OpenIncident(incident, now - incident.started_at, held.get(runbook.roles[0].id), mine)
        )
    open_incidents.sort(
        key=lambda o: (
            not o.mine,
            SEVERITIES.index(o.incident.severity) if o.incident.severity in SEVERITIES else 9,
            o.incident.started_at,
            o.incident.id,
        )
    )
    today = now.astimezone(ZoneInfo(timezone)).date()
    follow_ups = [FollowUp(a, refs[a.incident_id], _overdue(a.due, today)) for a in actions]
    follow_ups.sort(key=lambda f: (f.action.due is None, f.action.due or "", f.action.id))
    closed_incidents = []
    for incident, review in recent:
        mitigate = next(m for m in metrics_at(incident, None) if m.name == "mitigate")
        end = incident.closed_at or now
        path = str(review["path"]) if review and review.get("path") else None
        compiled = review.get("compiled_at") if review else None
        closed_incidents.append(
            ClosedIncident(
                incident,
                end - incident.started_at,
                mitigate.actual,
                datetime.fromisoformat(compiled) if compiled else None,
                path.replace("\\", "/").rsplit("/", 1)[-1] if path else None,
            )
        )
    return HomeData(user, now, open_incidents, follow_ups, closed_incidents)


def _overdue(due: str | None, today: date) -> bool:
    try:
        return due is not None and date.fromisoformat(due) < today
    except ValueError:
        return False
