"""Measure the bot against its performance budgets (benchmarks/README.md) and report.

    python -m benchmarks [--quick] [--write | --out FILE] [--only NAMES] [--incidents N]
                         [--keep]

Runs each measurement and prints the table (measurement | result | budget | met?).
Files are left alone unless asked: `--write` rewrites the results section of
benchmarks/README.md (tracked in git), `--out FILE` writes that section to FILE.
Exit status: 0 when every budget is met, 1 when one is missed or a measurement failed,
3 when the run hit its overall time limit. Every child process is terminated on the way out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import ack, postmortem, reminders, replicas, report, restart
from benchmarks.common import Outcome, Row, machine, stop_all

MODULES = {
    "ack": ack,
    "reminders": reminders,
    "postmortem": postmortem,
    "restart": restart,
    "report": report,
    "replicas": replicas,
}
HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
TIME_LIMIT = {True: 360.0, False: 1500.0}  # seconds; a safety net, far above a normal run


def table(rows: list[Row]) -> str:
    lines = ["| measurement | result | budget | met? |", "| --- | --- | --- | --- |"]
    for row in rows:
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        cells = [row.measurement, row.result, row.budget, met]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def results_section(rows: list[Row], notes: list[str], command: str, seconds: float) -> str:
    info = machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    packages = ("slack-bolt", "slack-sdk", "apscheduler")
    versions = ", ".join(f"{k} {info[k]}" for k in packages if k in info)
    parts = [
        BEGIN,
        f"Latest run: `{command}`, {when}, {seconds:.0f} s.",
        "",
        f"Machine: {info.get('cpus', '?')} CPUs ({info.get('cpu', 'unknown model')}), "
        f"{info.get('memory', '?')} RAM, {info.get('os', '')}, Python {info['python']}; "
        f"{versions}.",
        "",
        table(rows),
        "",
    ]
    if notes:
        parts += ["Notes from this run:", ""] + [f"- {n}" for n in notes if n] + [""]
    parts.append(END)
    return "\n".join(parts)


def write_results(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n## Results\n\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def _watchdog(limit: float) -> None:
    def expire() -> None:
        print(f"\nbenchmarks: over the {limit:.0f} s time limit; stopping", file=sys.stderr)
        stop_all()
        os._exit(3)

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the bot against its performance budgets (benchmarks/README.md). "
        "Prints the table; writes no file unless given --write or --out.",
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 4 minutes)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--write",
        action="store_true",
        help="rewrite the results section of benchmarks/README.md (a tracked file)",
    )
    where.add_argument("--out", type=Path, help="write the results section to this file instead")
    where.add_argument(
        "--no-write", action="store_true", help="print only (the default; kept for old scripts)"
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(MODULES)}"
    )
    parser.add_argument(
        "--incidents",
        type=int,
        default=None,
        help="open incidents for reminders, restart and replicas (default 1000, the budget's "
        "figure)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, DBs)")
    return parser


def results_file(args: argparse.Namespace) -> Path | None:
    """Where the results section goes: nowhere unless --write or --out asked for it."""
    if args.out is not None:
        return Path(args.out)
    return HERE / "README.md" if args.write else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(MODULES)
    unknown = [n for n in chosen if n not in MODULES]
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(unknown)}")
    if args.incidents is not None:
        if args.incidents < 1:
            parser.error("--incidents must be at least 1")
        reminders.INCIDENTS = restart.INCIDENTS = replicas.INCIDENTS = args.incidents

    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every child process
    signal.signal(signal.SIGTERM, _interrupt)
    _watchdog(TIME_LIMIT[args.quick])
    workdir = Path(tempfile.mkdtemp(prefix="incident-bot-bench-"))
    rows: list[Row] = []
    notes: list[str] = []
    began = time.perf_counter()
    try:
        for name in chosen:
            print(f"[{time.perf_counter() - began:5.1f} s] {name} …", file=sys.stderr, flush=True)
            try:
                outcome = MODULES[name].run(args.quick, workdir / name)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                traceback.print_exc()
                outcome = Outcome([Row(name, f"error: {exc}"[:300], "—", False)])
            finally:
                stop_all()
            rows += outcome.rows
            notes += outcome.notes
    except KeyboardInterrupt:
        print("benchmarks: interrupted", file=sys.stderr)
        stop_all()
        return 130
    finally:
        stop_all()
        if args.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - began
    print(table(rows))
    print(f"\n{'quick ' if args.quick else ''}run took {seconds:.0f} s")
    target = results_file(args)
    if target is not None:
        command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
        write_results(target, results_section(rows, notes, command, seconds))
        print(f"results written to {target}")
    else:
        print("no file written (--write rewrites the results in benchmarks/README.md)")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
