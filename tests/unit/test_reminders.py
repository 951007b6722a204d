"""Reminders on the fake clock: cadence, nudges, escalation, snooze, stop on close."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.engine import IncidentService
from bot.errors import InvalidTransition
from bot.messages import Renderer
from bot.reminders import ReminderService, run_until
from tests.conftest import START


@pytest.fixture
def svc(store, clock, drill_catalog) -> IncidentService:
    return IncidentService(store, clock, drill_catalog)


@pytest.fixture
def reminders(store, clock, chat) -> ReminderService:
    return ReminderService(store, clock, chat, Renderer("en", mention=chat.mention))


def _declare(svc, severity="sev3"):
    incident = svc.start("drill", "Checkout down", "ana", severity=severity).incident
    svc.set_channel(incident.id, "C1")
    svc.assign(incident.id, "ops", "olly", "ana")
    return incident


def _sent(chat, after=0):
    return [text for _, text in chat.posts[after:]]


def test_phase_reminders_follow_the_interval_of_each_phase(svc, reminders, clock, chat):
    incident = _declare(svc)
    run_until(reminders, clock, START + timedelta(minutes=25))
    phase_one = [t for t in _sent(chat) if t.startswith(":alarm_clock:")]
    assert len(phase_one) == 2  # at 10m and 20m
    assert "Phase one" in phase_one[0] and "10m of 30m" in phase_one[0]
    svc.next_phase(incident.id, "ana")  # phase two at 25m, default 15m interval
    before = len(chat.posts)
    run_until(reminders, clock, START + timedelta(minutes=25 + 46))
    times = [
        e.at - START
        for e in svc.store.events(incident.id, kinds=("reminder",))
        if e.data["reminder"] == "phase"
    ]
    assert times == [timedelta(minutes=m) for m in (10, 20, 40, 55, 70)]
    assert all("Phase two" in t for t in _sent(chat, before) if t.startswith(":alarm_clock:"))


def test_phase_reminder_lists_open_and_overdue_steps_with_owners_mentioned(
    svc, reminders, clock, chat
):
    _declare(svc)
    run_until(reminders, clock, START + timedelta(minutes=20))
    last = [t for t in _sent(chat) if t.startswith(":alarm_clock:")][-1]
    assert "a Look at logs — <@olly>" in last and "(overdue)" in last
    assert "b Roll back — <@ana>" in last


def test_phase_reminder_asks_for_an_update_only_when_the_last_is_older_than_the_interval(
    svc, reminders, clock, chat
):
    incident = _declare(svc)
    clock.advance(timedelta(minutes=5))
    svc.update(incident.id, "Looking", "ana")
    run_until(reminders, clock, START + timedelta(minutes=10))
    assert "No update" not in _sent(chat)[-1]
    run_until(reminders, clock, START + timedelta(minutes=20))
    assert "No update for 15m, <@ana>" in _sent(chat)[-1]


def test_step_gets_one_nudge_at_its_deadline_when_still_open(svc, reminders, clock, chat):
    incident = _declare(svc)
    svc.done(incident.id, "b", "ana")
    run_until(reminders, clock, START + timedelta(minutes=29))
    nudges = [t for t in _sent(chat) if t.startswith(":hourglass:")]
    assert len(nudges) == 1
    assert "Step a is due now (02:15)" in nudges[0] and "<@olly>" in nudges[0]
    assert nudges[0].startswith(f":hourglass: *{incident.ref}* · Step a")  # whose step it is


def test_milestone_deadline_is_armed_when_the_milestone_happens(svc, reminders, clock, chat):
    incident = _declare(svc)
    run_until(reminders, clock, START + timedelta(minutes=40))
    assert not any("Step c" in t for t in _sent(chat))
    svc.mitigated(incident.id, "ana")
    run_until(reminders, clock, START + timedelta(minutes=69))
    assert not any("Step c" in t for t in _sent(chat))
    run_until(reminders, clock, START + timedelta(minutes=70))
    assert any("Step c is due now (03:10)" in t for t in _sent(chat))


def test_phase_past_its_target_escalates_and_raises_severity(svc, reminders, clock, chat):
    incident = _declare(svc, severity="sev3")
    run_until(reminders, clock, START + timedelta(minutes=30))
    escalation = [t for t in _sent(chat) if "past its 30m target" in t]
    assert len(escalation) == 1
    assert "Call the vendor." in escalation[0] and "Severity raised to *sev1*" in escalation[0]
    assert svc.store.incident(incident.id).severity == "sev1"
    kinds = [e.kind for e in svc.store.events(incident.id)]
    assert "escalated" in kinds and "severity_changed" in kinds


def test_no_escalation_when_the_phase_ended_in_time(svc, reminders, clock, chat):
    incident = _declare(svc)
    clock.advance(timedelta(minutes=29))
    svc.next_phase(incident.id, "ana")
    run_until(reminders, clock, START + timedelta(minutes=45))
    assert not any("past its" in t for t in _sent(chat))


def test_risk_trigger_posts_the_fallback_when_the_milestone_is_late(svc, reminders, clock, chat):
    incident = _declare(svc, severity="sev2")
    svc.next_phase(incident.id, "ana")  # avoid phase-one escalation noise
    run_until(reminders, clock, START + timedelta(hours=1))
    risk = [t for t in _sent(chat) if "Risk: Not restored in time" in t]
    assert len(risk) == 1 and "Fail over to the standby region." in risk[0]
    assert risk[0].startswith(f":rotating_light: *{incident.ref} · Risk: Not restored in time*")
    assert svc.store.incident(incident.id).severity == "sev1"


def test_risk_trigger_stays_quiet_when_the_milestone_came_in_time(svc, reminders, clock, chat):
    incident = _declare(svc)
    clock.advance(timedelta(minutes=40))
    svc.mitigated(incident.id, "ana")
    run_until(reminders, clock, START + timedelta(hours=2))
    assert not any("Risk:" in t for t in _sent(chat))


SILENT_RUNBOOK = """
id: quiet
name: Quiet
roles: [{id: lead, name: Lead}]
communication: {update_every: 15m}
phases:
  - {id: one, name: One, target: 6h, remind_every: 6h, steps: [{id: a, title: A, owner: lead}]}
