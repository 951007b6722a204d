"""The Home tab: its data (bot/home.py) and its Block Kit view and publisher
(bot/slack/home.py): limits, paging, what each viewer sees."""

from __future__ import annotations

import json
from concurrent.futures import Future
from datetime import date, timedelta

import pytest

from bot.home import home_data
from bot.messages import Renderer
from bot.slack.app import home_tab_opened
from bot.slack.home import MAX_OPEN, MAX_VIEW_BLOCKS, HomeTab, home_view
from bot.slack.text import escape
from tests.conftest import START
from tests.fakeslack import _check_home_view


def _render(language: str = "en") -> Renderer:
    return Renderer(language, mention=lambda u: f"<@{u}>" if u else "-", escape=escape)


def _link(channel: str) -> str:
    return f"<#{channel}>"


def _view(store, clock, user: str = "U2", **limits) -> dict:
    view = home_view(_render(), home_data(store, user, clock.now()), _link, **limits)
    _check_home_view(view)  # as views.publish checks it
    return view


def _text(view: dict) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_the_viewer_s_incidents_come_first_with_their_roles_marked(service, store, clock):
    first = service.start("service-outage", "Search slow", "U1", severity="sev3").incident
    service.set_channel(first.id, "C1")
    mine = service.start("service-outage", "Logins fail", "U1", severity="sev3").incident
    service.set_channel(mine.id, "C2")
    service.assign(mine.id, "tech-lead", "U2", "U1")
    service.assign(mine.id, "ops-a", "U2", "U1")
    worst = service.start("service-outage", "All down", "U1", severity="sev1").incident
    clock.advance(timedelta(minutes=42))
    data = home_data(store, "U2", clock.now())
    assert [o.incident.id for o in data.open] == [mine.id, worst.id, first.id]
    assert data.open[0].mine == ("Tech lead", "Ops engineer A")
    assert data.open[0].lead == "U1" and data.open[0].elapsed == timedelta(minutes=42)
    text = _text(_view(store, clock))
    assert "*INC-2* sev3 · Logins fail" in text
    assert "Phase 1/3: Confirm the fault and restore service · 42m · lead <@U1> · <#C2>" in text
    assert "*You: Tech lead, Ops engineer A*" in text
    assert text.count("You:") == 1  # only where the viewer holds a role


def test_a_private_incident_shows_its_title_only_to_those_holding_a_role(store, clock, tmp_path):
    from bot.engine import IncidentService
    from bot.runbook import Catalog, shipped_runbooks_dir

    folder = tmp_path / "rb"
    folder.mkdir()
    source = (shipped_runbooks_dir() / "security-incident.yaml").read_text(encoding="utf-8")
    (folder / "security-incident.yaml").write_text(source, encoding="utf-8")
    service = IncidentService(store, clock, Catalog(folder))
    incident = service.start("security-incident", "Leaked key", "U1").incident
    assert incident.runbook.private
    service.set_channel(incident.id, "CSECRET")
    outsider = _text(_view(store, clock, "U9"))
    assert ":lock: private" in outsider and "Leaked key" not in outsider
    assert "CSECRET" not in outsider and "<@U1>" not in outsider  # nor who leads it
    insider = _text(_view(store, clock, "U1"))
    assert "Leaked key" in insider and "<#CSECRET>" in insider


def test_follow_ups_are_the_viewer_s_own_soonest_due_first(service, store, clock):
    incident = service.start("service-outage", "Checkout", "U1").incident
    service.add_action(incident.id, "Later", "U1", owner="U2", due=date(2026, 2, 1))
    service.add_action(
        incident.id, "Overdue", "U1", owner="U2", due=date(2026, 1, 14), priority="p1"
    )
    service.add_action(incident.id, "Whenever", "U1", owner="U2")
    service.add_action(incident.id, "Not mine", "U1", owner="U3")
    done = service.add_action(incident.id, "Done", "U1", owner="U2").events[0]
    service.complete_action(incident.id, done.payload.action, "U2")
    service.close(incident.id, "U1")  # follow-ups outlive their incident
    data = home_data(store, "U2", clock.now())
    assert [f.action.text for f in data.follow_ups] == ["Overdue", "Later", "Whenever"]
    assert [f.overdue for f in data.follow_ups] == [True, False, False]
    text = _text(_view(store, clock))
    assert "INC-1 #2 p1 Overdue — due 2026-01-14 :red_circle: overdue" in text
    assert "INC-1 #3 Whenever — no due date" in text
    assert "Not mine" not in text and "Done" not in text


