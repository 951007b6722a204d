"""Nothing from outside gets in (issue 12), through the real bolt app and a fake Slack:
hostile runbooks are set aside and the bot serves the rest, a runaway team template gives
way to the built-in postmortem, topics are escaped, private runbooks stay private."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import postmortem
from bot.clock import FakeClock
from bot.config import Settings
from bot.runbook import shipped_runbooks_dir
from bot.slack.server import start_bot
from tests import forkserver
from tests.conftest import START
from tests.e2e.conftest import SECRET, Harness, declare
from tests.fakeslack import FakeSlack
from tests.unit.test_hostile_runbooks import HOSTILE
from tests.unpaced import no_waits

TOKEN = "xoxb-e2e-secret-token"


def _harness(
    tmp_path: Path, runbooks: Path, monkeypatch: pytest.MonkeyPatch, **settings: object
) -> Iterator[Harness]:
    no_waits(monkeypatch)  # Slack's pace and retry waits: tested on their own
    fake = FakeSlack()
    fake.precreate("general", channel_id="C0")
    fake.precreate("incidents", channel_id="CANNOUNCE")
    settings.setdefault("db", tmp_path / "bot.db")
    running = start_bot(
        Settings.of(
            runbooks=runbooks,
            postmortems=tmp_path / "postmortems",
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=fake.url,
            announce_channel="CANNOUNCE",
            **settings,
        ),
        clock=FakeClock(START),
        port=0,
        host="127.0.0.1",
    )
    try:
        yield Harness(fake, running, running.bot.clock)  # type: ignore[arg-type]
    finally:
        running.stop()
        fake.close()


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """A runbook folder with every hostile file of the unit tests, the /proc/self/environ
    template of the issue, and one good runbook whose team template never ends."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)  # as `serve` would have it
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for name, (text, _, _) in HOSTILE.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    outage = (shipped_runbooks_dir() / "service-outage.yaml").read_text(encoding="utf-8")
    assert outage.count("\npostmortem:\n") == 1
    leak = outage.replace("id: service-outage\n", "id: environ-leak\n", 1)
    leak = leak.replace("\npostmortem:\n", "\npostmortem:\n  template: /proc/self/environ\n")
    (folder / "environ-leak.yaml").write_text(leak, encoding="utf-8")
    slow = outage.replace("\npostmortem:\n", "\npostmortem:\n  template: forever.md.j2\n")
    (folder / "service-outage.yaml").write_text(slow, encoding="utf-8")
    (folder / "forever.md.j2").write_text(
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    )
    yield from _harness(tmp_path, folder, monkeypatch)


def test_hostile_runbooks_are_set_aside_and_the_rest_are_served(hostile: Harness):
    listing = hostile.answer(hostile.command("runbooks"))
    assert "`service-outage`" in listing
    assert "environ-leak" not in listing and "lol" not in listing
    refused = hostile.answer(hostile.command("start environ-leak sev2 Leak the token"))
    assert "environ-leak" in refused and "service-outage" in refused
    assert hostile.fake.calls_to("conversations.create") == []
    problems = {p.file for p in hostile.running.bot.catalog.problems}
    assert {Path(f).stem for f in problems} == {*HOSTILE, "environ-leak"}


def test_a_runaway_team_template_gives_way_to_the_built_in_postmortem(
    hostile: Harness, monkeypatch: pytest.MonkeyPatch
):
    # 1 s instead of the default 5 s: the same stop, with 4 s less CPU burnt by the loop
    monkeypatch.setattr(postmortem, "LIMITS", postmortem.TemplateLimits(seconds=1))
    channel = declare(hostile)
    hostile.command("close", channel=channel)
    (notice,) = hostile.fake.wait_for(
        "chat.postMessage",
        lambda c: "postmortem template failed" in (c.args.get("text") or ""),
        timeout=30,  # the template's second and the worker's start on a busy machine
    )
    assert notice.args["channel"] == channel
    assert "forever.md.j2: took longer than 1 s" in notice.args["text"]
    hostile.posted(channel, "Postmortem")
    hostile.fake.wait_for("files.completeUploadExternal", timeout=30)
    upload = _markdown(hostile.fake.uploads)
    text = upload["content"].decode()
    assert text.startswith("# Postmortem INC-1")
    assert TOKEN not in text and SECRET not in text


def test_the_operators_template_reads_only_a_scrubbed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # INCIDENT_BOT_POSTMORTEM_TEMPLATE may point anywhere, even at /proc/self/environ: the
    # worker that reads it has no token in its environment.
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    folder = tmp_path / "runbooks"
    shutil.copytree(shipped_runbooks_dir(), folder)
    for slack in _harness(
        tmp_path, folder, monkeypatch, postmortem_template=Path("/proc/self/environ")
    ):
        channel = declare(slack)
        slack.command("close", channel=channel)
        slack.fake.wait_for("files.completeUploadExternal", timeout=30)
        upload = _markdown(slack.fake.uploads)
        text = upload["content"].decode("utf-8", "replace")
        assert "PATH=" in text  # the worker's own environment, rendered as the template
        assert TOKEN not in text and SECRET not in text and "INCIDENT_BOT_" not in text