risks:
  - id: silence
    risk: Information lags
    trigger: no update within 30m
    fallback: Name one person to share information.
"""


@pytest.fixture
def quiet(store, clock, tmp_path):
    from bot.runbook import Catalog

    folder = tmp_path / "quiet"
    folder.mkdir()
    (folder / "quiet.yaml").write_text(SILENT_RUNBOOK, encoding="utf-8")
    service = IncidentService(store, clock, Catalog(folder))
    incident = service.start("quiet", "Checkout down", "ana").incident
    service.set_channel(incident.id, "C1")
    return service, incident


def _risks(chat):
    return [t for t in _sent(chat) if "Risk: Information lags" in t]


def test_no_update_risk_fires_during_the_incident_once_per_silence(quiet, reminders, clock, chat):
    service, incident = quiet
    clock.advance(timedelta(minutes=20))
    service.update(incident.id, "Looking", "ana")
    run_until(reminders, clock, START + timedelta(minutes=49))
    assert _risks(chat) == []  # 20m → 49m: 29 minutes quiet
    run_until(reminders, clock, START + timedelta(minutes=50))
    (raised,) = _risks(chat)
    assert "no status update for 30m" in raised and "Name one person" in raised
    run_until(reminders, clock, START + timedelta(hours=3))
    assert len(_risks(chat)) == 1  # the same silence goes on: not raised again
    service.update(incident.id, "Still rolling back", "ana")
    run_until(reminders, clock, START + timedelta(hours=3, minutes=29))
    assert len(_risks(chat)) == 1
    run_until(reminders, clock, START + timedelta(hours=3, minutes=31))
    assert len(_risks(chat)) == 2  # a new silence
    events = service.store.events(incident.id, kinds=("risk_triggered",))
    assert [e.at - START for e in events] == [timedelta(minutes=50), timedelta(hours=3, minutes=30)]
    pending = [r for r in service.store.reminders(incident.id, "pending") if r.kind == "risk"]
    assert len(pending) == 1  # one row at a time, however long the incident


def test_no_update_risk_stops_at_resolution(quiet, reminders, clock, chat):
    service, incident = quiet
    clock.advance(timedelta(minutes=10))
    service.resolved(incident.id, "ana")
    run_until(reminders, clock, START + timedelta(hours=2))
    assert _risks(chat) == []


def test_escalation_never_lowers_the_severity(svc, reminders, clock, chat):
    incident = _declare(svc, severity="sev1")
    run_until(reminders, clock, START + timedelta(minutes=30))
    assert "Severity raised" not in [t for t in _sent(chat) if "past its" in t][0]
    assert svc.store.incident(incident.id).severity == "sev1"


def test_snooze_moves_the_next_phase_reminder_and_is_in_the_timeline(svc, reminders, clock, chat):
    incident = _declare(svc)
    clock.advance(timedelta(minutes=3))
    svc.snooze(incident.id, "ana", timedelta(minutes=25))
    run_until(reminders, clock, START + timedelta(minutes=27))
    assert not any(t.startswith(":alarm_clock:") for t in _sent(chat))
    run_until(reminders, clock, START + timedelta(minutes=38))
    phase = [
        e.at - START
        for e in svc.store.events(incident.id, kinds=("reminder",))
        if e.data["reminder"] == "phase"
    ]
    assert phase == [timedelta(minutes=28), timedelta(minutes=38)]
    assert [e.kind for e in svc.store.events(incident.id, kinds=("snoozed",))] == ["snoozed"]


def test_snooze_after_resolution_is_refused(svc, reminders, clock):
    incident = _declare(svc)
    svc.resolved(incident.id, "ana")
    with pytest.raises(InvalidTransition):
        svc.snooze(incident.id, "ana")


def test_after_resolved_only_the_postmortem_reminder_remains(svc, reminders, clock, chat):
    incident = _declare(svc)
    clock.advance(timedelta(minutes=5))
    svc.resolved(incident.id, "ana")
    run_until(reminders, clock, START + timedelta(hours=24, minutes=4))
    assert _sent(chat) == []
    run_until(reminders, clock, START + timedelta(hours=24, minutes=5))
    (only,) = _sent(chat)
    assert "review of INC-1 is due" in only


def test_nothing_is_sent_after_close(svc, reminders, clock, chat):
    incident = _declare(svc)
    run_until(reminders, clock, START + timedelta(minutes=10))
    sent = len(chat.posts)
    svc.close(incident.id, "ana")
    run_until(reminders, clock, START + timedelta(days=3))
    assert len(chat.posts) == sent
    assert svc.store.reminders(incident.id, state="pending") == []


def test_a_failed_post_is_not_retried_into_a_duplicate(svc, reminders, clock, chat):
    _declare(svc)
    chat.fail_next = 1
    run_until(reminders, clock, START + timedelta(minutes=10))
    assert chat.posts == []
    run_until(reminders, clock, START + timedelta(minutes=20))
    assert len([t for t in _sent(chat) if t.startswith(":alarm_clock:")]) == 1  # the 20m one


def test_many_incidents_each_get_their_reminders_once(store, clock, chat, drill_catalog):
    svc = IncidentService(store, clock, drill_catalog)
    reminders = ReminderService(store, clock, chat, Renderer("en", mention=chat.mention))
    ids = []
    for n in range(200):
        incident = svc.start("drill", f"incident {n}", "ana").incident
        svc.set_channel(incident.id, f"C{n}")
        ids.append(incident.id)
    run_until(reminders, clock, START + timedelta(minutes=25))
    per_channel: dict[str, int] = {}
    for channel, text in chat.posts:
        if text.startswith(":alarm_clock:"):
            per_channel[channel] = per_channel.get(channel, 0) + 1
    assert per_channel == {f"C{n}": 2 for n in range(200)}
    assert store.reminders(state="sending") == []


def test_what_falls_due_at_once_for_one_incident_goes_out_as_one_message_most_urgent_first(
    svc, reminders, clock, chat, store
):
    incident = _declare(svc)
    run_until(reminders, clock, START + timedelta(minutes=29))
    before = len(chat.posts)
    run_until(reminders, clock, START + timedelta(minutes=30))  # the 30m slot and the overrun
    (text,) = _sent(chat, before)
    assert text.startswith(":rotating_light: *INC-1 · Phase one is past its 30m target.*")
    assert text.count(":alarm_clock:") == 1 and "30m of 30m" in text
    due_at_30 = [
        r for r in store.reminders(incident.id) if r.due_at == START + timedelta(minutes=30)
    ]
    assert {r.kind: r.state for r in due_at_30} == {"phase": "sent", "overrun": "sent"}


def test_a_reminder_that_cannot_be_worked_out_fails_alone_and_leaves_no_half_record(
    svc, clock, chat, store
):
    broken, healthy = _declare(svc), _declare(svc)
    svc.set_channel(healthy.id, "C2")

    class FailingForBroken(Renderer):
        def __call__(self, key, **params):
            # fails after _phase has written its event and armed the next reminder
            if key == "reminder.phase" and params.get("ref") == broken.ref:
                raise RuntimeError("the template broke")
            return super().__call__(key, **params)

    reminders = ReminderService(store, clock, chat, FailingForBroken("en", mention=chat.mention))
    events_before = len(store.events(broken.id))
    run_until(reminders, clock, START + timedelta(minutes=10))
    assert [c for c, t in chat.posts if ":alarm_clock:" in t] == ["C2"]
    assert {r.state for r in store.reminders(broken.id) if r.done_at} == {"failed"}
    assert len(store.events(broken.id)) == events_before  # its writes were rolled back
    assert not [r for r in store.reminders(broken.id) if r.kind == "phase" and r.seq == 2]
    assert [r for r in store.reminders(healthy.id) if r.kind == "phase" and r.seq == 2]


def test_with_worker_threads_each_reminder_goes_out_once_and_every_row_is_recorded(
    store, clock, chat, drill_catalog, monkeypatch
):
    monkeypatch.setattr("bot.reminders.CHUNK", 3)  # several chunks in flight one after another
    svc = IncidentService(store, clock, drill_catalog)
    reminders = ReminderService(store, clock, chat, Renderer("en", mention=chat.mention), workers=4)
    for n in range(20):
        incident = svc.start("drill", f"incident {n}", "ana").incident
        svc.set_channel(incident.id, f"C{n}")
    try:
        run_until(reminders, clock, START + timedelta(minutes=20))
    finally:
        reminders.close()
    alarms = sorted(c for c, t in chat.posts if ":alarm_clock:" in t)
    assert alarms == sorted([f"C{n}" for n in range(20)] * 2)  # at 10m and 20m, once each
    assert store.reminders(state="sending") == []
    due = [r for r in store.reminders() if r.due_at <= START + timedelta(minutes=20)]
    assert {r.state for r in due} == {"sent"}


def test_a_failure_between_chunks_still_records_what_went_out(
    store, clock, chat, drill_catalog, monkeypatch
):
    monkeypatch.setattr("bot.reminders.CHUNK", 1)
    svc = IncidentService(store, clock, drill_catalog)
    reminders = ReminderService(store, clock, chat, Renderer("en", mention=chat.mention))
    for n in range(2):
        svc.set_channel(svc.start("drill", f"incident {n}", "ana").incident.id, f"C{n}")
    clock.set(START + timedelta(minutes=10))
    claim = reminders._claim
    calls = []

    def claim_then_fail(now):
        calls.append(now)
        if len(calls) == 2:
            raise OSError("disk I/O error")
        return claim(now)

    monkeypatch.setattr(reminders, "_claim", claim_then_fail)
    with pytest.raises(OSError):
        reminders.fire_due()
    (posted,) = [c for c, t in chat.posts if ":alarm_clock:" in t]
    states = {r.incident_id: r.state for r in store.reminders() if r.kind == "phase" and r.seq == 1}
    assert sorted(states.values()) == ["pending", "sent"]  # the first went out and is recorded
