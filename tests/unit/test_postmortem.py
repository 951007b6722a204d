"""Postmortem compilation: golden files, metrics edge cases, sandbox, delivery."""

from __future__ import annotations

import io
import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.bootstrap import build
from bot.clock import FakeClock
from bot.config import Settings
from bot.console.demo import run_demo
from bot.dispatch import Context
from bot.metrics import phase_outcomes, response_metrics, silences, step_outcomes
from bot.postmortem import render_review
from bot.reminders import run_until
from bot.runbook import shipped_runbooks_dir
from bot.store import Store
from tests.conftest import START

GOLDEN = Path(__file__).parent.parent / "golden"


def _demo_review(tmp_path: Path, language: str) -> str:
    settings = Settings.of(
        runbooks=shipped_runbooks_dir(),
        postmortems=tmp_path / "pm",
        language=language,
        timezone="Asia/Shanghai",
    )
    incident_id = run_demo(settings, io.StringIO(), db=tmp_path / "demo.db").incident_id
    store = Store(tmp_path / "demo.db")
    try:
        incident = store.incident(incident_id)
        review = render_review(store, incident_id, language, tz="Asia/Shanghai")
    finally:
        store.close()
    # the version is the runbook file's hash: keep the golden file stable across edits
    return review.text.replace(incident.runbook_version, "<version>")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_postmortem_of_the_scripted_incident_matches_the_golden_file(tmp_path, language):
    text = _demo_review(tmp_path, language)
    golden = GOLDEN / f"postmortem.{language}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_golden_postmortem_has_every_section_the_review_needs():
    """Google's SRE postmortem sections, then the figures the record supports."""
    text = (GOLDEN / "postmortem.en.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# Postmortem INC-1: Checkout API returns 502 for every user",
        "## Summary",
        "## Impact",
        "## Root causes",
        "### 5 Whys",
        "### Contributing factors",
        "## Trigger",
        "## Detection",
        "## Resolution",
        "## Action items",
        "## Lessons learned",
        "### What went well",
        "### What went wrong",
        "### Where we got lucky",
        "## Response metrics",
        "## Roles and handoffs",
        "## Plan versus actual",
        "## Communication",
        "## Risks that triggered",
        "## Timeline",
    ]
    assert "| 2026-01-15 10:00 | 02:00 | @ana |" in text  # local (Asia/Shanghai) and UTC
    assert "To complete at the review" in text  # the demo leaves the people and data factors


def test_golden_review_reads_as_the_record_says(tmp_path):
    text = (GOLDEN / "postmortem.en.md").read_text(encoding="utf-8")
    # the peak, not only the final severity, with the change that led down from it
    assert (
        "| Severity | sev1 at its peak, sev2 at the end: declared sev1; sev1 → sev2 at 03:25 by @ivy |"
        in text
    )
    # assembling ended with the first responder's own action (chen's update), not ana's assign
    assert "| Time to assemble | 14m | 15m | ✅ met |" in text
    # silences named as such, the longest among what went wrong, the risk raised during it
    assert (
        "Stretches without an update (longer than 15m): 3: 02:14–02:37 (23m), 02:37–03:22 (45m), 03:22–04:45 (1h23m)"
        in text
    )
    assert "- The longest stretch without a status update lasted 1h23m (03:22–04:45)" in text
    assert (
        "- 2026-01-15 03:07 UTC: The team communicates poorly and information lags. (no status update for 30m)"
        in text
    )
    # action items with priority, owner, due date and tracker link
    assert (
        "| 1 | p1 | Pin connection pool settings in the service config | @eli | 2026-01-22 | <https://tracker.example.com/OPS-101> | open |"
        in text
    )
    # the timeline tells what happened, not what the bot asked people to type
    timeline = text[text.index("## Timeline") :]
    for prompt in ("type `/incident accept`", "Next: fix the cause", "then `/incident close`"):
        assert prompt not in timeline
    assert (
        "| @ana | @ana asked @ivy to take over **Response lead (incident commander)**. |"
        in timeline
    )
    assert "Phase reminder #" not in timeline  # counted under Communication instead


