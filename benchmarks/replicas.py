"""Replicas: two `serve` processes on one PostgreSQL database (issue 15, DESIGN §7 and §8).

Setup: a fresh PostgreSQL database (`CREATE DATABASE bench_replicas_<pid>`, dropped at
the end) on the server at 127.0.0.1:5432 (`INCIDENT_BOT_BENCH_POSTGRES` names another
admin URL). 1,000 `service-outage` incidents are declared through the engine into it
exactly as benchmarks/reminders.py seeds SQLite (benchmarks/common.seed_incidents: the
store speaks both), start times spread over one 15-minute cadence, and the scaled clock's
origin is stored a few seconds ahead. Then two replicas start, each `python -m bot serve
--http` on its own port, the same INCIDENT_BOT_DB and clock speed 300, each with its own
bot token so the fake Slack (in this process) can tell whose post is whose.

Timeline (real seconds after the clock origin; quick / full):
- both replicas for `steady` (20 / 60 s), then SIGKILL of replica a;
- b alone for `alone` (6 / 9 s: two or three cadences), then a restarts (it rejoins);
- both again for `alone`, then SIGKILL of b; a alone for `alone`; then a drain (3 s).

Scoring, from the fake Slack's posts and the database's `reminders` rows. A phase
reminder's text ends with "Next reminder HH:MM", the due time of the row that claiming
it created (bot/reminders.py `_phase`); that row's predecessor in the series is the
reminder the post carries. So each post is paired with its row exactly, whatever its
lateness or whichever replica sent it, and a row the killed replica claimed but never
posted does not shift the pairing.
- steady: every reminder due from the origin to 1 s before the first kill (each had its
  whole 1 s budget with both replicas up): lateness p50 / p99 / max, each replica's share.
- failover, per kill: for each incident, its next reminder: the first of its reminders
  not posted by the moment of the kill (a reminder the killed replica had claimed and
  never posted is counted as lost at the kill, and the one after it is scored). Lateness
  p50 / p99 / max against the 2 s budget.
- lost at a kill: rows left `sending` with no post (claimed by the replica that died; by
  design never posted again, see bot/reminders.py). Posted but left `sending` (killed
  between the post and recording it) is shown too.
- missed: due by the end of the last segment, not posted, and not lost at a kill: 0.
- posted twice: a row with more than one post, or a post that matches no row.
- peak RSS (VmHWM) and CPU time of each replica.

Then the acks: another fresh database with 100 seeded incidents, the two replicas at
clock speed 1, `status` sent to replica a (b runs beside it, sweeping) by
benchmarks/loadgen.py with 1 and 50 in flight, against benchmarks/bare_app.py, rounds
alternating which goes first; medians of the per-round p50 / p99, as in ack.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks.ack import LoadGen, Series
from benchmarks.common import (
    LOOPBACK,
    REPO,
    BenchSlack,
    Outcome,
    Row,
    Seeded,
    bot_env,
    cpu_seconds,
    free_port,
    log,
    machine_load,
    median,
    ms,
    peak_rss_mb,
    percentile,
    persist_scaled_clock,
    seed_fake,
    seed_incidents,
    spawn,
    stop,
    tail,
    wait_healthy,
)

ADMIN_URL = os.environ.get(
    "INCIDENT_BOT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
INCIDENTS = 1000
LIGHT = 100  # a tenth of the load: 33 phase reminders a second
SPEED = 300.0
CADENCE = timedelta(minutes=15)  # the first phase's remind_every in service-outage
LEAD = 4.0  # real seconds from the end of seeding to the clock origin (two start-ups fit)
LATENESS_BUDGET = 1.0
FAILOVER_BUDGET = 2.0
RSS_BUDGET_MB = 200.0
NEXT_AT = re.compile(r"Next reminder (\d\d:\d\d)")
ACK_CELLS = (1, 50)  # `status` with this many in flight
ONE_IN_FLIGHT_BUDGET = 0.025
RATIO_BUDGET = 1.5


@dataclass(frozen=True)
class Timeline:
    steady: float  # both replicas, before the first kill (real seconds after the origin)
    alone: float  # each later segment: one alone, both again, the other alone
    drain: float


@dataclass(frozen=True)
class Params:
    load: Timeline  # INCIDENTS: the budget's load
    light: Timeline  # LIGHT incidents: failover where the replicas keep up
    ack_rounds: int
    ack_serial: int
    ack_concurrent: int


QUICK = Params(
    Timeline(20, 6, 3), Timeline(8, 4, 2), ack_rounds=3, ack_serial=30, ack_concurrent=50
)
FULL = Params(
    Timeline(60, 9, 5), Timeline(20, 6, 3), ack_rounds=5, ack_serial=200, ack_concurrent=500
)


# --- PostgreSQL: a database of our own ---------------------------------------------


def unreachable() -> str | None:
    """Why the PostgreSQL server cannot be used, or None."""
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # no driver, no server, no permission
        return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    return None


@contextmanager
def fresh_database(tag: str) -> Iterator[str]:
    """CREATE DATABASE bench_<tag>_<pid>; yields its URL; dropped after, connections and all."""
    import psycopg

    name = f"bench_{tag}_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the replicas ------------------------------------------------------------------


class Replica:
    """One `python -m bot serve --http` on the shared database, with its own token."""

    def __init__(self, name: str, fake: BenchSlack, url: str, speed: float, workdir: Path):
        self.name = name
        self.token = f"xoxb-bench-replica-{name}"
        self.folder = workdir / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = bot_env(fake, url, speed, self.folder) | {"SLACK_BOT_TOKEN": self.token}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.rss: list[float] = []  # peak RSS of each life (a restart is a new process)
        self.cpu = 0.0  # CPU seconds, all lives
        self._cpu_mark: float | None = None

    def start(self) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "bot", "serve", "--http", "--port", str(self.port)]
        self.proc = spawn(cmd, self.env, self.folder, self.folder / "bot.log")

    def wait(self) -> None:
        assert self.proc is not None
        try:
            wait_healthy(self.port, self.proc)
        except Exception:
            raise RuntimeError(
                f"replica {self.name} did not start: {tail(self.folder / 'bot.log')}"
            ) from None

    def mark_cpu(self) -> None:
        """Start counting CPU time from now (the clock origin)."""
        self._cpu_mark = cpu_seconds(self.proc.pid) if self.proc else None

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"replica {self.name} exited ({self.proc.returncode}): "
                f"{tail(self.folder / 'bot.log')}"
            )

    def _account(self) -> None:
        assert self.proc is not None
        rss, cpu = peak_rss_mb(self.proc.pid), cpu_seconds(self.proc.pid)
        if rss is not None:
            self.rss.append(rss)
        if cpu is not None:
            self.cpu += cpu - (self._cpu_mark or 0.0)
        self._cpu_mark = None

    def kill(self) -> float:
        """SIGKILL; returns the wall-clock moment it was sent."""
        assert self.proc is not None
        self._account()
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        stop(self.proc)  # unregisters it
        self.proc = None
        return at

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._account()
        stop(self.proc, grace=2)
        self.proc = None


# --- pairing posts with reminder rows ----------------------------------------------


@dataclass
class PhaseRow:
    incident_id: int
    seq: int
    due: float  # wall clock (unix seconds)
    due_bot: datetime
    state: str
    posts: list[tuple[float, str | None]] = field(default_factory=list)  # (arrival, token)

    def first_post(self) -> float | None:
        return min((at for at, _ in self.posts), default=None)


def pair_posts(
    rows: list[PhaseRow], stamps: list, by_channel: dict[str, int]
) -> tuple[dict[int, list[PhaseRow]], int]:
    """Attach each `:alarm_clock:` post to its row: its "Next reminder HH:MM" is the due
    time of its successor in the series. Returns the rows per incident (by seq) and the
    number of posts that matched no row."""
    from bot.timefmt import clock_time

    series: dict[int, list[PhaseRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.incident_id, r.seq)):
        series[row.incident_id].append(row)
    successor: dict[tuple[int, str], PhaseRow] = {}
    for incident_rows in series.values():
        for before, after in zip(incident_rows, incident_rows[1:], strict=False):
            successor[(after.incident_id, clock_time(after.due_bot))] = before
    unmatched = 0
    for st in stamps:
        if st.method != "chat.postMessage" or st.channel not in by_channel:
            continue
        for _ in range(st.text.count(":alarm_clock:")):
            found = NEXT_AT.search(st.text)
            row = successor.get((by_channel[st.channel], found.group(1))) if found else None
            if row is None:
                unmatched += 1
            else:
                row.posts.append((st.at, st.token))
    return series, unmatched


def _spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 50):.2f} s / p99 {percentile(values, 99):.2f} s / "
        f"max {max(values):.2f} s"
    )


# --- the reminder run ---------------------------------------------------------------


def run(quick: bool, workdir: Path) -> Outcome:
    workdir.mkdir(parents=True, exist_ok=True)
    why = unreachable()
    if why is not None:
        return Outcome(
            [Row("replicas", f"PostgreSQL not reachable at {ADMIN_URL}: {why}"[:300], "—", False)]
        )
    params = QUICK if quick else FULL
    outcome = Outcome()
    with fresh_database("replicas") as url:
        _reminders(params.load, INCIDENTS, url, workdir / "reminders", outcome)
    with fresh_database("replicas_light") as url:
        _reminders(params.light, LIGHT, url, workdir / "light", outcome)
    with fresh_database("replicas_ack") as url:
        _acks(params, url, workdir / "ack", outcome)
    return outcome


def _reminders(params: Timeline, incidents: int, url: str, workdir: Path, outcome: Outcome) -> None:
    from bot.clock import iso, parse_iso, utc_now
    from bot.store import Store

    workdir.mkdir(parents=True, exist_ok=True)
    fake = BenchSlack()
    a = Replica("a", fake, url, SPEED, workdir)
    b = Replica("b", fake, url, SPEED, workdir)
    try:
        bot_origin = parse_iso(iso(utc_now()))
        began = time.perf_counter()
        seeded = seed_incidents(url, incidents, bot_origin, CADENCE, prefix="Replica")
        seed_fake(fake, seeded)
        log(f"replicas: seeded {incidents} incidents in {time.perf_counter() - began:.1f} s")
        real_origin = parse_iso(iso(utc_now() + timedelta(seconds=LEAD)))  # ms, as stored
        persist_scaled_clock(url, SPEED, real_origin, bot_origin)
        origin = real_origin.timestamp()
        first_due = origin + CADENCE.total_seconds() / SPEED

        for replica in (a, b):
            replica.start()
        for replica in (a, b):
            replica.wait()
        if time.time() > first_due:
            outcome.notes.append(
                "replicas: a replica answered /healthz after the first reminder was due; "
                "the start-up is in the lateness"
            )
        load_before = machine_load()

        def until(moment: float, live: list[Replica]) -> None:
            while time.time() < moment:
                for replica in live:
                    replica.check()
                time.sleep(0.1)

        until(origin, [a, b])
        a.mark_cpu()
        b.mark_cpu()
        kills: list[tuple[str, float]] = []  # (which replica, when)
        restarted: list[float] = []
        until(origin + params.steady, [a, b])
        kills.append(("a", a.kill()))
        until(kills[-1][1] + params.alone, [b])
        a.start()
        a.wait()
        restarted.append(time.time())
        a.mark_cpu()
        until(restarted[-1] + params.alone, [a, b])
        kills.append(("b", b.kill()))
        scored_end = kills[-1][1] + params.alone
        until(scored_end + params.drain, [a])
        load_after = machine_load()
        a.stop()
        stamps = list(fake.stamps)

        store = Store(url)
        try:
            stored = store.query(
                "SELECT incident_id, seq, due_at, state FROM reminders WHERE kind = 'phase'"
            )
        finally:
            store.close()
        rows = []
        for r in stored:
            due_bot = parse_iso(r["due_at"])
            due = origin + (due_bot - bot_origin).total_seconds() / SPEED
            rows.append(PhaseRow(r["incident_id"], r["seq"], due, due_bot, r["state"]))
        by_channel = {s.channel: s.incident_id for s in seeded}
        series, unmatched = pair_posts(rows, stamps, by_channel)
        name = "replicas" if incidents == INCIDENTS else f"replicas at {incidents:,} incidents"
        scored = Outcome()
        _score(
            params,
            scored,
            seeded,
            series,
            unmatched,
            origin,
            bot_origin,
            kills,
            restarted,
            scored_end,
        )
        _replica_rows(scored, (a, b), stamps, by_channel, origin, kills[0][1])
        outcome.rows += [replace(r, measurement=name + r.measurement[8:]) for r in scored.rows]
        outcome.notes += [name + n[8:] for n in scored.notes]
        outcome.notes.append(
            f"{name}: the machine before the run: {load_before}; after it: {load_after}. "
            f"Replica CPU time from the origin (all lives): a {a.cpu:.1f} s, b {b.cpu:.1f} s "
            f"over {scored_end + params.drain - origin:.0f} s; PostgreSQL's own work is on "
            "the same 2 cores and not counted there."
        )
    finally:
        a.stop()
        b.stop()
        fake.close()


@dataclass(frozen=True)
class Slot:
    """Slot k of an incident's cadence: when it was due, and its row (None: the bot skipped
    it, having fallen more than a cadence behind; bot/reminders.py `_phase`)."""

    seq: int
    due: float
    row: PhaseRow | None


def slots(s: Seeded, rows: list[PhaseRow], origin: float, bot_origin: datetime, until: float):
    """Every slot of the incident's phase reminders due by `until`."""
    by_seq = {r.seq: r for r in rows}
    offset = (s.started_at - bot_origin).total_seconds()
    k = 1
    while (due := origin + (offset + k * CADENCE.total_seconds()) / SPEED) <= until:
        yield Slot(k, due, by_seq.get(k))
        k += 1


