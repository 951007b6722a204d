"""`incident-bot serve` with alerts in: a notification answered 202 is never lost, and is
declared once, whenever the process dies (SIGKILL) between the answer and the incident;
and the routes file is checked at start."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

import pytest

from bot.bootstrap import build
from bot.clock import FakeClock
from bot.config import Settings
from bot.hooks import AlertIntake
from bot.routes import load_routes
from bot.runbook import shipped_runbooks_dir
from tests import forkserver
from tests.alerting import ROUTES, TOKEN, alert, group, post_hook
from tests.conftest import START, RecordingChat
from tests.e2e.conftest import until
from tests.e2e.test_serve import _env, _free_port, _wait_healthy
from tests.fakeslack import FakeSlack
from tests.unpaced import BOT


@pytest.fixture
def fake():
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        fake.precreate("payments-incidents", channel_id="CPAYMENTS")
        yield fake


class Serve:
    def __init__(self, folder, fake, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = forkserver.Popen(
            [*BOT, "serve", "--http", "--port", str(self.port)],  # Slack's pace: not the subject
            env=_env(
                folder,
                fake,
                INCIDENT_BOT_CLOCK_SPEED="1",
                INCIDENT_BOT_WEBHOOK_TOKEN=TOKEN,
                INCIDENT_BOT_ROUTES=str(folder / "routes.yaml"),
            )
            | env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_healthy(self.url, self.proc)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return out


def _rows(db, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _keyed(n: int, extra: bool = False) -> dict:
    alerts = [alert(fingerprint=f"fp{n}")] + ([alert(fingerprint=f"fp{n}b")] if extra else [])
    return group(key=f'{{}}:{{alertname="CheckoutDown", shard="{n}"}}', alerts=alerts)


def test_an_alert_answered_before_a_crash_is_declared_once_on_restart(tmp_path, fake):
    """The state a SIGKILL leaves between the 202 and the incident: the notification is
    journaled (by the intake `POST /hooks/alertmanager` runs), nothing else happened."""
    (tmp_path / "routes.yaml").write_text(ROUTES, encoding="utf-8")
    db = tmp_path / "bot.db"
    settings = Settings.of(db=db, runbooks=shipped_runbooks_dir(), postmortems=tmp_path / "pm")
    core = build(settings, FakeClock(START), RecordingChat())
    routes = load_routes(tmp_path / "routes.yaml", core.catalog.ids())
    woken: list = []
    answer = AlertIntake(core.handler, core.store, routes, woken.append).receive(
        json.dumps(group()).encode()
    )
    core.close()  # gone before its lane ran
    assert (answer.status, answer.body["status"]) == (202, "accepted")
    assert _rows(db, "SELECT COUNT(*) FROM incidents") == [(0,)]
    assert _rows(db, "SELECT COUNT(*) FROM inbox WHERE done_at IS NULL") == [(1,)]

    bot = Serve(tmp_path, fake)
    try:
        (created,) = fake.wait_for("conversations.create")
        channel = created.response["channel"]["id"]
        fake.wait_for("pins.add")
        assert _rows(db, "SELECT id, declared_by FROM incidents") == [(1, "alertmanager")]
        assert _rows(db, "SELECT COUNT(*) FROM inbox WHERE done_at IS NULL") == [(0,)]
        more = group(alerts=[alert(), alert(fingerprint="second")])  # the group, later
        assert post_hook(bot.url, more) == (202, {"status": "accepted", "incident": "INC-1"})
        fake.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == channel and "1 new" in (c.args.get("text") or ""),
        )
        assert len(fake.calls_to("conversations.create")) == 1
    finally:
        out = bot.stop()
    assert "Traceback" not in out, out


def test_sigkill_right_after_the_answers_loses_no_alert_and_declares_each_once(tmp_path, fake):
    (tmp_path / "routes.yaml").write_text(ROUTES, encoding="utf-8")
    db = tmp_path / "bot.db"
    first = Serve(tmp_path, fake)
    groups = 8
    for n in range(groups):  # each group twice: a first notification and a later one
        assert post_hook(first.url, _keyed(n))[0] == 202
        assert post_hook(first.url, _keyed(n, extra=True))[0] == 202
    first.kill()  # at once: some were answered and not yet carried out
    left = _rows(db, "SELECT COUNT(*) FROM inbox WHERE done_at IS NULL")[0][0]
    print(f"notifications answered but not carried out at the SIGKILL: {left}")

    second = Serve(tmp_path, fake)
    try:
        until(
            lambda: (
                _rows(db, "SELECT COUNT(*) FROM inbox WHERE done_at IS NULL") == [(0,)]
                and _rows(db, "SELECT COUNT(*) FROM incidents")[0][0] >= groups
            ),
            "every notification carried out",
        )
        keys = _rows(db, "SELECT group_key FROM alert_groups ORDER BY incident_id")
        assert len(keys) == groups and len(set(keys)) == groups  # one incident per group
        assert _rows(db, "SELECT COUNT(*) FROM incidents") == [(groups,)]
        assert _rows(db, "SELECT COUNT(*) FROM inbox WHERE dead_at IS NOT NULL") == [(0,)]
        lines = _rows(db, "SELECT COUNT(*) FROM events WHERE kind = 'alert'")[0][0]
        assert lines == groups  # the later notification of each: a line, not an incident
    finally:
        out = second.stop()
    assert "Traceback" not in out, out


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (None, "routes.yaml:1: no such file (INCIDENT_BOT_ROUTES)"),
        (
            "routes:\n  - {runbook: nope}\n",
            "routes.yaml:2: routes[0].runbook: unknown runbook 'nope'",
        ),
    ],
)
def test_serve_refuses_to_take_alerts_with_a_routes_file_it_cannot_use(
    tmp_path, fake, routes, message
):
    if routes is not None:
        (tmp_path / "routes.yaml").write_text(routes, encoding="utf-8")
    done = forkserver.run(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(_free_port())],
        env=_env(
            tmp_path,
            fake,
            INCIDENT_BOT_WEBHOOK_TOKEN=TOKEN,
            INCIDENT_BOT_ROUTES=str(tmp_path / "routes.yaml"),
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "INCIDENT_BOT_WEBHOOK_TOKEN is set" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_names_the_missing_notify_secret_at_start(tmp_path, fake):
    done = forkserver.run(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(_free_port())],
        env=_env(tmp_path, fake, INCIDENT_BOT_NOTIFY_URLS="https://status.example.com/hook"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("incident-bot: INCIDENT_BOT_NOTIFY_SECRET is not set")
    assert len(done.stderr.strip().splitlines()) == 1