def test_zh_golden_review_is_chinese_throughout():
    text = (GOLDEN / "postmortem.zh.md").read_text(encoding="utf-8")
    for fragment in ("after mitigated", "closed", "| open |", "Drill:", "People", "Tooling"):
        assert fragment not in text, fragment
    assert "| 状态 | 已关闭 |" in text and "| 待完成 |" in text
    # no space after full-width punctuation, and runbook text joined without folding spaces
    assert re.findall(r"[，。：；？！、）」][ \u3000]+(?!\|)", text) == []
    assert "通过回滚、重启或流量切换,使服务恢复可用" in text


def test_messages_and_reviews_write_a_moment_alike(service, store, clock):
    """02:49:40 is 02:50 in the channel and in the review (one formatter, rounding)."""
    from bot.messages import Renderer
    from bot.render import event_text

    incident = service.start("service-outage", "Checkout down", "ana").incident
    clock.advance(timedelta(minutes=49, seconds=40))
    (event,) = service.mitigated(incident.id, "ana").events
    said = event_text(Renderer("en"), event, store.incident(incident.id))
    review = render_review(store, incident.id, "en").text
    assert "*Mitigated* at 02:50" in said
    assert "| Mitigated | 2026-01-15 02:50 UTC |" in review
    assert (
        "| 2026-01-15 02:50 | 02:50 | @ana | **Mitigated** by @ana (50m after the start). |"
        in review
    )


# --- metrics -----------------------------------------------------------------------


def _start(service):
    return service.start("service-outage", "Checkout down", "ana").incident


def test_never_mitigated_counts_as_a_missed_target(service, clock):
    incident = _start(service)
    clock.advance(timedelta(hours=3))
    incident = service.close(incident.id, "ana").incident
    metrics = {m.name: m for m in response_metrics(incident, service.store.events(incident.id))}
    assert metrics["mitigate"].actual is None and metrics["mitigate"].met is False
    assert metrics["assemble"].actual is None  # nobody joined the declarer


def test_assemble_ends_with_the_first_action_of_someone_other_than_the_declarer(service, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=1))
    service.assign(incident.id, "tech-lead", "ben", "ana")  # the declarer's own work
    clock.advance(timedelta(minutes=9))
    service.update(incident.id, "Looking at the gateway", "ana")
    clock.advance(timedelta(minutes=13))
    service.note(incident.id, "Pods crash-loop", "ben")  # ben, 23 minutes in
    metrics = {m.name: m for m in response_metrics(incident, service.store.events(incident.id))}
    assert metrics["assemble"].actual == timedelta(minutes=23) and metrics["assemble"].met is False


def test_peak_severity_is_the_worst_reached(service, store, clock):
    incident = service.start("service-outage", "Checkout down", "ana", severity="sev3").incident
    service.set_severity(incident.id, "sev1", "ana")
    service.set_severity(incident.id, "sev2", "ana")
    text = render_review(store, incident.id, "en").text
    assert "| Severity | sev1 at its peak, sev2 at the end: declared sev3; sev3 → sev1" in text


def test_assemble_is_the_first_responder_after_the_declarer(service, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=7))
    service.handoff(incident.id, "tech-lead", "ben", "ana")
    clock.advance(timedelta(minutes=3))
    service.accept(incident.id, "ben")
    metrics = {m.name: m for m in response_metrics(incident, service.store.events(incident.id))}
    assert metrics["assemble"].actual == timedelta(minutes=10) and metrics["assemble"].met


