"""The postmortem, compiled only from the stored record and the runbook snapshot.

`compile_review` gathers every figure (metrics, plan versus actual, timeline,
communication, risks, actions) into one dict; a Jinja2 template turns it into
Markdown. A team's own template runs in Jinja2's sandbox, so it cannot reach
into Python, and in a worker process with a time, output and memory limit and
no secrets in its environment (`bot.template_worker`); a broken or runaway one
falls back to the built-in template and says why. Recompiling the same record
gives the same file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.alerts import alert_info
from bot.chat import ChatPort
from bot.clock import iso
from bot.events import (
    Declared,
    Escalated,
    HandoffAccepted,
    ReminderSent,
    RiskTriggered,
    SeverityChanged,
    Update,
)
from bot.messages import TEMPLATES, Renderer
from bot.metrics import (
    Silence,
    peak_severity,
    phase_outcomes,
    response_metrics,
    silences,
    step_outcomes,
)
from bot.model import Event, Incident
from bot.render import alert_params, event_text, role_name
from bot.review import KINDS as REVIEW_KINDS
from bot.review import fold
from bot.runbook import TemplateOutside, resolve_template
from bot.store import Store
from bot.template_env import plain_mentions, sandbox

log = logging.getLogger(__name__)
_EMOJI = re.compile(r"^:[a-z0-9_+-]+:\s*")
_BOLD = re.compile(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])")


class TemplateProblem(Exception):
    """A custom postmortem template that could not be used; the built-in one was."""


@dataclass(frozen=True)
class Review:
    text: str
    language: str
    problem: str | None = None  # why a custom template was not used


def _markdown(slack_text: str) -> str:
    """Slack mrkdwn to one line of Markdown: no leading emoji, *bold* → **bold**, | escaped."""
    text = plain_mentions(_EMOJI.sub("", slack_text))
    text = _BOLD.sub(r"**\1**", text)
    return " ".join(text.split()).replace("|", "\\|")


def review_language(incident: Incident, override: str | None) -> str:
    return override or incident.runbook.language


# what the review's timeline leaves out: routine reminders (counted under Communication)
# and review material (it has its own sections; each piece stays in the record as an event)
_NOT_IN_TIMELINE = frozenset((*REVIEW_KINDS, "reminder"))


def compile_review(
    store: Store, incident: Incident, language: str, tz: str = "UTC"
) -> dict[str, Any]:
    """Everything a postmortem template may use (documented in README, Postmortems)."""
    render = Renderer(language)
    runbook = incident.runbook
    events = store.events(incident.id)
    runs = store.phase_runs(incident.id)
    end = (
        incident.closed_at
        or incident.resolved_at
        or (events[-1].at if events else incident.started_at)
    )
    zone = ZoneInfo(tz)
    holders = store.holdings(incident.id)
    updates = [e for e in events if isinstance(e.payload, Update)]
    every = runbook.communication.update_every
    metrics = response_metrics(incident, events)
    quiet = [
        Silence(a, b)
        for a, b in silences(
            incident.started_at, incident.resolved_at or end, [u.at for u in updates], every
        )
    ]
    declared = next((e.payload for e in events if isinstance(e.payload, Declared)), None)
    changes = [(e, e.payload) for e in events if isinstance(e.payload, SeverityChanged)]
    accepted = [(e, e.payload) for e in events if isinstance(e.payload, HandoffAccepted)]
    return {
        "incident": incident,
        "runbook": runbook,
        "language": language,
        "timezone": tz,
        "duration": (incident.closed_at or incident.resolved_at or end) - incident.started_at,
        "declared_severity": declared.severity if declared else incident.severity,
        "peak_severity": peak_severity(incident, events),
        "severity_changes": [
            {
                "at": e.at,
                "previous": changed.previous,
                "severity": changed.severity,
                "by": e.actor,
                "reason": e.text,
            }
            for e, changed in changes
        ],
        "authors": sorted({h.user for h in holders}),
        "role_names": {r.id: r.name for r in runbook.roles},
        "metrics": metrics,
        "metric": {m.name: m for m in metrics},
        "review": fold(e for e in events if e.kind in REVIEW_KINDS).as_form(),
        "holdings": [
            {
                "role": role_name(runbook, h.role_id),
                "user": h.user,
                "since": h.since,
                "until": h.until,
            }
            for h in holders
        ],
        "handoffs": [
            {
                "role": role_name(runbook, handoff.role),
                "from_user": handoff.from_user,
                "to_user": handoff.to_user,
                "at": e.at,
                "waited": timedelta(seconds=handoff.waited_seconds),
            }
            for e, handoff in accepted
        ],
        "phases": phase_outcomes(incident, runs, end),
        "steps": step_outcomes(incident, store.step_records(incident.id), runs),
        "chart": None,  # the plan-versus-actual chart's file name, beside the review
        "timeline": [
            {
                "utc": e.at,
                "local": e.at.astimezone(zone),
                "actor": e.actor,
                "kind": e.kind,
                "text": _markdown(event_text(render, e, incident, record=True)),
            }
            for e in events
            if e.kind not in _NOT_IN_TIMELINE
        ],
        "updates": updates,
        "update_every": every,
        "reminders_sent": [e for e in events if isinstance(e.payload, ReminderSent)],
        "silences": quiet,
        "longest_silence": max(quiet, key=lambda q: q.length) if quiet else None,
        "missed_updates": [(q.start, q.end) for q in quiet],  # its older name, kept
        "risks_triggered": [
            _risk(incident, e, e.payload) for e in events if isinstance(e.payload, RiskTriggered)
        ],
        "escalations": [
            {"at": e.at, "phase": _phase_name(incident, e.payload.phase)}
            for e in events
            if isinstance(e.payload, Escalated)
        ],
        "actions": store.actions(incident.id),
        "review_due": incident.resolved_at + runbook.postmortem.due
        if incident.resolved_at
        else None,
        "review_owner": role_name(runbook, runbook.postmortem.owner or runbook.roles[0].id),
        # the Alertmanager group it was declared from: labels, annotations, sources (or None)
        "alert": alert_params(alert)
        if (alert := alert_info(store.alert_group(incident.id)))
        else None,
    }


def _risk(incident: Incident, event: Event, triggered: RiskTriggered) -> dict[str, Any]:
    risk = next((r for r in incident.runbook.risks if r.id == triggered.risk), None)
    trigger = risk.trigger if risk else None
    return {
        "at": event.at,
        "risk": risk.risk if risk else triggered.risk,
        "fallback": event.text,
        "trigger": trigger.milestone if trigger else None,  # mitigated | resolved | update
        "within": trigger.within if trigger else None,
    }


def _phase_name(incident: Incident, phase_id: str | None) -> str:
    phase = next((p for p in incident.runbook.phases if p.id == phase_id), None)
    return phase.name if phase else str(phase_id)


@dataclass(frozen=True)
class TemplateLimits:
    """What a team's template may use; past any of it, the built-in template is used."""

    seconds: float = 5.0  # wall clock, the worker's start-up included
    output: int = 4 * 1024 * 1024  # bytes of Markdown
    memory: int = 512 * 1024 * 1024  # bytes of address space of the worker


