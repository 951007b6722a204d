"""Bot processes for the tests, forked from a server that has already imported the bot.

Each `python -m bot …` a test starts spends about half a second of CPU importing slack-bolt,
slack-sdk, pydantic and the bot before it does anything, and the suite starts about sixty
of them. `Popen` and `run` here take the same arguments as `subprocess`'s; a command line
that runs Python (`-m MODULE`, `-c CODE` or a script, nothing else) is handed to a server
(`python tests/forkserver.py SOCKET`: one per run, started by pytest-xdist's controller and
shared by its workers, or one per test process), which imported the bot's modules at its
start and forks a child for it. The child takes the test's standard streams, working
directory, environment, umask and arguments, runs the module as `python` would (its own
`__main__`, `sys.argv`, `sys.path[0]`), and ends as the interpreter ends (its exit status
and message, threads joined, atexit run, streams flushed), without freeing the modules one
by one. It is a real process with its own pid: signals, kills, exit statuses, pipes and
timeouts behave as they do for `subprocess.Popen`, whose code does all the rest.

What differs from a fresh interpreter, and why that changes no test's result:
- the modules in PRELOAD were imported under the server's environment: none of them reads
  the environment when imported (the bot reads it when it builds its settings). The
  server refuses a command line whose environment differs from the one it started with
  in what Python reads as it starts (PYTHON*, locale, TZ), or whose resource limits
  differ from its own, or that runs (`-m`) a module it imported: the test then starts a
  fresh interpreter;
- matplotlib (imported by the bot only to draw a chart; 0.6 s of each drawing child's
  CPU) is imported as `bot.chart` imports it, after `ensure_config_dir()` and in its
  quiet. It picks its folders and settings as it is imported, from HOME, TMPDIR, XDG_*,
  MPL* and a `matplotlibrc` in the working folder: a command line whose environment
  differs in those, or whose folder holds a `matplotlibrc`, gets a fresh interpreter;
- a module the bot uses without importing it (`email.utils` without `import email.utils`)
  is there in a forked child, having been imported by another: such a bug shows only in a
  fresh interpreter, so the README's commands (`demo`, `serve`) and `--help`/`validate`
  also run fresh in one test each;
- the child's parent is the server, not the test (the bot never asks);
- what the program left reachable at its end is not freed object by object (that costs a
  child 40 ms of CPU, copying nearly every page it shares with the server): the files and
  SQLite connections it left open are closed, as freeing them would, but no `__del__`
  or other finalizer runs (a `NamedTemporaryFile` left open stays on disk), a cursor
  still holding a statement keeps its connection's write-ahead log, and daemon threads
  may run on while the child flushes (Python stops them once atexit is done). The bot
  closes its database and files itself, and tests end it by SIGTERM or SIGKILL;
- children share the server's hash seed, where fresh interpreters each draw one;
- a traceback has two frames of this file above the program's.
Anything else (another executable, `shell`, `preexec_fn`, `pass_fds`, a user or group,
a new session, or the server not answering) runs through `subprocess` unchanged. A test
whose subject is the process itself (its peak memory, its imports) uses `subprocess`.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from traceback import format_exception_only
from typing import Any

# imported once by the server; none reads the environment when imported
PRELOAD = (
    "bot.cli",
    "bot.bootstrap",
    "bot.slack.server",
    "bot.slack.socket",
    "bot.slack.manifest",
    "bot.console.demo",
    "bot.console.drill",
    "bot.report",
    "bot.postmortem",
    "bot.review",
    "bot.catchup",
)
OPTIONAL_PRELOAD = ("psycopg", "psycopg_pool")  # for the PostgreSQL tests, where installed
CHART_PRELOAD = ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg")
# read by Python as it starts, or by matplotlib as it is imported: must be the server's
STARTUP_PREFIXES = ("PYTHON", "LC_", "LANG", "MPL", "MATPLOTLIB")
STARTUP_NAMES = frozenset({"HOME", "TMPDIR", "TZ", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"})
# limits a child inherits from its parent: the test's and the server's must be equal
LIMITS = tuple(
    getattr(resource, name)
    for name in ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
                 "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_STACK")
    if hasattr(resource, name)
)  # fmt: skip
SPAWN_SECONDS = 30.0  # for the server to answer a request (it forks in milliseconds)
READY_SECONDS = 120.0  # for a server to import the bot (about a second)
_HEADER = struct.Struct("!I")
_FORKABLE = os.name == "posix" and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


# --- the test's side ------------------------------------------------------------------


class Popen(subprocess.Popen):  # type: ignore[type-arg]
    """`subprocess.Popen`, with a Python command line forked from the server."""

    _conn: socket.socket | None = None
    _answer: bytes = b""

    def _execute_child(  # type: ignore[override]
        self,
        args: Any,
        executable: Any,
        preexec_fn: Any,
        close_fds: bool,
        pass_fds: Any,
        cwd: Any,
        env: Any,
        startupinfo: Any,
        creationflags: int,
        shell: bool,
        p2cread: int,
        p2cwrite: int,
        c2pread: int,
        c2pwrite: int,
        errread: int,
        errwrite: int,
        restore_signals: bool,
        gid: Any,
        gids: Any,
        uid: Any,
        umask: int,
        start_new_session: bool,
        process_group: Any,
    ) -> None:
        plain = (
            executable is None
            and preexec_fn is None
            and close_fds
            and not pass_fds
            and not shell
            and restore_signals
            and gid is None
            and gids is None
            and uid is None
            and umask < 0
            and not start_new_session
            and process_group in (None, -1)
        )
        request = _request(args, cwd, env) if plain else None
        server = _server() if request is not None else None
        forked = server.spawn(request, (p2cread, c2pwrite, errwrite)) if server else None
        if forked is None:
            super()._execute_child(  # type: ignore[misc]
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                restore_signals, gid, gids, uid, umask, start_new_session, process_group,
            )  # fmt: skip
            return
        self.pid, self._conn = forked
        self._child_created = True
        self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]

    def _status(self, block: bool) -> int | None:
        """The child's wait status once the server has reaped it; None while it runs."""
        assert self._conn is not None
        self._conn.setblocking(block)
        try:
            while not self._answer.endswith(b"\n"):
                part = self._conn.recv(64)
                if not part:
                    raise ChildProcessError(f"the fork server lost pid {self.pid}")
                self._answer += part
        except BlockingIOError:
            return None
        finally:
            self._conn.setblocking(True)
        kind, value = self._answer.split()
        assert kind == b"status", self._answer
        self._conn.close()
        return int(value)

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        if self._conn is None:
            return super()._try_wait(wait_flags)  # type: ignore[misc,no-any-return]
        status = self._status(block=not wait_flags & os.WNOHANG)
        return (0, 0) if status is None else (self.pid, status)

    def _internal_poll(self, _deadstate: int | None = None, **_: Any) -> int | None:
        if self._conn is None:
            return super()._internal_poll(_deadstate)  # type: ignore[misc,no-any-return]
        if self.returncode is None and self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
            try:
                if self.returncode is None:
                    status = self._status(block=False)
                    if status is not None:
                        self._handle_exitstatus(status)  # type: ignore[attr-defined]
            except ChildProcessError:
                if _deadstate is not None:
                    self.returncode = _deadstate
            finally:
                self._waitpid_lock.release()  # type: ignore[attr-defined]
        return self.returncode


