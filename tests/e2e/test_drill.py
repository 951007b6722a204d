"""`incident-bot drill` as typed at a terminal: the forms people type, one incident at a time,
and `quit` pausing the drill's clock (run in-process on a temporary drill database)."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from bot.clock import parse_iso
from bot.config import Settings
from bot.console.chat import ConsoleChat
from bot.console.drill import run_drill
from bot.runbook import shipped_runbooks_dir
from bot.timefmt import clock_time
from tests.conftest import START


def _settings(tmp_path: Path, language: str = "en") -> Settings:
    return Settings.of(
        drill_db=tmp_path / "drill.db",
        db=tmp_path / "live.db",
        runbooks=shipped_runbooks_dir(),
        postmortems=tmp_path / "pm",
        language=language,
    )


def _drill(settings: Settings, *lines: str, runbook: str = "service-outage", speed: float = 60):
    out = io.StringIO()
    status = run_drill(settings, runbook, speed, io.StringIO("".join(f"{x}\n" for x in lines)), out)
    return status, out.getvalue()


def _saved_clock(settings: Settings) -> dict:
    conn = sqlite3.connect(settings.drill_db)
    try:
        (raw,) = conn.execute("SELECT value FROM meta WHERE key = 'scaled_clock'").fetchone()
    finally:
        conn.close()
    return json.loads(raw)


def _rows(settings: Settings, sql: str) -> list[tuple]:
    conn = sqlite3.connect(settings.drill_db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _pretend_away(settings: Settings, real_seconds: float) -> None:
    """What a long absence looks like to the stored clock: its real origin moves back."""
    data = _saved_clock(settings)
    origin = datetime.fromisoformat(data["real_origin"]) - timedelta(seconds=real_seconds)
    data["real_origin"] = origin.isoformat(timespec="milliseconds")
    conn = sqlite3.connect(settings.drill_db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'scaled_clock'", [json.dumps(data)])
    conn.commit()
    conn.close()


def test_quit_pauses_the_bot_clock_and_the_next_run_goes_on_from_there(tmp_path):
    settings = _settings(tmp_path)
    status, out = _drill(settings, "status", "quit")
    assert status == 0
    saved = _saved_clock(settings)
    assert saved["paused"] is True
    paused_at = parse_iso(saved["bot_origin"])
    assert f"the bot clock stopped at {clock_time(paused_at)}" in out
    assert "run the same command again to go on from the same bot time" in out  # the welcome

    _pretend_away(settings, real_seconds=3600)  # an hour away: 60 bot hours at 60×, unpaused
    status, out = _drill(settings, "status", "quit")
    assert status == 0 and "Resuming INC-1" in out
    resumed_at = parse_iso(_saved_clock(settings)["bot_origin"])
    assert timedelta(0) <= resumed_at - paused_at < timedelta(minutes=10)  # this run's seconds
    reminders = _rows(settings, "SELECT COUNT(*) FROM events WHERE kind = 'reminder'")
    assert reminders == [(0,)]  # no catch-up: no bot time passed while it was paused


def test_a_drill_at_real_speed_pauses_too(tmp_path):
    settings = _settings(tmp_path)
    status, out = _drill(settings, "quit", speed=1)
    assert status == 0 and _saved_clock(settings)["paused"] is True
    assert "the bot clock stopped at" in out


def test_the_end_of_input_pauses_like_quit(tmp_path):
    settings = _settings(tmp_path)
    status, out = _drill(settings, "note nothing more is typed")
    assert status == 0 and "Drill paused: INC-1 stays open" in out
    assert _saved_clock(settings)["paused"] is True


def test_a_second_start_is_refused_and_the_drill_keeps_its_incident(tmp_path):
    settings = _settings(tmp_path)
    status, out = _drill(
        settings,
        "/incident start security-incident sev1 Second one",
        "start service-outage Another",
        "incident status",
        "quit",
    )
    assert status == 0
    assert out.count("This drill follows INC-1 (Drill: Core service outage)") == 2
    assert "nothing was declared" in out and "incident-bot drill RUNBOOK" in out
    assert _rows(settings, "SELECT id FROM incidents") == [(1,)]
    assert "INC-1 Drill: Core service outage — sev1, active" in out  # status still answers


def test_the_drill_ends_when_its_incident_closes_and_reads_no_further(tmp_path):
    settings = _settings(tmp_path)
    status, out = _drill(
        settings, "mitigated", "resolved", "close", "note typed after the close", "quit"
    )
    assert status == 0
    assert "INC-1 is closed, so the drill is over" in out
    assert "typed after the close" not in out and "Drill paused" not in out
    assert _rows(settings, "SELECT text FROM events WHERE kind = 'note'") == []


def test_the_forms_people_type_are_understood(tmp_path):
    """`incident status` without the slash, `@name /incident accept` without the colon, and a
    misspelt verb answered with the right form."""
    settings = _settings(tmp_path)
    status, out = _drill(
        settings,
        "/incident handoff tech-lead @ben",
        "@ben /incident accept",
        "incident assign ops-a @chen",
        "@chen: incident update looking at the logs",
        "stauts",
        "quit",
    )
    assert status == 0
    assert "@ben now holds Tech lead" in out
    assert "Ops engineer A: @chen" in out
    assert "Update from @chen: looking at the logs" in out
    assert "I don't know stauts. Did you mean status? Try: /incident status" in out
    holders = _rows(settings, "SELECT role_id, user FROM holdings ORDER BY id")
    assert ("tech-lead", "ben") in holders and ("ops-a", "chen") in holders


def test_zh_refusals_name_the_role_and_a_chinese_title_is_said_to_be_left_out(tmp_path):
    settings = _settings(tmp_path, language="zh")
    status, out = _drill(
        settings,
        "assign tech-lead @ben",
        "assign tech-lead @ben",
        "quit",
        runbook="service-outage-zh",
    )
    assert status == 0
    assert "@ben 已担任 技术主管。如需移交给他人：/incident handoff tech-lead @user" in out
    assert "已担任 tech-lead" not in out
    assert (
        "已创建频道 #inc-" in out
        and "频道名只能使用 a–z、0–9 和 -，标题中的其他字符未写入频道名" in out
    )


def test_posts_for_another_channel_than_the_drills_are_labelled_with_it():
    from bot.clock import FakeClock

    out = io.StringIO()
    chat = ConsoleChat(FakeClock(START), out)
    chat.focus = "#inc-20260115-2"
    chat.post("#inc-20260115-2", "the drill's own reminder")
    chat.post("#inc-20260115-1", "a reminder of an incident another drill left open")
    own, other = out.getvalue().splitlines()
    assert own.endswith("bot › the drill's own reminder")
    assert other.endswith("bot #inc-20260115-1 › a reminder of an incident another drill left open")
