"""`incident-bot demo` as a newcomer runs it: a subprocess, no credentials, no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import forkserver


def _demo(cwd: Path, fresh: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    """The demo, forked (tests/forkserver.py) or, with `fresh`, from a new interpreter."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    return (subprocess.run if fresh else forkserver.run)(
        [sys.executable, "-m", "bot", "demo"],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_plays_a_whole_incident_and_writes_a_postmortem(tmp_path):
    # the README's first command, as a newcomer's shell starts it: nothing imported before
    done = _demo(tmp_path, fresh=True, INCIDENT_BOT_POSTMORTEMS=str(tmp_path / "pm"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "INC-1 declared",
        "hands Response lead",
        "now holds Response lead",
        "Phase 2/3",
        "Mitigated",
        "Resolved",
        "Why #5 recorded by @ben",
        "INC-1 closed",
        "Lesson (got lucky) recorded by @ivy",
    ):
        assert expected in out, expected
    assert "Traceback" not in out + done.stderr
    review = tmp_path / "pm" / "drills" / "INC-1.md"
    assert out.rstrip().endswith(f"Postmortem: {review}")
    postmortem = review.read_text(encoding="utf-8")
    assert postmortem.startswith("# Postmortem INC-1: Checkout API returns 502 for every user")
    assert "| Response lead (incident commander) | @ivy |" in postmortem
    assert "Rolling back release 2026.01.15-1" in postmortem
    # the review meeting the next morning, after close, reached the rebuilt review
    assert "- It happened at 2 a.m., when checkout traffic is at its lowest." in postmortem
    assert not (tmp_path / "pm" / "INC-1.md").exists()  # never where live reviews go


def test_demo_runs_on_a_throw_away_database_and_leaves_live_and_drill_ones_alone(tmp_path):
    for _ in range(2):
        done = _demo(tmp_path)
        assert done.returncode == 0, done.stderr
    # each run is INC-1 again, and replaces its own unedited review rather than piling up
    assert sorted(p.name for p in (tmp_path / "postmortems" / "drills").iterdir()) == [
        "INC-1.md",
        "INC-1.png",
    ]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "postmortems"]
    assert leftovers == []  # no incident-bot.db, no incident-bot-drill.db, no demo database
