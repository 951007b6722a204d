"""The report's pictures (bot/report_chart.py): drawn beside the Markdown, never failing it."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from bot import report_chart
from bot.report_chart import chart_paths, draw_report_charts
from tests.unit.test_report import report_of


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_pictures_are_drawn_beside_the_markdown(played, store, tmp_path):
    markdown = tmp_path / "out" / "report.md"
    markdown.parent.mkdir()
    drawn = draw_report_charts(report_of(store), markdown, "en")
    assert drawn == {"times": "report-times.png", "steps": "report-steps.png"}
    assert chart_paths(markdown)["times"] == markdown.with_name("report-times.png")
    width, height = _png_size(markdown.with_name("report-times.png"))
    assert width == 1100 and height > 100
    _, steps_height = _png_size(markdown.with_name("report-steps.png"))
    assert steps_height > height  # four step rows
    assert sorted(p.name for p in markdown.parent.iterdir()) == [
        "report-steps.png",
        "report-times.png",
    ]


def test_chinese_labels_draw_too(played, store, tmp_path):
    drawn = draw_report_charts(report_of(store), tmp_path / "r.md", "zh")
    assert set(drawn) == {"times", "steps"}


def test_nothing_to_draw_for_an_empty_record(store, tmp_path):
    assert draw_report_charts(report_of(store), tmp_path / "r.md") == {}
    assert list(tmp_path.glob("*.png")) == []


def test_a_picture_that_fails_is_left_out_and_leaves_no_file(
    played, store, tmp_path, monkeypatch, caplog
):
    def broken(*args):
        raise ValueError("no room")

    monkeypatch.setattr(report_chart, "_times_figure", broken)
    folder = tmp_path / "out"
    folder.mkdir()
    drawn = draw_report_charts(report_of(store), folder / "r.md")
    assert drawn == {"steps": "r-steps.png"}
    assert [p.name for p in folder.iterdir()] == ["r-steps.png"]  # no half-written .tmp
    assert "report chart times not drawn: ValueError: no room" in caplog.text


@pytest.mark.parametrize("count", [1, 45])
def test_a_long_list_of_steps_is_cut_to_the_worst(count, store, tmp_path):
    from bot.report import StepFigure

    steps = [
        StepFigure(
            "rb", f"{n}", "A step " * 20, "P", 10, 0, n % 10, 0, 10 - n % 10, 0, None, None, []
        )
        for n in range(count)
    ]
    worst = report_chart._worst_steps(replace(report_of(store), steps=steps))
    assert len(worst) == min(count, report_chart.MAX_STEP_BARS)
