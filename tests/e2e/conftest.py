"""Fixtures for end-to-end tests: a fake Slack Web API on loopback, and the bot's
real bolt app served over HTTP against it (`slack`)."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.runbook import shipped_runbooks_dir
from bot.slack.server import RunningBot, start_bot
from tests.alerting import NOTIFY_SECRET, ROUTES, TOKEN, post_hook
from tests.conftest import START
from tests.fakeslack import FakeSlack
from tests.receivers import Receiver
from tests.slackreq import post, sign, slash_body
from tests.unpaced import no_waits

SECRET = "test-signing-secret"


@pytest.fixture
def fake():
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        yield fake


@dataclass
class Harness:
    fake: FakeSlack
    running: RunningBot
    clock: FakeClock
    _names = itertools.count()

    @property
    def events_url(self) -> str:
        return self.running.url + "/slack/events"

    def send(self, body: bytes, timestamp: int | None = None, secret: str = SECRET) -> int:
        headers = sign(secret, body, timestamp if timestamp is not None else int(time.time()))
        status, _, _ = post(self.events_url, body, headers)
        return status

    def command(self, text: str, user: str = "U1", channel: str = "C0") -> str:
        """Send `/incident text`; return the response_url name its private answers go to."""
        name = f"r{next(self._names)}"
        body = slash_body(
            text, user_id=user, channel_id=channel, response_url=self.fake.response_url(name)
        )
        assert self.send(body) == 200
        return name

    def answer(self, name: str) -> str:
        (call,) = self.fake.wait_for(f"response_url:{name}")
        return call.args["text"]

    def posted(self, channel: str, needle: str, count: int = 1) -> list[str]:
        calls = self.fake.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == channel and needle in (c.args.get("text") or ""),
            count=count,
        )
        return [c.args["text"] for c in calls]

    def plan_updated(self, needle: str) -> dict:
        def has(call) -> bool:
            return needle in json.dumps(call.args.get("blocks"), ensure_ascii=False)

        return self.fake.wait_for("chat.update", has)[-1].args


@pytest.fixture
def slack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Slack's pace (1 message/s per channel) and the retry waits are tested on their own;
    # here they would only add seconds (tests/unpaced.py)
    no_waits(monkeypatch)
    fake = FakeSlack()
    fake.precreate("general", channel_id="C0")
    fake.precreate("incidents", channel_id="CANNOUNCE")
    settings = Settings.of(
        db=tmp_path / "bot.db",
        runbooks=shipped_runbooks_dir(),
        postmortems=tmp_path / "postmortems",
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=fake.url,
        announce_channel="CANNOUNCE",
    )
    clock = FakeClock(START)
    running = start_bot(settings, clock=clock, port=0, host="127.0.0.1")
    harness = Harness(fake, running, clock)
    yield harness
    running.stop()
    fake.close()


def until(condition, what: str, seconds: float = 20, every: float = 0.05):
    """Re-check a condition of another process (or thread) until it holds, bounded: its
    value, or the test fails saying what was never seen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"never saw {what}")


def declare(slack: Harness, text: str = "start service-outage sev1 Checkout is failing") -> str:
    answer = slack.answer(slack.command(text))
    (created,) = slack.fake.wait_for("conversations.create", lambda c: c.status == 200)
    channel = created.response["channel"]["id"]
    assert f"<#{channel}>" in answer
    return channel


@dataclass
class AlertHarness(Harness):
    """The `slack` harness with alerts in (a webhook token, routes) and pages and events out
    (PagerDuty and a webhook receiver on loopback)."""

    pagerduty: Receiver | None = None
    webhook: Receiver | None = None

    def hook(self, body: bytes | dict, token: str | None = TOKEN) -> tuple[int, dict]:
        return post_hook(self.running.url, body, token)

    def incidents(self) -> list:
        return self.running.bot.store.incidents(include_closed=True)


@pytest.fixture
def alerting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    no_waits(monkeypatch)
    fake = FakeSlack()
    fake.precreate("general", channel_id="C0")
    fake.precreate("incidents", channel_id="CANNOUNCE")
    fake.precreate("payments-incidents", channel_id="CPAYMENTS")
    (tmp_path / "routes.yaml").write_text(ROUTES, encoding="utf-8")
    pagerduty, webhook = Receiver(pagerduty=True), Receiver()
    settings = Settings.of(
        db=tmp_path / "bot.db",
        runbooks=shipped_runbooks_dir(),
        postmortems=tmp_path / "postmortems",
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=fake.url,
        announce_channel="CANNOUNCE",
        webhook_token=TOKEN,
        routes=tmp_path / "routes.yaml",
        pagerduty_routing_key="R" * 32,
        pagerduty_url=pagerduty.url,
        notify_urls=webhook.url,
        notify_secret=NOTIFY_SECRET,
    )
    clock = FakeClock(START)
    running = start_bot(settings, clock=clock, port=0, host="127.0.0.1")
    harness = AlertHarness(fake, running, clock, pagerduty=pagerduty, webhook=webhook)
    yield harness
    running.stop()
    fake.close()
    pagerduty.close()
    webhook.close()
