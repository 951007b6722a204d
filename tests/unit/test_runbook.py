"""Runbook validation: every problem is reported as `file:line: message`."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.cli import main
from bot.runbook import (
    Deadline,
    Problem,
    RiskTrigger,
    Runbook,
    RunbookInvalid,
    load_runbook,
    shipped_runbooks_dir,
    validate_paths,
)

SHIPPED = Path(__file__).resolve().parents[2] / "runbooks"

BASE = textwrap.dedent(
    """\
    id: mini
    name: Mini runbook
    roles:
      - id: lead
        name: Lead
      - id: ops
        name: Ops
    phases:
      - id: restore
        name: Restore
        target: 1h
        steps:
          - id: "1.1"
            title: Assemble
            owner: lead
            due: 15m
          - id: "1.2"
            title: Diagnose
            owner: [lead, ops]
            due: 30m after phase
      - id: fix
        name: Fix
        target: 4h
        steps:
          - id: "2.1"
            title: Root cause
            owner: ops
            due: 1h after mitigated
    risks:
      - id: slow-fix
        risk: The fix takes too long.
        trigger: not mitigated within 2h
        fallback: Call the vendor.
    postmortem:
      owner: lead
    """
)


def edit(old: str, new: str, text: str = BASE) -> str:
    """BASE with one exact, unique fragment replaced."""
    assert text.count(old) == 1, f"fragment {old!r} must occur exactly once"
    return text.replace(old, new)


def line_no(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} occurs {len(hits)} times"
    if nth == 1:
        assert len(hits) == 1, f"{needle!r} is not unique; pass nth"
    return hits[nth - 1]


def write(tmp_path: Path, text: str, name: str = "runbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(RunbookInvalid) as info:
        load_runbook(path)
    return info.value.problems


def only_problem(path: Path) -> Problem:
    problems = problems_of(path)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def assert_reported(problem: Problem, path: Path, line: int, *gist: str) -> None:
    text = str(problem)
    assert text.startswith(f"{path}:{line}: "), text
    for part in gist:
        assert part in problem.message, text


# --- the valid baseline ------------------------------------------------------


def test_valid_runbook_loads_with_a_content_version(tmp_path: Path) -> None:
    loaded = load_runbook(write(tmp_path, BASE))
    assert loaded.runbook.id == "mini"
    assert [p.id for p in loaded.runbook.phases] == ["restore", "fix"]
    assert loaded.runbook.step("1.2")[1].owner == ["lead", "ops"]
    assert len(loaded.version) == 12
    other = load_runbook(write(tmp_path, BASE.replace("Mini runbook", "Other"), "b.yaml"))
    assert other.version != loaded.version


def test_problem_renders_as_file_line_message() -> None:
    assert str(Problem("a.yaml", 7, "boom")) == "a.yaml:7: boom"


def test_runbook_invalid_message_lists_every_problem() -> None:
    err = RunbookInvalid([Problem("a.yaml", 1, "x"), Problem("a.yaml", 2, "y")])
    assert str(err) == "a.yaml:1: x\na.yaml:2: y"


# --- one test per rule -------------------------------------------------------


def test_unknown_key_is_reported_at_its_line(tmp_path: Path) -> None:
    text = edit("    target: 4h\n", "    target: 4h\n    colour: red\n")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path), path, line_no(text, "colour: red"), "phases[1]", "unknown key 'colour'"
    )


def test_unknown_top_level_key_is_reported_at_its_line(tmp_path: Path) -> None:
    text = BASE + "owner_team: sre\n"
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path), path, line_no(text, "owner_team"), "unknown key 'owner_team'"
    )


def test_duration_written_in_words_is_refused_at_its_line(tmp_path: Path) -> None:
    text = edit("target: 4h", "target: 15 minutes")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "15 minutes"),
        "phases[1].target",
        "'15 minutes' is not a duration",
        "15m",
    )


def test_duration_without_unit_is_refused_with_a_hint(tmp_path: Path) -> None:
    text = edit("target: 4h", "target: 15")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path), path, line_no(text, "target: 15"), "phases[1].target", "no unit", "15m"
    )


def test_zero_duration_is_refused_at_its_line(tmp_path: Path) -> None:
    text = edit("target: 4h", "target: 0m")
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, line_no(text, "target: 0m"), "longer than zero")


def test_step_owner_not_a_declared_role_is_reported(tmp_path: Path) -> None:
    text = edit("owner: ops\n", "owner: nobody\n")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "owner: nobody"),
        "phases[1].steps[0].owner[0]",
        "'nobody' is not a declared role",
        "lead, ops",
    )


def test_unknown_owner_inside_an_owner_list_is_reported(tmp_path: Path) -> None:
    text = edit("owner: [lead, ops]", "owner: [lead, nobody]")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path), path, line_no(text, "[lead, nobody]"), "steps[1].owner[1]", "'nobody'"
    )


def test_postmortem_owner_not_a_declared_role_is_reported(tmp_path: Path) -> None:
    text = edit("postmortem:\n  owner: lead\n", "postmortem:\n  owner: boss\n")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "owner: boss"),
        "postmortem.owner",
        "'boss' is not a declared role",
    )


def test_duplicate_role_id_is_reported_at_the_second_one(tmp_path: Path) -> None:
    text = edit("    name: Ops\n", "    name: Ops\n  - id: lead\n    name: Second lead\n")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "- id: lead", nth=2),
        "roles[2].id",
        "duplicate role id 'lead'",
    )


def test_duplicate_phase_id_is_reported_at_the_second_one(tmp_path: Path) -> None:
    text = edit("  - id: fix\n", "  - id: restore\n")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "- id: restore", nth=2),
        "phases[1].id",
        "duplicate phase id 'restore'",
    )


def test_duplicate_step_id_is_reported_even_across_phases(tmp_path: Path) -> None:
    text = edit('- id: "2.1"', '- id: "1.1"')
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, '- id: "1.1"', nth=2),
        "phases[1].steps[0].id",
        "duplicate step id '1.1'",
    )


def test_duplicate_risk_id_is_reported_at_the_second_one(tmp_path: Path) -> None:
    text = edit(
        "postmortem:\n", "  - id: slow-fix\n    risk: Again.\n    fallback: Wait.\npostmortem:\n"
    )
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "- id: slow-fix", nth=2),
        "risks[1].id",
        "duplicate risk id 'slow-fix'",
    )


def test_deadline_after_unknown_milestone_is_refused(tmp_path: Path) -> None:
    text = edit("due: 1h after mitigated", "due: 1h after fixed")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "after fixed"),
        "phases[1].steps[0].due",
        "unknown milestone 'fixed'",
        "mitigated",
    )


def test_empty_phases_list_is_refused(tmp_path: Path) -> None:
    text = BASE[: BASE.index("phases:")] + "phases: []\n"
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path), path, line_no(text, "phases: []"), "'phases' must not be empty"
    )


def test_phase_with_no_steps_is_refused(tmp_path: Path) -> None:
    steps = '    steps:\n      - id: "2.1"\n        title: Root cause\n        owner: ops\n'
    text = edit(steps + "        due: 1h after mitigated\n", "    steps: []\n")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "steps: []"),
        "phases[1]",
        "'steps' must not be empty",
    )


def test_missing_required_key_is_reported_at_its_parent(tmp_path: Path) -> None:
    text = edit("    name: Fix\n", "")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "- id: fix"),
        "phases[1]",
        "missing required key 'name'",
    )


def test_missing_top_level_key_is_reported_at_the_document_start(tmp_path: Path) -> None:
    text = edit("name: Mini runbook\n", "")
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, 1, "missing required key 'name'")


def test_duplicate_yaml_key_is_reported_at_the_second_occurrence(tmp_path: Path) -> None:
    text = edit("    target: 4h\n", "    target: 4h\n    target: 3h\n")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "target: 3h"),
        "phases[1].target",
        "duplicate key 'target'",
    )


def test_yaml_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    text = edit("    name: Fix\n", "    name: Fix\n   bad: indent\n")
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, line_no(text, "bad: indent"), "YAML syntax")


def test_tab_indentation_is_a_syntax_error_at_its_line(tmp_path: Path) -> None:
    text = edit("    name: Fix\n", "\tname: Fix\n")
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, line_no(text, "\tname: Fix"), "YAML syntax")


@pytest.mark.parametrize(
    "text",
    ["- a list\n- of things\n", "just a sentence\n", "", "# only a comment\n"],
    ids=["list", "scalar", "empty", "comment"],
)
def test_document_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, 1, "a runbook is a YAML mapping")


def test_risk_trigger_that_is_not_a_trigger_is_refused(tmp_path: Path) -> None:
    text = edit("not mitigated within 2h", "when it gets slow")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "when it gets slow"),
        "risks[0].trigger",
        "not a trigger",
        "not mitigated within 2h",
    )


@pytest.mark.parametrize(
    "written", ["no update within 30m", "No updates within 30m", "no status update for 30m"]
)
def test_a_silence_trigger_reads_and_writes_back(written: str) -> None:
    trigger = RiskTrigger.model_validate(written)
    assert (trigger.milestone, trigger.within) == ("update", timedelta(minutes=30))
    assert trigger.model_dump() == "no update within 30m"
    assert RiskTrigger.model_validate(trigger.model_dump()) == trigger


def test_a_silence_trigger_without_a_duration_is_refused_with_both_forms(tmp_path: Path) -> None:
    text = edit("not mitigated within 2h", "no update within ever")
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, line_no(text, "no update"), "risks[0].trigger")
    text = edit("not mitigated within 2h", "whenever it is quiet")
    assert "'no update within 30m'" in only_problem(write(tmp_path, text)).message


def test_the_shipped_outage_runbooks_raise_poor_communication_on_silence() -> None:
    for name in ("service-outage", "service-outage-zh"):
        runbook = load_runbook(SHIPPED / f"{name}.yaml").runbook
        risk = next(r for r in runbook.risks if r.id == "poor-communication")
        assert risk.trigger == RiskTrigger(milestone="update", within=timedelta(minutes=30))


def test_wrapped_chinese_lines_join_without_a_space(tmp_path: Path) -> None:
    text = BASE.replace(
        "name: Mini runbook",
        "name: Mini runbook\ndescription: >-\n  目标:2小时内通过回滚\n  或临时修复恢复;\n  3天内完成。\n"
        "  Then English, wrapped\n  as usual.\n  中文 and English 混排",
    )
    runbook = load_runbook(write(tmp_path, text)).runbook
    assert runbook.description == (
        "目标:2小时内通过回滚或临时修复恢复;3天内完成。Then English, wrapped as usual. 中文 and English 混排"
    )


def test_shipped_chinese_runbooks_have_no_folding_spaces_inside_chinese() -> None:
    import re

    for name in ("service-outage-zh", "pr-crisis"):
        snapshot = load_runbook(SHIPPED / f"{name}.yaml").runbook.snapshot()
        assert re.findall(r"[\u4e00-\u9fff，。；：、,;:] [\u4e00-\u9fff]", snapshot) == [], name


def test_a_one_line_value_keeps_the_spaces_typed(tmp_path: Path) -> None:
    text = BASE.replace("name: Mini runbook", "name: 迷你 预案")
    assert load_runbook(write(tmp_path, text)).runbook.name == "迷你 预案"


def test_risk_trigger_on_unknown_milestone_is_refused(tmp_path: Path) -> None:
    text = edit("not mitigated within 2h", "not closed within 2h")
    path = write(tmp_path, text)
    assert_reported(
        only_problem(path),
        path,
        line_no(text, "not closed"),
        "risks[0].trigger",
        "unknown milestone 'closed'",
    )


def test_every_problem_in_a_file_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = edit(
        "target: 4h",
        "target: soon",
        edit("owner: lead\n        due: 15m", "owner: lead\n        due: 15m\n        colour: red"),
    )
    path = write(tmp_path, text)
    lines = sorted(p.line for p in problems_of(path))
    assert lines == sorted([line_no(text, "colour: red"), line_no(text, "target: soon")])


def test_schema_and_cross_reference_problems_come_in_one_pass_sorted_by_line(
    tmp_path: Path,
) -> None:
    """A wrong duration (schema) and an unknown owner and a duplicate step (cross-references)
    are all reported at once, in the order of their lines, not one kind per round."""
    text = edit(
        "target: 4h",
        "target: soon",
        edit('- id: "2.1"', '- id: "1.1"', edit("owner: ops\n", "owner: nobody\n")),
    )
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert [p.line for p in problems] == [
        line_no(text, "target: soon"),
        line_no(text, '- id: "1.1"', nth=2),
        line_no(text, "owner: nobody"),
    ]
    messages = [p.message for p in problems]
    assert "is not a duration" in messages[0]
    assert "duplicate step id '1.1'" in messages[1]
    assert "'nobody' is not a declared role" in messages[2]


def test_a_missing_roles_list_is_said_once_not_once_per_owner(tmp_path: Path) -> None:
    text = BASE.replace(BASE[BASE.index("roles:") : BASE.index("phases:")], "")
    path = write(tmp_path, text)
    assert [p.message for p in problems_of(path)] == ["missing required key 'roles'"]


@pytest.mark.parametrize(
    ("old", "new", "needle", "words"),
    [
        ("    name: Fix\n", "\tname: Fix\n", "\tname", "a tab character; indent with spaces only"),
        ("name: Fix\n", "name: Fix: again\n", "Fix: again", "contains ': ' in quotes"),
        ("    name: Fix\n", "    name: Fix\n   bad: indent\n", "bad: indent", "not indented like"),
        ("    name: Fix\n", "    name: Fix\n    just words\n", "just words", "write `key: value`"),
        ("    name: Fix\n", "    name: Fix\n    goal: [a, b\n", "[a, b", "[ is not closed with ]"),
        (
            "    name: Fix\n",
            "    name: Fix\n    goal: @home\n",
            "@home",
            "'@' cannot start a value",
        ),
        ("postmortem:\n  owner: lead\n", 'postmortem:\n  owner: "lead\n', '"lead', "never closed"),
    ],
    ids=["tab", "colon", "indent", "no-colon", "bracket", "at-sign", "quote"],
)
def test_yaml_syntax_is_explained_in_plain_words_at_the_line_to_fix(
    tmp_path: Path, old: str, new: str, needle: str, words: str
) -> None:
    text = edit(old, new)
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert_reported(problem, path, line_no(text, needle), "YAML syntax: ", words)
    assert "<block" not in problem.message and "stream" not in problem.message


def test_a_valid_file_is_parsed_once_but_a_changed_template_is_checked_each_time(
    tmp_path: Path,
) -> None:
    """Valid texts are remembered (a folder is read by every start); the template a runbook
    names is still looked for on each load, since the folder may change in between."""
    (tmp_path / "review.md.j2").write_text("{{ incident.title }}", encoding="utf-8")
    text = edit(
        "postmortem:\n  owner: lead\n", "postmortem:\n  owner: lead\n  template: review.md.j2\n"
    )
    path = write(tmp_path, text)
    first, second = load_runbook(path), load_runbook(path)
    assert second.runbook is first.runbook and second.version == first.version
    (tmp_path / "review.md.j2").unlink()
    assert_reported(
        only_problem(path), path, line_no(text, "template: review.md.j2"), "no file 'review.md.j2'"
    )


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_reported(only_problem(path), path, 1, "cannot read")


def test_absurdly_long_duration_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    text = edit("target: 4h", "target: 99999999999d")
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, line_no(text, "99999999999d"), "phases[1].target")


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("name: Mini runbook", "name: !custom Mini", "!custom"),
        ("name: Mini runbook", "name: !!int abc", "!!int"),
        ("postmortem:\n", "? [a, b]\n: c\npostmortem:\n", "? [a, b]"),
    ],
    ids=["unknown-tag", "bad-int-tag", "list-as-key"],
)
def test_yaml_construction_error_is_a_problem_not_a_crash(
    tmp_path: Path, old: str, new: str, needle: str
) -> None:
    text = edit(old, new)
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert any(str(p).startswith(f"{path}:{line_no(text, needle)}: ") for p in problems)


# --- a folder of runbooks ----------------------------------------------------


def test_two_files_sharing_one_id_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path, BASE, "a.yaml")
    second = write(tmp_path, BASE.replace("Mini runbook", "Copy"), "b.yaml")
    good, problems = validate_paths([tmp_path])
    assert [g.path for g in good] == [first, second]
    assert len(problems) == 1
    assert_reported(problems[0], second, 1, "id 'mini' is already used by", str(first))


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    good, problems = validate_paths([missing])
    assert good == []
    assert [str(p) for p in problems] == [f"{missing}:1: no such file or folder"]


def test_folder_is_expanded_to_its_yaml_files_only(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, BASE.replace("id: mini", "id: other"), "b.yml")
    write(tmp_path, "not: [yaml", "notes.txt")
    good, problems = validate_paths([tmp_path])
    assert problems == []
    assert sorted(g.runbook.id for g in good) == ["mini", "other"]


def test_bad_file_in_a_folder_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    bad = write(tmp_path, edit("owner: ops\n", "owner: nobody\n"), "b.yaml")
    good, problems = validate_paths([tmp_path])
    assert [g.runbook.id for g in good] == ["mini"]
    assert [p.file for p in problems] == [str(bad)]


# --- the shipped runbooks ----------------------------------------------------


def test_shipped_runbooks_dir_is_the_repository_folder() -> None:
    assert shipped_runbooks_dir().resolve() == SHIPPED.resolve()


def test_shipped_runbooks_all_validate() -> None:
    good, problems = validate_paths([SHIPPED])
    assert [str(p) for p in problems] == []
    ids = {g.runbook.id for g in good}
    assert {"service-outage", "service-outage-zh", "security-incident", "pr-crisis"} <= ids


def _shipped(runbook_id: str) -> Runbook:
    good, _ = validate_paths([SHIPPED])
    return next(g.runbook for g in good if g.runbook.id == runbook_id)


def test_english_and_chinese_outage_runbooks_have_the_same_structure() -> None:
    en, zh = _shipped("service-outage"), _shipped("service-outage-zh")
    assert en.language == "en" and zh.language == "zh"
    assert [r.id for r in en.roles] == [r.id for r in zh.roles]
    assert [p.id for p in en.phases] == [p.id for p in zh.phases]
    assert [s.id for _, s in en.steps()] == [s.id for _, s in zh.steps()]
    assert [s.due for _, s in en.steps()] == [s.due for _, s in zh.steps()]
    assert [s.owner for _, s in en.steps()] == [s.owner for _, s in zh.steps()]
    assert [p.target for p in en.phases] == [p.target for p in zh.phases]


@pytest.mark.parametrize(
    "runbook_id", ["service-outage", "service-outage-zh", "security-incident", "pr-crisis"]
)
def test_snapshot_round_trips_shipped_runbooks(runbook_id: str) -> None:
    rb = _shipped(runbook_id)
    assert Runbook.from_snapshot(rb.snapshot()) == rb


def test_snapshot_round_trips_and_keeps_non_ascii_text(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, BASE.replace("Mini runbook", "迷你预案"))).runbook
    snap = rb.snapshot()
    assert "迷你预案" in snap
    assert Runbook.from_snapshot(snap) == rb


def test_snapshot_keeps_day_long_durations_exactly(tmp_path: Path) -> None:
    rb = load_runbook(write(tmp_path, edit("target: 4h", "target: 1d30m"))).runbook
    assert Runbook.from_snapshot(rb.snapshot()) == rb


# --- deadlines and risk triggers ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "anchor"),
    [
        ("15m", timedelta(minutes=15), "start"),
        ("30m after phase", timedelta(minutes=30), "phase"),
        ("1h after mitigated", timedelta(hours=1), "mitigated"),
        ("24h after resolved", timedelta(hours=24), "resolved"),
        ("1h30m after start", timedelta(hours=1, minutes=30), "start"),
    ],
)
def test_deadline_parses_offset_and_anchor(text: str, offset: timedelta, anchor: str) -> None:
    deadline = Deadline.model_validate(text)
    assert (deadline.offset, deadline.anchor) == (offset, anchor)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("15m", "15m"),
        ("30m after phase", "30m after phase"),
        ("1h after mitigated", "1h00m after mitigated"),
    ],
)
def test_deadline_renders_back_to_a_parseable_form(text: str, rendered: str) -> None:
    deadline = Deadline.model_validate(text)
    assert str(deadline) == rendered
    assert Deadline.model_validate(str(deadline)) == deadline


@pytest.mark.parametrize(
    "text", ["1h after fixed", "soon", "after mitigated", "15", "0m after phase"]
)
def test_bad_deadline_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        Deadline.model_validate(text)


@pytest.mark.parametrize(
    ("text", "milestone", "within"),
    [
        ("not mitigated within 2h", "mitigated", timedelta(hours=2)),
        ("not resolved within 6h", "resolved", timedelta(hours=6)),
        ("  not   mitigated   within 1h30m ", "mitigated", timedelta(hours=1, minutes=30)),
    ],
)
def test_risk_trigger_parses_milestone_and_time(
    text: str, milestone: str, within: timedelta
) -> None:
    trigger = RiskTrigger.model_validate(text)
    assert (trigger.milestone, trigger.within) == (milestone, within)


@pytest.mark.parametrize(
    "text",
    ["mitigated within 2h", "not closed within 2h", "not mitigated within soon", "not mitigated"],
)
def test_bad_risk_trigger_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        RiskTrigger.model_validate(text)


# --- the `validate` command line ---------------------------------------------


def test_cli_validate_bad_file_prints_file_line_problems_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = edit("target: 4h", "target: 15 minutes")
    bad = write(tmp_path, text, "bad.yaml")
    assert main(["validate", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{bad}:{line_no(text, 'target: 15 minutes')}: phases[1].target: "
        "'15 minutes' is not a duration; write it like 15m, 1h30m or 2d"
    ]
    assert "Traceback" not in out + err


def test_cli_validate_missing_file_exits_1_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{tmp_path / 'nope.yaml'}:1: no such file or folder"]
    assert "Traceback" not in out + err


def test_cli_validate_shipped_folder_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(SHIPPED)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == len(list(SHIPPED.glob("*.yaml")))
    assert all(line.startswith("ok  ") for line in lines)
    assert "service-outage-zh" in out and "Traceback" not in out + err
