"""A team's postmortem template is untrusted: it renders in a worker process with a time,
output and memory limit and no secrets in its environment; whatever it does, the review
falls back to the built-in template with one line saying why, and nothing is left running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.postmortem import TemplateLimits, render_review, worker_environment
from bot.runbook import Catalog, load_runbook
from bot.template_worker import MAX_TEMPLATE_BYTES
from tests.conftest import DRILL_RUNBOOK

SECRET = "xoxb-very-secret-token-1234"
# For templates that end by themselves (an error, a refusal, a result): room for the worker's
# start on a busy machine; only the tests of runaway templates use a short limit, and wait it
ROOMY = TemplateLimits(seconds=10.0)


def _children() -> set[int]:
    """Live child processes of this test process (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.add(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _secrets_in_the_environment(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET + "-signing")
    monkeypatch.setenv("INCIDENT_BOT_ADMINS", "UADMIN")


def _start(service):
    return service.start("service-outage", "Checkout down", "ana").incident


def _render_operator_template(service, store, tmp_path, body: str, limits=ROOMY):
    incident = _start(service)
    template = tmp_path / "team.md.j2"
    template.write_text(body, encoding="utf-8")
    before = _children()
    review = render_review(store, incident.id, "en", template=template, limits=limits)
    assert _children() <= before, "the template worker was left running"
    return review


def _assert_fell_back(review, *gist: str) -> None:
    assert review.text.startswith("# Postmortem INC-1"), review.text[:200]
    assert review.problem is not None
    assert "\n" not in review.problem and len(review.problem) <= 400
    for part in gist:
        assert part in review.problem, review.problem
    assert SECRET not in review.text + review.problem


def test_a_template_that_never_ends_is_stopped_and_the_built_in_one_used(service, store, tmp_path):
    body = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    review = _render_operator_template(service, store, tmp_path, body, TemplateLimits(seconds=1))
    _assert_fell_back(review, "team.md.j2", "took longer than 1 s")


def test_a_template_stuck_in_one_huge_computation_is_stopped_too(service, store, tmp_path):
    review = _render_operator_template(
        service, store, tmp_path, "{{ 9 ** (9 ** 9) }}", TemplateLimits(seconds=1)
    )
    _assert_fell_back(review, "took longer than 1 s")


def test_huge_output_is_cut_off_at_the_cap(service, store, tmp_path):
    body = "{% for i in range(99999) %}{{ 'x' * 1000 }}{% endfor %}"
    limits = TemplateLimits(seconds=10, output=1024 * 1024)
    review = _render_operator_template(service, store, tmp_path, body, limits)
    _assert_fell_back(review, "its output passed 1 MiB")
    assert "x" * 1000 not in review.text


def test_a_template_that_eats_memory_hits_the_memory_cap(service, store, tmp_path):
    limits = TemplateLimits(seconds=10, memory=256 * 1024 * 1024)
    review = _render_operator_template(service, store, tmp_path, "{{ 'x' * 10**10 }}", limits)
    _assert_fell_back(review, "more than 256 MiB")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ 10.0 ** 400 }}", "OverflowError"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "RecursionError"),
        ("{{ incident.title.__class__ }}", "SecurityError"),
        ("{% include 'other.md.j2' %}", "TemplateNotFound"),
    ],
    ids=["zero-division", "overflow", "recursion", "sandbox", "missing-include"],
)
def test_any_exception_in_a_template_falls_back_with_its_name(
    service, store, tmp_path, body, error
):
    review = _render_operator_template(service, store, tmp_path, body)
    _assert_fell_back(review, "team.md.j2", error)


def test_the_worker_environment_carries_no_tokens_or_bot_settings():
    env = worker_environment(
        {"PATH": "/usr/bin", "SLACK_BOT_TOKEN": SECRET, "INCIDENT_BOT_DB": "x", "HOME": "/root"}
    )
    assert env["PATH"] == "/usr/bin" and SECRET not in str(env)
    assert not any(k.startswith(("SLACK_", "INCIDENT_BOT_")) or k == "HOME" for k in env)


def test_the_operators_template_may_read_its_own_environment_and_finds_no_secret(service, store):
    # INCIDENT_BOT_POSTMORTEM_TEMPLATE may point anywhere; it is read by the worker, whose
    # environment is scrubbed, so even /proc/self/environ holds no token.
    incident = _start(service)
    review = render_review(
        store, incident.id, "en", template=Path("/proc/self/environ"), limits=ROOMY
    )
    assert review.problem is None, review.problem
    assert "PATH=" in review.text  # it really is the worker's environment
    assert SECRET not in review.text and "INCIDENT_BOT_" not in review.text


# --- a runbook's own template: inside the runbook folder, at render time too ------------


