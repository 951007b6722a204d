"""Ack latency: how fast the real bot answers signed `/incident` commands over HTTP,
next to a bare bolt app that only acks, served the same way, in the same run.

Setup: the bot process (`python -m bot serve --http`, clock speed 1, a fresh database
holding 100 seeded open incidents with their channels) talks to the fake Slack in this
process; the bare app (benchmarks/bare_app.py) runs as another process; a third process
(benchmarks/loadgen.py) sends the requests and times them, so that the fake Slack's work
never competes with the timing for this interpreter's GIL.

For each command (`status` and `update …` in an incident channel, `start …` from a
non-incident channel) and each concurrency (1 and 50 requests in flight) we send a fixed
number of requests and take p50/p99 of the response times. Texts and users vary (a
counter), so the bot's 5-second duplicate filter never turns a request into a repeat.
`status` and `update` rotate over 100 incident channels, and once more with 50 in flight
all in one incident's channel (a busy sev1: everyone types in the same channel, so every
command waits for the one before it in that incident's lane); a fresh incident each
round, because the channel's posts then trail at Slack's pace (about one a second) for
a minute. After every batch against the bot we wait until its after-the-ack work has
drained (the database has no unfinished request and nothing left to deliver but that
trail of posts, and no call reached the fake Slack for 0.2 s), so one batch's backlog
does not leak into the next. Rounds alternate which app goes first; each figure is the
median over rounds.

Back to back (the bot only, once a round): 4 fresh incidents at once, each running the
script of `BACK_TO_BACK` with every command sent the moment the one before it was
acknowledged. For each command: the time from its acknowledgement reaching the load
generator (`acked_at`, wall clock) to its state change being committed: the inbox row's
`done_at`, which `dispatch._execute` sets in the transaction of the change (bot time,
which at clock speed 1 is the wall clock of the same machine, written to the
millisecond). Then the record must show every incident closed at sev2 with the second
lead, each command's event once, in the script's order.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks.common import (
    LOOPBACK,
    REPO,
    RUNBOOK,
    SECRET,
    BenchSlack,
    Outcome,
    Row,
    Seeded,
    bot_env,
    free_port,
    listen_overflows,
    log,
    machine_load,
    median,
    ms,
    peak_rss_mb,
    percentile,
    seed_fake,
    seed_incidents,
    spawn,
    start_bot_process,
    stop,
    tail,
    wait_healthy,
)

COMMANDS = ("status", "update", "start")
# (command, requests in flight, all in one incident's channel): one table row each, in order
CELLS = (
    ("status", 1, False),
    ("status", 50, False),
    ("status", 50, True),
    ("update", 1, False),
    ("update", 50, False),
    ("update", 50, True),
    ("start", 1, False),
    ("start", 50, False),
)
SEEDED_INCIDENTS = 100  # status and update rotate over their channels (per-channel pacing)
ONE_IN_FLIGHT_BUDGET = 0.025  # the budget: p99 under 25 ms with one command in flight
RATIO_BUDGET = 1.5  # the budget: p99 within 1.5× of the bare bolt app
QUIET = 0.2  # the bot's after-the-ack work has drained when no Slack call came for this long
BACK_TO_BACK_INCIDENTS = 4
# who types what, in order: the declarer names a lead, who hands over to a second one
BACK_TO_BACK = (
    ("declarer", "assign commander <@{a}>", "role_assigned"),
    ("a", "handoff commander <@{b}>", "handoff_requested"),
    ("b", "accept", "handoff_accepted"),
    ("b", "sev sev2", "severity_changed"),
    ("b", "mitigated", "mitigated"),
    ("b", "resolved", "resolved"),
    ("b", "close", "closed"),
)
STATE_CHANGE_BUDGET = 0.100  # the budget: a state change within 100 ms (p99) of its ack


@dataclass
class Params:
    rounds: int
    serial: int  # requests per batch with 1 in flight
    concurrent: int  # requests per batch with 50 in flight
    drain_timeout: float
    batch_seconds: float  # no batch sends new requests after this long


QUICK = Params(rounds=3, serial=30, concurrent=50, drain_timeout=15, batch_seconds=15)
FULL = Params(rounds=5, serial=200, concurrent=500, drain_timeout=60, batch_seconds=60)
Cell = tuple[str, str, int, bool]  # app, command, in flight, in one channel


@dataclass
class Series:
    """Per-round p50 and p99 of one (app, command, in-flight) cell."""

    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    samples: int = 0


class LoadGen:
    def __init__(self, workdir: Path) -> None:
        self.proc = spawn(
            [sys.executable, str(REPO / "benchmarks" / "loadgen.py")],
            {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
            REPO,
            workdir / "loadgen.log",
            pipes=True,
        )

    def send(
        self, url: str, concurrency: int, requests: list[dict], max_seconds: float = 30
    ) -> dict:
        spec = {
            "url": url,
            "secret": SECRET,
            "concurrency": concurrency,
            "requests": requests,
            "timeout": 5,
            "max_seconds": max_seconds,
        }
        return self._ask(spec)

    def scripts(self, url: str, scripts: list[list[dict]], max_seconds: float = 30) -> dict:
        """Run the scripts at once, each in order (see loadgen.py)."""
        spec = {
            "url": url,
            "secret": SECRET,
            "scripts": scripts,
            "timeout": 5,
            "max_seconds": max_seconds,
        }
        return self._ask(spec)

    def _ask(self, spec: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        stop(self.proc, grace=3)


def run(quick: bool, workdir: Path) -> Outcome:
    params = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    outcome = Outcome()
    fake = BenchSlack()
    procs: list[subprocess.Popen] = []
    loadgen: LoadGen | None = None
    try:
        from bot.clock import utc_now

        setup = time.perf_counter()
        load_before = machine_load()
        db = workdir / "ack.db"
        # 100 channels to rotate over, one busy channel a round, 4 incidents a round back to back
        extra = params.rounds * (1 + BACK_TO_BACK_INCIDENTS)
        seeded = seed_incidents(
            db, SEEDED_INCIDENTS + extra, utc_now(), timedelta(seconds=10), prefix="Ack"
        )
        seed_fake(fake, seeded)
        home = fake.precreate("bench-home", "CBENCHHOME")
        channels = [s.channel for s in seeded[:SEEDED_INCIDENTS]]
        busy = seeded[SEEDED_INCIDENTS : SEEDED_INCIDENTS + params.rounds]
        scripted = seeded[SEEDED_INCIDENTS + params.rounds :]
        record = Record(db, [b.incident_id for b in busy])

        bot, bot_port, _ = start_bot_process(fake, db, 1.0, workdir)
        procs.append(bot)
        bare_port = free_port()
        env = bot_env(fake, db, 1.0, workdir)
        bare = spawn(
            [sys.executable, str(REPO / "benchmarks" / "bare_app.py"), "--port", str(bare_port)],
            env,
            workdir,
            workdir / "bare.log",
        )
        procs.append(bare)
        try:
            wait_healthy(bot_port, bot)
        except Exception:
            raise RuntimeError(f"bot did not start: {tail(workdir / 'bot.log')}") from None
        wait_healthy(bare_port, bare)
        loadgen = LoadGen(workdir)
        urls = {
            "bare": f"http://{LOOPBACK}:{bare_port}/slack/events",
            "bot": f"http://{LOOPBACK}:{bot_port}/slack/events",
        }
        counter = iter(range(1, 10**9))
        reply = fake.response_url("ack")

        def requests(command: str, n: int, channel: str | None = None) -> list[dict]:
            out = []
            for _ in range(n):
                k = next(counter)
                where = channel or channels[k % len(channels)]
                if command == "status":
                    text = "status"
                elif command == "update":
                    text = f"update bench update {k}"
                else:
                    text, where = f"start {RUNBOOK} sev3 Bench {k}", home
                out.append(
                    {"text": text, "user": f"UB{k:07d}", "channel": where, "response_url": reply}
                )
            return out

        def drain() -> float:
            """Wait until the bot's after-the-ack work is done; returns how long that took."""
            started = time.perf_counter()
            record.settled(params.drain_timeout)
            fake.quiet_for(QUIET, params.drain_timeout)
            return time.perf_counter() - started - QUIET

        # warm-up (not measured): imports, first connections, SQLite page cache
        for app in ("bare", "bot"):
            for command in COMMANDS:
                loadgen.send(urls[app], 1, requests(command, 3))
        drain()

        log(f"ack: ready after {time.perf_counter() - setup:.1f} s (seeding, start-up, warm-up)")
        series = {(a, c, f, one): Series() for a in urls for c, f, one in CELLS}
        back = BackToBack()
        drains: list[tuple[float, str]] = []  # seconds, after which batch
        timings: list[tuple[Cell, float]] = []
        overflows = {app: 0 for app in urls}
        for rnd in range(params.rounds):
            order = ("bare", "bot") if rnd % 2 == 0 else ("bot", "bare")
            for app in order:
                for command, in_flight, one in CELLS:
                    n = params.serial if in_flight == 1 else params.concurrent
                    batch = requests(command, n, busy[rnd].channel if one else None)
                    before = listen_overflows()
                    result = loadgen.send(urls[app], in_flight, batch, params.batch_seconds)
                    after = listen_overflows()
                    if before is not None and after is not None:
                        overflows[app] += after - before
                    cell = series[(app, command, in_flight, one)]
                    if result["latencies"]:
                        cell.p50.append(percentile(result["latencies"], 50))
                        cell.p99.append(percentile(result["latencies"], 99))
                    cell.errors += result["errors"]
                    cell.samples += len(result["latencies"])
                    timings.append(((app, command, in_flight, one), result["wall"]))
                    if app == "bot":
                        where = f"`{command}`, {in_flight} in flight" + (", one channel" * one)
                        drains.append((drain(), f"{where}, round {rnd + 1}"))
            # back to back: the bot only (the bare app changes no state)
            group = scripted[rnd * BACK_TO_BACK_INCIDENTS : (rnd + 1) * BACK_TO_BACK_INCIDENTS]
            scripts = back_to_back(group, record, reply)
            seen = {s.incident_id: record.last_event(s.incident_id) for s in group}
            began = time.time()
            result = loadgen.scripts(urls["bot"], scripts, params.batch_seconds)
            # the last state changes come after the last acks
            drains.append((drain(), f"back to back, round {rnd + 1}"))
            back.add(record, fake, group, result, began, seen)
            log(f"ack round {rnd + 1}/{params.rounds} done")
            log(
                " ".join(
                    f"{a[:3]}/{c}/{f}{'/1ch' if one else ''}:{w:.1f}s"
                    for (a, c, f, one), w in timings
                )
                + f" bot/back-to-back:{result['wall']:.1f}s"
            )
            timings.clear()
        rss = peak_rss_mb(bot.pid)
        bot_calls = len(fake.stamps)

        for command, in_flight, one in CELLS:
            b = series[("bot", command, in_flight, one)]
            a = series[("bare", command, in_flight, one)]
            outcome.rows.append(_row(command, in_flight, b, a, one))
        outcome.rows += back.rows()
        longest = max(drains, default=(0.0, "—"))
        outcome.notes.append(
            f"ack: {params.rounds} rounds; per round and cell {params.serial} requests with 1 in "
            f"flight and {params.concurrent} with 50 in flight; figures are medians of the "
            f"per-round percentiles; failed requests (reset, timeout, non-200) are counted "
            f'apart, not in the percentiles. "one channel": all in one incident\'s channel '
            f"(a new one each round), whose {params.concurrent} posts of `update` then trail "
            f"behind at Slack's pace (one a second per channel) while the next batches run. "
            f"Between batches the bot's after-the-ack work took up to {longest[0]:.1f} s to "
            f"drain (after {longest[1]}); the fake Slack served {bot_calls:,} calls; "
            + (f"bot peak RSS {rss:.0f} MB." if rss is not None else "bot peak RSS unknown.")
        )
        outcome.notes += back.notes()
        outcome.notes.append(
            f"ack: the machine, others included, before the ack run: {load_before}; after it: "
            f"{machine_load()} (CPU pressure: the share of the last minute in which some task "
            "waited for a CPU). The 50-in-flight ratios move with it: the bot needs more CPU "
            "and disk per request than the bare app, so it loses more when they are shared."
        )
        if any(overflows.values()):
            outcome.notes.append(
                "ack: the kernel dropped connections from full listen queues during the runs "
                f"(TcpExt ListenOverflows: bot {overflows['bot']:,}, bare {overflows['bare']:,}). "
                "Dropped SYNs are retried after 1 s or reset; both servers are "
                "bot.http_server.BoundedHTTPServer with a listen queue of 1,024, so look at "
                "what else ran on the machine."
            )
    finally:
        if loadgen is not None:
            loadgen.close()
        for proc in procs:
            stop(proc)
        fake.close()
    return outcome


