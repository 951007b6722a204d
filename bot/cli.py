"""`incident-bot` command line: demo, drill, validate, postmortem, report, and more.

Each subcommand is a small function; errors a user can fix are printed as one
line on stderr with exit status 1 or 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.config import (
    Settings,
    SettingsError,
    database_file,
    database_missing,
    load_settings,
)
from bot.database import _redact, is_postgres

# Each command imports what it needs when it runs (the database layer, the runbook models,
# Slack's libraries), so `manifest`, `validate` and `--help` start without the rest.

if TYPE_CHECKING:
    from bot.report import DrillNote


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    """Runbooks, and routes files (a YAML mapping with `routes:`) against those runbooks.
    Without paths: the runbook folder, and INCIDENT_BOT_ROUTES when it exists (or when
    alerts are on: INCIDENT_BOT_WEBHOOK_TOKEN is set)."""
    from bot.routes import RoutesInvalid, is_routes_file, load_routes
    from bot.runbook import runbook_files, shipped_runbooks_dir, validate_paths

    # the folder bootstrap.runbook_folder picks, without importing the rest of the bot
    folder = settings.runbooks if settings.runbooks.is_dir() else shipped_runbooks_dir()
    given = [Path(p) for p in args.paths]
    files = runbook_files(given or [folder])
    routes_files = [f for f in files if f.is_file() and is_routes_file(f)]
    runbooks = [f for f in files if f not in routes_files]
    if not given and (settings.routes.exists() or settings.webhook_token):
        routes_files.append(settings.routes)
    good, problems = validate_paths(runbooks) if runbooks or not routes_files else ([], [])
    if not runbooks and routes_files:  # routes alone: the runbooks they may name are the bot's
        good = validate_paths([folder])[0]
    elif not good and not problems:
        print(f"{(given or [folder])[0]}:1: no runbooks found (*.yaml)")
        return 1
    checked = []
    for path in routes_files:
        try:
            checked.append((path, load_routes(path, [g.runbook.id for g in good])))
        except RoutesInvalid as exc:
            problems += exc.problems
    for problem in problems:
        print(problem)
    if problems:
        return 1
    for loaded in good if runbooks else []:
        print(f"ok  {loaded.path}  ({loaded.runbook.id}, {len(loaded.runbook.phases)} phases)")
    for path, routes in checked:
        print(f"ok  {path}  ({len(routes)} route{'s' if len(routes) != 1 else ''})")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console.demo import run_demo

    demo = run_demo(settings, sys.stdout)
    print(
        f"\nDemo finished: INC-{demo.incident_id}, on a throw-away database (live and drill "
        f"incidents untouched). Postmortem: {demo.review}"
    )
    return 0


def _drill(args: argparse.Namespace, settings: Settings) -> int:
    from bot.console.drill import run_drill

    speed = args.speed if args.speed is not None else settings.clock_speed
    if speed <= 0:
        print("--speed must be greater than 0, e.g. --speed 60", file=sys.stderr)
        return 2
    return run_drill(settings, args.runbook, speed, sys.stdin, sys.stdout)


def _postmortem(args: argparse.Namespace, settings: Settings) -> int:
    from bot.bootstrap import runbook_folder
    from bot.postmortem import ReviewOptions, build_review
    from bot.store import Store

    text = args.incident.strip().upper().removeprefix("INC-")
    if not text.isdigit() or len(text) > 18:
        print(
            f"'{args.incident}' is not an incident id; write it like INC-12 or 12", file=sys.stderr
        )
        return 2
    number = int(text)
    db = str(settings.drill_db) if args.drill else settings.db
    options = ReviewOptions(
        settings.postmortems,
        settings.postmortem_language,
        settings.postmortem_template,
        settings.timezone,
        runbooks=runbook_folder(settings),
        drill=args.drill,
    )
    if database_missing(db):  # never create an empty database just to find nothing in it
        print(_no_incident(settings, number, args.drill, db_missing=True), file=sys.stderr)
        return 1
    store = Store(db)
    try:
        incident = store.incident(number)
        if incident is None:
            print(_no_incident(settings, number, args.drill, db_missing=False), file=sys.stderr)
            return 1
        review, written, _ = build_review(
            store, incident, options, Path(args.out) if args.out else None
        )
    finally:
        store.close()
    if review.problem:
        print(f"incident-bot: custom template not used: {review.problem}", file=sys.stderr)
    if written.kept:
        why = "was edited since the bot wrote it" if written.edited else "is another incident's"
        print(f"incident-bot: {written.kept} {why}, so it was kept; the review is beside it")
    print(written.path)
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    """Response metrics across incidents (DESIGN §9); a reader: beside `serve`, never creating
    a database. Drills are counted apart: `--drill` reports on the drill database."""
    from bot.clock import utc_now
    from bot.report import (
        build_report,
        gather,
        render_csv,
        render_json,
        render_markdown,
    )

    day: date | None = None
    if args.since is not None:
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", args.since):
                raise ValueError(args.since)
            day = date.fromisoformat(args.since)
        except ValueError:
            print(
                f"--since {args.since[:40]!r} is not a date; write it as YYYY-MM-DD, "
                "e.g. --since 2026-01-01",
                file=sys.stderr,
            )
            return 2
    out = Path(args.out) if args.out else None
    fmt = args.format or (out.suffix.lstrip(".").lower() if out else "")
    fmt = fmt if fmt in ("md", "json", "csv") else "md"
    db, variable = (
        (str(settings.drill_db), "INCIDENT_BOT_DRILL_DB")
        if args.drill
        else (settings.db, "INCIDENT_BOT_DB")
    )
    if database_missing(db):
        print(f"There is no database at {db} ({variable})", file=sys.stderr)
        return 1
    start = datetime.combine(day, time(), ZoneInfo(settings.timezone)) if day else None
    from bot.store import Store

    store = Store(db)
    try:
        record = gather(store, start)
    finally:
        store.close()
    drills = None if args.drill else _drill_note(settings, start)
    report = build_report(
        record,
        utc_now(),
        _redact(db),
        since=day,
        timezone=settings.timezone,
        drill=args.drill,
        drills=drills,
    )
    charts: dict[str, str] = {}
    if fmt == "md" and out is not None:
        from bot.report_chart import draw_report_charts

        out.parent.mkdir(parents=True, exist_ok=True)
        charts = draw_report_charts(report, out, settings.language)
    if fmt == "json":
        text = render_json(report)
    elif fmt == "csv":
        text = render_csv(report)
    else:
        text = render_markdown(report, settings.language, charts)
    if out is None:
        sys.stdout.write(text)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    tmp.replace(out)
    print(out)
    for name in charts.values():
        print(out.with_name(name))
    return 0


def _drill_note(settings: Settings, since: datetime | None) -> DrillNote | None:
    """How many closed drills the drill database holds (it is counted apart)."""
    from bot.report import DrillNote

    path = settings.drill_db
    live = database_file(settings.db)
    if live is not None and path.resolve() == live.resolve():
        return None  # one file for both: nothing apart to count
    if not path.is_file():
        return DrillNote(str(path), None)
    from bot.store import Store

    store = Store(path)
    try:
        return DrillNote(str(path), store.count_since(since, closed=True))
    finally:
        store.close()


def _no_incident(settings: Settings, number: int, drill: bool, db_missing: bool) -> str:
    """Why INC-n is not there, and where it may be instead: the other database (a drill's
    incident asked for without --drill, or the reverse), or the demo's review file (the demo
    runs on a throw-away database, so its incident cannot be rebuilt)."""
    ref = f"INC-{number}"
    kind, db, env = (
        ("drill", settings.drill_db, "INCIDENT_BOT_DRILL_DB")
        if drill
        else ("live", settings.db, "INCIDENT_BOT_DB")
    )
    if db_missing:
        lines = [f"There is no {kind} incident {ref}: no database at {db} ({env})."]
    else:
        lines = [f"There is no {kind} incident {ref} in {db} ({_numbers(db)})."]
    other_db, other = (settings.db, "live") if drill else (settings.drill_db, "drill")
    title = _title_in(other_db, number)
    if title is not None:
        flag = "without --drill" if drill else "with --drill"
        command = f"incident-bot postmortem {ref}" + ("" if drill else " --drill")
        lines.append(f"The {other} database has {ref} ({title}): run it {flag}: `{command}`")
        return "\n".join(lines)
    demo_review = settings.postmortems / "drills" / f"{ref}.md"
    if demo_review.exists():
        lines.append(
            f"The demo's {ref} ran on a throw-away database, so it cannot be rebuilt; "
            f"its review is {demo_review}"
        )
    elif not database_missing(str(other_db)):
        lines.append(f"The {other} database ({other_db}) has no {ref} either.")
    else:
        lines.append(f"There is no {other} database ({other_db}) either.")
    return "\n".join(lines)


def _numbers(db: str | Path) -> str:
    from bot.store import Store

    store = Store(db)
    try:
        ids = [i.id for i in store.incidents(include_closed=True)]
    finally:
        store.close()
    if not ids:
        return "it holds no incidents yet"
    return f"it holds INC-{min(ids)}" + (f" to INC-{max(ids)}" if len(ids) > 1 else "")


def _title_in(db: str | Path, number: int) -> str | None:
    """INC-n's title in another database, if that database exists (never created here)."""
    from bot.store import Store

    if database_missing(str(db)):
        return None
    store = Store(db)
    try:
        incident = store.incident(number)
    finally:
        store.close()
    return incident.title if incident is not None else None


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.logs import setup_logging
    from bot.slack.server import StartupError, serve

    secrets = [
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.webhook_token,
        settings.pagerduty_routing_key,
        settings.notify_secret,
    ]
    setup_logging(settings.log_format == "json", [s for s in secrets if s])
    try:
        return serve(settings, http=args.http, port=args.port, host=args.host)
    except StartupError as exc:
        print(f"incident-bot: {exc}", file=sys.stderr)
        return 2


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    """A consistent copy while the bot runs (SQLite's online backup)."""
    from bot.store import Store

    if is_postgres(settings.db):
        print(
            "incident-bot backup copies SQLite files; back up PostgreSQL with pg_dump, e.g. "
            '`pg_dump --format=custom --file=incident-bot.dump "$INCIDENT_BOT_DB"`',
            file=sys.stderr,
        )
        return 2
    if database_missing(settings.db):
        print(f"There is no database at {settings.db} (INCIDENT_BOT_DB)", file=sys.stderr)
        return 1
    target = Path(args.file)
    if target.exists() and not args.force:
        print(f"{target} exists; choose another file or pass --force", file=sys.stderr)
        return 2
    store = Store(settings.db)
    try:
        store.backup(target)
    finally:
        store.close()
    print(target)
    return 0


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    """What needs an operator's eye: requests set aside, messages that never went out."""
    from bot.store import Store
    from bot.writer_lock import lock_path

    db = str(settings.drill_db) if args.drill else settings.db
    if database_missing(db):  # never create an empty database just to report on it
        env = "INCIDENT_BOT_DRILL_DB" if args.drill else "INCIDENT_BOT_DB"
        print(f"There is no database at {db} ({env}); nothing to check", file=sys.stderr)
        return 1
    store = Store(db)
    try:
        unfinished = store.unfinished_requests()
        dead = store.dead_requests()
        pending = store.pending_outgoing()
        failed = store.failed_outgoing()
    finally:
        store.close()
    print(f"database   {_redact(db)}")
    if is_postgres(db):
        print("writer     PostgreSQL: any number of serve replicas")
    else:
        print(f"writer     {_lock_holder(lock_path(Path(db)))}")
    print(f"requests   {len(unfinished)} waiting, {len(dead)} set aside")
    for row in dead:
        where = f"INC-{row['incident_id']}" if row["incident_id"] else row["channel"] or "-"
        print(
            f"  set aside #{row['id']} {row['received_at']} by {row['actor']} in {where}: "
            f"{row['payload'][:80]} ({row['attempts']} tries: {row['error']})"
        )
    print(f"messages   {len(pending)} waiting, {len(failed)} failed or unknown (latest shown)")
    for item in failed:
        where = f"INC-{item.incident_id}" if item.incident_id else "-"
        print(f"  {item.state} #{item.id} {item.kind} for {where}: {item.error}")
    return 1 if dead or failed else 0