def test_a_phase_entered_twice_adds_up_both_runs(service, store, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=20))
    service.next_phase(incident.id, "ana")
    clock.advance(timedelta(minutes=10))
    store.start_phase(incident.id, "restore", clock.now())  # back to phase one
    clock.advance(timedelta(minutes=50))
    outcome = phase_outcomes(incident, store.phase_runs(incident.id), clock.now())[0]
    assert outcome.runs == 2 and outcome.actual == timedelta(minutes=70)
    assert outcome.overran and outcome.over == timedelta(minutes=10)


def test_step_done_before_its_phase_and_late_and_skipped_steps(service, store, clock):
    incident = _start(service)
    clock.advance(timedelta(minutes=5))
    service.done(incident.id, "3.1", "fay")  # phase three has not started
    clock.advance(timedelta(minutes=20))
    service.done(incident.id, "1.2", "chen")  # due at 20m
    service.skip(incident.id, "1.3", "Nothing was deployed", "ben")
    incident = store.incident(incident.id)
    outcomes = {
        o.step.id: o
        for o in step_outcomes(
            incident, store.step_records(incident.id), store.phase_runs(incident.id)
        )
    }
    assert outcomes["3.1"].verdict == "on_time" and outcomes["3.1"].before_phase
    assert outcomes["1.2"].verdict == "late" and outcomes["1.2"].late_by == timedelta(minutes=5)
    assert outcomes["1.3"].verdict == "skipped"
    assert outcomes["1.4"].verdict == "not_done"


def test_handoffs_of_the_same_role_keep_every_holder(service, store, clock, tmp_path):
    incident = _start(service)
    holder = "ana"
    for user in ("ivy", "joe", "kim"):
        clock.advance(timedelta(minutes=10))
        service.handoff(incident.id, "commander", user, holder)
        service.accept(incident.id, user)
        holder = user
    text = render_review(store, incident.id, "en").text
    rows = [line for line in text.splitlines() if line.startswith("| Response lead")]
    assert [r.split("|")[2].strip() for r in rows] == ["@ana", "@ivy", "@joe", "@kim"]
    assert text.count("Handoffs:") == 1 and text.count("accepted after") == 3


def test_silences_are_the_stretches_longer_than_the_cadence():
    every = timedelta(minutes=15)
    gaps = silences(
        START,
        START + timedelta(minutes=60),
        [START + timedelta(minutes=10), START + timedelta(minutes=40)],
        every,
    )
    assert gaps == [
        (START + timedelta(minutes=10), START + timedelta(minutes=40)),
        (START + timedelta(minutes=40), START + timedelta(minutes=60)),
    ]
    assert silences(START, START + timedelta(minutes=14), [], every) == []


def test_missing_summary_impact_and_cause_are_marked_to_complete(service, store):
    incident = _start(service)
    text = render_review(store, incident.id, "en").text
    assert text.count("To complete at the review") >= 3
    assert "`/incident summary TEXT…`" in text


# --- templates -----------------------------------------------------------------------


def test_custom_template_is_used(service, store, tmp_path):
    incident = _start(service)
    template = tmp_path / "ours.md.j2"
    template.write_text("# {{ incident.ref }} ({{ metrics | length }} metrics)\n", encoding="utf-8")
    review = render_review(store, incident.id, "en", template=template)
    assert review.text == "# INC-1 (3 metrics)\n" and review.problem is None


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # escape attempt: the sandbox refuses
        "{{ incident.__init__.__globals__ }}",
        "{% for x in %}",  # syntax error
        "{{ no_such_variable }}",
    ],
)
def test_unsafe_or_broken_template_falls_back_to_the_built_in_one(service, store, tmp_path, body):
    incident = _start(service)
    template = tmp_path / "bad.md.j2"
    template.write_text(body, encoding="utf-8")
    review = render_review(store, incident.id, "en", template=template)
    assert review.problem and "bad.md.j2" in review.problem
    assert review.text.startswith("# Postmortem INC-1")


def test_missing_custom_template_falls_back_too(service, store, tmp_path):
    incident = _start(service)
    review = render_review(store, incident.id, "en", template=tmp_path / "nope.md.j2")
    assert review.problem and review.text.startswith("# Postmortem INC-1")


