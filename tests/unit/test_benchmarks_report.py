"""The benchmark harness's report: its table and the README section it rewrites."""

from __future__ import annotations

from benchmarks.__main__ import BEGIN, END, results_section, table, write_results
from benchmarks.common import Row, percentile


def test_the_table_marks_missed_budgets_and_escapes_pipes():
    rows = [
        Row("ack", "p99 12 ms", "< 25 ms", True),
        Row("restart", "2.7 s | 3,000 posts", "< 2 s", False),
        Row("growth", "x2", "—", None),
    ]
    lines = table(rows).splitlines()
    assert lines[2] == "| ack | p99 12 ms | < 25 ms | yes |"
    assert lines[3] == "| restart | 2.7 s \\| 3,000 posts | < 2 s | **no** |"
    assert lines[4] == "| growth | x2 | — | — |"


def test_rewriting_the_results_keeps_the_rest_of_the_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\nprose\n\n{BEGIN}\nold table\n{END}\n\nafter\n")
    section = results_section([Row("ack", "fast", "< 25 ms", True)], ["a note"], "cmd", 5.0)
    write_results(readme, section)
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nprose\n\n")
    assert text.endswith(f"{END}\n\nafter\n")
    assert "old table" not in text
    assert "| ack | fast | < 25 ms | yes |" in text and "- a note" in text
    assert text.count(BEGIN) == 1


def test_percentile_interpolates_between_samples():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(range(101), 99) == 99.0


def test_the_report_benchmark_seeds_a_record_the_report_reads_like_the_engine_s(tmp_path):
    from benchmarks.report import seed
    from bot.metrics import response_metrics, step_outcomes
    from bot.report import gather
    from bot.store import Store

    assert seed(tmp_path / "r.db", incidents=8, per_incident=60) == 8 * 60
    store = Store(tmp_path / "r.db")
    try:
        record = gather(store, None)
        assert len(record.incidents) == 8 and len(record.actions) == 16
        verdicts = set()
        for item in record.incidents:
            incident, events = item.incident, store.events(item.incident.id)
            assert [e.at for e in events] == sorted(e.at for e in events)
            assemble = response_metrics(incident, events)[0].actual
            assert item.first_response == incident.started_at + assemble
            verdicts |= {o.verdict for o in step_outcomes(incident, item.steps, item.runs)}
        assert {"on_time", "late", "skipped", "not_done"} <= verdicts
    finally:
        store.close()


def test_a_run_writes_no_file_unless_asked():
    """`python -m benchmarks` must not rewrite the tracked benchmarks/README.md by itself."""
    from benchmarks.__main__ import HERE, build_parser, results_file

    def target(*argv: str):
        return results_file(build_parser().parse_args(list(argv)))

    assert target() is None and target("--quick") is None and target("--no-write") is None
    assert target("--write") == HERE / "README.md"
    assert str(target("--out", "elsewhere.md")) == "elsewhere.md"


def test_write_and_no_write_together_are_refused(capsys):
    import pytest

    from benchmarks.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--write", "--no-write"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_help_says_that_files_are_left_alone_without_write():
    from benchmarks.__main__ import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "writes no file unless given --write or --out" in text