def _folder_with_template(tmp_path: Path, template: str = "review.md.j2") -> Path:
    folder = tmp_path / "runbooks"
    (folder / "templates").mkdir(parents=True)
    text = DRILL_RUNBOOK.replace(
        "postmortem: {due: 24h}", f"postmortem: {{due: 24h, template: {template}}}"
    )
    (folder / "drill.yaml").write_text(text, encoding="utf-8")
    return folder


def _start_drill(store, clock, folder: Path):
    from bot.engine import IncidentService

    catalog = Catalog(folder)
    assert catalog.problems == [], catalog.problems
    return IncidentService(store, clock, catalog).start("drill", "Disk full", "ana").incident


def test_a_runbooks_template_renders_from_its_folder(store, clock, tmp_path):
    folder = _folder_with_template(tmp_path, "templates/review.md.j2")
    (folder / "templates" / "review.md.j2").write_text(
        "# {{ incident.ref }} {% include 'templates/part.md.j2' %}", encoding="utf-8"
    )
    (folder / "templates" / "part.md.j2").write_text("from {{ runbook.id }}\n", encoding="utf-8")
    incident = _start_drill(store, clock, folder)
    review = render_review(store, incident.id, "en", runbooks=folder, limits=ROOMY)
    assert (review.text, review.problem) == ("# INC-1 from drill\n", None)


def test_a_template_swapped_for_a_symlink_out_after_validation_is_refused(store, clock, tmp_path):
    folder = _folder_with_template(tmp_path)
    (folder / "review.md.j2").write_text("# ours\n", encoding="utf-8")
    incident = _start_drill(store, clock, folder)
    outside = tmp_path / "outside.md.j2"
    outside.write_text(f"token {SECRET}\n", encoding="utf-8")
    (folder / "review.md.j2").unlink()
    (folder / "review.md.j2").symlink_to(outside)
    review = render_review(store, incident.id, "en", runbooks=folder, limits=ROOMY)
    _assert_fell_back(review, "postmortem.template", "outside the runbook folder")


@pytest.mark.parametrize(
    "include",
    ["/proc/self/environ", "../outside.md.j2", "link.md.j2", "linked-dir/outside.md.j2"],
)
def test_includes_cannot_leave_the_runbook_folder(store, clock, tmp_path, include):
    folder = _folder_with_template(tmp_path)
    (folder / "review.md.j2").write_text(f"{{% include '{include}' %}}", encoding="utf-8")
    (tmp_path / "outside.md.j2").write_text(f"token {SECRET}\n", encoding="utf-8")
    (folder / "link.md.j2").symlink_to(tmp_path / "outside.md.j2")
    (folder / "linked-dir").symlink_to(tmp_path)
    incident = _start_drill(store, clock, folder)
    review = render_review(store, incident.id, "en", runbooks=folder, limits=ROOMY)
    _assert_fell_back(review, "TemplateNotFound")


def test_an_oversized_template_file_is_refused(service, store, tmp_path):
    review = _render_operator_template(service, store, tmp_path, "x" * (MAX_TEMPLATE_BYTES + 1))
    _assert_fell_back(review, "larger than 1024 KiB")


def test_without_the_runbook_folder_a_runbooks_template_is_not_guessed(store, clock, tmp_path):
    folder = _folder_with_template(tmp_path)
    (folder / "review.md.j2").write_text("# ours\n", encoding="utf-8")
    incident = _start_drill(store, clock, folder)
    review = render_review(store, incident.id, "en", limits=ROOMY)
    _assert_fell_back(review, "runbook folder is not known")
    assert load_runbook(folder / "drill.yaml").runbook.postmortem.template == "review.md.j2"


def test_at_most_two_workers_run_at_once_and_a_third_render_does_not_wait_for_ever(
    service, store, tmp_path
):
    from bot import postmortem

    for _ in range(postmortem._MAX_WORKERS):  # as if two runaway templates were rendering
        assert postmortem._WORKERS.acquire(timeout=0)
    try:
        review = _render_operator_template(
            service, store, tmp_path, "# ours\n", TemplateLimits(seconds=0.2)
        )
    finally:
        for _ in range(postmortem._MAX_WORKERS):
            postmortem._WORKERS.release()
    _assert_fell_back(review, "2 other templates were still rendering", "/incident postmortem")
    assert render_review(store, 1, "en", template=tmp_path / "team.md.j2").text == "# ours\n"


def test_the_worker_starts_without_the_database_layer_or_slack():
    """Each team template pays the worker's start: it imports Jinja2 and the filters, not
    the store (sqlite-utils, numpy), the engine or Slack's libraries."""
    import subprocess
    import sys

    probe = (
        "import sys, bot.template_worker, bot.template_env; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlite_utils', 'numpy', 'slack_sdk', 'slack_bolt', 'pydantic'} "
        "or m in {'bot.store', 'bot.engine', 'bot.postmortem'})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