# --- delivery ------------------------------------------------------------------------


@pytest.fixture
def wired(settings, chat, clock):
    bot = build(settings, clock, chat)
    yield bot
    bot.close()


def test_upload_failure_does_not_block_close_and_is_retried(wired, chat, clock, settings):
    handler = wired.handler
    result = handler.handle("start service-outage sev2 Search slow", Context(actor="ana"))
    ctx = Context(actor="ana", incident_id=result.incident.id)
    chat.fail_uploads = 1
    closed = handler.handle("close", ctx)
    assert closed.error is None and closed.incident.is_closed
    assert (settings.postmortems / "INC-1.md").exists()
    assert any("Could not upload the postmortem" in t for _, t in chat.posts)
    assert chat.uploads == []
    run_until(wired.reminders, clock, clock.now() + timedelta(minutes=2))
    assert [u[0] for u in chat.uploads] == ["C0001"]
    assert wired.store.postmortem(result.incident.id)["uploaded_at"] is not None


def test_close_posts_the_key_metrics(wired, chat):
    handler = wired.handler
    result = handler.handle("start service-outage sev2 Search slow", Context(actor="ana"))
    handler.handle("close", Context(actor="ana", incident_id=result.incident.id))
    summary = [t for _, t in chat.posts if "Postmortem for INC-1" in t]
    assert summary and "mitigated never (target 2h00m :x:)" in summary[0]


def test_postmortem_command_rebuilds_after_close(wired, chat, settings):
    handler = wired.handler
    incident = handler.handle(
        "start service-outage sev2 Search slow", Context(actor="ana")
    ).incident
    ctx = Context(actor="ana", incident_id=incident.id)
    handler.handle("close", ctx)
    handler.handle("cause The index was rebuilt during peak hours", ctx)
    handler.handle("postmortem", ctx)
    assert "The index was rebuilt" in (settings.postmortems / "INC-1.md").read_text(
        encoding="utf-8"
    )
    assert any("Postmortem written" in t for _, t in chat.replies)


def test_actions_are_listed_and_remind_their_owner_on_the_due_date(wired, chat, clock):
    handler = wired.handler
    incident = handler.handle(
        "start service-outage sev2 Search slow", Context(actor="ana")
    ).incident
    ctx = Context(actor="ana", incident_id=incident.id)
    handler.handle("action Add an index alert @eli due 2026-01-17", ctx)
    handler.handle("action Write the runbook page", ctx)
    handler.handle("actions", ctx)
    listing = chat.replies[-1][1]
    assert (
        "#1 Add an index alert — <@eli>, due 2026-01-17" in listing
        and "#2 Write the runbook page" in listing
    )
    handler.handle("close", ctx)
    run_until(wired.reminders, clock, START.replace(day=17, hour=8, minute=59))
    assert not any("Follow-up #1" in t for _, t in chat.direct)
    run_until(wired.reminders, clock, START.replace(day=17, hour=9))
    assert [(u, "due today" in t) for u, t in chat.direct if "Follow-up #1" in t] == [("eli", True)]


def test_action_due_date_is_read_in_the_team_time_zone(store, catalog, chat):
    from bot.engine import IncidentService

    service = IncidentService(store, FakeClock(START), catalog, timezone="Asia/Shanghai")
    incident = service.start("service-outage", "x", "ana").incident
    service.add_action(incident.id, "Fix it", "ana", owner="eli", due=date(2026, 1, 17))
    (row,) = [r for r in store.reminders(incident.id) if r.kind == "action"]
    assert row.due_at == START.replace(day=17, hour=1)  # 09:00 in Shanghai is 01:00 UTC


# --- files -----------------------------------------------------------------------------


