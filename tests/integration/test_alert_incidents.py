"""Incidents from alerts, through the journal and the command handler (no Slack): one
incident per open alert group, repeats and resolutions as timeline lines, the lead role
left open, the route's announce channel, and the alert in the plan and the review."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts import ACTOR
from bot.bootstrap import build
from bot.config import Settings
from bot.dispatch import Context
from bot.events import AlertReceived, Declared
from bot.hooks import AlertIntake
from bot.postmortem import render_review
from bot.routes import load_routes
from bot.runbook import shipped_runbooks_dir
from tests.alerting import ROUTES, alert, group
from tests.conftest import RecordingChat


class Alerting:
    def __init__(self, tmp_path: Path, clock) -> None:
        settings = Settings.of(
            db=tmp_path / "bot.db",
            runbooks=shipped_runbooks_dir(),
            postmortems=tmp_path / "postmortems",
        )
        self.chat = RecordingChat()
        self.bot = build(settings, clock, self.chat)
        (tmp_path / "routes.yaml").write_text(ROUTES, encoding="utf-8")
        routes = load_routes(tmp_path / "routes.yaml", self.bot.catalog.ids())
        self.lanes: list = []
        self.intake = AlertIntake(self.bot.handler, self.bot.store, routes, self.lanes.append)
        # real time between notifications, for the repeat window: a minute each (Alertmanager
        # sends a group again after group_interval, 5m, or repeat_interval, 4h)
        self.now = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
        self.bot.handler.wall = lambda: self.now

    def hook(self, data: dict, later: timedelta = timedelta(minutes=1)) -> tuple[int, dict]:
        """POST /hooks/alertmanager without the HTTP: journal, then carry it out."""
        self.now += later
        answer = self.intake.receive(json.dumps(data).encode())
        while self.lanes:
            lane = self.lanes.pop(0)
            while self.bot.handler.run_next(lane) == 0:
                pass
        self.bot.handler.outbox.deliver_now(self.bot.handler)
        return answer.status, answer.body

    def type(self, text: str, user: str, channel: str) -> None:
        self.bot.handler.handle(text, Context(user, channel))

    def posts(self, channel: str) -> list[str]:
        return [text for c, text in self.chat.posts if c == channel]


@pytest.fixture
def alerting(tmp_path, clock):
    harness = Alerting(tmp_path, clock)
    yield harness
    harness.bot.close()


def test_a_firing_group_declares_once_with_the_lead_role_open(alerting):
    status, answer = alerting.hook(group())
    assert (status, answer) == (202, {"status": "accepted", "incident": None})
    (incident,) = alerting.bot.store.incidents()
    assert incident.title == "CHECKOUT: Checkout answers 500 for 12% of requests"
    assert (incident.severity, incident.runbook_id, incident.declared_by) == (
        "sev1",
        "service-outage",
        ACTOR,
    )
    assert alerting.bot.store.current_holders(incident.id) == {}  # nobody holds the lead
    declared = alerting.bot.store.events(incident.id)[0]
    assert isinstance(declared.payload, Declared) and declared.payload.lead_open
    channel = incident.channel
    assert channel == "C0001"
    posts = alerting.posts(channel)
    assert "Nobody holds *Response lead (incident commander)* yet" in posts[0]
    assert "`/incident assign commander @you`" in posts[0]
    plan = posts[-1]  # the plan: the alert's labels, annotations and where it came from
    assert "`service=checkout`" in plan and "`alertname=CheckoutDown`" in plan
    assert "_summary_: Checkout answers 500 for 12% of requests" in plan
    assert "Source: http://prometheus.example.com:9090/graph?g0.expr=up%3D%3D0&amp;g0.tab=1" in plan
    # announced in the route's channel instead of the general one; nobody to invite or answer
    assert any(c == "CPAYMENTS" and "INC-1" in t for c, t in alerting.chat.posts)
    assert alerting.chat.announced == []
    assert alerting.chat.replies == [] and alerting.chat.direct == []


def test_repeats_resolution_and_firing_again_are_lines_of_the_same_incident(alerting):
    alerting.hook(group())
    channel = alerting.bot.store.incidents()[0].channel
    before = len(alerting.posts(channel))
    status, answer = alerting.hook(group())  # Alertmanager's repeat_interval: the same again
    assert (status, answer["incident"]) == (202, "INC-1")
    assert len(alerting.posts(channel)) == before  # recorded, not posted: no ping storm
    two = [alert(), alert(fingerprint="b2", labels={"instance": "checkout-2"})]
    alerting.hook(group(alerts=two))
    assert alerting.posts(channel)[-1] == ":bell: Alertmanager: still firing, 2 alerts (1 new)."
    alerting.hook(group(status="resolved"))
    resolved = alerting.posts(channel)[-1]
    assert "alert group is *resolved* (1 alert)" in resolved
    assert "`/incident mitigated`" in resolved  # not mitigated yet: the bot suggests it
    alerting.hook(group())
    assert "*firing again* (1 alert)" in alerting.posts(channel)[-1]
    alerting.type("mitigated", "U2", channel)
    alerting.hook(group(status="resolved"))
    assert "`/incident mitigated`" not in alerting.posts(channel)[-1]  # already mitigated
    assert len(alerting.bot.store.incidents(include_closed=True)) == 1
    lines = [
        e.payload for e in alerting.bot.store.events(1) if isinstance(e.payload, AlertReceived)
    ]
    assert [(p.status, p.firing, p.resolved, p.new, p.again) for p in lines] == [
        ("firing", 1, 0, 0, False),
        ("firing", 2, 0, 1, False),
        ("resolved", 0, 1, 0, False),
        ("firing", 1, 0, 0, True),
        ("resolved", 0, 1, 0, False),
    ]
    assert all(e.actor == ACTOR for e in alerting.bot.store.events(1, kinds=("alert",)))


def test_anyone_may_take_the_open_lead_role_and_then_the_policy_applies(alerting):
    alerting.hook(group())
    channel = alerting.bot.store.incidents()[0].channel
    alerting.type("sev sev2", "U3", channel)  # nobody leads yet: take the role first
    assert (
        "Nobody holds the Response lead (incident commander) role of INC-1 yet"
        in (alerting.chat.replies[-1][1])
    )
    alerting.type("assign commander <@U2>", "U2", channel)
    assert alerting.bot.store.current_holders(1) == {"commander": "U2"}
    alerting.type("assign commander <@U3>", "U3", channel)  # now it is U2's to give
    assert "Only the Response lead" in alerting.chat.replies[-1][1]
    alerting.type("sev sev2", "U2", channel)
    assert alerting.bot.store.incident(1).severity == "sev2"


def test_a_closed_groups_next_firing_declares_a_new_incident(alerting):
    alerting.hook(group())
    channel = alerting.bot.store.incidents()[0].channel
    alerting.type("assign commander <@U2>", "U2", channel)
    alerting.type("close", "U2", channel)
    alerting.hook(group(status="resolved"))  # about a closed incident: nothing to do
    assert len(alerting.bot.store.incidents(include_closed=True)) == 1
    alerting.hook(group())
    first, second = alerting.bot.store.incidents(include_closed=True)
    assert first.is_closed and not second.is_closed
    assert alerting.bot.store.alert_group(second.id)["open_key"] == group()["groupKey"]
    assert alerting.bot.store.alert_group(first.id)["open_key"] is None


def test_the_same_notification_moments_later_is_a_duplicate(alerting):
    """Two Alertmanagers in a cluster may both send one notification."""
    assert alerting.hook(group())[1]["status"] == "accepted"
    assert alerting.hook(group(), later=timedelta(seconds=1)) == (
        202,
        {"status": "duplicate", "incident": "INC-1"},
    )
    assert len(alerting.bot.store.events(1, kinds=("alert",))) == 0


def test_unrouted_and_resolved_groups_declare_nothing_and_journal_nothing(alerting):
    quiet = group(
        key='{}:{alertname="DiskFull"}', common={"alertname": "DiskFull", "severity": "warning"}
    )
    assert alerting.hook(quiet) == (202, {"status": "unrouted", "incident": None})
    assert alerting.hook(group(status="resolved")) == (
        202,
        {"status": "resolved", "incident": None},
    )
    assert alerting.bot.store.incidents(include_closed=True) == []
    assert alerting.bot.store.unfinished_requests() == []
    rows = alerting.bot.store._db.rows("SELECT COUNT(*) AS n FROM inbox")
    assert rows[0]["n"] == 0


def test_a_route_whose_runbook_went_away_declares_nothing_and_answers_nobody(alerting):
    """The route was decided when the notification was accepted; by the replay its runbook
    is gone: the request is finished, logged, and no reply goes to 'alertmanager'."""
    received = alerting.bot.handler.receive(
        {"alert": group(), "route": {"runbook": "gone", "title": "T", "severity": None}},
        Context(ACTOR),
    )
    assert alerting.bot.handler.run_next(received.lane) is None  # carried out: its lane is done
    alerting.bot.handler.outbox.deliver_now(alerting.bot.handler)
    assert alerting.bot.store.incidents(include_closed=True) == []
    assert alerting.bot.store.unfinished_requests() == []
    assert alerting.chat.replies == [] and alerting.chat.direct == []


def test_the_review_shows_the_alert_group_it_was_declared_from(alerting):
    alerting.hook(group())
    review = render_review(alerting.bot.store, 1).text
    assert "Declared from an Alertmanager alert group (receiver incident-bot)" in review
    assert "| label service | checkout |" in review
    assert "| annotation summary | Checkout answers 500 for 12% of requests |" in review
    assert (
        "| source | <http://prometheus.example.com:9090/graph?g0.expr=up%3D%3D0&g0.tab=1> |"
        in review
    )
    assert "from an alert; nobody held Response lead (incident commander) yet" in review


def test_two_notifications_journaled_before_either_ran_declare_once(alerting):
    """Both found no open incident when they arrived (each in a lane of its own); the
    decision inside the declaring transaction makes the second a line of the first, also
    when the two lanes run at the same moment."""
    first = group(alerts=[alert(fingerprint="one")])
    second = group(alerts=[alert(fingerprint="one"), alert(fingerprint="two")])
    for data in (first, second):
        alerting.now += timedelta(seconds=1)
        assert alerting.intake.receive(json.dumps(data).encode()).body["incident"] is None
    lanes, alerting.lanes[:] = list(alerting.lanes), []
    assert len(set(lanes)) == 2
    start = threading.Barrier(2)

    def run(lane) -> None:
        start.wait()
        while alerting.bot.handler.run_next(lane) == 0:
            pass

    threads = [threading.Thread(target=run, args=(lane,)) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert [i.id for i in alerting.bot.store.incidents(include_closed=True)] == [1]
    assert len(alerting.bot.store.events(1, kinds=("alert",))) == 1
    assert alerting.bot.store.unfinished_requests() == []
