"""Runbooks are data someone else may have written: every hostile file is refused as
`file:line: message`, quickly and without a traceback, and a folder with one still serves
the rest. Loading runs in a subprocess with a timeout, so a regression fails instead of
hanging the suite, and the subprocess reports its own peak memory."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from bot.runbook import MAX_RUNBOOK_BYTES, Catalog
from bot.yaml_lines import MAX_DEPTH, MAX_NODES
from tests import forkserver
from tests.unit.test_runbook import BASE, assert_reported, edit, line_no, only_problem, write

BILLION_LAUGHS = """\
id: lol
name: lol
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
roles: *i
phases: *i
"""

# name -> (text, line, gist of the message)
HOSTILE = {
    "billion-laughs": (BILLION_LAUGHS, 4, "YAML aliases (*a) are not allowed"),
    "recursive-alias": ("id: r\nname: r\nroles: &r [ *r ]\n", 3, "YAML aliases (*r)"),
    "deep-nesting": (
        "id: x\nname: x\nroles: " + "[" * 100_000 + "]" * 100_000 + "\n",
        3,
        f"nested deeper than {MAX_DEPTH} levels",
    ),
    "deep-block-nesting": (
        "id: x\nroles:\n" + "".join(" " * i + "- \n" for i in range(1, 200)),
        2 + MAX_DEPTH,
        f"nested deeper than {MAX_DEPTH} levels",
    ),
    "many-values": (
        "id: x\nname: x\nroles: [" + ",".join(["a"] * 120_000) + "]\n",
        3,
        f"more than {MAX_NODES:,} values",
    ),
    "huge-file": ("# " + "x" * (2 * MAX_RUNBOOK_BYTES) + "\n" + BASE, 1, "at most 256 KiB"),
}

# VmHWM is this process's own peak (ru_maxrss would include the parent's at fork time).
# Forked from tests/forkserver.py, the process starts with more imported than validate
# needs (matplotlib too: peaks measured 38-39 MiB above a fresh interpreter's, 79-86 MiB
# in all), so the bound holds at least as strictly as in a fresh one.
_PROBE = """
import re, sys
from bot.cli import main
status = main(["validate", *sys.argv[1:]])
peak = re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1)
print(f"peak-rss-kib {peak}", file=sys.stderr)
sys.exit(status)
"""


def _validate(*paths: Path) -> tuple[int, list[str], int]:
    """`incident-bot validate PATHS` in a subprocess: (exit status, stdout lines, peak RSS MiB)."""
    done = forkserver.run(
        [sys.executable, "-c", _PROBE, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails the test instead of the suite
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    rss = int(done.stderr.split("peak-rss-kib ")[1].split()[0]) // 1024
    return done.returncode, done.stdout.splitlines(), rss


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_runbook_is_refused_at_its_line_without_growing(tmp_path, name):
    text, line, gist = HOSTILE[name]
    path = write(tmp_path, text, f"{name}.yaml")
    status, out, rss = _validate(path)
    assert status == 1
    assert len(out) == 1 and out[0].startswith(f"{path}:{line}: "), out[:3]
    assert gist in out[0]
    assert rss < 150, f"validate peaked at {rss} MiB"


def test_a_folder_with_hostile_files_still_validates_the_good_one(tmp_path):
    for name, (text, _, _) in HOSTILE.items():
        write(tmp_path, text, f"{name}.yaml")
    good = write(tmp_path, BASE, "good.yaml")
    status, out, _ = _validate(tmp_path)
    assert status == 1
    files = sorted(line.split(":", 1)[0] for line in out)
    assert files == sorted(str(tmp_path / f"{name}.yaml") for name in HOSTILE)
    assert str(good) not in "\n".join(out)


def test_merge_keys_are_aliases_too(tmp_path):
    text = edit("  - id: fix\n    name: Fix\n", "  - &p\n    id: fix\n    name: Fix\n")
    text += "extra:\n  <<: *p\n"
    path = write(tmp_path, text)
    assert_reported(only_problem(path), path, line_no(text, "<<: *p"), "YAML aliases (*p)")


def test_an_anchor_without_alias_is_harmless(tmp_path):
    from bot.runbook import load_runbook

    path = write(tmp_path, edit("name: Mini runbook", "name: &n Mini runbook"))
    assert load_runbook(path).runbook.name == "Mini runbook"


def test_a_file_that_is_not_a_regular_file_is_refused(tmp_path):
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    assert_reported(only_problem(tmp_path / "zero.yaml"), tmp_path / "zero.yaml", 1, "regular")


def test_a_file_with_thousands_of_problems_lists_the_first_fifty(tmp_path):
    text = BASE + "".join(f"extra{i}: 1\n" for i in range(500))
    path = write(tmp_path, text)
    status, out, _ = _validate(path)
    assert status == 1 and len(out) == 50
    assert out[-1].endswith("… and 451 more problems"), out[-1]


def test_catalog_sets_bad_files_aside_and_logs_each_once(tmp_path, caplog):
    for name in ("billion-laughs", "recursive-alias"):
        write(tmp_path, HOSTILE[name][0], f"{name}.yaml")
    write(tmp_path, BASE + "".join(f"extra{i}: 1\n" for i in range(3)), "three-problems.yaml")
    write(tmp_path, BASE, "good.yaml")
    with caplog.at_level(logging.WARNING, logger="bot.runbook"):
        catalog = Catalog(tmp_path)
    assert catalog.ids() == ["mini"]
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.runbook"]
    assert len(logged) == 3
    for name in ("billion-laughs", "recursive-alias", "three-problems"):
        assert sum(f"{tmp_path / name}.yaml:" in line for line in logged) == 1
    assert any("and 2 more" in line for line in logged)


# --- postmortem.template names a file inside the runbook folder ----------------------


def _with_template(tmp_path: Path, name: str) -> tuple[Path, str]:
    text = edit("postmortem:\n  owner: lead\n", f"postmortem:\n  owner: lead\n  template: {name}\n")
    return write(tmp_path, text), text


def test_a_template_inside_the_folder_is_accepted(tmp_path):
    from bot.runbook import load_runbook

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "review.md.j2").write_text("# {{ incident.ref }}\n")
    path, _ = _with_template(tmp_path, "templates/review.md.j2")
    assert load_runbook(path).runbook.postmortem.template == "templates/review.md.j2"


@pytest.mark.parametrize(
    ("name", "gist"),
    [
        ("/proc/self/environ", "is an absolute path"),
        ("'C:\\\\Windows\\\\win.ini'", "is an absolute path"),
        ("../outside.md.j2", "climbs out of the runbook folder with '..'"),
        ("templates/../../outside.md.j2", "climbs out"),
        ("link.md.j2", "leads outside the runbook folder through a symlink"),
        ("linked-dir/outside.md.j2", "through a symlink"),
        ("missing.md.j2", "no file 'missing.md.j2' in the runbook folder"),
    ],
)
def test_a_template_outside_the_folder_is_refused_at_its_line(tmp_path, name, gist):
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (tmp_path / "outside.md.j2").write_text("{{ incident.ref }}\n")
    (folder / "link.md.j2").symlink_to(tmp_path / "outside.md.j2")
    (folder / "linked-dir").symlink_to(tmp_path)
    path, text = _with_template(folder, name)
    problem = only_problem(path)
    assert_reported(problem, path, line_no(text, "template:"), "postmortem.template: ", gist)


def test_the_environ_attack_from_the_issue_is_refused_by_validate(tmp_path):
    path, text = _with_template(tmp_path, "/proc/self/environ")
    status, out, _ = _validate(path)
    assert status == 1
    assert out == [
        f"{path}:{line_no(text, 'template:')}: postmortem.template: '/proc/self/environ' is an "
        "absolute path; name a file inside the runbook folder (e.g. templates/review.md.j2)"
    ]
