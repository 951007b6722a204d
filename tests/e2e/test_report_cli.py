"""`incident-bot report` as an operator runs it: a reader on a real database, beside a
running `serve`, never creating one (DESIGN §4 and §9)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FakeClock
from bot.engine import IncidentService
from bot.runbook import Catalog, shipped_runbooks_dir
from bot.store import Store
from tests import forkserver
from tests.e2e.test_serve import SECRET, _env, _free_port, _wait_healthy
from tests.slackreq import post, sign, slash_body

START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)


def _seed(db: Path, count: int) -> None:
    """`count` closed service-outage incidents, one a day: a responder after 5 minutes,
    step 1.1 done on time, 1.2 late, mitigated after 30 minutes, resolved after an hour."""
    store = Store(db)
    clock = FakeClock(START)
    service = IncidentService(store, clock, Catalog(shipped_runbooks_dir()))
    try:
        for n in range(count):
            clock.set(START + timedelta(days=n))
            incident = service.start("service-outage", f"Seeded {n}", "UANA").incident.id
            clock.advance(timedelta(minutes=5))
            service.note(incident, "here", "UBEN")
            service.done(incident, "1.1", "UANA")
            clock.advance(timedelta(minutes=25))
            service.done(incident, "1.2", "UBEN")
            service.mitigated(incident, "UANA")
            clock.advance(timedelta(minutes=30))
            service.resolved(incident, "UANA")
            service.close(incident, "UANA")
    finally:
        store.close()


def _report(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`incident-bot report ARGS` in a process of its own with only our settings: no Slack
    token, no inherited ones."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    environ.update(
        INCIDENT_BOT_DB=str(tmp_path / "bot.db"), INCIDENT_BOT_DRILL_DB=str(tmp_path / "drill.db")
    )
    return forkserver.run(
        [sys.executable, "-m", "bot", "report", *args],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`incident-bot report ARGS` through the CLI's own `main` in this process, with the
    settings `_report` gives its process and run from `tmp_path`: the same code and output
    without half a second of start-up per run (the tests above and below start processes)."""
    for name in [k for k in os.environ if k.startswith(("SLACK_", "INCIDENT_BOT_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("INCIDENT_BOT_DB", str(tmp_path / "bot.db"))
    monkeypatch.setenv("INCIDENT_BOT_DRILL_DB", str(tmp_path / "drill.db"))
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        argv = ["report", *args]
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse refusing the arguments
            code = int(exit.code or 0)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    return run


def test_a_missing_database_is_one_line_and_exit_1_and_is_never_created(tmp_path):
    done = _report(tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == f"There is no database at {tmp_path / 'bot.db'} (INCIDENT_BOT_DB)"
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no bot.db, no -wal, no -shm
    drill = _report(tmp_path, "--drill")
    assert drill.returncode == 1 and "(INCIDENT_BOT_DRILL_DB)" in drill.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("since", ["2026-13-01", "yesterday", "20260101", "2026-1-5"])
def test_a_since_that_is_not_a_day_is_refused_with_the_form(tmp_path, report, since):
    _seed(tmp_path / "bot.db", 1)
    done = report("--since", since)
    assert done.returncode == 2
    assert "write it as YYYY-MM-DD, e.g. --since 2026-01-01" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_three_formats_read_the_same_record(tmp_path, report):
    _seed(tmp_path / "bot.db", 3)
    data = json.loads(report("--format", "json").stdout)
    assert data["incidents"]["closed"] == 3 and data["drills"]["closed"] is None
    mitigate = next(t for t in data["response"] if t["measure"] == "mitigate")
    assert (mitigate["median_seconds"], mitigate["within_target"]) == (1800.0, 3)
    one_two = next(s for s in data["steps"] if s["step"] == "1.2")
    assert (one_two["late"], one_two["late_median_seconds"]) == (3, 600.0)

    rows = list(csv.reader(io.StringIO(report("--format", "csv").stdout)))
    assert ["response", "service-outage", "mitigate", "median_seconds", "1800.0"] in rows

    later = json.loads(report("--format", "json", "--since", "2026-01-16").stdout)
    assert later["incidents"]["closed"] == 2 and later["since"] == "2026-01-16"

    markdown = report().stdout
    assert markdown.startswith("# Incidents across the record\n")
    assert "| `service-outage` | mitigate | 3 of 3 | 30m | 30m | 2h00m | 3 (100 %) |" in markdown
    assert ".png" not in markdown  # no charts without --out


def test_out_writes_the_markdown_with_its_charts_beside_it(tmp_path, report):
    _seed(tmp_path / "bot.db", 2)
    done = report("--out", "reports/jan.md")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "reports"
    assert done.stdout.splitlines() == [
        "reports/jan.md",
        "reports/jan-times.png",
        "reports/jan-steps.png",
    ]
    text = (folder / "jan.md").read_text(encoding="utf-8")
    assert "](jan-times.png)" in text and "](jan-steps.png)" in text
    assert (folder / "jan-steps.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in folder.iterdir()) == ["jan-steps.png", "jan-times.png", "jan.md"]
    as_json = report("--out", "reports/jan.json")  # the format follows the suffix
    assert json.loads((folder / "jan.json").read_text())["incidents"]["closed"] == 2
    assert as_json.stdout.strip() == "reports/jan.json"


def test_drills_are_counted_apart(tmp_path, report):
    _seed(tmp_path / "bot.db", 2)
    _seed(tmp_path / "drill.db", 1)
    live = json.loads(report("--format", "json").stdout)
    assert live["incidents"]["closed"] == 2
    assert live["drills"] == {"database": str(tmp_path / "drill.db"), "closed": 1}
    drills = json.loads(report("--format", "json", "--drill").stdout)
    assert (drills["incidents"]["closed"], drills["drill"], drills["drills"]) == (1, True, None)
    assert "# Drills across the record" in report("--drill").stdout


def test_the_report_runs_beside_a_running_serve_and_sees_what_it_wrote(tmp_path, fake):
    _seed(tmp_path / "bot.db", 2)
    port = _free_port()
    proc = forkserver.Popen(
        [sys.executable, "-m", "bot", "serve", "--http", "--port", str(port)],
        env=_env(tmp_path, fake, INCIDENT_BOT_CLOCK_SPEED="1"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        body = slash_body("start service-outage sev2 Live one", response_url=fake.response_url("s"))
        assert post(url + "/slack/events", body, sign(SECRET, body, int(time.time())))[0] == 200
        (created,) = fake.wait_for("conversations.create")
        channel = created.response["channel"]["id"]
        fake.wait_for("pins.add")
        during = json.loads(_report(tmp_path, "--format", "json").stdout)
        assert (during["incidents"]["closed"], during["incidents"]["not_closed"]) == (2, 1)
        body = slash_body("close", channel_id=channel, response_url=fake.response_url("c"))
        assert post(url + "/slack/events", body, sign(SECRET, body, int(time.time())))[0] == 200
        fake.wait_for("chat.postMessage", lambda c: "INC-3 closed" in (c.args.get("text") or ""))
        done = _report(tmp_path, "--out", "r.md")
        assert done.returncode == 0, done.stderr
        after = json.loads(_report(tmp_path, "--format", "json").stdout)
        assert (after["incidents"]["closed"], after["incidents"]["not_closed"]) == (3, 0)
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            assert json.loads(response.read())["ok"] is True  # serve went on undisturbed
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
