"""`postmortem`, `doctor` and `backup` as a newcomer meets them after the demo or a drill:
never an empty database made just to find nothing, and a pointer to where INC-n really is."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from bot.console.drill import run_drill
from bot.runbook import shipped_runbooks_dir

NAMES = ("INCIDENT_BOT_DB", "INCIDENT_BOT_DRILL_DB", "INCIDENT_BOT_POSTMORTEMS")


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new user's folder: the default file names, relative to it."""
    for name in (*NAMES, "INCIDENT_BOT_RUNBOOKS", "INCIDENT_BOT_LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _after_the_demo(folder: Path) -> None:
    """What the demo leaves behind (tests/e2e/test_demo.py checks that it is all it leaves):
    its review under postmortems/drills/, and no database."""
    drills = folder / "postmortems" / "drills"
    drills.mkdir(parents=True)
    (drills / "INC-1.md").write_text("# Postmortem INC-1\n", encoding="utf-8")


def _after_a_drill(folder: Path) -> None:
    settings = Settings.of(
        drill_db=folder / "incident-bot-drill.db",
        runbooks=shipped_runbooks_dir(),
        postmortems=folder / "postmortems",
    )
    assert run_drill(settings, "service-outage", 60, io.StringIO("quit\n"), io.StringIO()) == 0


def test_postmortem_after_the_demo_says_where_its_review_is_and_creates_nothing(fresh, capsys):
    _after_the_demo(fresh)
    status, out, err = _run(capsys, "postmortem", "INC-1")
    assert status == 1 and out == ""
    assert err.splitlines() == [
        "There is no live incident INC-1: no database at incident-bot.db (INCIDENT_BOT_DB).",
        "The demo's INC-1 ran on a throw-away database, so it cannot be rebuilt; its review is "
        "postmortems/drills/INC-1.md",
    ]
    status, _, err = _run(capsys, "postmortem", "INC-1", "--drill")
    assert status == 1 and "no database at incident-bot-drill.db (INCIDENT_BOT_DRILL_DB)" in err
    assert "its review is postmortems/drills/INC-1.md" in err
    assert sorted(p.name for p in fresh.iterdir()) == ["postmortems"]  # no database made


def test_postmortem_after_a_drill_without_drill_points_at_drill(fresh, capsys):
    _after_a_drill(fresh)
    status, out, err = _run(capsys, "postmortem", "INC-1")
    assert status == 1 and out == ""
    assert err.splitlines() == [
        "There is no live incident INC-1: no database at incident-bot.db (INCIDENT_BOT_DB).",
        "The drill database has INC-1 (Drill: Core service outage): run it with --drill: "
        "`incident-bot postmortem INC-1 --drill`",
    ]
    assert not (fresh / "incident-bot.db").exists()
    status, out, _ = _run(capsys, "postmortem", "INC-1", "--drill")
    assert status == 0 and out.strip() == str(Path("postmortems") / "drills" / "INC-1.md")


def test_postmortem_of_a_number_no_database_holds_says_what_there_is(fresh, capsys):
    _after_a_drill(fresh)
    status, _, err = _run(capsys, "postmortem", "INC-7", "--drill")
    assert status == 1
    assert err.splitlines() == [
        "There is no drill incident INC-7 in incident-bot-drill.db (it holds INC-1).",
        "There is no live database (incident-bot.db) either.",
    ]


def test_postmortem_with_no_database_at_all_says_so_for_both(fresh, capsys):
    status, _, err = _run(capsys, "postmortem", "INC-1")
    assert status == 1
    assert err.splitlines()[-1] == "There is no drill database (incident-bot-drill.db) either."
    assert list(fresh.iterdir()) == []


@pytest.mark.parametrize("given", ["INC-99999999999999999999", "INC-x", "-1"])
def test_an_incident_number_no_database_could_hold_is_refused_in_one_line(fresh, capsys, given):
    status, out, err = _run(capsys, "postmortem", given)
    assert status == 2 and out == ""
    assert err.strip() == f"'{given}' is not an incident id; write it like INC-12 or 12"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["doctor"], "There is no database at incident-bot.db (INCIDENT_BOT_DB); nothing to check"),
        (
            ["doctor", "--drill"],
            "There is no database at incident-bot-drill.db (INCIDENT_BOT_DRILL_DB); nothing to check",
        ),
        (["backup", "copy.db"], "There is no database at incident-bot.db (INCIDENT_BOT_DB)"),
    ],
)
def test_doctor_and_backup_without_a_database_create_none(fresh, capsys, argv, message):
    status, out, err = _run(capsys, *argv)
    assert status == 1 and out == "" and err.strip() == message
    assert list(fresh.iterdir()) == []
