"""The incident service: transitions, events written with them, and refusals."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.errors import IncidentClosed, InvalidTransition, NoPendingHandoff, UnknownName
from bot.runbook import Catalog
from tests.conftest import START, store_on


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The store and engine suites run on both databases."""
    store = store_on(request.param, tmp_path, request)
    yield store
    store.close()


def _start(service, title="Checkout is failing", severity=None):
    return service.start("service-outage", title, "ana", severity=severity).incident


def kinds(service, incident_id):
    return [e.kind for e in service.store.events(incident_id)]


def test_start_keeps_runbook_snapshot_and_hash_and_opens_first_phase(service, catalog):
    incident = _start(service)
    loaded = catalog.get("service-outage")
    assert incident.runbook_version == loaded.version
    assert incident.runbook == loaded.runbook
    assert incident.severity == "sev1"  # the runbook's default
    assert incident.status == "active"
    assert incident.phase.id == "restore"
    assert kinds(service, incident.id) == ["declared", "role_assigned", "phase_started"]
    assert service.store.current_holders(incident.id) == {"commander": "ana"}


def test_explicit_severity_overrides_the_runbook_default(service):
    assert _start(service, severity="sev3").severity == "sev3"


def test_editing_the_runbook_later_does_not_change_a_running_incident(service, tmp_path, clock):
    folder = tmp_path / "rb"
    folder.mkdir()
    text = (service.catalog.get("service-outage").path).read_text(encoding="utf-8")
    (folder / "service-outage.yaml").write_text(text, encoding="utf-8")
    service.catalog = Catalog(folder)
    incident = _start(service)
    (folder / "service-outage.yaml").write_text(
        text.replace("Core service outage", "Renamed"), encoding="utf-8"
    )
    service.catalog = Catalog(folder)
    again = service.store.incident(incident.id)
    assert again.runbook.name == "Core service outage"
    assert service.catalog.get("service-outage").version != again.runbook_version


def test_unknown_runbook_suggests_the_closest_id(service):
    with pytest.raises(UnknownName) as caught:
        service.start("service-outgae", "x", "ana")
    assert "service-outage" in str(caught.value)
    assert "/incident start" in str(caught.value)


def test_assign_gives_the_role_at_once_and_keeps_history(service, clock):
    incident = _start(service)
    service.assign(incident.id, "tech-lead", "ben", "ana")
    clock.advance(timedelta(minutes=5))
    service.assign(incident.id, "tech-lead", "cho", "ana")
    holdings = [h for h in service.store.holdings(incident.id) if h.role_id == "tech-lead"]
    assert [(h.user, h.until is None) for h in holdings] == [("ben", False), ("cho", True)]
    assert holdings[0].until == START + timedelta(minutes=5)


def test_role_can_be_named_case_insensitively_or_by_its_name(service):
    incident = _start(service)
    service.assign(incident.id, "TECH-LEAD", "ben", "ana")
    service.assign(incident.id, "Support lead", "fay", "ana")
    assert service.store.current_holders(incident.id)["support-lead"] == "fay"


def test_unknown_role_is_refused_with_a_suggestion(service):
    incident = _start(service)
    with pytest.raises(UnknownName) as caught:
        service.assign(incident.id, "techlead", "ben", "ana")
    assert caught.value.params["suggestion"] == "tech-lead"
    assert "Did you mean `tech-lead`" in str(caught.value)


def test_handoff_requires_acceptance_by_new_holder(service, clock):
    incident = _start(service)
    service.handoff(incident.id, "commander", "ivy", "ana")
    assert service.store.current_holders(incident.id)["commander"] == "ana"
    with pytest.raises(NoPendingHandoff):
        service.accept(incident.id, "ben")  # ben was not asked
    clock.advance(timedelta(minutes=2))
    change = service.accept(incident.id, "ivy")
    assert service.store.current_holders(incident.id)["commander"] == "ivy"
    (event,) = change.events
    assert event.kind == "handoff_accepted"
    assert event.data["from_user"] == "ana"
    assert event.data["waited_seconds"] == 120
    assert service.store.pending_handoffs(incident.id) == []


def test_accept_with_nothing_pending_says_how_to_get_a_role(service):
    incident = _start(service)
    with pytest.raises(NoPendingHandoff) as caught:
        service.accept(incident.id, "ivy")
    assert "/incident handoff ROLE @you" in str(caught.value)


