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
After every batch against the bot we wait until its after-the-ack work has drained (no
call reached the fake Slack for 0.2 s), so one batch's backlog does not leak into the
next. Rounds alternate which app goes first; each figure is the median over rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from benchmarks.common import (
    LOOPBACK,
    REPO,
    RUNBOOK,
    SECRET,
    BenchSlack,
    Outcome,
    Row,
    bot_env,
    free_port,
    listen_overflows,
    log,
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
IN_FLIGHT = (1, 50)
SEEDED_INCIDENTS = 100  # status and update rotate over their channels (per-channel pacing)
ONE_IN_FLIGHT_BUDGET = 0.025  # the budget: p99 under 25 ms with one command in flight
RATIO_BUDGET = 1.5  # the budget: p99 within 1.5× of the bare bolt app
QUIET = 0.2  # the bot's after-the-ack work has drained when no Slack call came for this long


@dataclass
class Params:
    rounds: int
    serial: int  # requests per batch with 1 in flight
    concurrent: int  # requests per batch with 50 in flight
    drain_timeout: float
    batch_seconds: float  # no batch sends new requests after this long


QUICK = Params(rounds=3, serial=30, concurrent=50, drain_timeout=15, batch_seconds=15)
FULL = Params(rounds=5, serial=200, concurrent=500, drain_timeout=60, batch_seconds=60)


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
        assert self.proc.stdin is not None and self.proc.stdout is not None
        spec = {
            "url": url,
            "secret": SECRET,
            "concurrency": concurrency,
            "requests": requests,
            "timeout": 5,
            "max_seconds": max_seconds,
        }
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
        db = workdir / "ack.db"
        seeded = seed_incidents(
            db, SEEDED_INCIDENTS, utc_now(), timedelta(seconds=10), prefix="Ack"
        )
        seed_fake(fake, seeded)
        home = fake.precreate("bench-home", "CBENCHHOME")
        channels = [s.channel for s in seeded]

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

        def requests(command: str, n: int) -> list[dict]:
            out = []
            for _ in range(n):
                k = next(counter)
                if command == "status":
                    text, channel = "status", channels[k % len(channels)]
                elif command == "update":
                    text, channel = f"update bench update {k}", channels[k % len(channels)]
                else:
                    text, channel = f"start {RUNBOOK} sev3 Bench {k}", home
                out.append(
                    {"text": text, "user": f"UB{k:07d}", "channel": channel, "response_url": reply}
                )
            return out

        # warm-up (not measured): imports, first connections, SQLite page cache
        for app in ("bare", "bot"):
            for command in COMMANDS:
                loadgen.send(urls[app], 1, requests(command, 3))
        fake.quiet_for(QUIET, params.drain_timeout)

        log(f"ack: ready after {time.perf_counter() - setup:.1f} s (seeding, start-up, warm-up)")
        series = {(a, c, f): Series() for a in urls for c in COMMANDS for f in IN_FLIGHT}
        drains: list[float] = []
        timings: list[tuple[str, str, int, float]] = []
        overflows = {app: 0 for app in urls}
        for rnd in range(params.rounds):
            order = ("bare", "bot") if rnd % 2 == 0 else ("bot", "bare")
            for app in order:
                for command in COMMANDS:
                    for in_flight in IN_FLIGHT:
                        n = params.serial if in_flight == 1 else params.concurrent
                        before = listen_overflows()
                        result = loadgen.send(
                            urls[app], in_flight, requests(command, n), params.batch_seconds
                        )
                        after = listen_overflows()
                        if before is not None and after is not None:
                            overflows[app] += after - before
                        cell = series[(app, command, in_flight)]
                        if result["latencies"]:
                            cell.p50.append(percentile(result["latencies"], 50))
                            cell.p99.append(percentile(result["latencies"], 99))
                        cell.errors += result["errors"]
                        cell.samples += len(result["latencies"])
                        timings.append((app, command, in_flight, result["wall"]))
                        if app == "bot":
                            started = time.perf_counter()
                            fake.quiet_for(QUIET, params.drain_timeout)
                            drains.append(time.perf_counter() - started - QUIET)
            log(f"ack round {rnd + 1}/{params.rounds} done")
            log(" ".join(f"{a[:3]}/{c}/{f}:{w:.1f}s" for a, c, f, w in timings))
            timings.clear()
        rss = peak_rss_mb(bot.pid)
        bot_calls = len(fake.stamps)

        for command in COMMANDS:
            for in_flight in IN_FLIGHT:
                b, a = series[("bot", command, in_flight)], series[("bare", command, in_flight)]
                outcome.rows.append(_row(command, in_flight, b, a))
        outcome.notes.append(
            f"ack: {params.rounds} rounds; per round and cell {params.serial} requests with 1 in "
            f"flight and {params.concurrent} with 50 in flight; figures are medians of the "
            f"per-round percentiles; failed requests (reset, timeout, non-200) are counted "
            f"apart, not in the percentiles. Between batches the bot's after-the-ack work took "
            f"up to {max(drains, default=0):.1f} s to drain; the fake Slack served "
            f"{bot_calls:,} calls; bot peak RSS "
            + (f"{rss:.0f} MB." if rss is not None else "unknown.")
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


def _row(command: str, in_flight: int, bot: Series, bare: Series) -> Row:
    name = f"ack `{command}`, {in_flight} in flight"
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