def _lost(row: PhaseRow | None) -> bool:
    """Claimed (`sending`, or `unknown` once its lease ran out) and never posted."""
    return row is not None and not row.posts and row.state in ("sending", "unknown")


def _next_post(rows: list[PhaseRow], seq: int) -> float | None:
    """When the incident next got a phase reminder, from slot `seq` on."""
    return min(
        (p for r in rows if r.seq >= seq and (p := r.first_post()) is not None), default=None
    )


def _score(
    params: Timeline,
    outcome: Outcome,
    seeded: list[Seeded],
    series: dict[int, list[PhaseRow]],
    unmatched: int,
    origin: float,
    bot_origin: datetime,
    kills: list[tuple[str, float]],
    restarted: list[float],
    scored_end: float,
) -> None:
    first_kill = kills[0][1]
    every = {
        s.incident_id: list(slots(s, series.get(s.incident_id, []), origin, bot_origin, scored_end))
        for s in seeded
    }
    steady: list[float] = []
    steady_due = 0
    for incident_slots in every.values():
        for slot in incident_slots:
            if slot.due < first_kill - LATENESS_BUDGET:
                steady_due += 1
                if slot.row is not None and slot.row.posts:
                    steady.append(slot.row.first_post() - slot.due)  # type: ignore[operator]
    steady_missing = steady_due - len(steady)
    over = sum(1 for x in steady if x > LATENESS_BUDGET)
    outcome.rows.append(
        Row(
            f"replicas: lateness, {len(seeded):,} incidents at speed {SPEED:g} on 2 replicas",
            (
                f"{_spread(steady)} over {len(steady):,} reminders due in the first "
                f"{first_kill - LATENESS_BUDGET - origin:.0f} s, both up ({over:,} later than 1 s"
                + (f"; {steady_missing:,} not posted" if steady_missing else "")
                + ")"
            ),
            "p99 < 1 s",
            bool(steady) and percentile(steady, 99) < LATENESS_BUDGET,
        )
    )

    in_scope = [slot for incident_slots in every.values() for slot in incident_slots]
    lost_rows = [slot.row for slot in in_scope if _lost(slot.row)]
    posted_unrecorded = sum(
        1 for slot in in_scope if slot.row and slot.row.posts and slot.row.state == "sending"
    )
    skipped = sum(1 for slot in in_scope if slot.row is None)
    queued = Counter(
        slot.row.state
        for slot in in_scope
        if slot.row is not None and not slot.row.posts and not _lost(slot.row)
    )
    missed = skipped + sum(queued.values())
    doubled = sum(len(r.posts) - 1 for rows in series.values() for r in rows if len(r.posts) > 1)
    lost_by_kill: Counter[str] = Counter()
    for row in lost_rows:
        assert row is not None
        # lost by the kill it is nearest to (claimed just before it)
        who, _ = min(kills, key=lambda k: abs(k[1] - row.due))
        lost_by_kill[who] += 1

    for k, (who, at) in enumerate(kills):
        nexts: list[float] = []
        unposted = 0
        for s in seeded:
            rows = series.get(s.incident_id, [])
            for slot in every[s.incident_id]:
                first = slot.row.first_post() if slot.row is not None else None
                if first is not None and first < at:
                    continue  # out before the kill
                if _lost(slot.row) and slot.due < at + 1:
                    continue  # lost at this kill: counted apart; the next one is scored
                # skipped or late: the time until the incident next heard from the bot
                posted = _next_post(rows, slot.seq)
                if posted is None:
                    unposted += 1
                else:
                    nexts.append(posted - slot.due)
                break
        over = sum(1 for x in nexts if x > FAILOVER_BUDGET)
        alone = "b" if who == "a" else "a"
        rejoined = " (after a had restarted and rejoined)" if k else ""
        outcome.rows.append(
            Row(
                f"replicas: failover {k + 1}, SIGKILL of {who}{rejoined}: every incident's "
                "next reminder",
                f"{_spread(nexts)} over {len(nexts):,} incidents, {alone} alone ({over:,} later "
                f"than {FAILOVER_BUDGET:g} s"
                + (f"; {unposted:,} not posted" if unposted else "")
                + f"); {lost_by_kill[who]:,} lost at the kill",
                f"p99 < {FAILOVER_BUDGET:g} s (the budget: every one within {FAILOVER_BUDGET:g} s)",
                bool(nexts) and not unposted and percentile(nexts, 99) < FAILOVER_BUDGET,
            )
        )
    outcome.rows.append(
        Row(
            "replicas: lost at a kill",
            f"{len(lost_rows):,} reminders claimed by the replica killed and never posted ("
            + ", ".join(f"kill of {w}: {lost_by_kill[w]:,}" for w, _ in kills)
            + f"); {posted_unrecorded:,} posted but left `sending`",
            "— (at most what the killed replica had claimed; never posted twice)",
            None,
        )
    )
    outcome.rows.append(
        Row(
            "replicas: missed",
            f"{missed:,} of {len(in_scope):,} due over the whole run ({scored_end - origin:.0f} s)"
            " not posted, lost ones apart"
            + (
                f" ({skipped:,} skipped by the bot, {sum(queued.values()):,} still queued "
                f"{params.drain:g} s after)"
                if missed
                else ""
            ),
            "0",
            missed == 0,
        )
    )
    outcome.rows.append(
        Row(
            "replicas: posted twice",
            f"{doubled:,}"
            + (f" (and {unmatched:,} posts matching no reminder)" if unmatched else ""),
            "0",
            doubled == 0 and unmatched == 0,
        )
    )
    alone_lateness = [
        row.first_post() - row.due  # type: ignore[operator]
        for rows in series.values()
        for row in rows
        if row.posts and any(at + FAILOVER_BUDGET <= row.due < at + params.alone for _, at in kills)
    ]
    if alone_lateness:
        outcome.notes.append(
            "replicas: one replica alone, reminders due from 2 s after a kill to the restart "
            f"or the end: {_spread(alone_lateness)} over {len(alone_lateness):,}"
        )
    if restarted:
        outcome.notes.append(
            f"replicas: timeline (s after the clock origin): kill of a at "
            f"{kills[0][1] - origin:.1f}, a restarted (healthy) at {restarted[0] - origin:.1f}, "
            f"kill of b at {kills[1][1] - origin:.1f}, end of scoring at "
            f"{scored_end - origin:.1f} + {params.drain:g} s drain"
        )


