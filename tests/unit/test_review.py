"""What people write for the review: kept as events, folded back, corrected by the form."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.bootstrap import build
from bot.dispatch import Context
from bot.errors import IncidentClosed, InvalidTransition
from bot.postmortem import render_review
from bot.review import MAX_ITEMS, fold


def _closed(service, clock):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    clock.advance(timedelta(minutes=30))
    service.resolved(incident.id, "ana")
    service.close(incident.id, "ana")
    return incident


def test_review_material_is_taken_after_close_and_operations_are_not(service, clock):
    incident = _closed(service, clock)
    clock.advance(timedelta(days=2))  # the review meeting
    service.add_to_review(incident.id, "trigger", "A release halved the pool", "ben")
    service.add_to_review(incident.id, "why", "Pods waited for connections", "ben")
    service.add_to_review(incident.id, "factor", "No pool alert", "chen", "tooling")
    service.add_to_review(incident.id, "lesson", "Night traffic was low", "ivy", "lucky")
    service.describe(incident.id, "summary", "Checkout failed", "ivy")
    service.add_action(incident.id, "Pin the pool", "ivy", owner="eli", priority="p1")
    with pytest.raises(IncidentClosed):
        service.update(incident.id, "still here", "ana")
    with pytest.raises(IncidentClosed):
        service.next_phase(incident.id, "ana")
    material = service.review(incident.id)
    assert material.texts["trigger"] == "A release halved the pool"
    assert material.texts["summary"] == "Checkout failed"
    assert material.whys == ("Pods waited for connections",)
    assert material.factors["tooling"] == ("No pool alert",)
    assert material.lessons["lucky"] == ("Night traffic was low",)
    kinds = [e.kind for e in service.store.events(incident.id)][-6:]
    assert kinds == ["trigger", "why", "factor", "lesson", "summary", "action_added"]


def test_each_why_is_the_next_and_a_later_text_replaces_the_earlier(service, clock):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    numbers = [
        service.add_to_review(incident.id, "why", f"because {n}", "ben").events[0].data["number"]
        for n in range(3)
    ]
    assert numbers == [1, 2, 3]
    service.add_to_review(incident.id, "detection", "An alert", "ben")
    service.add_to_review(incident.id, "detection", "A customer told us", "ben")
    assert service.review(incident.id).texts["detection"] == "A customer told us"


def test_the_form_replaces_what_it_carries_and_keeps_the_rest(service, clock):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    for text in ("one", "two", "three"):
        service.add_to_review(incident.id, "why", text, "ben")
    service.add_to_review(incident.id, "factor", "No alert", "chen", "tooling")
    service.add_to_review(incident.id, "lesson", "Rollback ready", "ivy", "well")
    change = service.revise_review(
        incident.id,
        {
            "whys": "One, reworded\n\nthree",  # reworded, one deleted, a blank line ignored
            "factors": {"people": "Only one on call", "tooling": "No alert"},  # tooling as is
            "summary": "Checkout failed",
        },
        "ivy",
    )
    (event,) = change.events
    assert event.kind == "review_revised"
    assert event.data == {
        "summary": "Checkout failed",
        "whys": ["One, reworded", "three"],
        "factors": {"people": ["Only one on call"]},
    }
    material = service.review(incident.id)
    assert material.whys == ("One, reworded", "three")
    assert material.factors["people"] == ("Only one on call",)
    assert material.factors["tooling"] == ("No alert",)
    assert material.lessons["well"] == ("Rollback ready",)  # not in the form: kept
    assert service.store.incident(incident.id).summary == "Checkout failed"  # the row follows
    # a later `why` is the next one after the corrected list
    assert service.add_to_review(incident.id, "why", "four", "ben").events[0].data["number"] == 3


def test_a_form_that_changes_nothing_is_refused_and_records_nothing(service):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    service.add_to_review(incident.id, "why", "one", "ben")
    before = len(service.store.events(incident.id))
    with pytest.raises(InvalidTransition) as info:
        service.revise_review(incident.id, {"whys": "one", "trigger": "", "junk": "x"}, "ivy")
    assert info.value.key == "review_unchanged"
    assert len(service.store.events(incident.id)) == before


def test_a_hostile_form_is_cleaned_and_bounded(service):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    submitted = {
        "cause": "a\u202eb\x00c" + "x" * 10_000,
        "whys": "\n".join(f"why {n}" for n in range(1000)),
        "factors": {"people": ["ok", 7, None, {"x": 1}], "nonsense": "dropped"},
        "lessons": "not a mapping",
        "trigger": 12345,
    }
    (event,) = service.revise_review(incident.id, submitted, "ivy").events
    assert event.data["cause"].startswith("abc") and len(event.data["cause"]) == 3000
    assert event.data["whys"] == [f"why {n}" for n in range(MAX_ITEMS)]
    assert event.data["factors"] == {"people": ["ok"]}
    assert "lessons" not in event.data and "trigger" not in event.data


def test_lists_are_bounded_for_typed_commands_too(service):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    for n in range(MAX_ITEMS):
        service.add_to_review(incident.id, "lesson", f"lesson {n}", "ben", "wrong")
    with pytest.raises(InvalidTransition) as info:
        service.add_to_review(incident.id, "lesson", "one more", "ben", "wrong")
    assert info.value.key == "review_list_full"
    assert len(service.review(incident.id).lessons["wrong"]) == MAX_ITEMS


def test_the_fold_ignores_events_of_other_kinds_and_unknown_categories(service):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    service.note(incident.id, "not review material", "ana")
    assert fold(service.store.events(incident.id)) == service.review(incident.id)
    assert service.review(incident.id).whys == ()


def test_rebuilding_keeps_what_people_wrote_in_place_of_the_placeholders(service, clock):
    incident = _closed(service, clock)
    store = service.store
    empty = render_review(store, incident.id, "en").text
    assert empty.count("To complete at the review") >= 10
    service.add_to_review(incident.id, "why", "Pods waited for connections", "ben")
    service.add_to_review(incident.id, "factor", "Staffing was thin at night", "ben", "people")
    service.add_to_review(incident.id, "lesson", "Low traffic at 2 a.m.", "ivy", "lucky")
    text = render_review(store, incident.id, "en").text
    assert "1. Pods waited for connections\n2. _✏️ To complete at the review: why?" in text
    assert "| People (skills, staffing, hand-offs) | Staffing was thin at night |" in text
    assert "### Where we got lucky\n\n- Low traffic at 2 a.m.\n" in text
    assert text.count("To complete at the review") == empty.count("To complete at the review") - 3


def test_the_terminal_answers_review_with_the_verbs(settings, clock, chat):
    bot = build(settings, clock, chat)
    try:
        bot.handler.handle("review", Context(actor="ana"))
    finally:
        bot.close()
    (_, answer) = chat.replies[-1]
    assert "The review form opens in Slack" in answer
    for form in ("/incident why TEXT…", "/incident lesson well|wrong|lucky TEXT…", "[p1|p2|p3]"):
        assert form in answer