LIMITS = TemplateLimits()  # what a review is rendered within unless told otherwise


def render_review(
    store: Store,
    incident_id: int,
    language: str | None = None,
    template: Path | None = None,
    tz: str = "UTC",
    runbooks: Path | None = None,
    limits: TemplateLimits | None = None,
    chart: Callable[[dict[str, Any]], str | None] | None = None,
) -> Review:
    """Render the postmortem; a custom template that fails gives way to the built-in one.

    `template` is the operator's (INCIDENT_BOT_POSTMORTEM_TEMPLATE), else the runbook's
    `postmortem.template`, a file inside `runbooks` (the runbook folder). A custom
    template renders in a worker process within `limits` (default `LIMITS`); whatever it
    does, this returns within about `limits.seconds` and never raises because of it.
    `chart` gets the compiled figures and returns the chart file to link (or None).
    """
    incident = store.incident(incident_id)
    if incident is None:
        raise LookupError(f"there is no incident INC-{incident_id}")
    limits = limits or LIMITS
    lang = review_language(incident, language)
    context = compile_review(store, incident, lang, tz)
    context["chart"] = chart(context) if chart else None
    try:
        if template is not None:
            return Review(_render_custom(template.parent, template.name, context, limits), lang)
        name = incident.runbook.postmortem.template
        if name:
            root, relative = _runbook_template(name, runbooks)
            return Review(_render_custom(root, relative, context, limits), lang)
    except TemplateProblem as problem:
        return Review(_built_in(lang, context), lang, str(problem))
    except Exception as exc:  # a bug of ours around the worker: still never fail the review
        log.exception("custom postmortem template failed")
        return Review(_built_in(lang, context), lang, f"{type(exc).__name__}: {exc}"[:400])
    return Review(_built_in(lang, context), lang)


