"""What `serve` says at start and restart: each thing once, and only when it is true."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

import pytest

import bot.dispatch
from bot.clock import FakeClock, utc_now
from bot.config import Settings
from bot.runbook import shipped_runbooks_dir
from bot.slack.server import start_bot
from bot.store import Store
from tests import forkserver
from tests.conftest import START
from tests.e2e.conftest import until
from tests.e2e.test_serve import _env, _free_port
from tests.fakeslack import FakeSlack

NEW_DATABASE = "creating a new, empty one"


@pytest.fixture
def fake():
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        yield fake


def _serve(tmp_path, fake) -> subprocess.Popen:
    return forkserver.Popen(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(_free_port())],
        env=_env(tmp_path, fake),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run_until_healthy_then_stop(tmp_path, fake) -> str:
    """Everything serve printed from its start until it was stopped once healthy."""
    proc = _serve(tmp_path, fake)
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF if the process dies
            seen.append(line)
            if "health at" in line:
                break
        assert seen and "health at" in seen[-1], "".join(seen)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    return "".join(seen) + out


def test_a_first_start_says_once_that_it_creates_the_database_and_a_restart_not_at_all(
    tmp_path, fake
):
    first = _run_until_healthy_then_stop(tmp_path, fake)
    assert first.count(NEW_DATABASE) == 1, first
    assert "will be unused" not in first  # bolt's warning about our own client's token
    assert (tmp_path / "bot.db").exists()
    again = _run_until_healthy_then_stop(tmp_path, fake)
    assert NEW_DATABASE not in again and "will be unused" not in again


def test_a_start_that_fails_says_nothing_about_a_database_and_creates_none(tmp_path, fake):
    fake.fail("auth.test", error="invalid_auth")
    done = forkserver.run(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(_free_port())],
        env=_env(tmp_path, fake),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "incident-bot: Slack refused SLACK_BOT_TOKEN: invalid_auth"
    ]
    assert NEW_DATABASE not in done.stdout + done.stderr
    assert not (tmp_path / "bot.db").exists()


def _started(settings: Settings, fake: FakeSlack):
    from bot.slack.pacing import Pacer

    running = start_bot(settings, clock=FakeClock(START), port=0, host="127.0.0.1")
    running.bot.handler.chat.pacer = Pacer(interval=0.0)
    return running


def _recovered() -> None:
    for thread in threading.enumerate():
        if thread.name == "recover":
            thread.join(timeout=30)


def test_a_request_set_aside_is_neither_run_nor_logged_again_on_restart(
    tmp_path, fake, caplog, monkeypatch
):
    settings = Settings.of(
        db=tmp_path / "bot.db",
        runbooks=shipped_runbooks_dir(),
        postmortems=tmp_path / "pm",
        slack_bot_token="xoxb-test",
        slack_signing_secret="secret-for-the-test",
        slack_api_url=fake.url,
    )
    store = Store(settings.db)  # a request no code path can carry out (a bug)
    store.journal(
        utc_now(),
        "poison",
        utc_now(),
        "U1",
        "C0",
        None,
        json.dumps({"declare": {"runbook": "service-outage"}}),
        None,
    )
    store.close()
    monkeypatch.setattr(bot.dispatch, "RETRY_AFTER", 0.01)  # the tries, without the waits
    caplog.set_level(logging.INFO)
    running = _started(settings, fake)
    try:
        until(lambda: running.bot.store.dead_requests(), "the request set aside", every=0.01)
    finally:
        running.stop()
    failures = [r for r in caplog.records if "request 1 failed" in r.getMessage()]
    assert len(failures) == bot.dispatch.GIVE_UP_AFTER
    caplog.clear()

    running = _started(settings, fake)
    try:
        _recovered()
        until(running.idle, "the restarted bot idle", every=0.01)
        (dead,) = running.bot.store.dead_requests()
        assert dead["attempts"] == bot.dispatch.GIVE_UP_AFTER  # not tried again
    finally:
        running.stop()
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "request 1" in m or "carrying out" in m], said
