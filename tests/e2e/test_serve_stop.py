"""`serve` stops on SIGTERM (a deploy, `docker stop`) whichever of its threads the kernel
hands the signal to: Python runs signal handlers in the main thread only, so a main thread
blocked for ever in `Event.wait()` never saw a SIGTERM that went to another thread."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import subprocess
import sys

import pytest

from tests import forkserver
from tests.e2e.test_serve import _env, _free_port, _wait_healthy
from tests.fakeslack import FakeSlack

TGKILL = {"x86_64": 234, "aarch64": 131}.get(platform.machine())  # Linux syscall numbers


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """Send `signum` to one thread of `pid` (Python has no wrapper for tgkill)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


@pytest.mark.skipif(TGKILL is None or sys.platform != "linux", reason="Linux tgkill")
def test_a_sigterm_delivered_to_a_worker_thread_still_stops_serve(tmp_path):
    with FakeSlack() as fake:
        port = _free_port()
        proc = forkserver.Popen(
            [sys.executable, "-m", "bot", "serve", "--http", "--port", str(port)],
            env=_env(tmp_path, fake),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", proc)
            workers = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
            assert workers  # the scheduler, the HTTP server, the pools …
            _tgkill(proc.pid, workers[0], signal.SIGTERM)
            assert proc.wait(timeout=20) == 0  # a clean stop, not a hang until SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
            out, _ = proc.communicate(timeout=20)
    assert "Traceback" not in out, out
