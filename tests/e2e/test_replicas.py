"""Two `serve` replicas on one PostgreSQL database: commands to either, reminders from
whichever claims them, and when one is killed the other carries every incident on."""

from __future__ import annotations

import json
from collections import defaultdict

import psycopg
import pytest

from tests.e2e.test_order import Bot
from tests.fakeslack import FakeSlack

# a phase reminder every bot minute: at clock speed 90, every 2/3 of a real second
RUNBOOK = """
id: replica
name: Replica drill
roles:
  - {id: lead, name: Lead}
phases:
  - id: one
    name: Phase one
    target: 2h
    remind_every: 1m
    steps:
      - {id: a, title: Look at logs, owner: lead}
"""


@pytest.fixture
def fake():
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        yield fake


def _phase_reminders(url: str) -> dict[int, list[int]]:
    """Each incident's phase reminders as the record has them: their numbers, in order."""
    numbers: dict[int, list[int]] = defaultdict(list)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT incident_id, data FROM events WHERE kind = 'reminder' ORDER BY id"
        ).fetchall()
    for incident_id, data in rows:
        fields = json.loads(data)
        if fields.get("reminder") == "phase":
            numbers[incident_id].append(int(fields["number"]))
    return numbers


def _alarms(fake: FakeSlack, channel: str) -> int:
    return len(
        [
            c
            for c in fake.calls_to("chat.postMessage")
            if c.args.get("channel") == channel and ":alarm_clock:" in (c.args.get("text") or "")
        ]
    )


def _wait_alarms(fake: FakeSlack, channel: str, count: int) -> None:
    fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("channel") == channel and ":alarm_clock:" in (c.args.get("text") or "")
        ),
        count=count,
        timeout=40,
    )


def test_two_replicas_share_the_work_and_one_carries_on_when_the_other_dies(
    tmp_path, fake, postgres_url
):
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "replica.yaml").write_text(RUNBOOK, encoding="utf-8")
    env = {
        "INCIDENT_BOT_DB": postgres_url,
        "INCIDENT_BOT_CLOCK_SPEED": "90",
        "INCIDENT_BOT_RUNBOOKS": str(runbooks),
    }
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = Bot(tmp_path / "a", fake, **env)
    second = Bot(tmp_path / "b", fake, **env)  # the same database: no writer lock refuses it
    try:
        channels = []
        for n, replica in enumerate((first, second)):
            status, _, _ = replica.send(f"start replica sev2 Replica incident {n}")
            assert status == 200
            (created,) = fake.wait_for(
                "conversations.create",
                lambda c, n=n: c.args["name"].endswith(f"replica-incident-{n}"),
            )
            channel = created.response["channel"]["id"]
            fake.wait_for("pins.add", lambda c, ch=channel: c.args.get("channel") == ch)
            channels.append(channel)
        # commands to one incident alternate between the replicas: one order, each once
        notes = [f"note from either {k}" for k in range(10)]
        for k, text in enumerate(notes):
            assert (first, second)[k % 2].send(text, channel=channels[0])[0] == 200
        fake.wait_for(
            "chat.postMessage",
            lambda c: (
                c.args.get("channel") == channels[0]
                and "from either 9" in (c.args.get("text") or "")
            ),
            timeout=30,
        )
        with psycopg.connect(postgres_url) as conn:
            recorded = [
                t
                for (t,) in conn.execute(
                    "SELECT text FROM events WHERE kind = 'note' ORDER BY id"
                ).fetchall()
            ]
        assert recorded == [n.removeprefix("note ") for n in notes]

        for channel in channels:
            _wait_alarms(fake, channel, 3)
        first.kill()  # right after a reminder went out: nothing of it is half-posted
        before = {channel: _alarms(fake, channel) for channel in channels}
        for channel in channels:
            _wait_alarms(fake, channel, before[channel] + 3)  # the survivor keeps the cadence
        assert second.send("note after the other replica died", channel=channels[1])[0] == 200
        fake.wait_for(
            "chat.postMessage",
            lambda c: "after the other replica died" in (c.args.get("text") or ""),
            timeout=30,
        )
    finally:
        first.stop()
        out = second.stop()
    numbers = _phase_reminders(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        states = conn.execute(
            "SELECT incident_id, state, COUNT(*) FROM reminders WHERE kind = 'phase' "
            "GROUP BY incident_id, state"
        ).fetchall()
    by_state = {(incident, state): count for incident, state, count in states}
    for incident_id, channel in enumerate(channels, start=1):
        sent = numbers[incident_id]
        assert sent == list(range(1, len(sent) + 1))  # no slot skipped, none decided twice
        # each posted once; at most the one the killed replica had claimed is lost, or
        # posted without being marked sent (it died in between): it stays `sending` and is
        # never posted again (a reminder is never sent twice: see bot/reminders.py)
        posted = _alarms(fake, channel)
        recorded = by_state.get((incident_id, "sent"), 0)
        assert recorded <= posted <= recorded + by_state.get((incident_id, "sending"), 0)
        assert len(sent) - posted <= 1
    assert "Traceback" not in out
