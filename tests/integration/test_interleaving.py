"""Property: however commands to several incidents interleave on arrival, and however the
lanes run them side by side, each incident ends exactly as if its commands had been run
one after another, alone."""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bot.postmortem
from bot.bootstrap import build
from bot.clock import FakeClock
from bot.config import Settings
from bot.dispatch import Context
from bot.lanes import Lanes
from bot.store import Store
from tests.conftest import DRILL_RUNBOOK, START, RecordingChat

INCIDENTS = 3
# (who, command) of the drill runbook; order matters for most of them (handoff, accept,
# sev by the new lead, next, mitigated before resolved before close, steps done once)
VOCABULARY = [
    ("ana", "assign ops @ben"),
    ("ana", "handoff lead @cy"),
    ("cy", "accept"),
    ("cy", "sev sev1"),
    ("ana", "sev sev3"),
    ("ben", "done a"),
    ("ben", "skip b not needed"),
    ("ana", "next"),
    ("ben", "update looking"),
    ("ben", "note a clue"),
    ("ana", "mitigated"),
    ("cy", "resolved"),
    ("cy", "close"),
    ("ana", "close"),
]


def _bot(folder: Path, name: str):
    runbooks = folder / "runbooks"
    runbooks.mkdir(exist_ok=True)
    (runbooks / "drill.yaml").write_text(DRILL_RUNBOOK, encoding="utf-8")
    options = Settings.of(
        db=folder / f"{name}.db", runbooks=runbooks, postmortems=folder / f"pm-{name}"
    )
    chat = RecordingChat()
    bot = build(options, FakeClock(START), chat, store=Store(folder / f"{name}.db"))
    for _ in range(INCIDENTS):
        bot.handler.handle("start drill sev2 Interleaved", Context(actor="ana"))
    return bot


def _final(bot) -> dict[int, object]:
    """What an incident ends as: its row, roles, steps, timeline and what it said, in order."""
    store = bot.store
    state: dict[int, object] = {}
    for incident in store.incidents(include_closed=True):
        i = incident.id
        outbox = [
            (r["kind"], r["body"])
            for r in store.query(
                "SELECT kind, body FROM outbox WHERE incident_id = ? ORDER BY id", [i]
            )
        ]
        state[i] = (
            (incident.status, incident.severity, incident.phase_index),
            [(h.role_id, h.user) for h in store.holdings(i)],
            sorted((r.step_id, r.state, r.by) for r in store.step_records(i).values()),
            [
                (e.kind, e.actor, e.text, json.dumps(e.data, sort_keys=True))
                for e in store.events(i)
            ],
            [(kind, _without_urls(body)) for kind, body in outbox],
        )
    return state


def _without_urls(body: str) -> str:
    data = json.loads(body)
    data.pop("url", None)
    if isinstance(data.get("tell"), dict):
        data["tell"].pop("url", None)
    return json.dumps(data, sort_keys=True)


scripts = st.lists(
    st.lists(st.sampled_from(VOCABULARY), max_size=7), min_size=INCIDENTS, max_size=INCIDENTS
)


