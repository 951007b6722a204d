"""Reminder punctuality: 1,000 open incidents at clock speed 300 in the real bot process.

Setup: 1,000 `service-outage` incidents are declared through the engine straight into a
fresh database (as `/incident start` would, with their channel and pinned-plan reference;
HTTP would take minutes), their start times spread evenly over one 15-minute reminder
cadence, so phase reminders fall due at a steady ~333 per real second rather than in
one burst. The scaled clock's origin is stored the way bot/persistence_clock.py stores
it, a few seconds in the future, and `python -m bot serve --http` starts on that
database with INCIDENT_BOT_CLOCK_SPEED=300 against the fake Slack in this process.

Each incident stays in its first phase, whose reminders come every 15 bot minutes
(3 real seconds), so reminder k of incident i is due at
    phase start + k × 15 min (bot time)  →  real_origin + (that − bot_origin) / 300.
Step, overrun and risk reminders and the plan refreshes after each reminder run too
(they are the same bot's load) but only phase reminders are scored.

From the fake Slack's recorded chat.postMessage calls, each ":alarm_clock:" in their
text (one per phase reminder; what falls due at once for one incident is posted as one
message, so a post may carry a step nudge or an escalation too), stamped on arrival, and
the database's
`reminder` events (data: reminder="phase", number=k), paired per incident in order:
lateness of every reminder due inside the window (p50 / p99 / max), the ones missed
(due inside the window, no post by the end of the drain), duplicates (same incident and
number twice, or more posts than reminders), and the process's peak RSS (VmHWM).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

from benchmarks.common import (
    BenchSlack,
    Outcome,
    Row,
    cpu_seconds,
    log,
    peak_rss_mb,
    percentile,
    persist_scaled_clock,
    seed_fake,
    seed_incidents,
    start_bot_process,
    stop,
    tail,
    wait_healthy,
)

INCIDENTS = 1000
SPEED = 300.0
CADENCE = timedelta(minutes=15)  # the first phase's remind_every in service-outage
LEAD = 3.0  # real seconds from the end of seeding to the clock origin (bot start-up fits)
LATENESS_BUDGET = 1.0
RSS_BUDGET_MB = 200.0


def run(quick: bool, workdir: Path) -> Outcome:
    from bot.clock import iso, parse_iso, utc_now
    from bot.store import Store

    window = 30.0 if quick else 90.0  # real seconds after the clock origin that are scored
    drain = 3.0 if quick else 10.0  # then posts are still collected for this long
    workdir.mkdir(parents=True, exist_ok=True)
    outcome = Outcome()
    fake = BenchSlack()
    proc = None
    try:
        db = workdir / "reminders.db"
        bot_origin = parse_iso(iso(utc_now()))
        started = time.perf_counter()
        seeded = seed_incidents(db, INCIDENTS, bot_origin, CADENCE, prefix="Load")
        seed_fake(fake, seeded)
        log(f"reminders: seeded {INCIDENTS} incidents in {time.perf_counter() - started:.1f} s")
        real_origin = parse_iso(iso(utc_now() + timedelta(seconds=LEAD)))  # ms, as stored
        persist_scaled_clock(db, SPEED, real_origin, bot_origin)
        origin = real_origin.timestamp()

        proc, port, popen_at = start_bot_process(fake, db, SPEED, workdir)
        try:
            healthy_at = wait_healthy(port, proc)
        except Exception:
            raise RuntimeError(f"bot did not start: {tail(workdir / 'bot.log')}") from None
        first_due = origin + CADENCE.total_seconds() / SPEED
        healthy_wall = time.time() - (time.perf_counter() - healthy_at)
        if healthy_wall > first_due:
            outcome.notes.append(
                "reminders: the bot answered /healthz after the first reminder was due; "
                "the start-up is included in the lateness"
            )
        window_end = origin + window
        cpu_at_origin = None
        while time.time() < window_end + drain:
            if proc.poll() is not None:
                raise RuntimeError(f"bot exited ({proc.returncode}): {tail(workdir / 'bot.log')}")
            if cpu_at_origin is None and time.time() >= origin:
                cpu_at_origin = cpu_seconds(proc.pid)
            time.sleep(0.2)
        rss = peak_rss_mb(proc.pid)
        cpu_end = cpu_seconds(proc.pid)
        stop(proc, grace=1)  # its backlog is of no interest now
        stamps = list(fake.stamps)

        # --- scoring ---------------------------------------------------------------
        by_channel = {s.channel: s for s in seeded}
        posts: dict[int, list[float]] = defaultdict(list)  # incident -> arrival times
        other = Counter()
        for st in stamps:
            if st.method == "chat.postMessage" and st.channel in by_channel:
                # what falls due at once for one incident is one message: count each part
                for _ in range(st.text.count(":alarm_clock:")):
                    posts[by_channel[st.channel].incident_id].append(st.at)
                for marker in (":hourglass:", ":rotating_light:", ":bookmark_tabs:"):
                    other[marker] += st.text.count(marker)
                other["chat.postMessage"] += 1
            elif st.method == "chat.update":
                other["chat.update"] += 1
        store = Store(db)
        try:
            rows = [
                (r["incident_id"], r["id"], r["data"])
                for r in store.query(
                    "SELECT incident_id, id, data FROM events WHERE kind = 'reminder' ORDER BY id"
                )
            ]
        finally:
            store.close()
        numbers: dict[int, list[int]] = defaultdict(list)
        for incident_id, _, data in rows:
            fields = json.loads(data or "{}")
            if fields.get("reminder") == "phase":
                numbers[incident_id].append(int(fields["number"]))

        lateness: list[float] = []
        missed = skipped = duplicates = due_total = 0
        for s in seeded:
            offset = (s.started_at - bot_origin).total_seconds()
            nums, arrivals = numbers.get(s.incident_id, []), sorted(posts.get(s.incident_id, []))
            counts = Counter(nums)
            duplicates += sum(c - 1 for c in counts.values() if c > 1)
            duplicates += max(0, len(arrivals) - len(nums))
            posted = dict(zip(nums, arrivals, strict=False))  # k -> first arrival
            k = 1
            while True:
                due = origin + (offset + k * CADENCE.total_seconds()) / SPEED
                if due > window_end:
                    break
                due_total += 1
                if k in posted:
                    lateness.append(posted[k] - due)
                else:
                    missed += 1
                    if any(n > k for n in nums):
                        skipped += 1  # the bot jumped over this slot (it fell behind)
                k += 1
        posted_total = sum(len(v) for v in posts.values())
        bot_cpu = (cpu_end - cpu_at_origin) if cpu_end is not None and cpu_at_origin else None
        served = [st.served for st in stamps if st.at >= origin]
        api_calls = len(served)

        if lateness:
            p50, p99, worst = (percentile(lateness, 50), percentile(lateness, 99), max(lateness))
            over = sum(1 for x in lateness if x > LATENESS_BUDGET)
            outcome.rows.append(
                Row(
                    f"reminders: lateness, {INCIDENTS:,} incidents at speed {SPEED:g}",
                    f"p50 {p50:.2f} s / p99 {p99:.2f} s / max {worst:.2f} s over "
                    f"{len(lateness):,} reminders ({over:,} later than 1 s)",
                    "p99 < 1 s (the budget: every one within 1 s)",
                    p99 < LATENESS_BUDGET,
                )
            )
        else:
            outcome.rows.append(
                Row("reminders: lateness", "no phase reminder was posted", "p99 < 1 s", False)
            )
        outcome.rows.append(
            Row(
                "reminders: missed",
                f"{missed:,} of {due_total:,} due in the {window:g} s window not posted"
                + (
                    f" ({skipped:,} skipped by the bot, {missed - skipped:,} still queued "
                    f"{drain:g} s after the window)"
                    if missed
                    else ""
                ),
                "0",
                missed == 0,
            )
        )
        outcome.rows.append(Row("reminders: posted twice", f"{duplicates:,}", "0", duplicates == 0))
        outcome.rows.append(
            Row(
                "reminders: bot peak memory (VmHWM)",
                f"{rss:.0f} MB" if rss is not None else "unknown",
                f"< {RSS_BUDGET_MB:.0f} MB",
                rss is not None and rss < RSS_BUDGET_MB,
            )
        )
        span = window + drain
        cpu = f"{bot_cpu:.1f} s" if bot_cpu is not None else "unknown"
        outcome.notes.append(
            f"reminders: {window:g} s scored window + {drain:g} s drain. Due in the window: "
            f"{due_total:,} phase reminders ({due_total / window:.0f}/s); the bot posted "
            f"{posted_total:,} ({posted_total / span:.0f}/s) besides "
            + ", ".join(f"{v:,} {k}" for k, v in other.most_common() if k != "chat.postMessage")
            + f", in {other['chat.postMessage']:,} chat.postMessage calls"
            + f". Bot CPU time {cpu} in those {span:g} s (one core is {span:g} s)."
        )
        if served:
            outcome.notes.append(
                f"reminders: the fake Slack answered {api_calls:,} Web API calls, median "
                f"{percentile(served, 50) * 1000:.1f} ms / p99 {percentile(served, 99) * 1000:.1f}"
                " ms each inside the fake: it is not what holds the bot back"
                if percentile(served, 99) < 0.005
                else f"reminders: the fake Slack answered {api_calls:,} calls, median "
                f"{percentile(served, 50) * 1000:.1f} ms / p99 {percentile(served, 99) * 1000:.1f}"
                " ms each inside the fake"
            )
    finally:
        if proc is not None:
            stop(proc)
        fake.close()
    return outcome