def _lock_holder(path: Path) -> str:
    import fcntl

    if not path.exists():
        return "none (no serve has run here)"
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return f"held: {handle.read().strip()}"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return "none (no serve is running)"


def _manifest(args: argparse.Namespace, settings: Settings) -> int:
    from bot.slack.manifest import BadURL, events_url, manifest_yaml

    if args.url is not None:
        try:
            events_url(args.url)
        except BadURL as exc:
            print(exc, file=sys.stderr)
            return 2
    print(manifest_yaml(args.url), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incident-bot", description="Runbooks as live incidents.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the Slack app (Socket Mode or HTTP)")
    p.add_argument("--http", action="store_true", help="HTTP even when SLACK_APP_TOKEN is set")
    p.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000)")
    p.add_argument(
        "--host",
        default=None,
        help="address to listen on (default 0.0.0.0 for HTTP, 127.0.0.1 in Socket Mode)",
    )
    p.set_defaults(run=_serve)

    p = sub.add_parser("backup", help="write a consistent copy of the database, even while serving")
    p.add_argument("file", help="where to write the copy")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(run=_backup)

    p = sub.add_parser("doctor", help="show requests set aside and messages that failed")
    p.add_argument("--drill", action="store_true", help="the drill and demo database")
    p.set_defaults(run=_doctor)

    p = sub.add_parser("manifest", help="print the Slack app manifest (YAML)")
    p.add_argument(
        "--url",
        help="the bot's public https:// address for HTTP mode (/slack/events is added unless "
        "given); without it, Socket Mode",
    )
    p.set_defaults(run=_manifest)

    p = sub.add_parser("demo", help="play a whole scripted incident in the terminal")
    p.set_defaults(run=_demo)

    p = sub.add_parser("drill", help="rehearse a runbook interactively in the terminal")
    p.add_argument("runbook", help="runbook id, e.g. service-outage")
    p.add_argument(
        "--speed", type=float, default=None, help="bot minutes per real minute (default: env)"
    )
    p.set_defaults(run=_drill)

    p = sub.add_parser("validate", help="check runbooks; prints file:line: message per problem")
    p.add_argument("paths", nargs="*", help="files or folders (default: the runbook folder)")
    p.set_defaults(run=_validate)

    p = sub.add_parser("report", help="response metrics across incidents (Markdown, JSON, CSV)")
    p.add_argument("--since", help="only incidents declared on or after this day (YYYY-MM-DD)")
    p.add_argument(
        "--format",
        choices=("md", "json", "csv"),
        default=None,
        help="md (default; with charts beside --out), json or csv (default: from --out's suffix)",
    )
    p.add_argument("--out", help="write here (and the charts beside it) instead of to stdout")
    p.add_argument("--drill", action="store_true", help="the drill database's incidents instead")
    p.set_defaults(run=_report)

    p = sub.add_parser("postmortem", help="(re)compile an incident's postmortem")
    p.add_argument("incident", help="incident id, e.g. INC-12")
    p.add_argument("--out", help="write here instead of the postmortem folder")
    p.add_argument("--drill", action="store_true", help="an incident of a drill or the demo")
    p.set_defaults(run=_postmortem)
    return parser


def _is_store_error(exc: Exception) -> bool:
    """A database that cannot be opened or is not ours (bot.store.StoreError); a command that
    never imported the database layer cannot have raised one."""
    store = sys.modules.get("bot.store")
    return store is not None and isinstance(exc, store.StoreError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return int(args.run(args, settings))
    except SettingsError as exc:
        print(f"incident-bot: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not _is_store_error(exc):
            raise
        print(f"incident-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `incident-bot demo | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
