"""Shared pieces of the benchmarks: result rows, statistics, the timestamping fake Slack,
bot subprocesses (always cleaned up), seeding incidents straight into a database, and
what machine this is.

Everything listens on or talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # tests/ (the fake Slack) lives beside bot/, not in the package
    sys.path.insert(0, str(REPO))

from tests.fakeslack import FakeSlack  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
LOOPBACK = "127.0.0.1"
RUNBOOK = "service-outage"  # the shipped runbook: 15m phase reminders in its first phase


# --- results -----------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    measurement: str
    result: str
    budget: str
    met: bool | None  # None: informational, no budget of its own


@dataclass
class Outcome:
    """What one benchmark module returns: its table rows and free-form notes for the README."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def percentile(values: Iterable[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of a non-empty sample."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    rank = p / 100 * (len(data) - 1)
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


# --- the fake Slack, with arrival times ----------------------------------------


@dataclass(frozen=True)
class Stamp:
    """One call the fake served: wall-clock arrival (time.time()), service time, what it was,
    and the bot token it came with (replicas are told apart by their tokens)."""

    at: float
    served: float
    method: str
    channel: str | None
    text: str
    token: str | None = None


class BenchSlack(FakeSlack):
    """tests/fakeslack.FakeSlack that also stamps every call with its wall-clock arrival.

    Wall clock (not perf_counter) because reminder due times are wall-clock moments
    computed from the bot's clock origin; both processes read the same system clock.
    """

    def __init__(self) -> None:
        self.stamps: list[Stamp] = []  # list.append is atomic under the GIL
        super().__init__()

    def _exchange(self, method, args, token, answer):  # type: ignore[no-untyped-def,override]
        start = time.time()
        result = super()._exchange(method, args, token, answer)
        text = args.get("text") if isinstance(args, dict) else None
        channel = args.get("channel") if isinstance(args, dict) else None
        self.stamps.append(Stamp(start, time.time() - start, method, channel, text or "", token))
        return result

    def seed_channel(self, channel_id: str, name: str, plan_ts: str | None) -> None:
        """A channel that exists already, with the bot's pinned plan message at `plan_ts`."""
        self.precreate(name, channel_id)
        with self._cond:
            self._members[channel_id].append("UBOT")
            if plan_ts:
                self._messages[channel_id].append(
                    {
                        "type": "message",
                        "ts": plan_ts,
                        "user": "UBOT",
                        "bot_id": "BBOT",
                        "text": "plan",
                        "blocks": [],
                    }
                )

    def quiet_for(self, seconds: float, timeout: float) -> bool:
        """Wait until no call arrived for `seconds` (the bot's background work drained)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(self.stamps)
            time.sleep(seconds)
            if len(self.stamps) == count:
                return True
        return False


# --- subprocesses: registered, and always terminated ----------------------------

_PROCS: list[subprocess.Popen] = []
_PROCS_LOCK = threading.Lock()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM if the harness dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, pipes: bool = False
) -> subprocess.Popen:
    """Start a registered child: stdout and stderr to `log_path` (with `pipes`: stdin and
    stdout are text pipes, stderr goes to the log)."""
    out = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipes else out,
        stderr=out if pipes else subprocess.STDOUT,
        text=pipes,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    out.close()  # the child holds its own copy
    with _PROCS_LOCK:
        _PROCS.append(proc)
    return proc


def stop(proc: subprocess.Popen, grace: float = 5.0) -> int | None:
    """SIGTERM, wait `grace` seconds, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    with _PROCS_LOCK:
        if proc in _PROCS:
            _PROCS.remove(proc)
    return proc.returncode


