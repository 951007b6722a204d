"""`incident-bot demo` as a newcomer runs it: a subprocess, no credentials, no network."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_plays_a_whole_incident_and_writes_a_postmortem(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    env.update(
        INCIDENT_BOT_DRILL_DB=str(tmp_path / "demo.db"),
        INCIDENT_BOT_POSTMORTEMS=str(tmp_path / "pm"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "INC-1 declared",
        "hands Response lead",
        "now holds Response lead",
        "Phase 2/3",
        "Mitigated",
        "Resolved",
        "INC-1 closed",
    ):
        assert expected in out
    assert "Traceback" not in out + done.stderr
    postmortem = (tmp_path / "pm" / "INC-1.md").read_text(encoding="utf-8")
    assert postmortem.startswith("# Postmortem INC-1: Checkout API returns 502 for every user")
    assert "| Response lead (incident commander) | @ana |" in postmortem
    assert "| Response lead (incident commander) | @ivy |" in postmortem
    assert "Rolling back release 2026.01.15-1" in postmortem


def test_demo_runs_a_second_time_on_the_same_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "bot", "demo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "postmortems" / "INC-2.md").exists()