def _replica_rows(
    outcome: Outcome,
    replicas: tuple[Replica, ...],
    stamps: list,
    by_channel: dict[str, int],
    origin: float,
    first_kill: float,
) -> None:
    shares: Counter[str] = Counter()
    for st in stamps:
        if st.method == "chat.postMessage" and st.channel in by_channel:
            if origin <= st.at < first_kill:
                shares[st.token or "?"] += st.text.count(":alarm_clock:")
    total = sum(shares.values()) or 1
    outcome.rows.append(
        Row(
            "replicas: each replica's share (both up)",
            ", ".join(
                f"{r.name} {shares[r.token]:,} ({shares[r.token] / total:.0%})" for r in replicas
            )
            + " of the phase reminders posted before the first kill",
            "—",
            None,
        )
    )
    peaks = {r.name: max(r.rss, default=None) for r in replicas}
    outcome.rows.append(
        Row(
            "replicas: peak memory per replica (VmHWM)",
            ", ".join(
                f"{name} {peak:.0f} MB" if peak is not None else f"{name} unknown"
                for name, peak in peaks.items()
            ),
            f"< {RSS_BUDGET_MB:.0f} MB each",
            all(p is not None and p < RSS_BUDGET_MB for p in peaks.values()),
        )
    )


# --- acks on PostgreSQL -------------------------------------------------------------


