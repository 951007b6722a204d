"""Shared fixtures: a fake clock, a store in a temp folder, a wired bot."""

from __future__ import annotations

import compileall
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.engine import IncidentService
from bot.messages import Renderer
from bot.render import plan_text
from bot.runbook import Catalog, shipped_runbooks_dir
from bot.slack.text import escape as slack_escape
from bot.store import Store

START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
RAM_DISK = Path("/dev/shm")
REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    _in_memory_tmp(config)
    _bytecode(config)
    _shared_fork_server(config)


def _shared_fork_server(config: pytest.Config) -> None:
    """pytest-xdist's controller starts the server bot processes are forked from
    (tests/forkserver.py) and its workers share it: one server importing the bot (1.3 s
    of CPU) instead of one per worker. Started before the workers; the workers' first
    requests wait for its imports, the controller does not."""
    if hasattr(config, "workerinput") or not getattr(config.option, "tx", None):
        return
    if config.option.collectonly:
        return
    from tests import forkserver

    forkserver.share()


def _bytecode(config: pytest.Config) -> None:
    """Byte-compiled modules even where PYTHONDONTWRITEBYTECODE is set (this machine sets
    it): else each of the ~100 bot processes the tests start compiles the bot from source
    (0.13 s of CPU each) and every worker rewrites every test module's asserts again (1.6 s).
    The caches go where Python keeps them, `__pycache__/`, which git ignores."""
    if not sys.dont_write_bytecode:
        return
    sys.dont_write_bytecode = False  # this process: pytest's rewritten test modules
    if not hasattr(config, "workerinput"):  # once, before any worker or test starts
        compileall.compile_dir(REPO / "bot", quiet=1)


def _in_memory_tmp(config: pytest.Config) -> None:
    """Temporary files in memory (tmpfs) where the machine has one and nobody chose a place:
    every test opens SQLite files, and creating one on this disk costs about 40 ms of
    fsyncs against 12 ms in memory. A process killed by a test keeps what it wrote either
    way; nothing here is about surviving a power cut. TMPDIR=… or --basetemp=… wins."""
    if config.option.basetemp or "TMPDIR" in os.environ:
        return
    if RAM_DISK.is_dir() and os.access(RAM_DISK, os.W_OK | os.X_OK):
        os.environ["TMPDIR"] = str(RAM_DISK)  # the bot processes the tests start, too
        tempfile.tempdir = None  # read TMPDIR again


@pytest.fixture(scope="session")
def postgres_database():
    """One PostgreSQL database for the whole run (created here, dropped at the end)."""
    from tests import postgres

    postgres.skip_or_fail()
    with postgres.fresh_database() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_database):
    """The run's PostgreSQL database, emptied for this test."""
    from tests import postgres

    postgres.empty(postgres_database)
    return postgres_database


def store_on(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    """A store on SQLite (a file in tmp_path) or on the run's PostgreSQL database."""
    if backend == "postgresql":
        return Store(request.getfixturevalue("postgres_url"))
    return Store(tmp_path / "bot.db")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: half again as many workers as CPUs. Many tests spend their time waiting on
    a real process (a bot's clock, Slack's pace, a restart), and with one worker per CPU
    both CPUs sat idle for a fifth of the run."""
    return max(2, round(len(os.sched_getaffinity(0)) * 1.5))


LONGEST_FIRST = ("tests/e2e/", "tests/integration/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests first, then integration, then unit: the long ones (real processes)
    start while there is still short work to share out, so no worker is left finishing
    one alone (pytest-xdist steals only whole tests). The order within each stays."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid
        return next((n for n, top in enumerate(LONGEST_FIRST) if path.startswith(top)), 9)

    items.sort(key=rank)


def pytest_terminal_summary(terminalreporter) -> None:
    from tests import postgres

    line = postgres.skipped_line()
    if line:
        terminalreporter.write_line(line)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "bot.db")
    yield store
    store.close()


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(shipped_runbooks_dir())


@pytest.fixture
def service(store: Store, clock: FakeClock, catalog: Catalog) -> IncidentService:
    return IncidentService(store, clock, catalog)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.of(
        db=tmp_path / "bot.db",
        drill_db=tmp_path / "drill.db",
        runbooks=shipped_runbooks_dir(),
        postmortems=tmp_path / "postmortems",
        clock_speed=1.0,
        language="en",
    )


class RecordingChat:
    """A ChatPort that keeps what would have been posted, for core tests."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []
        self.replies: list[tuple[str, str]] = []
        self.direct: list[tuple[str, str]] = []
        self.announced: list[str] = []
        self.plan_refreshes = 0
        self.uploads: list = []
        self.fail_uploads = 0
        self.fail_next = 0

    def open_channel(self, incident) -> str:
        return f"C{incident.id:04d}"

    def post(self, channel: str, text: str, buttons=()) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("chat is down")
        self.posts.append((channel, text))

    def notify(self, user: str, text: str) -> None:
        self.direct.append((user, text))

    def announce(self, text: str) -> None:
        self.announced.append(text)

    def upload(self, channel: str, files, title: str) -> None:
        if self.fail_uploads:
            self.fail_uploads -= 1
            raise ConnectionError("upload failed")
        self.uploads.append((channel, files[0], title, files[1:]))

    def show_plan(self, plan) -> str | None:
        text = plan_text(Renderer("en", mention=self.mention, escape=self.escape), plan)
        self.posts.append((plan.incident.channel, text))
        return "plan-1"

    def refresh_plan(self, plan) -> None:
        self.plan_refreshes += 1

    def channel_link(self, channel: str) -> str:
        return f"<#{channel}>"

    def reply(self, user: str, channel: str | None, text: str, reply_url=None) -> None:
        self.replies.append((user, text))

    def is_transient(self, error: Exception) -> bool:
        return isinstance(error, ConnectionError)

    def mention(self, user: str | None) -> str:
        return f"<@{user}>" if user else "-"

    def escape(self, text: str) -> str:
        return slack_escape(text)  # escape like Slack, so core tests see escaped user text


class SleepRecorder:
    """A monotonic clock for pacers that only moves when they sleep (no real waiting)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def chat() -> RecordingChat:
    return RecordingChat()


# A small runbook whose timings are easy to reason about in reminder tests.
DRILL_RUNBOOK = """
id: drill
name: Drill
roles:
  - {id: lead, name: Lead}
  - {id: ops, name: Ops}
phases:
  - id: one
    name: Phase one
    target: 30m
    remind_every: 10m
    escalation: {message: "Call the vendor.", severity: sev1}
    steps:
      - {id: a, title: Look at logs, owner: ops, due: 15m}
      - {id: b, title: Roll back, owner: lead, due: 20m after phase}
  - id: two
    name: Phase two
    target: 2h
    steps:
      - {id: c, title: Tell users, owner: lead, due: 30m after mitigated}
risks:
  - id: slow
    risk: Not restored in time
    trigger: not mitigated within 1h
    fallback: Fail over to the standby region.
    escalate_to: sev1
postmortem: {due: 24h}
"""


@pytest.fixture
def drill_catalog(tmp_path) -> Catalog:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "drill.yaml").write_text(DRILL_RUNBOOK, encoding="utf-8")
    catalog = Catalog(folder)
    assert catalog.problems == []
    return catalog
