"""Fixtures for unit tests: a small record of closed incidents with known figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bot.clock import FakeClock
from bot.engine import IncidentService
from bot.runbook import Catalog
from tests.conftest import START

REPORT_RUNBOOK = """
id: report
name: Report drill
targets: {assemble: 10m, mitigate: 1h, resolve: 2h}
roles:
  - {id: lead, name: Lead}
  - {id: ops, name: Ops}
phases:
  - id: one
    name: Phase one
    target: 30m
    steps:
      - {id: a, title: Look at logs, owner: ops, due: 15m}
      - {id: b, title: Roll back, owner: lead, due: 20m after phase}
  - id: two
    name: Phase two
    target: 2h
    steps:
      - {id: c, title: Tell users, owner: lead, due: 30m after mitigated}
      - {id: d, title: Write it down, owner: lead}
"""
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def at(clock: FakeClock, start: datetime, minutes: float) -> None:
    clock.set(start + timedelta(minutes=minutes))


@pytest.fixture
def played(tmp_path, store, clock):
    """Three closed incidents with known figures, one still open."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "report.yaml").write_text(REPORT_RUNBOOK, encoding="utf-8")
    service = IncidentService(store, clock, Catalog(folder))

    # 1: assembled in 5m, a on time, b 5m late, next phase at 20m, mitigated 40m,
    #    c skipped, resolved 90m; a follow-up done on its due day (late evening, UTC)
    s1 = START
    one = service.start("report", "First", "ana").incident.id
    at(clock, s1, 5)
    service.note(one, "on it", "ben")
    at(clock, s1, 10)
    service.done(one, "a", "ben")
    at(clock, s1, 20)
    service.next_phase(one, "ana")
    at(clock, s1, 25)
    service.done(one, "b", "ana")
    at(clock, s1, 40)
    service.mitigated(one, "ana")
    service.skip(one, "c", "No   users affected", "ana")
    at(clock, s1, 90)
    service.resolved(one, "ana")
    (f1,) = service.add_action(one, "Alert on pool", "ana", "eli", date(2026, 1, 20)).events
    service.close(one, "ana")

    # 2: assembled in 15m, a 5m late, b skipped, next phase at 45m, mitigated 70m,
    #    c on time, d done (no deadline), resolved 180m; a follow-up done a day late (UTC)
    s2 = START + timedelta(days=1)
    clock.set(s2)
    two = service.start("report", "Second", "ana").incident.id
    at(clock, s2, 15)
    service.update(two, "looking", "cy")
    at(clock, s2, 20)
    service.done(two, "a", "cy")
    service.skip(two, "b", "not needed", "ana")
    at(clock, s2, 45)
    service.next_phase(two, "ana")
    at(clock, s2, 70)
    service.mitigated(two, "ana")
    at(clock, s2, 80)
    service.done(two, "c", "ana")
    at(clock, s2, 85)
    service.done(two, "d", "ana")
    at(clock, s2, 180)
    service.resolved(two, "ana")
    (f2,) = service.add_action(two, "Pin the pool", "ana", "eli", date(2026, 1, 20)).events
    service.add_action(two, "Old thing", "ana", due=date(2026, 1, 10))
    service.add_action(two, "Later thing", "ana", due=date(2026, 3, 1))
    service.add_action(two, "Some day", "ana")
    service.close(two, "ana")

    # 3: nobody but the declarer; b done 30m late; closed at 60m, never mitigated
    s3 = START + timedelta(days=2)
    clock.set(s3)
    three = service.start("report", "Third", "ana").incident.id
    at(clock, s3, 50)
    service.done(three, "b", "ana")
    at(clock, s3, 60)
    service.close(three, "ana")
    clock.set(datetime(2026, 1, 20, 23, 0, tzinfo=UTC))
    service.complete_action(one, f1.payload.action, "eli")
    clock.set(datetime(2026, 1, 21, 1, 0, tzinfo=UTC))
    service.complete_action(two, f2.payload.action, "eli")

    # 4: still open: left out
    clock.set(START + timedelta(days=3))
    service.start("report", "Fourth", "ana")
    return service