def test_live_reviews_and_drill_reviews_live_apart(settings, clock, chat):
    for drill in (False, True):
        bot = build(
            settings,
            clock,
            chat,
            store=Store(settings.postmortems.parent / f"{drill}.db"),
            drill=drill,
        )
        try:
            result = bot.handler.handle(
                "start service-outage sev2 Search slow", Context(actor="ana")
            )
            bot.handler.handle("close", Context(actor="ana", incident_id=result.incident.id))
        finally:
            bot.close()
    live, drill = settings.postmortems / "INC-1.md", settings.postmortems / "drills" / "INC-1.md"
    assert live.exists() and drill.exists()
    assert sorted(p.name for p in settings.postmortems.rglob("*.md")) == ["INC-1.md", "INC-1.md"]


def test_a_rebuild_replaces_the_bots_own_file_but_keeps_an_edited_one(wired, settings):
    handler = wired.handler
    incident = handler.handle(
        "start service-outage sev2 Search slow", Context(actor="ana")
    ).incident
    ctx = Context(actor="ana", incident_id=incident.id)
    handler.handle("close", ctx)
    path = settings.postmortems / "INC-1.md"
    handler.handle("why The index was rebuilt at peak", ctx)
    handler.handle("postmortem", ctx)  # unedited: replaced in place
    assert "1. The index was rebuilt at peak" in path.read_text(encoding="utf-8")
    assert not (settings.postmortems / "INC-1.rebuilt.md").exists()

    path.write_text(path.read_text(encoding="utf-8") + "\nOur own notes.\n", encoding="utf-8")
    edited = path.read_bytes()
    handler.handle("why Nobody checked the schedule", ctx)
    handler.handle("postmortem", ctx)
    assert path.read_bytes() == edited
    beside = settings.postmortems / "INC-1.rebuilt.md"
    assert "2. Nobody checked the schedule" in beside.read_text(encoding="utf-8")
    assert wired.store.postmortem(incident.id)["path"] == str(beside)  # what gets uploaded

    beside.write_text("edited too\n", encoding="utf-8")  # the one beside it edited as well
    handler.handle("postmortem", ctx)
    assert (settings.postmortems / "INC-1.rebuilt-2.md").exists()
    assert beside.read_text(encoding="utf-8") == "edited too\n"


def test_another_incidents_review_under_the_same_number_is_kept(tmp_path):
    from bot.postmortem import Review, write_review

    path = tmp_path / "drills" / "INC-1.md"
    first = write_review(path, Review("# the drill's review\n", "en"), "INC-1 (a, declared x)")
    again = write_review(path, Review("# the demo's review\n", "en"), "INC-1 (b, declared y)")
    assert first.path == path and first.kept is None
    assert again.path == tmp_path / "drills" / "INC-1.rebuilt.md"
    assert again.kept == path and again.edited is False
    assert path.read_text(encoding="utf-8").startswith("# the drill's review\n")


def test_a_file_without_the_bots_mark_counts_as_edited(tmp_path):
    from bot.postmortem import Review, file_state, write_review

    path = tmp_path / "INC-1.md"
    path.write_text("# written by hand\n", encoding="utf-8")
    assert file_state(path, "INC-1 (x)") == "edited"
    written = write_review(path, Review("# new\n", "en"), "INC-1 (x)")
    assert written.kept == path and written.edited
    assert file_state(written.path, "INC-1 (x)") == "ours"


