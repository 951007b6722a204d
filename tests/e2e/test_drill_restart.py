"""Issue 3's acceptance run: a drill, SIGKILL mid-phase, restart on the same database.

Issue 3 ran it at speed 300; here it runs at 900 (a 15-minute reminder every real second),
the same scenario in a third of the time.

Downtime is simulated by moving the stored clock origin back (what a real
pause does to the scaled clock), so the test never sleeps to wait for time.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest

from tests import forkserver

REMINDER = "⏰"
SPEED = 900  # bot minutes per real minute


class Drill:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = forkserver.Popen(
            [sys.executable, "-m", "bot", "drill", "service-outage", "--speed", str(SPEED)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        """Block until a line containing `needle` is printed (waiting on output, not time)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line with {needle!r}; saw:\n{''.join(self.seen[-20:])}")
            self.seen.append(line)
            if needle in line:
                return line

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def _shift_clock_origin(db: str, real_seconds: float) -> None:
    """Pretend the bot was down for `real_seconds`: its scaled clock advances accordingly."""
    conn = sqlite3.connect(db)
    (raw,) = conn.execute("SELECT value FROM meta WHERE key = 'scaled_clock'").fetchone()
    data = json.loads(raw)
    origin = datetime.fromisoformat(data["real_origin"]) - timedelta(seconds=real_seconds)
    data["real_origin"] = origin.isoformat(timespec="milliseconds")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'scaled_clock'", [json.dumps(data)])
    conn.commit()
    conn.close()


def _phase_reminders(db: str) -> list[int]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT data FROM events WHERE kind = 'reminder' ORDER BY id").fetchall()
    conn.close()
    return [json.loads(d)["number"] for (d,) in rows if json.loads(d)["reminder"] == "phase"]


def test_killed_drill_resumes_with_one_catch_up_and_keeps_the_cadence(tmp_path):
    db = str(tmp_path / "drill.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    env.update(
        INCIDENT_BOT_DRILL_DB=db,
        INCIDENT_BOT_POSTMORTEMS=str(tmp_path / "pm"),
        PYTHONUNBUFFERED="1",
    )

    first = Drill(env)
    first.wait_for("declared")
    first.wait_for(REMINDER)  # 15 bot minutes = 1 real second
    first.kill()
    assert _phase_reminders(db) == [1]

    # down for 35 bot minutes: across the 30m and 45m slots
    _shift_clock_origin(db, real_seconds=35 * 60 / SPEED)
    second = Drill(env)
    second.wait_for("Resuming INC-1")
    catch_up = second.wait_for(REMINDER)
    assert "Confirm the fault and restore service" in catch_up
    second.wait_for(REMINDER)  # the cadence goes on after the catch-up
    second.proc.stdin.write("close\n")
    second.proc.stdin.flush()
    second.wait_for("INC-1 closed")
    assert second.proc.wait(timeout=30) == 0

    numbers = _phase_reminders(db)
    assert len(numbers) == 3, numbers  # 1, one catch-up, one on the cadence: no burst
    assert len(set(numbers)) == 3  # none twice
    conn = sqlite3.connect(db)
    pending = conn.execute("SELECT COUNT(*) FROM reminders WHERE state = 'pending'").fetchone()[0]
    conn.close()
    assert pending == 0  # closing stopped everything