def test_many_open_incidents_are_paged_within_slack_s_limits(service, store, clock):
    for n in range(MAX_OPEN + 15):
        service.start("service-outage", f"Incident {n} " + "x" * 400, "U1")
    for n in range(120):  # and a long list of follow-ups
        service.add_action(1, f"Follow-up {n} " + "y" * 280, "U1", owner="U2")
    view = _view(store, clock)
    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    text = _text(view)
    assert text.count("*INC-") == MAX_OPEN
    assert "… and 15 more: `/incident list`" in text
    assert "… and 90 more: `/incident actions` in each incident's channel" in text
    assert "x" * 200 not in text  # titles are cut
    assert view["blocks"][-1]["type"] == "context"  # the footer is always there


def test_a_view_that_would_pass_100_blocks_keeps_its_footer(service, store, clock):
    for n in range(120):
        service.start("service-outage", f"Incident {n}", "U1")
    view = _view(store, clock, max_open=200)
    assert len(view["blocks"]) == MAX_VIEW_BLOCKS
    assert "As of 2026-01-15 02:00 UTC" in json.dumps(view["blocks"][-1])


def test_an_empty_home_says_so_in_chinese_too(store, clock):
    view = home_view(_render("zh"), home_data(store, "U2", clock.now()), _link)
    _check_home_view(view)
    text = _text(view)
    assert "当前没有未关闭的事件。" in text and "你没有未完成的后续行动。" in text
    assert "宣布事件" in text


@pytest.mark.parametrize(
    ("event", "opened"),
    [
        ({"tab": "home", "user": "U1"}, True),
        ({"tab": "messages", "user": "U1"}, False),
        ({"tab": "about", "user": "U1"}, False),
        ({"tab": "home"}, False),
        ({"tab": "home", "user": ["U1"]}, False),
    ],
)
def test_only_opening_the_home_tab_publishes(event, opened):
    assert home_tab_opened(event) is opened


class _Pool:
    """An executor that keeps what it is given, to run when the test says."""

    def __init__(self) -> None:
        self.jobs: list = []

    def submit(self, fn, *args):
        self.jobs.append((fn, args))
        return Future()

    def run_all(self) -> None:
        jobs, self.jobs = self.jobs, []
        for fn, args in jobs:
            fn(*args)


class _Client:
    def __init__(self, fail: int = 0) -> None:
        self.published: list[tuple[str, dict]] = []
        self.fail = fail

    def views_publish(self, user_id: str, view: dict) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("Slack is away")
        self.published.append((user_id, view))


def test_opening_again_while_waiting_publishes_once_and_later_again(store, clock):
    pool, client = _Pool(), _Client()
    home = HomeTab(store, clock, client, _render(), _link, pool)  # type: ignore[arg-type]
    for _ in range(5):
        home.opened("U2")
    home.opened("U3")
    assert len(pool.jobs) == 2
    pool.run_all()
    assert [user for user, _ in client.published] == ["U2", "U3"]
    home.opened("U2")  # once published, a new open publishes again (fresh data)
    pool.run_all()
    assert [user for user, _ in client.published] == ["U2", "U3", "U2"]


def test_a_failed_publish_is_logged_once_and_the_next_open_tries_again(store, clock, caplog):
    pool, client = _Pool(), _Client(fail=2)
    home = HomeTab(store, clock, client, _render(), _link, pool)  # type: ignore[arg-type]
    home.opened("U2")
    pool.run_all()
    home.opened("U2")
    pool.run_all()
    assert caplog.text.count("the Home tab could not be published: ConnectionError") == 1
    home.opened("U2")
    pool.run_all()
    assert [user for user, _ in client.published] == ["U2"]


def test_the_footer_names_the_moment(store, clock):
    clock.set(START + timedelta(hours=3, seconds=20))
    assert "As of 2026-01-15 05:00 UTC" in json.dumps(_view(store, clock)["blocks"][-1])