def _acks(params: Params, url: str, workdir: Path, outcome: Outcome) -> None:
    from bot.clock import utc_now
    from bot.store import Store

    workdir.mkdir(parents=True, exist_ok=True)
    fake = BenchSlack()
    a = Replica("a", fake, url, 1.0, workdir)
    b = Replica("b", fake, url, 1.0, workdir)
    bare = None
    loadgen: LoadGen | None = None
    store: Store | None = None
    try:
        seeded = seed_incidents(url, 100, utc_now(), timedelta(seconds=10), prefix="Ack")
        seed_fake(fake, seeded)
        channels = [s.channel for s in seeded]
        bare_port = free_port()
        bare = spawn(
            [sys.executable, str(REPO / "benchmarks" / "bare_app.py"), "--port", str(bare_port)],
            a.env,
            workdir,
            workdir / "bare.log",
        )
        a.start()
        b.start()
        a.wait()
        b.wait()
        wait_healthy(bare_port, bare)
        loadgen = LoadGen(workdir)
        store = Store(url)
        urls = {
            "bare": f"http://{LOOPBACK}:{bare_port}/slack/events",
            "bot": f"http://{LOOPBACK}:{a.port}/slack/events",
        }
        counter = iter(range(1, 10**9))
        reply = fake.response_url("ack")

        def requests(n: int) -> list[dict]:
            out = []
            for _ in range(n):
                k = next(counter)
                channel = channels[k % len(channels)]
                out.append(
                    {
                        "text": "status",
                        "user": f"UB{k:07d}",
                        "channel": channel,
                        "response_url": reply,
                    }
                )
            return out

        def drain() -> None:
            """Until no request is unfinished on the database and the fake Slack is quiet."""
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                left = store.query(  # type: ignore[union-attr]
                    "SELECT COUNT(*) AS n FROM inbox WHERE done_at IS NULL AND dead_at IS NULL"
                )[0]["n"]
                if not left:
                    break
                time.sleep(0.02)
            fake.quiet_for(0.2, 15)

        for app in ("bare", "bot"):  # warm-up, not measured
            loadgen.send(urls[app], 1, requests(5))
        drain()
        series = {(app, f): Series() for app in urls for f in ACK_CELLS}
        for rnd in range(params.ack_rounds):
            for app in ("bare", "bot") if rnd % 2 == 0 else ("bot", "bare"):
                for in_flight in ACK_CELLS:
                    n = params.ack_serial if in_flight == 1 else params.ack_concurrent
                    result = loadgen.send(urls[app], in_flight, requests(n), 15)
                    cell = series[(app, in_flight)]
                    if result["latencies"]:
                        cell.p50.append(percentile(result["latencies"], 50))
                        cell.p99.append(percentile(result["latencies"], 99))
                    cell.errors += result["errors"]
                    cell.samples += len(result["latencies"])
                    if app == "bot":
                        drain()
            log(f"replicas ack round {rnd + 1}/{params.ack_rounds} done")
        for in_flight in ACK_CELLS:
            outcome.rows.append(
                _ack_row(in_flight, series[("bot", in_flight)], series[("bare", in_flight)])
            )
        outcome.notes.append(
            f"replicas ack: `status` sent to replica a, replica b running beside it on the same "
            f"PostgreSQL database (clock speed 1, 100 seeded incidents); {params.ack_rounds} "
            f"rounds of {params.ack_serial} requests with 1 in flight and "
            f"{params.ack_concurrent} with 50; medians of the per-round percentiles; the bare "
            "bolt app (benchmarks/bare_app.py) in the same rounds."
        )
    finally:
        if loadgen is not None:
            loadgen.close()
        if store is not None:
            store.close()
        a.stop()
        b.stop()
        if bare is not None:
            stop(bare)
        fake.close()


def _ack_row(in_flight: int, bot: Series, bare: Series) -> Row:
    name = f"replicas: ack `status` on PostgreSQL, {in_flight} in flight"
    budget = f"p99 ≤ {RATIO_BUDGET}× bare" + (" and < 25 ms" if in_flight == 1 else "")
    if not bot.p99 or not bare.p99:
        errors = ", ".join(sorted(set(bot.errors + bare.errors))) or "no samples"
        return Row(name, f"failed: {errors}"[:300], budget, False)
    b50, b99 = median(bot.p50), median(bot.p99)
    a50, a99 = median(bare.p50), median(bare.p99)
    ratio = b99 / a99 if a99 else float("inf")
    result = f"p50 {ms(b50)} / p99 {ms(b99)} (bare {ms(a50)} / {ms(a99)}) → **{ratio:.2f}×**"
    if bot.errors or bare.errors:
        result += f"; failed: bot {len(bot.errors)}, bare {len(bare.errors)}"
    met = ratio <= RATIO_BUDGET and (in_flight != 1 or b99 < ONE_IN_FLIGHT_BUDGET)
    return Row(name, result, budget, met and not bot.errors)
