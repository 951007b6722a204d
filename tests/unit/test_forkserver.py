"""The fork server the tests start bot processes from: what a test sees of a forked
process (arguments, folder, environment, streams, exit status, signals) is what it sees
of one `subprocess` starts, and a command line it cannot fork runs unchanged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import forkserver

# reports what a process was given, and whether it started with the bot already imported
PROBE = """
import json, os, sys
print(json.dumps({
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "marker": os.environ.get("FORKSERVER_PROBE"),
    "stdin": sys.stdin.read(),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2),
    "name": __name__,
    "preloaded": "bot.cli" in sys.modules,
}))
sys.stderr.write("to stderr\\n")
sys.exit(int(sys.argv[1]))
"""


def _both(
    args: list[str], **kwargs
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    forked = forkserver.run(args, capture_output=True, text=True, timeout=30, **kwargs)
    fresh = subprocess.run(args, capture_output=True, text=True, timeout=30, **kwargs)
    return forked, fresh


def test_a_forked_process_gets_what_a_fresh_one_gets(tmp_path: Path) -> None:
    env = {**_environment(), "FORKSERVER_PROBE": "yes"}
    forked, fresh = _both(
        [sys.executable, "-c", PROBE, "3", "second"], cwd=tmp_path, env=env, input="typed"
    )
    assert json.loads(forked.stdout)["preloaded"] is True  # it really was forked
    assert json.loads(fresh.stdout)["preloaded"] is False
    a, b = json.loads(forked.stdout), json.loads(fresh.stdout)
    a.pop("preloaded"), b.pop("preloaded")
    assert a == b
    assert a["argv"] == ["-c", "3", "second"] and a["cwd"] == str(tmp_path)
    assert a["marker"] == "yes" and a["stdin"] == "typed" and a["name"] == "__main__"
    assert (
        (forked.returncode, forked.stderr) == (fresh.returncode, fresh.stderr) == (3, "to stderr\n")
    )


def test_a_module_and_a_script_run_as_python_runs_them(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    for args in ([sys.executable, str(script), "0"], [sys.executable, "-m", "probe", "0"]):
        forked, fresh = _both(args, cwd=tmp_path, env=_environment())
        a, b = json.loads(forked.stdout), json.loads(fresh.stdout)
        assert a.pop("preloaded") is True and b.pop("preloaded") is False
        assert a == b, args
        assert forked.returncode == fresh.returncode == 0


def test_the_bot_cli_prints_and_exits_the_same(tmp_path: Path) -> None:
    for args in (["--help"], ["validate", str(tmp_path / "missing")]):
        forked, fresh = _both([sys.executable, "-m", "bot", *args], cwd=tmp_path)
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            fresh.returncode,
            fresh.stdout,
            fresh.stderr,
        ), args


def test_signals_kills_and_timeouts_reach_the_forked_process() -> None:
    hang = [sys.executable, "-c", "import sys, time; print('up', flush=True); time.sleep(60)"]
    for stop, status in (
        (forkserver.Popen.terminate, -signal.SIGTERM),
        (forkserver.Popen.kill, -9),
    ):
        process = forkserver.Popen(hang, stdout=subprocess.PIPE, env=_environment())
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        assert process.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)
        stop(process)
        assert process.wait(timeout=30) == status
        process.stdout.close()
    with pytest.raises(subprocess.TimeoutExpired):
        forkserver.run(hang, timeout=0.2, stdout=subprocess.DEVNULL, env=_environment())


def test_the_interpreter_shuts_down_as_usual_in_a_forked_process() -> None:
    code = (
        "import atexit, threading, time\n"
        "atexit.register(lambda: print('atexit', flush=True))\n"
        "threading.Thread(target=lambda: (time.sleep(0.1), print('thread', flush=True))).start()\n"
        "raise SystemExit('bye')\n"
    )
    forked, fresh = _both([sys.executable, "-c", code], env=_environment())
    assert (
        (forked.returncode, forked.stdout, forked.stderr)
        == (
            fresh.returncode,
            fresh.stdout,
            fresh.stderr,
        )
        == (1, "thread\natexit\n", "bye\n")
    )


def test_what_it_cannot_fork_runs_through_subprocess(tmp_path: Path) -> None:
    # a start-up variable that differs from the server's: a fresh interpreter must read it
    env = {**_environment(), "PYTHON_FORKSERVER_PROBE": "1"}
    check = [sys.executable, "-c", "import sys; print('bot.cli' in sys.modules)"]
    assert forkserver.run(check, capture_output=True, text=True, env=env).stdout == "False\n"
    shell = forkserver.run("echo plain", shell=True, capture_output=True, text=True)
    assert shell.stdout == "plain\n"
    assert forkserver.run(check, capture_output=True, text=True).stdout == "True\n"


def _environment() -> dict[str, str]:
    return dict(os.environ)


MATPLOTLIB_PROBE = """
import json, sys
from bot.chart import _quiet, ensure_config_dir
ensure_config_dir()
with _quiet():
    import matplotlib
print(json.dumps({
    "preloaded": "bot.cli" in sys.modules,
    "configdir": matplotlib.get_configdir(),
    "cachedir": matplotlib.get_cachedir(),
    "rc": {key: repr(value) for key, value in matplotlib.rcParams.items()},
}))
"""


def test_matplotlib_in_a_forked_process_has_a_fresh_ones_folders_and_settings(tmp_path):
    forked, fresh = _both([sys.executable, "-c", MATPLOTLIB_PROBE], cwd=tmp_path)
    a, b = json.loads(forked.stdout), json.loads(fresh.stdout)
    assert a.pop("preloaded") is True and b.pop("preloaded") is False
    assert a == b
    assert forked.stderr == fresh.stderr == ""


def test_what_matplotlib_reads_as_it_is_imported_gets_a_fresh_interpreter(tmp_path):
    check = [sys.executable, "-c", "import sys; print('bot.cli' in sys.modules)"]
    (tmp_path / "matplotlibrc").write_text("font.size: 20\n", encoding="utf-8")
    assert forkserver.run(check, cwd=tmp_path, capture_output=True, text=True).stdout == "False\n"
    for name, value in (("HOME", str(tmp_path)), ("MPLBACKEND", "svg"), ("TMPDIR", str(tmp_path))):
        env = {**_environment(), name: value}
        done = forkserver.run(check, env=env, capture_output=True, text=True)
        assert done.stdout == "False\n", name