def stop_all() -> None:
    with _PROCS_LOCK:
        procs = list(_PROCS)
    for proc in procs:
        stop(proc, grace=3.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def bot_env(fake: FakeSlack, db: str | Path, speed: float, workdir: Path) -> dict[str, str]:
    """The bot's environment: only our settings, none inherited from the shell. `db` is a
    SQLite file or a postgresql:// URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_BOT_"))}
    env.update(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.url,
        INCIDENT_BOT_DB=str(db),
        INCIDENT_BOT_POSTMORTEMS=str(workdir / "postmortems"),
        INCIDENT_BOT_CLOCK_SPEED=str(speed),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def start_bot_process(
    fake: FakeSlack, db: Path, speed: float, workdir: Path, port: int | None = None
) -> tuple[subprocess.Popen, int, float]:
    """`python -m bot serve --http --port P`; returns (process, port, Popen time (perf_counter))."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "bot", "serve", "--http", "--port", str(port)]
    started = time.perf_counter()
    proc = spawn(cmd, bot_env(fake, db, speed, workdir), workdir, workdir / "bot.log")
    return proc, port, started


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> float:
    """Poll GET /healthz every 5 ms until it answers 200; returns perf_counter at that moment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    url = f"http://{LOOPBACK}:{port}/healthz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before /healthz answered")
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.005)
    raise TimeoutError(f"/healthz on port {port} did not answer within {timeout:.0f} s")


def listen_overflows() -> int | None:
    """TcpExt ListenOverflows: connections the kernel dropped because a listen queue was full."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return None


def machine_load() -> str:
    """How busy the machine is now, from others too: the 1-minute load average and, where the
    kernel has it, CPU pressure (the share of the last 60 s some task waited for a CPU)."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append(f"load average {Path('/proc/loadavg').read_text().split()[0]}")
    with contextlib.suppress(OSError, IndexError, ValueError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        fields = dict(f.split("=") for f in some.split()[1:])
        parts.append(f"CPU pressure {float(fields['avg60']):.0f}%")
    return ", ".join(parts) or "unknown"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# --- seeding incidents straight into a database -----------------------------------


@dataclass(frozen=True)
class Seeded:
    incident_id: int
    channel: str
    channel_name: str
    plan_ts: str | None
    started_at: datetime


def seed_incidents(
    db: str | Path,
    count: int,
    first_start: datetime,
    spread: timedelta,
    with_plan: bool = True,
    prefix: str = "Seeded",
) -> list[Seeded]:
    """`count` open incidents declared through the engine (as `/incident start` would),
    start times spread evenly over `spread` from `first_start`, each with its channel
    and (with_plan) the reference of its pinned plan message. `db` is a SQLite file or a
    postgresql:// URL: the store speaks both."""
    from bot.chat import channel_name
    from bot.clock import FakeClock
    from bot.engine import IncidentService
    from bot.runbook import Catalog, shipped_runbooks_dir
    from bot.store import Store

    store = Store(db)
    clock = FakeClock(first_start)
    service = IncidentService(store, clock, Catalog(shipped_runbooks_dir()))
    step = spread / count if count else timedelta(0)
    seeded: list[Seeded] = []
    try:
        with store.transaction():
            for i in range(count):
                clock.set(first_start + step * i)
                incident = service.start(RUNBOOK, f"{prefix} {i}", f"USEED{i:05d}").incident
                channel = f"CSEED{i:05d}"
                incident = service.set_channel(incident.id, channel)
                plan_ts = f"1600000000.{i:06d}" if with_plan else None
                if plan_ts:
                    service.set_plan_ref(incident.id, plan_ts)
                seeded.append(
                    Seeded(
                        incident.id, channel, channel_name(incident), plan_ts, incident.started_at
                    )
                )
    finally:
        store.close()
    return seeded


def persist_scaled_clock(
    db: str | Path, speed: float, real_origin: datetime, bot_origin: datetime
) -> None:
    """Store the clock origin exactly as bot/persistence_clock.py does, so the bot process
    continues this timeline: bot time = bot_origin + (real now - real_origin) × speed."""
    from bot.clock import iso
    from bot.store import Store

    store = Store(db)
    try:
        record = {"speed": speed, "real_origin": iso(real_origin), "bot_origin": iso(bot_origin)}
        store.set_meta("scaled_clock", json.dumps(record))
    finally:
        store.close()


def seed_fake(fake: BenchSlack, seeded: list[Seeded]) -> None:
    for s in seeded:
        fake.seed_channel(s.channel, s.channel_name, s.plan_ts)


# --- the machine ------------------------------------------------------------------


def machine() -> dict[str, str]:
    info = {"cpus": str(os.cpu_count() or "?")}
    with contextlib.suppress(OSError):
        out = subprocess.run(["nproc"], capture_output=True, text=True, timeout=5).stdout.strip()
        if out:
            info["cpus"] = out
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    info["python"] = platform.python_version()
    info["os"] = f"{platform.system()} {platform.release()}"
    from importlib.metadata import version

    for package in ("slack-bolt", "slack-sdk", "apscheduler"):
        with contextlib.suppress(Exception):
            info[package] = version(package)
    return info


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value