@pytest.fixture(scope="module")
def no_charts():
    """The review a `close` publishes draws its chart (a third of a second of matplotlib per
    close, most of this property's time); what is compared here is the record and the
    outbox, which the chart is no part of, so it is left out (test_chart.py draws it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bot.postmortem, "draw_chart", lambda context, path: None)
        yield


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts=scripts, data=st.data())
def test_interleaved_commands_end_like_each_incident_alone(no_charts, scripts, data):
    arrivals = [(i, n) for i, script in enumerate(scripts) for n in range(len(script))]
    order = data.draw(st.permutations(arrivals))  # an arbitrary interleaving of incidents …
    # … each incident's own commands keep their order (they are typed one after another)
    per_incident = {i: iter(range(len(s))) for i, s in enumerate(scripts)}
    interleaved = [(i, next(per_incident[i])) for i, _ in order]
    with tempfile.TemporaryDirectory() as folder:
        alone = _bot(Path(folder), "alone")
        for i, script in enumerate(scripts):
            for actor, text in script:
                alone.handler.handle(text, Context(actor=actor, incident_id=i + 1))
        expected = _final(alone)
        alone.close()

        together = _bot(Path(folder), "together")
        handler = together.handler
        moments = iter(START + timedelta(seconds=10 * n) for n in range(1, 10_000))
        handler.wall = lambda: next(moments)  # typed seconds apart: never a double click
        lanes_to_wake = []
        for i, n in interleaved:  # journaled in arrival order, as the listeners do
            actor, text = scripts[i][n]
            received = handler.receive({"text": text}, Context(actor=actor, incident_id=i + 1))
            assert received.lane is not None, (actor, text)
            lanes_to_wake.append(received.lane)
        with ThreadPoolExecutor(max_workers=4) as pool:
            lanes = Lanes("commands", pool, handler.run_next)
            for lane in lanes_to_wake:
                lanes.wake(lane)
            assert lanes.wait_idle(30)
        assert together.store.unfinished_requests() == []
        actual = _final(together)
        together.close()
    assert actual == expected


def test_a_command_typed_while_the_channel_opens_keeps_its_place(tmp_path):
    """A command typed in the new channel before the bot has recorded it as the incident's
    is journaled with no incident; it still runs in that incident's lane, in its turn."""
    bot = _bot(tmp_path, "opening")
    handler, store = bot.handler, bot.store
    store.update_incident(1, channel=None)  # the channel is being opened …
    early = handler.receive({"text": "note typed early"}, Context(actor="ana", channel="CNEW"))
    assert early.lane == ("request", early.inbox_id)
    store.update_incident(1, channel="CNEW")  # … and now it is the incident's
    later = handler.receive({"text": "note typed later"}, Context(actor="ana", channel="CNEW"))
    assert later.lane == ("incident", 1)
    woken = []
    handler.wake_lane = woken.append
    assert handler.run_next(later.lane) == 0  # the earlier one first, and another waits
    assert [e.text for e in store.events(1, kinds=("note",))] == ["typed early"]
    assert handler.run_next(early.lane) is None  # nothing left for the request's own lane
    assert handler.run_next(later.lane) is None  # done, and none waits after it
    assert [e.text for e in store.events(1, kinds=("note",))] == ["typed early", "typed later"]
    assert store.unfinished_requests() == []
    bot.close()


def test_a_request_lane_hands_an_incident_channels_request_over(tmp_path):
    bot = _bot(tmp_path, "handover")
    handler, store = bot.handler, bot.store
    store.update_incident(1, channel=None)
    early = handler.receive({"text": "note typed early"}, Context(actor="ana", channel="CNEW"))
    store.update_incident(1, channel="CNEW")
    woken = []
    handler.wake_lane = woken.append
    assert handler.run_next(early.lane) is None  # not run on its own: handed over
    assert woken == [("incident", 1)]
    assert handler.run_next(("incident", 1)) is None  # run there, the only one
    assert [e.text for e in store.events(1, kinds=("note",))] == ["typed early"]
    bot.close()


def test_opening_the_channel_adopts_what_was_typed_there_meanwhile(tmp_path):
    bot = _bot(tmp_path, "adopt")
    handler, store = bot.handler, bot.store
    store.update_incident(1, channel=None)
    early = handler.receive({"text": "note typed early"}, Context(actor="ana", channel="CNEW"))
    with store.transaction():  # what the declaration does once Slack has made the channel
        bot.service.set_channel(1, "CNEW")
        assert store.adopt_requests("CNEW", 1) == 1
    woken = []
    handler.wake_lane = woken.append
    assert handler.run_next(early.lane) is None and woken == [("incident", 1)]
    assert handler.run_next(("incident", 1)) is None  # run there, the only one
    assert [e.text for e in store.events(1, kinds=("note",))] == ["typed early"]
    bot.close()


def test_the_repeat_filter_reads_a_command_as_the_command_does(tmp_path):
    """Invisible characters (a zero-width space pasted in, a NUL) change nothing: the same
    note twice at once is one note, and a read-only verb stays one that may be asked twice."""
    bot = _bot(tmp_path, "repeats")
    handler = bot.handler
    moments = iter(START + timedelta(milliseconds=n) for n in range(100))
    handler.wall = lambda: next(moments)  # milliseconds apart: a double click
    first = handler.receive({"text": "note disk full"}, Context(actor="ana", incident_id=1))
    again = handler.receive(
        {"text": "note disk\x00 full\u200b"}, Context(actor="ana", incident_id=1)
    )
    assert first.lane is not None and again.repeat == "double"
    asked = [
        handler.receive({"text": text}, Context(actor="ana", incident_id=1))
        for text in ("\u200bstatus", "\u200bstatus", "incident status", "incident status")
    ]
    assert [r.repeat for r in asked] == [None] * 4  # asking twice is fine
    bot.close()
