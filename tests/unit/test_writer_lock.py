"""One writer per SQLite file: refused with the holder named; no stale lock after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bot.writer_lock import DatabaseInUse, hold_writer_lock
from tests import forkserver


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    db = tmp_path / "bot.db"
    first = hold_writer_lock(db)
    try:
        with pytest.raises(DatabaseInUse) as refused:
            hold_writer_lock(db)
        message = str(refused.value)
        assert f"{db} is in use by incident-bot serve (pid {os.getpid()}" in message
        assert "INCIDENT_BOT_DB" in message
    finally:
        first.release()
    hold_writer_lock(db).release()  # released: the next one may write


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    db = tmp_path / "bot.db"
    holder = forkserver.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from bot.writer_lock import hold_writer_lock; "
            f"held = hold_writer_lock(pathlib.Path({str(db)!r})); print('held', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DatabaseInUse, match=f"pid {holder.pid}"):
            hold_writer_lock(db)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    hold_writer_lock(db).release()  # the lock died with the process; its file stays harmlessly
