"""The fork server the tests start bot processes from: what a test sees of a forked
process (arguments, folder, environment, streams, exit status, signals) is what it sees
of one `subprocess` starts, and a command line it cannot fork runs unchanged."""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import forkserver

# reports what a process was given, and whether it started with the bot already imported
PROBE = """
import json, os, pickle, resource, sys, time
def here(): pass
umask = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Umask:")][0]
print(json.dumps({
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "marker": os.environ.get("FORKSERVER_PROBE"),
    "stdin": sys.stdin.read(),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2),
    "name": __name__,
    "main": sys.modules["__main__"].__dict__ is globals(),
    "pickles": len(pickle.dumps(here)) > 0,
    "umask": umask,
    "files": resource.getrlimit(resource.RLIMIT_NOFILE),
    "zone": [time.tzname, time.localtime(0).tm_hour],
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
    assert a["main"] is True and a["pickles"] is True
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


def test_a_relative_folder_is_the_tests_not_the_servers(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "inner").mkdir()
    monkeypatch.chdir(tmp_path)
    forked, fresh = _both([sys.executable, "-c", PROBE, "0"], cwd="inner", env=_environment())
    a, b = json.loads(forked.stdout), json.loads(fresh.stdout)
    assert a.pop("preloaded") is True and b.pop("preloaded") is False
    assert a == b and a["cwd"] == str(tmp_path / "inner")


def test_what_a_child_inherits_beyond_its_environment_is_the_tests(tmp_path: Path) -> None:
    """A time zone, a umask, a resource limit: a forked child has the test's, or the test
    gets a fresh interpreter."""
    env = {**_environment(), "TZ": "Asia/Tokyo"}
    forked, fresh = _both([sys.executable, "-c", PROBE, "0"], env=env)
    assert json.loads(forked.stdout) == json.loads(fresh.stdout)  # TZ: a fresh one
    assert json.loads(forked.stdout)["zone"] == [["JST", "JST"], 9]
    kind = resource.RLIMIT_NOFILE
    limit, old_mask = resource.getrlimit(kind), os.umask(0o077)
    try:
        resource.setrlimit(kind, (min(limit[0], 256), limit[1]))
        forked, fresh = _both([sys.executable, "-c", PROBE, "0"], env=_environment())
    finally:
        resource.setrlimit(kind, limit)
        os.umask(old_mask)
    a, b = json.loads(forked.stdout), json.loads(fresh.stdout)
    assert a == b and a["umask"] == "0077" and a["files"][0] == min(limit[0], 256)
    assert a["preloaded"] is False  # a limit the server does not have: a fresh one
    old_mask = os.umask(0o027)
    try:
        forked, fresh = _both([sys.executable, "-c", PROBE, "0"], env=_environment())
    finally:
        os.umask(old_mask)
    a, b = json.loads(forked.stdout), json.loads(fresh.stdout)
    assert a.pop("preloaded") is True and b.pop("preloaded") is False  # a umask is set
    assert a == b and a["umask"] == "0027"


def test_a_module_the_server_imported_is_run_by_a_fresh_interpreter(tmp_path: Path) -> None:
    forked, fresh = _both([sys.executable, "-m", "bot.slack.manifest"], cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )
    assert "RuntimeWarning" not in forked.stderr


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


# each ending of a program, and what a fresh interpreter leaves: status, stdout, stderr
# (of a traceback its last line: a forked one has two more frames above the program's)
ENDINGS = {
    "unflushed output": ("print('tail', end='')", (0, "tail", "")),
    "a status": ("sys.exit(3)", (3, "", "")),
    "a negative status": ("sys.exit(-1)", (255, "", "")),
    "a status past a C long": ("sys.exit(2 ** 70)", (255, "", "")),
    "no status": ("raise SystemExit", (0, "", "")),
    "a message": ("sys.exit('bye')", (1, "", "bye")),
    "a thread still running, then atexit": (  # as Python: the thread joined, then atexit
        "import atexit, threading, time\n"
        "atexit.register(lambda: print('atexit', flush=True))\n"
        "threading.Thread(target=lambda: (time.sleep(0.1), print('thread', flush=True))).start()\n"
        "raise SystemExit('bye')",
        (1, "thread\natexit\n", "bye"),
    ),
    "an error": ("raise ValueError('boom')", (1, "", "ValueError: boom")),
    "an interrupt": ("raise KeyboardInterrupt", (-signal.SIGINT, "", "KeyboardInterrupt")),
    "the first stdout replaced": (  # what the first still holds (unless unbuffered) is written
        "print('first', end='')\nsys.stdout = open('second.txt', 'w')\nprint('second', end='')",
        (0, "first", ""),
    ),
    "stdout closed": ("print('x')\nsys.stdout.close()", (0, "x\n", "")),
    "a daemon thread still running": (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(30), print('late')), daemon=True).start()",
        (0, "", ""),
    ),
    "files and a database left open": (  # held by a module the server imported too
        "import gzip, json, sqlite3\n"
        "json.left = open('left.txt', 'w')\n"
        "json.left.write('kept')\n"
        "json.packed = gzip.open('left.gz', 'wt')\n"  # closing it writes its trailer
        "json.packed.write('packed')\n"
        "json.db = sqlite3.connect('x.db')\n"
        "json.db.execute('pragma journal_mode=wal')\n"
        "json.db.execute('create table t(x)')\n"
        "json.db.commit()",
        (0, "", ""),
    ),
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_forked_process_ends_as_a_fresh_one_ends(tmp_path: Path, ending: str) -> None:
    code, expected = ENDINGS[ending]
    program = f"import sys\nprint('bot.cli' in sys.modules, flush=True)\n{code}\n"
    seen = {}
    for how, run in (("forked", forkserver.run), ("fresh", subprocess.run)):
        folder = tmp_path / how
        folder.mkdir()
        done = run([sys.executable, "-c", program], cwd=folder, env=_environment(),
                   capture_output=True, text=True, timeout=30)  # fmt: skip
        first, _, rest = done.stdout.partition("\n")
        assert first == str(how == "forked")  # it really was forked, or fresh
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "x.db"}
        said = done.stderr
        if "Traceback" in said:
            said = said.splitlines()[-1]
        seen[how] = (done.returncode, rest, said.removesuffix("\n"), files)
    assert seen["forked"] == seen["fresh"]
    assert seen["fresh"][:3] == expected
    if ending == "the first stdout replaced":
        assert seen["fresh"][3] == {"second.txt": b"second"}
    if ending == "files and a database left open":  # written out, the log folded back
        assert seen["fresh"][3]["left.txt"] == b"kept" and set(seen["fresh"][3]) == {
            "left.txt",
            "left.gz",
        }
        assert gzip.decompress(seen["fresh"][3]["left.gz"]) == b"packed"


def test_a_flush_that_fails_at_the_end_is_reported_as_a_fresh_one_reports_it() -> None:
    # stdout buffered (the tests' PYTHONUNBUFFERED would write at once) into a closed pipe
    program = (
        "import io, sys\n"
        "sys.stderr.write(str('bot.cli' in sys.modules) + '\\n')\n"
        "sys.stdout = io.TextIOWrapper(open(1, 'wb', closefd=False))\n"
        "print('never read', end='')\n"
    )
    seen = {}
    for how, run in (("forked", forkserver.run), ("fresh", subprocess.run)):
        read, write = os.pipe()
        os.close(read)
        done = run([sys.executable, "-c", program], stdout=write, stderr=subprocess.PIPE,
                   text=True, env=_environment(), timeout=30)  # fmt: skip
        os.close(write)
        first, _, rest = done.stderr.partition("\n")
        assert first == str(how == "forked")
        seen[how] = (done.returncode, rest)
    assert seen["forked"] == seen["fresh"]
    assert seen["fresh"][0] == 120 and "BrokenPipeError" in seen["fresh"][1]


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


def test_a_test_that_goes_away_mid_request_leaves_the_server_serving() -> None:
    sleeper = forkserver.Popen(
        [sys.executable, "-c", "import time; time.sleep(0.5)"], env=_environment()
    )
    client = forkserver._server()
    assert client is not None
    for _ in range(3):  # connect and leave, before and after sending part of a request
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
            gone.connect(client.address)
            gone.sendall(b"\0\0")
    assert sleeper.wait(timeout=30) == 0  # its status still came
    done = forkserver.run([sys.executable, "-c", "import sys; print('bot.cli' in sys.modules)"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.stdout == "True\n"


def test_a_server_that_never_answers_gives_way_to_a_fresh_interpreter(tmp_path, monkeypatch):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(tmp_path / "socket"))
    silent.listen(1)  # and never accepts
    monkeypatch.setattr(forkserver, "SPAWN_SECONDS", 0.3)
    monkeypatch.setattr(forkserver, "_client", forkserver._Client(str(tmp_path / "socket")))
    check = [sys.executable, "-c", "import sys; print('bot.cli' in sys.modules)"]
    done = forkserver.run(check, capture_output=True, text=True, timeout=30)
    assert done.stdout == "False\n"
    silent.close()


def test_two_threads_starting_the_first_children_of_a_new_server_both_finish(monkeypatch):
    monkeypatch.delenv(forkserver.SHARED_VARIABLE, raising=False)
    own = forkserver._Client()
    monkeypatch.setattr(forkserver, "_client", own)
    check = [sys.executable, "-c", "import sys; print('bot.cli' in sys.modules)"]
    results: list[str] = []

    def start() -> None:
        done = forkserver.run(check, capture_output=True, text=True, timeout=60)
        results.append(done.stdout)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert results == ["True\n", "True\n"]
    own.close()