def _users(s: Seeded, declarer: str) -> dict[str, str]:
    """The people of one back-to-back incident: its declarer, the first lead, the second."""
    return {"declarer": declarer, "a": f"UA{s.incident_id:05d}", "b": f"UB{s.incident_id:05d}"}


def back_to_back(group: list[Seeded], record: Record, reply: str) -> list[list[dict]]:
    """One script per incident: BACK_TO_BACK typed in its channel by its people."""
    scripts = []
    for s in group:
        users = _users(s, record.incident(s.incident_id)["declared_by"])
        scripts.append(
            [
                {
                    "text": text.format(**users),
                    "user": users[who],
                    "channel": s.channel,
                    "response_url": reply,
                }
                for who, text, _ in BACK_TO_BACK
            ]
        )
    return scripts


class Record:
    """The bot's database, read beside the running bot (read-only; WAL lets both be)."""

    def __init__(self, db: Path, busy: list[int]) -> None:
        self.db = db
        self.busy = busy  # incidents whose channel posts may trail (the one-channel rows)

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def settled(self, timeout: float) -> bool:
        """Wait until no request is unfinished and nothing but the busy channels' posts is
        left to deliver."""
        busy = ",".join(str(i) for i in self.busy) or "NULL"
        sql = (
            "SELECT (SELECT COUNT(*) FROM inbox WHERE done_at IS NULL AND dead_at IS NULL) + "
            "(SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending') AND NOT "
            f"(kind = 'post' AND incident_id IN ({busy})))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._query(sql)[0][0] == 0:
                return True
            time.sleep(0.02)
        return False

    def requests(self, channel: str) -> list[sqlite3.Row]:
        return self._query(
            "SELECT id, actor, payload, received_at, done_at, dead_at, error FROM inbox "
            "WHERE channel = ? ORDER BY id",
            (channel,),
        )

    def events(self, incident_id: int, after: int) -> list[sqlite3.Row]:
        return self._query(
            "SELECT id, kind, actor, at FROM events WHERE incident_id = ? AND id > ? ORDER BY id",
            (incident_id, after),
        )

    def last_event(self, incident_id: int) -> int:
        rows = self._query("SELECT MAX(id) FROM events WHERE incident_id = ?", (incident_id,))
        return int(rows[0][0] or 0)

    def incident(self, incident_id: int) -> sqlite3.Row:
        return self._query("SELECT * FROM incidents WHERE id = ?", (incident_id,))[0]

    def lead(self, incident_id: int) -> str | None:
        rows = self._query(
            "SELECT user FROM holdings WHERE incident_id = ? AND role_id = 'commander' "
            "ORDER BY id DESC LIMIT 1",
            (incident_id,),
        )
        return rows[0]["user"] if rows else None


def _unix(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


@dataclass
class BackToBack:
    """What the back-to-back scripts measured, round by round."""

    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # every command, all rounds
    journaled: list[float] = field(default_factory=list)  # journaled -> state change (bot)
    # from when a command could start (journaled, and the one before it done) to its change
    own: list[float] = field(default_factory=list)
    # ack -> state change by the command's place in its script (0: the first)
    by_place: dict[int, list[float]] = field(default_factory=dict)
    acks: list[float] = field(default_factory=list)
    posts: list[float] = field(default_factory=list)  # ack -> its channel post at the fake
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the record got wrong
    commands: int = 0
    incidents: int = 0
    correct: int = 0  # incidents closed at sev2 with the second lead, every event in order

    def add(
        self,
        record: Record,
        fake: BenchSlack,
        group: list[Seeded],
        result: dict,
        began: float,
        seen: dict[int, int],
    ) -> None:
        """One round: `seen` is each incident's last event before the scripts ran."""
        delays: list[float] = []
        for s, answers in zip(group, result.get("scripts") or [], strict=False):
            self.incidents += 1
            incident = record.incident(s.incident_id)
            users = _users(s, incident["declared_by"])
            rows = record.requests(s.channel)
            ok = True
            self.errors += [a["error"] for a in answers if a["error"]]
            self.acks += [a["latency"] for a in answers if a["latency"] is not None]
            posts = [
                st.at
                for st in fake.stamps
                if st.method == "chat.postMessage" and st.channel == s.channel and st.at >= began
            ]
            previous: float | None = None  # the state change of the command before
            for k, ((who, text, _), answer) in enumerate(zip(BACK_TO_BACK, answers, strict=True)):
                wanted = {"text": text.format(**users)}
                row = next((r for r in rows if json.loads(r["payload"]) == wanted), None)
                self.commands += 1
                if row is None or answer["acked_at"] is None:
                    ok = False
                    self.problems.append(f"INC-{s.incident_id} `{wanted['text']}` not journaled")
                    continue
                done = _unix(row["done_at"])
                if done is None or row["dead_at"] or row["actor"] != users[who]:
                    ok = False
                    self.problems.append(f"INC-{s.incident_id} `{wanted['text']}` not done")
                    continue
                delays.append(done - answer["acked_at"])
                self.by_place.setdefault(k, []).append(done - answer["acked_at"])
                received = _unix(row["received_at"]) or done
                self.journaled.append(done - received)
                self.own.append(done - max(received, previous or received))
                previous = done
                if k < len(posts):
                    self.posts.append(posts[k] - answer["acked_at"])
            kinds = [e["kind"] for e in record.events(s.incident_id, seen[s.incident_id])]
            expected = [kind for _, _, kind in BACK_TO_BACK]
            incident = record.incident(s.incident_id)
            lead = record.lead(s.incident_id)
            if kinds != expected:
                ok = False
                self.problems.append(f"INC-{s.incident_id} events {kinds}")
            if incident["status"] != "closed" or incident["severity"] != "sev2":
                ok = False
                self.problems.append(
                    f"INC-{s.incident_id} {incident['status']} at {incident['severity']}"
                )
            if lead != users["b"]:
                ok = False
                self.problems.append(f"INC-{s.incident_id} lead {lead}")
            done_ids = [r["id"] for r in sorted(rows, key=lambda r: r["done_at"] or "")]
            if done_ids != [r["id"] for r in rows]:
                ok = False
                self.problems.append(f"INC-{s.incident_id} carried out out of journal order")
            self.correct += ok
        if delays:
            self.p50.append(percentile(delays, 50))
            self.p99.append(percentile(delays, 99))
            self.delays += delays

    def rows(self) -> list[Row]:
        n = len(BACK_TO_BACK)
        name = f"back to back, {BACK_TO_BACK_INCIDENTS} incidents × {n} commands"
        budget = f"p99 < {STATE_CHANGE_BUDGET * 1000:.0f} ms"
        if not self.p99:
            why = ", ".join(sorted(set(self.errors + self.problems))) or "no samples"
            timing = Row(
                f"{name}: state change after its ack", f"failed: {why}"[:300], budget, False
            )
        else:
            p50, p99 = median(self.p50), median(self.p99)
            result = (
                f"p50 {ms(p50)} / p99 {ms(p99)} (max {ms(max(self.delays))} of "
                f"{len(self.delays)}); their acks p50 {ms(percentile(self.acks, 50))} / "
                f"p99 {ms(percentile(self.acks, 99))}"
            )
            if self.errors:
                result += (
                    f"; failed requests: {len(self.errors)} ({', '.join(sorted(set(self.errors)))})"
                )
            met = p99 < STATE_CHANGE_BUDGET and not self.errors
            timing = Row(f"{name}: state change after its ack", result, budget, met)
        rounds = len(self.p99) or 1
        result = (
            f"{self.correct}/{self.incidents} incidents closed at sev2 with the second lead, "
            f"each command's event once and in order ({self.commands} commands, "
            f"{BACK_TO_BACK_INCIDENTS} incidents × {rounds} rounds)"
        )
        if self.problems:
            result += "; " + "; ".join(self.problems[:5])
        outcome = Row(
            f"{name}: the record",
            result,
            "all closed, sev2, second lead",
            self.incidents > 0 and self.correct == self.incidents,
        )
        return [timing, outcome]

    def notes(self) -> list[str]:
        if not self.delays:
            return []
        notes = [
            f"back to back: {BACK_TO_BACK_INCIDENTS} incidents at once, each "
            + ", ".join(f"`{t.format(a='UA', b='UB')}`" for _, t, _ in BACK_TO_BACK)
            + ", every command sent the moment the one before it was acknowledged. The state "
            "change is the inbox row's `done_at`, committed with it; the ack is the load "
            "generator's wall clock at the answer's last byte (same machine, same clock; "
            "`done_at` is kept to the millisecond, truncated). Figures are medians over rounds "
            f"of each round's p50/p99 of {BACK_TO_BACK_INCIDENTS * len(BACK_TO_BACK)} commands. "
            f"From journaling to the state change (bot clock): p50 "
            f"{ms(percentile(self.journaled, 50))} / p99 {ms(percentile(self.journaled, 99))}. "
            "A command's own time in its lane (from when it could start, journaled and the "
            f"one before it done, to its change): p50 {ms(percentile(self.own, 50))} / p99 "
            f"{ms(percentile(self.own, 99))}. Median by the command's place in its script: "
            + ", ".join(
                f"{k + 1}. {median(v) * 1000:.0f} ms" for k, v in sorted(self.by_place.items())
            )
            + "."
        ]
        if self.posts:
            notes.append(
                "back to back: what the channel reads follows after, at Slack's pace (3 posts "
                "at once, then one a second per channel): from the ack to the command's post "
                f"reaching the fake Slack p50 {percentile(self.posts, 50):.2f} s / "
                f"max {max(self.posts):.2f} s (not scored)."
            )
        return notes


def _row(command: str, in_flight: int, bot: Series, bare: Series, one: bool = False) -> Row:
    name = f"ack `{command}`, {in_flight} in flight" + (", one channel" if one else "")
    if in_flight == 1:
        budget = f"p99 < 25 ms and ≤ {RATIO_BUDGET}× bare"
    else:
        budget = f"p99 ≤ {RATIO_BUDGET}× bare"
    if not bot.p99 or not bare.p99:
        errors = ", ".join(sorted(set(bot.errors + bare.errors))) or "no samples"
        return Row(name, f"failed: {errors}", budget, False)
    b50, b99 = median(bot.p50), median(bot.p99)
    a50, a99 = median(bare.p50), median(bare.p99)
    ratio = b99 / a99 if a99 else float("inf")
    result = f"p50 {ms(b50)} / p99 {ms(b99)} (bare {ms(a50)} / {ms(a99)}) → **{ratio:.2f}×**"
    met = ratio <= RATIO_BUDGET and (in_flight != 1 or b99 < ONE_IN_FLIGHT_BUDGET)
    if bot.errors or bare.errors:
        result += (
            f"; failed: bot {len(bot.errors)}/{bot.samples + len(bot.errors)}, "
            f"bare {len(bare.errors)}/{bare.samples + len(bare.errors)} "
            f"({', '.join(sorted(set(bot.errors + bare.errors)))})"
        )
    met = met and not bot.errors  # a request that fails is an error in Slack, however fast
    return Row(name, result, budget, met)