def run(
    args: Any,
    *,
    input: Any = None,
    capture_output: bool = False,
    timeout: float | None = None,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run` on this module's `Popen`."""
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with Popen(args, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
        status = process.poll()
    assert status is not None
    if check and status:
        raise subprocess.CalledProcessError(status, process.args, stdout, stderr)
    return subprocess.CompletedProcess(process.args, status, stdout, stderr)


def _request(args: Any, cwd: Any, env: Any) -> dict[str, Any] | None:
    """What the server needs to run `args`, or None when it must be a fresh interpreter."""
    if isinstance(args, (str, bytes, os.PathLike)):
        return None
    argv = [os.fsdecode(a) for a in args]
    if len(argv) < 2 or argv[0] != sys.executable:
        return None
    first = argv[1]
    if first in ("-m", "-c"):
        if len(argv) < 3:
            return None
    elif first.startswith("-") or not first.endswith(".py"):
        return None
    umask = _umask()
    if umask is None:
        return None
    environment = dict(
        os.environ if env is None else {os.fsdecode(k): os.fsdecode(v) for k, v in env.items()}
    )
    return {
        "argv": argv[1:],
        "cwd": os.path.abspath(os.fsdecode(cwd) if cwd is not None else os.getcwd()),
        "env": environment,
        "umask": umask,
        "limits": _limits(),
    }


def _umask() -> int | None:
    """This process's umask, read without setting it (another thread may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return None


def _limits() -> list[list[int]]:
    return [list(resource.getrlimit(kind)) for kind in LIMITS]


class _Client:
    """This test process's connection to a fork server: its own, or the one pytest-xdist's
    controller shares (`share`), whose socket its workers find in SHARED_VARIABLE."""

    def __init__(self, shared: str | None = None) -> None:
        self.owner = os.getpid()
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: bool | None = True if shared else None  # None: not yet told
        self._said = b""  # what its own server has written
        if shared:
            self.address = shared
            return
        self.address = str(Path(tempfile.mkdtemp(prefix="forkserver-")) / "socket")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), self.address],
            stdin=subprocess.PIPE,  # the server exits when this closes
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        atexit.register(self.close)

    def wait_for(self, line: bytes, seconds: float) -> bool:
        """Whether this process's own server said `line` (`listening`, then `ready`) in time."""
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()  # read unbuffered: both lines may come in one read
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while line + b"\n" not in self._said.splitlines(keepends=True):
                if not selector.select(max(deadline - time.monotonic(), 0)):
                    return False
                part = os.read(fd, 4096)
                if not part:
                    return False
                self._said += part
        return True

    def _is_ready(self) -> bool:
        with _client_lock:  # two threads' first requests: one waits, the other reads
            if self.ready is None:  # its own server: wait until it has imported the bot
                self.ready = self.wait_for(b"ready", READY_SECONDS)
            return self.ready

    def spawn(
        self, request: dict[str, Any], fds: tuple[int, int, int]
    ) -> tuple[int, socket.socket] | None:
        """Fork `request` with `fds` (-1: this process's own) as its stdin, stdout, stderr."""
        if not self._is_ready():
            return None
        if os.path.lexists(os.path.join(request["cwd"], "matplotlibrc")):
            return None  # matplotlib would read it as it is imported
        streams = [fd if fd != -1 else n for n, fd in enumerate(fds)]
        body = json.dumps(request).encode()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A stuck server gives way to a fresh interpreter, but only before it holds the
        # streams: a copy of a pipe's end in a request it never read would keep the pipe
        # open. So it first says hello, then gets them, and then it is waited for.
        conn.settimeout(SPAWN_SECONDS)
        try:
            conn.connect(self.address)
            if _line(conn) != b"hello\n":
                raise OSError("the fork server did not say hello")
            conn.settimeout(None)
            socket.send_fds(conn, [_HEADER.pack(len(body)) + body], streams)
            answer = _line(conn)
        except OSError:
            conn.close()
            self.ready = False
            return None
        kind, value = answer.split()
        if kind != b"pid":  # the server could not run it: a fresh interpreter will say why
            conn.close()
            return None
        return int(value), conn

    def close(self) -> None:
        if self.process and self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
            self.process.wait(timeout=10)


_client: _Client | None = None
_client_lock = threading.Lock()


SHARED_VARIABLE = "FORKSERVER_SOCKET"


def share() -> None:
    """Start this process's server now, wait only until it listens (not for its imports),
    and have every process started from here on use it (pytest-xdist's controller, for its
    workers): one server importing the bot instead of one per worker."""
    client = _server()
    if client is not None and client.wait_for(b"listening", READY_SECONDS):
        os.environ[SHARED_VARIABLE] = client.address  # requests wait while it imports


def _server() -> _Client | None:
    global _client
    if not _FORKABLE:
        return None
    with _client_lock:
        if _client is None or _client.owner != os.getpid():
            _client = _Client(os.environ.get(SHARED_VARIABLE))
        return _client


def _startup(env: Any) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(STARTUP_PREFIXES) or k in STARTUP_NAMES}


# --- the server's side ----------------------------------------------------------------


@dataclass
class _Job:
    argv: list[str]
    cwd: str


def _serve(address: str) -> _Job:
    """Fork a child for each request; returns only in a child, with what it is to run."""
    import gc
    import importlib

    startup = _startup(os.environ)  # before ensure_config_dir() may add MPLCONFIGDIR
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)  # connections wait here while the bot is imported
    sys.stdout.write("listening\n")
    sys.stdout.flush()
    for name in PRELOAD:
        importlib.import_module(name)
    for name in OPTIONAL_PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from bot.chart import _quiet, ensure_config_dir

    ensure_config_dir()  # what the bot does before it first imports matplotlib
    with _quiet():
        for name in CHART_PRELOAD:
            importlib.import_module(name)
    assert threading.active_count() == 1, "an import started a thread: forking is unsafe"
    # what was imported stays put: a child's collections never walk it, so never write to
    # the pages it lies on (what the child uses of it still does; its end does not, see
    # _finish)
    gc.freeze()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin.buffer, selectors.EVENT_READ, "stdin")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, its connection)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in selector.select():
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):  # the tests have ended
                    listener.close()
                    os.unlink(address)
                    os.rmdir(os.path.dirname(address))
                    raise SystemExit(0)  # children still running run on
            elif key.data == "accept":
                conn, _ = listener.accept()
                job = _accept(conn, selector, listener, children, startup)
                if job is not None:
                    return job
            else:
                pid, conn = children.pop(key.fd)
                selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                _send(conn, b"status %d\n" % status)  # unless the test stopped asking
                conn.close()


def _accept(
    conn: socket.socket,
    selector: selectors.BaseSelector,
    listener: socket.socket,
    children: dict[int, tuple[int, socket.socket]],
    startup: dict[str, str],
) -> _Job | None:
    """Fork the child `conn` asks for; returns only in that child. A test that has gone
    away meanwhile costs nothing but its own request."""
    conn.settimeout(SPAWN_SECONDS)
    fds: list[int] = []
    try:
        conn.sendall(b"hello\n")
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        (size,) = _HEADER.unpack_from(data)
        body = data[_HEADER.size :]
        while len(body) < size:
            part = conn.recv(size - len(body))
            if not part:
                raise OSError("short request")
            body += part
        request = json.loads(body)
        if len(fds) != 3 or not os.path.isdir(request["cwd"]):
            raise OSError("no streams or no such folder")
        if _startup(request["env"]) != startup:
            raise ValueError("what Python or matplotlib reads as it starts differs from ours")
        if request["limits"] != _limits():
            raise ValueError("the test's resource limits are not ours")
        if _imported_already(request["argv"]):
            raise ValueError("runpy would run an imported module a second time")
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        for fd in fds:
            os.close(fd)
        _send(conn, b"refused -\n")
        conn.close()
        return None
    pid = os.fork()
    if pid == 0:  # the child: nothing of the server's stays open
        selector.close()
        listener.close()
        for pidfd, (_, other) in children.items():
            os.close(pidfd)
            other.close()
        conn.close()
        for n, fd in enumerate(fds):
            os.dup2(fd, n)
        for fd in set(fds):
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # read TMPDIR again, as a new process would
        return _Job(argv=request["argv"], cwd=request["cwd"])
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    if not _send(conn, b"pid %d\n" % pid):  # nobody to wait for it: it never runs
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(pidfd)
        conn.close()
        return None
    children[pidfd] = (pid, conn)
    selector.register(pidfd, selectors.EVENT_READ, "child")
    return None


def _line(conn: socket.socket) -> bytes:
    """One line from `conn`, read a byte at a time: the next line (a quick child's status
    after its pid) stays in the socket for whoever asks for it."""
    answer = b""
    while not answer.endswith(b"\n"):
        part = conn.recv(1)
        if not part:
            raise OSError("the fork server closed the connection")
        answer += part
    return answer


def _send(conn: socket.socket, line: bytes) -> bool:
    try:
        conn.sendall(line)
        return True
    except OSError:
        return False


def _imported_already(argv: list[str]) -> bool:
    """Whether `-m NAME` names a module the server imported (runpy would warn, and run it
    again beside the imported one)."""
    if argv[0] != "-m":
        return False
    name = argv[1]
    module = sys.modules.get(name)
    if module is not None and not hasattr(module, "__path__"):
        return True
    return f"{name}.__main__" in sys.modules


def _run(job: _Job) -> None:
    """Run the job as `python ARGV…` would: as `__main__`, with sys.argv and sys.path[0]."""
    import builtins
    import runpy
    import types

    first, *rest = job.argv
    if first == "-m":
        sys.argv = [rest[0], *rest[1:]]  # runpy puts the module's path first
        sys.path[0] = job.cwd
        runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
    elif first == "-c":
        sys.argv = ["-c", *rest[1:]]
        sys.path[0] = ""
        main = types.ModuleType("__main__")  # its own, as `python -c` has: not this file's
        main.__builtins__ = builtins  # type: ignore[attr-defined]
        sys.modules["__main__"] = main
        exec(compile(rest[0], "<string>", "exec"), main.__dict__)
    else:
        script = str(Path(first).resolve())
        sys.argv = [first, *rest]
        sys.path[0] = str(Path(script).parent)
        runpy.run_path(script, run_name="__main__")


def _finish(job: _Job) -> None:
    """Run the job, then end as the interpreter ends, but without tearing its modules down.

    Python's shutdown frees every module, and in a child that writes to nearly every page
    it shares with the server: 40 ms of CPU even for `-c pass`, 6 ms without. So the child
    does what the shutdown does that a test can see, in Python's order (the status, with a
    message or traceback on stderr; threads joined; atexit; the standard streams flushed;
    files and SQLite connections left open closed), then `os._exit`. What it leaves out
    is in this module's docstring.
    """
    interrupted = False
    try:
        _run(job)
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException as exc:  # what escapes the program: reported as Python reports it
        sys.excepthook(type(exc), exc, exc.__traceback__)
        interrupted, code = isinstance(exc, KeyboardInterrupt), 1
    threading._shutdown()  # type: ignore[attr-defined]  # as Python: threads, then atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        failed = _flush(stream)
        if failed is not None:  # Python's status for a failed flush at exit
            if stream is sys.stdout:  # said on stderr, as Python's unraisable hook says it
                _say(f"Exception ignored in: {stream!r}\n", *format_exception_only(failed))
            code = 120
    _release_what_is_left()
    if interrupted:  # Python ends by SIGINT, so that its parent sees the interrupt
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _flush(stream: Any) -> Exception | None:
    """Flush a stream that is there and open (as Python: a closed one is passed over)."""
    if stream is None or getattr(stream, "closed", False):
        return None
    try:
        stream.flush()
    except Exception as exc:  # noqa: BLE001 - the caller decides what a failure means
        return exc
    return None


def _say(*lines: str) -> None:
    try:
        sys.stderr.write("".join(lines))
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - nowhere left to say it
        pass


def _exit_status(code: object) -> int:
    """The status `raise SystemExit(code)` ends Python with; a code not a number is printed."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if -(2**63) <= code < 2**63 else 255  # past a C long: -1
    _say(f"{code}\n")  # as Python: the status stands, said or not
    return 1


def _release_what_is_left() -> None:
    """What freeing the modules would have done that shows outside the process: garbage
    finalized, files still open closed, SQLite connections closed (the last one folds the
    write-ahead log back into the database and removes it, unless a cursor still holds a
    statement, or the connection belongs to another thread). Only what the child made is
    looked at: what the server imported is frozen and `gc` leaves it alone."""
    import gc
    import io
    import sqlite3

    kinds = (io.TextIOBase, io.BufferedIOBase, sqlite3.Connection)  # text first: it writes
    # into its buffer. Only these are held: a statement a connection caches must be freed
    # as it closes, or SQLite keeps the connection (and its log) till the process is gone
    gc.collect()
    found = [thing for thing in gc.get_objects() if isinstance(thing, kinds)]
    flushed = (sys.stdout, sys.stderr)  # by _finish, and left open as Python leaves them
    for kind in kinds:
        for thing in found:
            if isinstance(thing, kind) and all(thing is not s for s in flushed):
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closed already, or in use: as at shutdown
                    pass
    for stream in (sys.__stdout__, sys.__stderr__):  # the server's (frozen, so not found),
        if all(stream is not s for s in flushed):  # when the program put others in place
            _flush(stream)


if __name__ == "__main__":
    _finish(_serve(sys.argv[1]))