def test_a_second_handoff_of_the_same_role_replaces_the_first(service):
    incident = _start(service)
    service.handoff(incident.id, "commander", "ivy", "ana")
    change = service.handoff(incident.id, "commander", "joe", "ana")
    assert change.events[0].data["replaces"] == "ivy"
    with pytest.raises(NoPendingHandoff):
        service.accept(incident.id, "ivy")
    service.accept(incident.id, "joe")
    assert service.store.current_holders(incident.id)["commander"] == "joe"


def test_handoff_to_the_current_holder_is_refused(service):
    incident = _start(service)
    with pytest.raises(InvalidTransition):
        service.handoff(incident.id, "commander", "ana", "ana")


def test_accept_takes_every_role_handed_to_that_person(service):
    incident = _start(service)
    service.handoff(incident.id, "commander", "ivy", "ana")
    service.handoff(incident.id, "product", "ivy", "ana")
    change = service.accept(incident.id, "ivy")
    assert {e.data["role"] for e in change.events} == {"commander", "product"}


def test_update_records_the_time_of_the_last_update(service, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=12))
    change = service.update(incident.id, "Rolling back", "ben")
    assert change.incident.last_update_at == START + timedelta(minutes=12)
    assert change.events[0].text == "Rolling back"


def test_done_and_skip_record_steps_and_refuse_repeats(service):
    incident = _start(service)
    service.done(incident.id, "1.1", "ana")
    with pytest.raises(InvalidTransition) as caught:
        service.done(incident.id, "1.1", "ana")
    assert caught.value.key == "step_already_done"
    service.skip(incident.id, "1.2", "Dashboards already show it", "chen")
    with pytest.raises(InvalidTransition):
        service.skip(incident.id, "1.2", "again", "chen")
    service.done(incident.id, "1.2", "chen")  # a skipped step can still be done
    records = service.store.step_records(incident.id)
    assert records["1.1"].state == "done" and records["1.2"].state == "done"


def test_skipped_step_keeps_its_reason(service):
    incident = _start(service)
    service.skip(incident.id, "1.2", "Dashboards already show it", "chen")
    assert service.store.step_records(incident.id)["1.2"].reason == "Dashboards already show it"


def test_unknown_step_lists_the_steps(service):
    incident = _start(service)
    with pytest.raises(UnknownName) as caught:
        service.done(incident.id, "9.9", "ana")
    assert "1.1, 1.2" in str(caught.value)


def test_next_moves_through_phases_and_refuses_past_the_last(service, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=30))
    assert service.next_phase(incident.id, "ana").incident.phase.id == "fix"
    assert service.next_phase(incident.id, "ana").incident.phase.id == "comms"
    with pytest.raises(InvalidTransition) as caught:
        service.next_phase(incident.id, "ana")
    assert "/incident resolved" in str(caught.value)
    runs = service.store.phase_runs(incident.id)
    assert [r.phase_id for r in runs] == ["restore", "fix", "comms"]
    assert runs[0].ended_at == START + timedelta(minutes=30)


def test_severity_change_is_recorded_with_the_previous_value(service):
    incident = _start(service)
    change = service.set_severity(incident.id, "sev2", "ana")
    assert change.incident.severity == "sev2"
    assert change.events[0].data == {"severity": "sev2", "previous": "sev1"}
    with pytest.raises(InvalidTransition):
        service.set_severity(incident.id, "sev2", "ana")
    with pytest.raises(InvalidTransition):
        service.set_severity(incident.id, "p0", "ana")


def test_status_moves_forward_and_refuses_repeats(service, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=50))
    assert service.mitigated(incident.id, "ana").incident.status == "mitigated"
    with pytest.raises(InvalidTransition) as caught:
        service.mitigated(incident.id, "ana")
    assert "/incident resolved" in str(caught.value)
    clock.advance(timedelta(minutes=60))
    resolved = service.resolved(incident.id, "ana").incident
    assert resolved.status == "resolved"
    assert resolved.mitigated_at == START + timedelta(minutes=50)
    with pytest.raises(InvalidTransition):
        service.resolved(incident.id, "ana")


def test_resolving_an_unmitigated_incident_marks_it_mitigated_too(service):
    incident = _start(service)
    change = service.resolved(incident.id, "ana")
    assert [e.kind for e in change.events] == ["mitigated", "resolved"]
    assert change.incident.mitigated_at == change.incident.resolved_at