def test_cli_postmortem_follows_the_same_rule_and_says_where(settings, monkeypatch, capsys):
    from bot.cli import main
    from bot.engine import IncidentService
    from bot.runbook import Catalog

    store = Store(settings.drill_db)
    service = IncidentService(store, FakeClock(START), Catalog(shipped_runbooks_dir()))
    incident = service.start("service-outage", "Search slow", "ana").incident
    store.close()
    for name, value in {
        "INCIDENT_BOT_DRILL_DB": settings.drill_db,
        "INCIDENT_BOT_DB": settings.db,
        "INCIDENT_BOT_POSTMORTEMS": settings.postmortems,
    }.items():
        monkeypatch.setenv(name, str(value))
    assert main(["postmortem", incident.ref, "--drill"]) == 0
    path = settings.postmortems / "drills" / "INC-1.md"
    assert capsys.readouterr().out.strip() == str(path)
    path.write_text("mine\n", encoding="utf-8")
    assert main(["postmortem", "INC-1", "--drill"]) == 0
    out = capsys.readouterr().out
    assert f"{path} was edited since the bot wrote it, so it was kept" in out
    assert out.strip().endswith(str(path.with_name("INC-1.rebuilt.md")))
    assert path.read_text(encoding="utf-8") == "mine\n"
    assert not Path(settings.db).exists()  # --drill never opened the live database


def test_the_review_links_its_chart_and_shares_both_files_together(wired, settings, chat):
    handler = wired.handler
    incident = handler.handle(
        "start service-outage sev2 Search slow", Context(actor="ana")
    ).incident
    handler.handle("close", Context(actor="ana", incident_id=incident.id))
    text = (settings.postmortems / "INC-1.md").read_text(encoding="utf-8")
    assert "![Plan versus actual](INC-1.png)" in text
    assert wired.store.postmortem(incident.id)["chart"] == "INC-1.png"
    png = settings.postmortems / "INC-1.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    ((channel, markdown, _, others),) = chat.uploads  # one upload: the review and its chart
    assert (channel, markdown.name, [p.name for p in others]) == (
        "C0001",
        "INC-1.md",
        ["INC-1.png"],
    )


def test_a_chart_file_name_is_linked_from_the_review(service, store):
    incident = _start(service)
    text = render_review(store, incident.id, "en", chart=lambda context: "INC-1.png").text
    assert "## Plan versus actual\n\n![Plan versus actual](INC-1.png)\n" in text


# --- drills and follow-ups -------------------------------------------------------------


def test_drills_never_remind_anyone_of_follow_ups(settings, clock, chat):
    bot = build(settings, clock, chat, store=Store(settings.drill_db), drill=True)
    try:
        handler = bot.handler
        incident = handler.handle("start service-outage sev2 Drill", Context(actor="ana")).incident
        ctx = Context(actor="ana", incident_id=incident.id)
        handler.handle("action Add an index alert @eli due 2026-01-17", ctx)
        handler.handle("close", ctx)
        # a follow-up reminder left in a drill database by an older version: not sent either
        bot.store.add_reminder(incident.id, "action", "1", 0, START, START)
        run_until(bot.reminders, clock, START.replace(day=20))
        assert [
            r for r in bot.store.reminders(incident.id) if r.kind == "action" and r.state == "sent"
        ] == []
    finally:
        bot.close()
    assert not any("Follow-up #1" in t for _, t in chat.direct)


def test_the_chart_hook_writes_beside_the_review_links_it_and_uploads_it(
    wired, chat, settings, monkeypatch
):
    """What bot/chart.py plugs into: one call in draw_chart, the rest is already wired."""
    import bot.postmortem

    seen = {}

    def fake_chart(context, path):
        seen["steps"] = len(context["steps"])
        path.write_bytes(b"\x89PNG fake")
        return path.name

    monkeypatch.setattr(bot.postmortem, "draw_chart", fake_chart)
    handler = wired.handler
    incident = handler.handle(
        "start service-outage sev2 Search slow", Context(actor="ana")
    ).incident
    handler.handle("close", Context(actor="ana", incident_id=incident.id))
    text = (settings.postmortems / "INC-1.md").read_text(encoding="utf-8")
    assert "![Plan versus actual](INC-1.png)" in text and seen["steps"] == 13
    assert [(m.name, [o.name for o in others]) for _, m, _, others in chat.uploads] == [
        ("INC-1.md", ["INC-1.png"])
    ]
    assert wired.store.postmortem(incident.id)["chart"] == "INC-1.png"
