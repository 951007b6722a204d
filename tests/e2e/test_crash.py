"""Crash safety of `incident-bot serve`: SIGKILL loses no acknowledged command."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

from bot.clock import utc_now
from bot.store import Store
from tests import forkserver
from tests.e2e.conftest import until
from tests.e2e.test_serve import SECRET, _env, _free_port, _wait_healthy
from tests.slackreq import post, sign, slash_body
from tests.unpaced import BOT


class Serve:
    """`incident-bot serve --http`, without Slack's pace and the retry waits (tests/unpaced.py):
    what is tested here is that nothing acknowledged is lost."""

    def __init__(self, tmp_path, fake) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = forkserver.Popen(
            [*BOT, "serve", "--http", "--port", str(self.port)],
            env=_env(tmp_path, fake, INCIDENT_BOT_CLOCK_SPEED="1"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_healthy(self.url, self.proc)

    def command(self, fake, text: str, channel: str = "C0") -> int:
        body = slash_body(
            text, channel_id=channel, response_url=fake.response_url(f"r{time.monotonic_ns()}")
        )
        status, _, _ = post(self.url + "/slack/events", body, sign(SECRET, body, int(time.time())))
        return status


def _notes(db) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [
            t for (t,) in conn.execute("SELECT text FROM events WHERE kind = 'note' ORDER BY id")
        ]
    finally:
        conn.close()


def test_sigkill_right_after_the_acks_loses_no_command(tmp_path, fake):
    db = tmp_path / "bot.db"
    first = Serve(tmp_path, fake)
    assert first.command(fake, "start service-outage sev2 Crash test") == 200
    (created,) = fake.wait_for("conversations.create")
    channel = created.response["channel"]["id"]
    fake.wait_for("pins.add")
    sent = [f"note number {n}" for n in range(15)]
    for text in sent:
        assert first.command(fake, text, channel) == 200  # acknowledged
    first.proc.send_signal(signal.SIGKILL)  # at once: some notes are still in flight
    first.proc.wait(timeout=10)

    second = Serve(tmp_path, fake)
    try:
        notes = until(lambda: len(_notes(db)) >= 15 and _notes(db), "all 15 notes in the timeline")
        assert sorted(notes) == sorted(t.removeprefix("note ") for t in sent)  # each exactly once
        store = Store(db)
        assert store.unfinished_requests() == []
        store.close()
    finally:
        second.proc.terminate()
        second.proc.communicate(timeout=20)


def test_a_request_journaled_before_a_crash_runs_on_restart(tmp_path, fake):
    db = tmp_path / "bot.db"
    store = Store(db)  # what a killed process left: acknowledged, never processed
    store.journal(
        received_at=utc_now(),
        dedupe_key="k",
        window_start=utc_now(),
        actor="U1",
        channel="C0",
        incident_id=None,
        payload=json.dumps({"text": "start service-outage sev1 Replayed after a crash"}),
        reply_url=fake.response_url("replayed"),
    )
    store.close()
    serve = Serve(tmp_path, fake)
    try:
        (created,) = fake.wait_for("conversations.create")
        assert created.args["name"].endswith("replayed-after-a-crash")
        (answer,) = fake.wait_for("response_url:replayed")
        assert "Declared INC-1" in answer.args["text"]
    finally:
        serve.proc.terminate()
        serve.proc.communicate(timeout=20)


def test_a_corrupt_database_stops_the_start_with_one_line(tmp_path, fake):
    (tmp_path / "bot.db").write_bytes(b"definitely not sqlite " * 200)
    done = forkserver.run(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(_free_port())],
        env=_env(tmp_path, fake),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cannot open database" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "bot.db").read_bytes().startswith(b"definitely not sqlite")  # untouched


def test_backup_while_serving_is_a_consistent_copy(tmp_path, fake):
    serve = Serve(tmp_path, fake)
    try:
        assert serve.command(fake, "start service-outage sev2 Backed up") == 200
        fake.wait_for("pins.add")
        done = forkserver.run(
            [sys.executable, "-m", "bot", "backup", str(tmp_path / "copy.db")],
            env=_env(tmp_path, fake),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    finally:
        serve.proc.terminate()
        serve.proc.communicate(timeout=20)
    copy = Store(tmp_path / "copy.db")
    try:
        (incident,) = copy.incidents()
        assert incident.title == "Backed up" and incident.channel
    finally:
        copy.close()