def test_closing_twice_is_refused(service):
    incident = _start(service)
    service.close(incident.id, "ana")
    with pytest.raises(IncidentClosed) as caught:
        service.close(incident.id, "ana")
    assert caught.value.key == "already_closed"


@pytest.mark.parametrize(
    "act",
    [
        lambda s, i: s.assign(i, "tech-lead", "ben", "ana"),
        lambda s, i: s.handoff(i, "tech-lead", "ben", "ana"),
        lambda s, i: s.update(i, "x", "ana"),
        lambda s, i: s.done(i, "1.1", "ana"),
        lambda s, i: s.next_phase(i, "ana"),
        lambda s, i: s.mitigated(i, "ana"),
        lambda s, i: s.set_severity(i, "sev2", "ana"),
    ],
)
def test_acting_on_a_closed_incident_is_refused(service, act):
    incident = _start(service)
    service.close(incident.id, "ana")
    with pytest.raises(IncidentClosed) as caught:
        act(service, incident.id)
    assert "/incident start" in str(caught.value)


def test_postmortem_material_can_be_added_after_close(service):
    incident = _start(service)
    service.close(incident.id, "ana")
    service.describe(incident.id, "cause", "Pool size default changed", "ben")
    service.add_action(incident.id, "Pin pool size", "ben", owner="eli", due=date(2026, 1, 22))
    assert service.store.incident(incident.id).cause == "Pool size default changed"
    (action,) = service.store.actions(incident.id)
    assert (action.owner, action.due, action.status) == ("eli", "2026-01-22", "open")


def test_close_ends_roles_phases_and_pending_handoffs(service, clock):
    incident = _start(service)
    service.handoff(incident.id, "commander", "ivy", "ana")
    clock.advance(timedelta(hours=1))
    service.close(incident.id, "ana")
    assert service.store.current_holders(incident.id) == {}
    assert service.store.pending_handoffs(incident.id) == []
    assert all(r.ended_at is not None for r in service.store.phase_runs(incident.id))


def test_a_failed_command_writes_nothing(service):
    incident = _start(service)
    before = kinds(service, incident.id)
    with pytest.raises(UnknownName):
        service.done(incident.id, "nope", "ana")
    assert kinds(service, incident.id) == before


def test_view_marks_steps_overdue_after_their_deadline(service, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=21))
    states = {s.step.id: s.state for s in service.view(incident.id).steps}
    assert states["1.1"] == "overdue" and states["1.2"] == "overdue"
    assert states["1.3"] == "open"
    assert states["2.1"] == "open"  # 1h after mitigated: no deadline yet


def test_milestone_deadlines_appear_when_the_milestone_happens(service, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=40))
    service.mitigated(incident.id, "ana")
    deadlines = {s.step.id: s.deadline for s in service.view(incident.id).steps}
    assert deadlines["2.1"] == START + timedelta(minutes=40, hours=1)
    assert deadlines["1.1"] == START + timedelta(minutes=15)


def test_a_follow_up_is_marked_done_once_also_after_close(service, clock):
    incident = _start(service)
    change = service.add_action(
        incident.id, "Pin pool size", "ben", owner="eli", due=date(2026, 1, 22)
    )
    (added,) = change.events
    service.close(incident.id, "ana")
    clock.advance(timedelta(days=2))
    done = service.complete_action(incident.id, added.payload.action, "eli")
    (event,) = done.events
    assert (event.kind, event.actor, event.text) == ("action_done", "eli", "Pin pool size")
    assert event.payload.due == "2026-01-22"
    (action,) = service.store.actions(incident.id)
    assert (action.status, action.done_at) == ("done", clock.now())
    with pytest.raises(InvalidTransition) as again:
        service.complete_action(incident.id, action.id, "eli")
    assert again.value.key == "action_already_done"
    assert kinds(service, incident.id).count("action_done") == 1


def test_marking_another_incident_s_follow_up_done_is_refused(service):
    first, second = _start(service), _start(service)
    (added,) = service.add_action(first.id, "Pin pool size", "ben").events
    with pytest.raises(UnknownName) as caught:
        service.complete_action(second.id, added.payload.action, "ben")
    assert caught.value.key == "unknown_action"
    assert service.store.action(added.payload.action).status == "open"