def _built_in(language: str, context: dict[str, Any]) -> str:
    """Our own template, rendered here: it ships with the bot."""
    return sandbox(TEMPLATES).get_template(f"postmortem.{language}.md.j2").render(**context)


def _runbook_template(name: str, runbooks: Path | None) -> tuple[Path, str]:
    """The runbook's template as (folder, name inside it), checked again now: the folder
    may have changed since the runbook was validated."""
    if runbooks is None:
        raise TemplateProblem(f"postmortem.template '{name}': the runbook folder is not known")
    try:
        path = resolve_template(runbooks, name)
    except TemplateOutside as exc:
        raise TemplateProblem(f"postmortem.template: {exc}") from None
    root = runbooks.resolve()
    return root, path.relative_to(root).as_posix()


# Only these reach the worker: no SLACK_* token, no INCIDENT_BOT_* setting
_WORKER_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder holding this `bot`
_MAX_WORKERS = 2  # template workers at once (each may use TemplateLimits.memory)
_WORKERS = threading.BoundedSemaphore(_MAX_WORKERS)


def worker_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The template worker's environment: a few harmless variables, and this bot on the path."""
    source = os.environ if environ is None else environ
    env = {key: value for key, value in source.items() if key in _WORKER_ENV}
    paths = [str(_PACKAGE_ROOT), *filter(None, source.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _render_custom(root: Path, name: str, context: dict[str, Any], limits: TemplateLimits) -> str:
    """Render `root/name` in `python -m bot.template_worker`; any failure is a TemplateProblem
    of one line. The worker is killed once `limits.seconds` have passed."""
    label = str(root / name)
    try:
        job = {"root": str(root), "name": name, "context": context, "max_output": limits.output}
        payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # something in the record that does not pickle
        raise _problem(label, f"the record could not be handed over ({exc})") from None
    deadline = time.monotonic() + limits.seconds
    if not _WORKERS.acquire(timeout=limits.seconds):
        raise _problem(
            label,
            f"{_MAX_WORKERS} other templates were still rendering after {limits.seconds:g} s; "
            "try `/incident postmortem` again",
        )
    try:
        return _run_worker(label, payload, deadline, limits)
    finally:
        _WORKERS.release()


def _problem(label: str, why: str) -> TemplateProblem:
    """One short line for the channel: `path: why`."""
    return TemplateProblem(" ".join(f"{label}: {why}".split())[:400])


def _run_worker(label: str, payload: bytes, deadline: float, limits: TemplateLimits) -> str:
    def problem(why: str) -> TemplateProblem:
        return _problem(label, why)

    command = [
        sys.executable,
        "-P",  # not the working folder first on the path: only this bot's code is imported
        "-m",
        "bot.template_worker",
        "--cpu",
        str(math.ceil(limits.seconds) + 1),  # a backstop should this process die meanwhile
        "--memory",
        str(limits.memory),
    ]
    try:
        worker = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=_PACKAGE_ROOT,
            env=worker_environment(),
        )
    except OSError as exc:
        raise problem(f"the template worker did not start ({exc})") from None
    try:
        out, err = worker.communicate(payload, timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        raise problem(f"took longer than {limits.seconds:g} s, so it was stopped") from None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()  # reap it and close the pipes: nothing is left running
    if worker.returncode == -signal.SIGXCPU:
        raise problem(f"took longer than {limits.seconds:g} s, so it was stopped")
    if worker.returncode != 0 or not out.startswith((b"OK\n", b"ERR\n")):
        last = (err.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:200]
        raise problem(f"the template worker stopped (status {worker.returncode}) {last}")
    if out.startswith(b"ERR\n"):
        raise problem(out[4:].decode("utf-8", "replace"))
    if len(out) - 3 > limits.output:
        raise problem(f"its output passed {limits.output // (1024 * 1024)} MiB")
    return out[3:].decode("utf-8", "surrogatepass")


# --- files ---------------------------------------------------------------------

# The last line of every review file the bot writes names the incident and carries the hash
# of the text above it. A file whose mark names this incident and whose text still hashes to
# it is as the bot wrote it, and is replaced; any other file (edited, mark removed, another
# incident's review: a drill and the demo both number from INC-1) is kept, and the review
# goes beside it. The mark travels with the file, so this holds whichever database wrote it
# (the demo's is thrown away after each run) and after the folder was copied or restored.
_MARK = (
    "<!-- incident-bot wrote this review of {key}; sha256 of the text above: {digest}. "
    "Edit it freely: a rebuild then keeps your edits and writes the new review beside it. -->"
)
_MARKED = re.compile(
    r"\n<!-- incident-bot wrote this review of (?P<key>[^;\n]+); "
    r"sha256 of the text above: (?P<digest>[0-9a-f]{64})\. [^\n]*-->\n?\Z"
)
_MAX_BESIDE = 100


@dataclass(frozen=True)
class Written:
    path: Path  # where the review now is
    kept: Path | None = None  # a file left alone at the usual place (the review is beside it)
    edited: bool = False  # why it was kept: edited by people (else: another incident's)


def review_path(folder: Path, incident: Incident, drill: bool) -> Path:
    """`INC-n.md` for a live incident, `drills/INC-n.md` for a drill's or the demo's."""
    return (folder / "drills" if drill else folder) / f"{incident.ref}.md"


def review_key(incident: Incident) -> str:
    """Which incident a review file belongs to (the number alone repeats across databases)."""
    return f"{incident.ref} ({incident.runbook_id}, declared {iso(incident.started_at)})"


def file_state(path: Path, key: str) -> str:
    """`free` (no file), `ours` (the bot's review of this incident, unedited), `edited`
    (changed since the bot wrote it, or not written by the bot) or `other` (the bot's
    unedited review of another incident)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "free"
    except (OSError, UnicodeDecodeError):
        return "edited"
    mark = _MARKED.search(text)
    if not mark:
        return "edited"
    body = text[: mark.start()]
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != mark.group("digest"):
        return "edited"
    return "ours" if mark.group("key") == key else "other"


def write_review(path: Path, review: Review, key: str) -> Written:
    """Write the review of incident `key` at `path` atomically (a reader never sees half a
    file), unless the file there is not the bot's unedited review of this incident: then it
    stays, and the review goes beside it as `INC-n.rebuilt.md` (`…rebuilt-2.md` when that
    one is taken as well)."""
    beside = [path.with_name(f"{path.stem}.rebuilt{path.suffix}")] + [
        path.with_name(f"{path.stem}.rebuilt-{n}{path.suffix}") for n in range(2, _MAX_BESIDE)
    ]
    state = file_state(path, key)
    target = next(
        (p for p in [path, *beside] if file_state(p, key) in ("free", "ours")), beside[-1]
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    body = review.text if review.text.endswith("\n") else review.text + "\n"
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{body}\n{_MARK.format(key=key, digest=digest)}\n", encoding="utf-8")
    tmp.replace(target)
    if target == path:
        return Written(target)
    return Written(target, kept=path, edited=state == "edited")


# --- delivery ------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewOptions:
    folder: Path
    language: str | None = None  # None: the runbook's language
    template: Path | None = None  # a team's own Jinja2 template
    timezone: str = "UTC"
    runbooks: Path | None = None  # the runbook folder, where `postmortem.template` files live
    drill: bool = False  # drills and the demo write under `drills/`


def build_review(
    store: Store, incident: Incident, options: ReviewOptions, target: Path | None = None
) -> tuple[Review, Written, str | None]:
    """Render and write one incident's review (also `incident-bot postmortem`); returns the
    review, where it was written, and the chart's file name if one was drawn."""
    path = target or review_path(options.folder, incident, options.drill)
    path.parent.mkdir(parents=True, exist_ok=True)  # the chart is drawn there first
    drawn: list[str] = []

    def draw(context: dict[str, Any]) -> str | None:
        name = draw_chart(context, path.with_name(f"{incident.ref}.png"))
        drawn.extend([name] if name else [])
        return name

    review = render_review(
        store,
        incident.id,
        options.language,
        options.template,
        options.timezone,
        runbooks=options.runbooks,
        chart=draw,
    )
    return review, write_review(path, review, review_key(incident)), drawn[0] if drawn else None


def draw_chart(context: dict[str, Any], path: Path) -> str | None:
    """The plan-versus-actual chart `INC-n.png` beside the review (bot/chart.py; never
    raises). Its file name becomes the template's `chart` (the Markdown links it), is
    recorded with the postmortem, and `upload_review` uploads it with the review."""
    from bot.chart import draw_review_chart

    drawn = draw_review_chart(context, path)
    return drawn.name if drawn else None


def publish_review(
    store: Store,
    chat: ChatPort,
    render: Renderer,
    incident_id: int,
    options: ReviewOptions,
    now: datetime,
) -> Written:
    """Compile, write, record, post the key figures and upload the file.

    Closing never waits on Slack: a failed upload is reported in the channel
    and retried by the reminder machinery (kind `upload`).
    """
    incident = store.incident(incident_id)
    if incident is None:
        raise LookupError(f"there is no incident INC-{incident_id}")
    review, written, chart = build_review(store, incident, options)
    store.record_postmortem(
        incident_id, str(written.path), review.language, now, review.problem, chart
    )
    if incident.channel:
        if review.problem:
            chat.post(incident.channel, render("reply.template_problem", problem=review.problem))
        chat.post(incident.channel, summary_text(store, incident, render, written))
        upload_review(store, chat, render, incident_id, now)
    return written


def summary_text(store: Store, incident: Incident, render: Renderer, written: Written) -> str:
    events = store.events(incident.id)
    metrics = {m.name: m for m in response_metrics(incident, events)}
    steps = step_outcomes(incident, store.step_records(incident.id), store.phase_runs(incident.id))
    updates = [e.at for e in events if isinstance(e.payload, Update)]
    end = incident.resolved_at or incident.closed_at or incident.started_at
    every = incident.runbook.communication.update_every
    gaps = silences(incident.started_at, end, updates, every)
    return render(
        "reply.postmortem_summary",
        ref=incident.ref,
        mitigate=metrics["mitigate"],
        resolve=metrics["resolve"],
        late=sum(s.verdict == "late" for s in steps),
        skipped=sum(s.verdict == "skipped" for s in steps),
        not_done=sum(s.verdict == "not_done" for s in steps),
        updates=len(updates),
        silences=len(gaps),
        every=every,
        path=str(written.path),
        kept=str(written.kept) if written.kept else None,
        edited=written.edited,
    )


def upload_review(
    store: Store, chat: ChatPort, render: Renderer, incident_id: int, now: datetime
) -> bool:
    """Upload the written file (and its chart) to the channel; on failure say so and arm
    a retry."""
    incident = store.incident(incident_id)
    record = store.postmortem(incident_id)
    if incident is None or record is None or not incident.channel:
        return False
    path = Path(record["path"])
    files = [path]
    if record.get("chart") and (path.parent / record["chart"]).exists():
        files.append(path.parent / record["chart"])
    title = render("label.review_file", ref=incident.ref, title=incident.title)
    try:
        chat.upload(incident.channel, files, title)
    except Exception as exc:  # any failure: report, retry later, never block the close
        attempts = len([r for r in store.reminders(incident_id) if r.kind == "upload"])
        if attempts < UPLOAD_ATTEMPTS:
            delay = timedelta(minutes=2**attempts)
            store.add_reminder(incident_id, "upload", "postmortem", attempts + 1, now + delay, now)
        try:
            chat.post(
                incident.channel,
                render(
                    "reply.upload_failed",
                    error=type(exc).__name__,
                    retry=attempts < UPLOAD_ATTEMPTS,
                ),
            )
        except Exception:
            pass  # the channel itself is unreachable; the retry row still stands
        return False
    store.mark_postmortem_uploaded(incident_id, now)
    return True


UPLOAD_ATTEMPTS = 5
