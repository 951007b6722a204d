"""Who may do what under each Policy: the lead-only actions and the ones open to everyone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.engine import IncidentService, Policy
from bot.errors import NotAllowed

DECLARER = "ana"  # declares, then hands the lead role on
LEAD = "ivy"  # the current commander, after accepting the handoff
ADMIN = "root"
OTHER = "zed"  # in the channel, holds nothing
NEWCOMER = "kim"  # who the lead actions give the role to
ACTORS = {"lead": LEAD, "declarer": DECLARER, "admin": ADMIN, "someone else": OTHER}

LEAD_ONLY: dict[str, Callable[[IncidentService, int, str], object]] = {
    "close": lambda s, i, actor: s.close(i, actor),
    "sev": lambda s, i, actor: s.set_severity(i, "sev2", actor),
    "assign commander": lambda s, i, actor: s.assign(i, "commander", NEWCOMER, actor),
    "handoff commander": lambda s, i, actor: s.handoff(i, "commander", NEWCOMER, actor),
}
# how each lead action is named in the refusal
REFUSAL_PHRASE = {
    "close": "may close INC-1",
    "sev": "may change the severity of INC-1",
    "assign commander": "may give the lead role of INC-1",
    "handoff commander": "may hand over the lead role of INC-1",
}


def _service(store, clock, catalog, policy: Policy) -> IncidentService:
    return IncidentService(store, clock, catalog, policy=policy)


def _declare_and_hand_over(service: IncidentService) -> int:
    """INC-1, declared by ana, whose commander is now ivy: lead != declarer."""
    incident = service.start("service-outage", "Checkout is failing", DECLARER).incident
    service.handoff(incident.id, "commander", LEAD, DECLARER)
    service.accept(incident.id, LEAD)
    assert service.store.current_holders(incident.id) == {"commander": LEAD}
    assert service.store.incident(incident.id).declared_by == DECLARER
    return incident.id


def _state(service: IncidentService, incident_id: int) -> tuple:
    incident = service.store.incident(incident_id)
    pending = [(h.role_id, h.to_user) for h in service.store.pending_handoffs(incident_id)]
    return (
        incident.status,
        incident.severity,
        service.store.current_holders(incident_id),
        pending,
        len(service.store.events(incident_id)),
    )


def _assert_done(service: IncidentService, incident_id: int, action: str, actor: str) -> None:
    """The lead action took effect and was recorded as done by `actor`."""
    incident = service.store.incident(incident_id)
    holders = service.store.current_holders(incident_id)
    pending = [(h.role_id, h.to_user) for h in service.store.pending_handoffs(incident_id)]
    last = service.store.events(incident_id)[-1]
    assert last.actor == actor
    if action == "close":
        assert incident.status == "closed" and last.kind == "closed"
    elif action == "sev":
        assert incident.severity == "sev2" and last.kind == "severity_changed"
    elif action == "assign commander":
        assert holders["commander"] == NEWCOMER and last.kind == "role_assigned"
    else:
        assert holders["commander"] == LEAD  # kept until the newcomer accepts
        assert pending == [("commander", NEWCOMER)] and last.kind == "handoff_requested"


@pytest.mark.parametrize("action", LEAD_ONLY)
@pytest.mark.parametrize("who", ACTORS)
def test_lead_policy_matrix(store, clock, catalog, who: str, action: str):
    service = _service(store, clock, catalog, Policy("lead", admins=frozenset({ADMIN})))
    incident_id = _declare_and_hand_over(service)
    actor = ACTORS[who]
    before = _state(service, incident_id)
    if who == "someone else":
        with pytest.raises(NotAllowed) as refused:
            LEAD_ONLY[action](service, incident_id, actor)
        message = str(refused.value)
        assert f"@{LEAD}" in message and f"@{DECLARER}" in message, message
        assert "or an admin" in message and REFUSAL_PHRASE[action] in message, message
        assert "`/incident handoff commander @you`" in message, message
        assert _state(service, incident_id) == before  # no event, nothing changed
    else:
        change = LEAD_ONLY[action](service, incident_id, actor)
        assert change.events
        assert len(store.events(incident_id)) == before[-1] + len(change.events)
        _assert_done(service, incident_id, action, actor)


@pytest.mark.parametrize("action", LEAD_ONLY)
@pytest.mark.parametrize("who", ACTORS)
def test_anyone_policy_lets_everybody_do_the_lead_actions(store, clock, catalog, who, action):
    service = _service(store, clock, catalog, Policy("anyone"))
    incident_id = _declare_and_hand_over(service)
    count = len(store.events(incident_id))
    change = LEAD_ONLY[action](service, incident_id, ACTORS[who])
    assert len(store.events(incident_id)) == count + len(change.events) > count
    _assert_done(service, incident_id, action, ACTORS[who])


@pytest.mark.parametrize("action", LEAD_ONLY)
def test_the_bot_itself_is_always_allowed(store, clock, catalog, action):
    service = _service(store, clock, catalog, Policy("lead"))
    incident_id = _declare_and_hand_over(service)
    LEAD_ONLY[action](service, incident_id, "bot")
    _assert_done(service, incident_id, action, "bot")


@pytest.mark.parametrize("action", LEAD_ONLY)
def test_without_admins_an_admin_name_is_nobody_special(store, clock, catalog, action):
    service = _service(store, clock, catalog, Policy("lead"))
    incident_id = _declare_and_hand_over(service)
    before = _state(service, incident_id)
    with pytest.raises(NotAllowed):
        LEAD_ONLY[action](service, incident_id, ADMIN)
    assert _state(service, incident_id) == before


def _accept(service: IncidentService, incident_id: int, actor: str):
    # the lead hands its own role to the actor (or, to itself, another role), who accepts
    role = "tech-lead" if actor == LEAD else "commander"
    service.handoff(incident_id, role, actor, LEAD)
    change = service.accept(incident_id, actor)
    assert service.store.current_holders(incident_id)[role] == actor
    return change


OPEN: dict[str, tuple[Callable[[IncidentService, int, str], object], list[str]]] = {
    "update": (lambda s, i, a: s.update(i, "Rolling back", a), ["update"]),
    "note": (lambda s, i, a: s.note(i, "Saw 500s", a), ["note"]),
    "done": (lambda s, i, a: s.done(i, "1.1", a), ["step_done"]),
    "skip": (lambda s, i, a: s.skip(i, "1.2", "no logs", a), ["step_skipped"]),
    "assign tech-lead": (
        lambda s, i, a: s.assign(i, "tech-lead", NEWCOMER, a),
        ["role_assigned"],
    ),
    "accept": (_accept, ["handoff_accepted"]),
    "next": (lambda s, i, a: s.next_phase(i, a), ["phase_started"]),
    "mitigated": (lambda s, i, a: s.mitigated(i, a), ["mitigated"]),
    "resolved": (lambda s, i, a: s.resolved(i, a), ["mitigated", "resolved"]),
}


@pytest.mark.parametrize("verb", OPEN)
@pytest.mark.parametrize("who", ACTORS)
def test_lead_policy_leaves_everything_else_open_to_everyone(store, clock, catalog, who, verb):
    service = _service(store, clock, catalog, Policy("lead", admins=frozenset({ADMIN})))
    incident_id = _declare_and_hand_over(service)
    actor = ACTORS[who]
    count = len(store.events(incident_id))
    run, kinds = OPEN[verb]
    run(service, incident_id, actor)
    events = store.events(incident_id)[count:]
    if verb == "accept":  # the lead's handoff request comes first
        assert events[0].kind == "handoff_requested" and events[0].actor == LEAD
        events = events[1:]
    assert [e.kind for e in events] == kinds
    assert all(e.actor == actor for e in events)
