"""Commands take effect in order and exactly once, against the real `serve` process.

People act fast in an incident: each command is sent the moment the previous
one was acknowledged, to several incidents at once. Every incident must end as
if its commands had been typed slowly, one after another.
"""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from bot.clock import utc_now
from bot.store import Store
from tests import forkserver
from tests.e2e.conftest import until
from tests.e2e.test_serve import SECRET, _env, _free_port, _wait_healthy
from tests.fakeslack import FakeSlack
from tests.slackreq import post, sign, slash_body
from tests.unpaced import BOT

SCRIPT = [  # (who, command): the back-to-back script
    ("U1", "assign commander <@UA>"),
    ("UA", "handoff commander <@UB>"),
    ("UB", "accept"),
    ("UB", "sev sev2"),
    ("UB", "mitigated"),
    ("UB", "resolved"),
    ("UB", "close"),
]
REFUSALS = ("lready", "Nobody is handing", "Only the", "can't change", "went wrong")


class Bot:
    """One `incident-bot serve --http` process on a database in `folder`, without Slack's pace
    and the retry waits (tests/unpaced.py): what is tested here is order and exactly-once."""

    def __init__(
        self, folder: Path, fake: FakeSlack, knobs: dict[str, float] | None = None, **env: str
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = forkserver.Popen(
            [
                *BOT,
                *(f"--set={name}={value}" for name, value in (knobs or {}).items()),
                "serve",
                "--http",
                "--port",
                str(self.port),
            ],
            env=_env(folder, fake, INCIDENT_BOT_CLOCK_SPEED="1") | env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_healthy(self.url, self.proc)
        self.fake = fake

    def send(
        self, text: str, user: str = "U1", channel: str = "C0", reply: str | None = None
    ) -> tuple[int, str, str]:
        """A signed /incident command; returns (status, body, the response_url's name)."""
        name = reply or f"r-{uuid.uuid4().hex[:10]}"
        url = name if name.startswith("http") else self.fake.response_url(name)
        body = slash_body(text, user_id=user, channel_id=channel, response_url=url)
        status, _, answer = post(
            self.url + "/slack/events", body, sign(SECRET, body, int(time.time()))
        )
        return status, answer, name

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def _rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _declare(bot: Bot, fake: FakeSlack, titles: list[str]) -> list[str]:
    """Declare incidents one by one; return their channels in order."""
    channels = []
    for title in titles:
        status, _, _ = bot.send(f"start service-outage sev1 {title}")
        assert status == 200
        (created,) = fake.wait_for(
            "conversations.create", lambda c, t=title: c.args["name"].endswith(_slug(t))
        )
        channel = created.response["channel"]["id"]
        fake.wait_for("pins.add", lambda c, ch=channel: c.args.get("channel") == ch)
        channels.append(channel)
    return channels


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-")


@pytest.fixture
def fake():
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        yield fake


def test_back_to_back_commands_to_four_incidents_end_as_typed(tmp_path, fake):
    db = tmp_path / "bot.db"
    bot = Bot(tmp_path, fake)
    try:
        for round_ in range(2):  # repeated: a second batch of four on the same process
            titles = [f"Round {round_} incident {n}" for n in range(4)]
            channels = _declare(bot, fake, titles)
            names: list[str] = []
            failures: list[str] = []

            def play(channel: str, names: list[str], failures: list[str]) -> None:
                for user, text in SCRIPT:  # each sent the moment the last was acknowledged
                    status, _, name = bot.send(text, user=user, channel=channel)
                    names.append(name)
                    if status != 200:
                        failures.append(f"{text}: HTTP {status}")

            threads = [threading.Thread(target=play, args=(c, names, failures)) for c in channels]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert failures == []
            for channel in channels:
                fake.wait_for(
                    "chat.postMessage",
                    lambda c, ch=channel: (
                        c.args.get("channel") == ch
                        and "closed* by <@UB>" in (c.args.get("text") or "")
                    ),
                )
            for channel in channels:
                ((incident_id, status, severity),) = _rows(
                    db, "SELECT id, status, severity FROM incidents WHERE channel = ?", (channel,)
                )
                assert (status, severity) == ("closed", "sev2")
                leads = _rows(
                    db,
                    "SELECT user FROM holdings WHERE incident_id = ? AND role_id = 'commander' "
                    "ORDER BY id",
                    (incident_id,),
                )
                assert [u for (u,) in leads] == ["U1", "UA", "UB"]
            answers = [
                c.args.get("text") or ""
                for c in fake.calls
                if c.method.startswith("response_url:") and c.method.split(":", 1)[1] in names
            ]
            assert [a for a in answers if any(r in a for r in REFUSALS)] == []
    finally:
        out = bot.stop()
    assert "Traceback" not in out


def test_an_undeliverable_reply_and_a_poisoned_request_never_stop_the_replay(tmp_path, fake):
    """A reply whose response_url refuses finishes its request anyway; a request that keeps
    failing is set aside after a few tries; after SIGKILL every acknowledged command is
    applied exactly once on restart."""
    db = tmp_path / "bot.db"
    bot = Bot(tmp_path, fake)
    try:
        (channel,) = _declare(bot, fake, ["Poisoned replay"])
    finally:
        bot.stop()
    store = Store(db)  # a request no code path can carry out (a bug), ahead in the lane
    store.journal(
        utc_now(),
        "poison",
        utc_now(),
        "U1",
        channel,
        1,
        json.dumps({"declare": {"runbook": "service-outage"}}),
        None,
    )
    store.close()

    # This process never sets the poisoned request aside, so every update is still held up
    # behind it when the bot is killed: all are the restart's to carry out. (Each arrival
    # retries the lane's head at once, so with 3 tries a slow machine got past it before the
    # kill, and an update whose post was in flight then is by design not posted again.)
    bot = Bot(tmp_path, fake, knobs={"bot.dispatch.GIVE_UP_AFTER": 1000})
    refused = "http://127.0.0.1:1/response/refused"  # nothing listens: connection refused
    assert bot.send("status", channel=channel, reply=refused)[0] == 200
    sent = [f"update number {n}" for n in range(12)]
    for text in sent:
        assert bot.send(text, channel=channel)[0] == 200  # acknowledged
    bot.kill()  # at once: most updates are still waiting behind the poisoned request

    bot = Bot(tmp_path, fake)  # 3 tries again: the poisoned request is set aside, then the rest
    try:
        for text in sent:
            fake.wait_for(
                "chat.postMessage",
                lambda c, t=text: (
                    c.args.get("channel") == channel
                    and (c.args.get("text") or "").endswith(t.removeprefix("update "))
                ),
                timeout=30,
            )
        updates = _rows(
            db, "SELECT text FROM events WHERE kind = 'update' AND incident_id = 1 ORDER BY id"
        )
        assert [t for (t,) in updates] == [
            t.removeprefix("update ") for t in sent
        ]  # once, in order
        # the status reply went out another way: ephemerally in the channel
        (ephemeral,) = fake.wait_for(
            "chat.postEphemeral", lambda c: "INC-1" in c.args["text"], timeout=30
        )
        assert ephemeral.args["channel"] == channel
        doctor = forkserver.run(
            [sys.executable, "-m", "bot", "doctor"],
            env=_env(tmp_path, fake),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr
        assert "1 set aside" in doctor.stdout and "KeyError" in doctor.stdout
        assert "0 waiting" in doctor.stdout
    finally:
        bot.stop()


def test_a_second_serve_on_the_same_database_is_refused(tmp_path, fake):
    first = Bot(tmp_path, fake)
    try:
        done = forkserver.run(
            [sys.executable, "-m", "bot", "serve", "--http", "--port", str(_free_port())],
            env=_env(tmp_path, fake),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        (line,) = done.stderr.strip().splitlines()
        assert f"in use by incident-bot serve (pid {first.proc.pid}" in line
        assert "Traceback" not in done.stderr
        assert first.send("start service-outage sev2 Still serving")[0] == 200  # untouched
        fake.wait_for("conversations.create")
    finally:
        first.stop()


def _health(bot: Bot) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_a_database_that_cannot_be_written_is_said_not_hidden(tmp_path, fake):
    """Disk full or read-only (here: no write may land, RLIMIT_FSIZE of 1 byte): /healthz says
    so, a command is answered at once, the reminder alarm backs off; all well once it passes."""
    bot = Bot(tmp_path, fake, INCIDENT_BOT_CLOCK_SPEED="900")  # a reminder every second
    try:
        (channel,) = _declare(bot, fake, ["Disk full"])
        assert _health(bot)[0] == 200
        _, hard = resource.prlimit(bot.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(bot.proc.pid, resource.RLIMIT_FSIZE, (1, hard))
        status, health = _health(bot)
        assert status == 503 and health["ok"] is False and "disk I/O error" in health["db"]
        status, answer, _ = bot.send("note while the disk is full", channel=channel)
        assert status == 200 and "could not record this" in answer
        until(
            lambda: "backing off" in _health(bot)[1]["scheduler"],
            "the reminder alarm backing off",
        )
        resource.prlimit(bot.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))  # room again
        until(lambda: _health(bot)[0] == 200, "healthz recover")
        assert bot.send("note the disk has room", channel=channel)[0] == 200
        fake.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == channel and "room" in (c.args.get("text") or ""),
        )
        notes = _rows(tmp_path / "bot.db", "SELECT text FROM events WHERE kind = 'note'")
        assert [t for (t,) in notes] == ["the disk has room"]
    finally:
        out = bot.stop()
    assert out.count("firing reminders failed") == 1  # logged once a minute, not in a loop
    assert out.count("could not be journaled") == 1
