"""`incident-bot serve --http` as an operator runs it: a subprocess configured only by
environment variables, a fake Slack on loopback, reminders from the live scheduler."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests import forkserver
from tests.slackreq import post, sign, slash_body

SECRET = "serve-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen) -> dict:
    """Wait for serve's start-up line (printed once it listens), then ask /healthz."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # ends at EOF if the process dies
        seen.append(line)
        if "health at" in line:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                return json.loads(response.read())
    pytest.fail(f"serve exited early: {''.join(seen)}")


def _env(tmp_path, fake, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    env.update(
        SLACK_BOT_TOKEN="xoxb-serve-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.url,
        INCIDENT_BOT_DB=str(tmp_path / "bot.db"),
        INCIDENT_BOT_POSTMORTEMS=str(tmp_path / "pm"),
        INCIDENT_BOT_CLOCK_SPEED="300",
    )
    env.update(extra)
    return env


def test_serve_http_runs_an_incident_with_live_reminders(tmp_path, fake):
    port = _free_port()
    proc = subprocess.Popen(  # a fresh interpreter, as an operator's shell starts it
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(port)],
        env=_env(tmp_path, fake, INCIDENT_BOT_CLOCK_SPEED="900"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert _wait_healthy(url, proc) == {"ok": True, "db": "ok", "scheduler": "running"}
        body = slash_body(
            "start service-outage sev2 Search is slow", response_url=fake.response_url("s")
        )
        status, _, _ = post(url + "/slack/events", body, sign(SECRET, body, int(time.time())))
        assert status == 200
        (created,) = fake.wait_for("conversations.create")
        channel = created.response["channel"]["id"]
        fake.wait_for("pins.add")
        # 15 bot minutes at speed 900 are 1 real second: the live scheduler posts the reminder
        fake.wait_for(
            "chat.postMessage",
            lambda c: (
                c.args.get("channel") == channel and ":alarm_clock:" in (c.args.get("text") or "")
            ),
            timeout=20,
        )
        body = slash_body("close", channel_id=channel, response_url=fake.response_url("c"))
        post(url + "/slack/events", body, sign(SECRET, body, int(time.time())))
        fake.wait_for("chat.postMessage", lambda c: "INC-1 closed" in (c.args.get("text") or ""))
        fake.wait_for("files.completeUploadExternal")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "starts with xoxb-"),
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET is not set"),
        ({"INCIDENT_BOT_CLOCK_SPEED": "fast"}, "INCIDENT_BOT_CLOCK_SPEED='fast' is not valid"),
    ],
)
def test_bad_settings_give_one_line_not_a_traceback(tmp_path, fake, env, message):
    done = forkserver.run(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(_free_port())],
        env=_env(tmp_path, fake) | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_token_slack_refuses_is_reported_at_start(tmp_path, fake):
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
    assert "Slack refused SLACK_BOT_TOKEN: invalid_auth" in done.stderr