def test_a_private_runbook_opens_a_private_channel_and_announces_no_title(slack: Harness):
    answer = slack.answer(slack.command("start security-incident sev1 Payroll export leaked"))
    (created,) = slack.fake.wait_for("conversations.create", lambda c: c.status == 200)
    channel = created.response["channel"]["id"]
    assert created.response["channel"]["is_private"] is True
    assert f"<#{channel}>" in answer
    slack.fake.wait_for("pins.add")  # only the channel's members see the plan
    (announced,) = slack.posted("CANNOUNCE", "INC-1 (sev1) declared")
    assert "private incident" in announced
    assert "Payroll" not in announced and channel not in announced
    listing = slack.answer(slack.command("list"))
    assert "INC-1" in listing and "Payroll" not in listing and channel not in listing
    slack.command("close", channel=channel)
    (closed,) = slack.posted("CANNOUNCE", "INC-1 (private) closed")
    assert "Payroll" not in closed


def test_a_public_runbook_still_opens_a_public_channel(slack: Harness):
    declare(slack)
    (created,) = slack.fake.wait_for("conversations.create", lambda c: c.status == 200)
    assert created.response["channel"]["is_private"] is False
    assert "is_private" not in created.args


def test_the_topic_is_escaped_and_on_one_line(slack: Harness):
    channel = declare(slack, "start service-outage sev2 <!channel> R&amp;D\ncheckout &lt;down&gt;")
    (call,) = slack.fake.wait_for("conversations.setTopic")
    topic = call.args["topic"]
    assert topic == "INC-1 · sev2 · &lt;!channel&gt; R&amp;D checkout &lt;down&gt;", topic
    assert slack.fake.topic(channel) == topic


def test_serve_starts_with_hostile_runbooks_and_logs_each_once(tmp_path: Path, fake: FakeSlack):
    from tests.e2e.test_serve import _env, _free_port

    folder = tmp_path / "runbooks"
    shutil.copytree(shipped_runbooks_dir(), folder)
    for name, (text, _, _) in HOSTILE.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    port = _free_port()
    proc = forkserver.Popen(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(port)],
        env=_env(tmp_path, fake, INCIDENT_BOT_RUNBOOKS=str(folder)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF if serve dies
            seen.append(line)
            if "health at" in line:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert json.loads(answer.read())["ok"] is True
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=20)
    out = "".join(seen) + rest
    assert "Traceback" not in out
    for name in HOSTILE:
        assert out.count(f"runbook set aside: {folder / name}.yaml:") == 1, out


def test_cli_postmortem_falls_back_and_says_why(tmp_path: Path):
    from bot.engine import IncidentService
    from bot.runbook import Catalog
    from bot.store import Store

    folder = tmp_path / "runbooks"
    folder.mkdir()
    outage = (shipped_runbooks_dir() / "service-outage.yaml").read_text(encoding="utf-8")
    outage = outage.replace("\npostmortem:\n", "\npostmortem:\n  template: ours.md.j2\n")
    (folder / "service-outage.yaml").write_text(outage, encoding="utf-8")
    (folder / "ours.md.j2").write_text("# {{ incident.ref }} {{ 1 / 0 }}\n", encoding="utf-8")
    store = Store(tmp_path / "bot.db")
    try:
        IncidentService(store, FakeClock(START), Catalog(folder)).start(
            "service-outage", "Checkout down", "ana"
        )
    finally:
        store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    env |= {"INCIDENT_BOT_DB": str(tmp_path / "bot.db"), "INCIDENT_BOT_RUNBOOKS": str(folder)}
    done = forkserver.run(
        [sys.executable, "-m", "bot", "postmortem", "INC-1", "--out", str(tmp_path / "pm.md")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        f"incident-bot: custom template not used: {folder.resolve() / 'ours.md.j2'}: "
        "ZeroDivisionError: division by zero"
    )
    assert (tmp_path / "pm.md").read_text(encoding="utf-8").startswith("# Postmortem INC-1")


def _markdown(uploads: dict) -> dict:
    """The review among the uploaded files (its chart is uploaded with it)."""
    (review,) = [u for u in uploads.values() if u["filename"].endswith(".md")]
    return review


def test_a_command_with_a_nul_character_is_journaled_and_carried_out_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
):
    """PostgreSQL's text cannot hold NUL, and the journal's repeat key held the command's
    text as it came: such a command was answered 'not recorded, try again' however often
    it was sent. The key now reads the text as the command does (control characters and
    bidi overrides dropped)."""
    harness = _harness(tmp_path, shipped_runbooks_dir(), monkeypatch, db=postgres_url)
    slack = next(harness)
    try:
        channel = declare(slack)
        slack.command("note disk\x00 full\x1b on \u202edb-2", channel=channel)
        slack.posted(channel, "disk full on db-2")
        (note,) = slack.running.bot.store.events(1, kinds=("note",))
        assert note.text == "disk full on db-2"
    finally:
        harness.close()
