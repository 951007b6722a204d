"""The report's pictures, drawn beside its Markdown: response times and step outcomes.

- `<stem>-times.png`: per runbook, the median and p90 time to assemble, mitigate
  and resolve, with the runbook's target marked (one panel per measure, each on
  its own scale: minutes to assemble, hours to resolve).
- `<stem>-steps.png`: the steps most often not done as planned, worst first, each
  a bar split into on time, done without a deadline, late, skipped and never done.

Fonts, the CJK fallback, matplotlib's quiet and its lazy import are the review
chart's (`bot/chart.py`). Drawing never raises: a picture that cannot be drawn
is logged in one line and left out, and the Markdown does without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.chart import COLORS, DPI, MAX_LABEL, WIDTH, chart_style, ensure_config_dir, fit_text
from bot.messages import Renderer
from bot.report import MEASURES, Report, StepFigure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

MAX_STEP_BARS = 30  # the worst steps drawn
SEGMENTS = ("on_time", "no_deadline", "late", "skipped", "not_done")


def chart_paths(markdown: Path) -> dict[str, Path]:
    """`…/report.md` → `report-times.png`, `report-steps.png` beside it."""
    return {name: markdown.with_name(f"{markdown.stem}-{name}.png") for name in ("times", "steps")}


def draw_report_charts(report: Report, markdown: Path, language: str = "en") -> dict[str, str]:
    """Draw the pictures the report has data for; returns {name: file name} of those drawn."""
    drawn: dict[str, str] = {}
    if not report.incidents:
        return drawn
    paths = chart_paths(markdown)
    worst = _worst_steps(report)
    Build = Callable[[Renderer, frozenset[int]], "Figure"]
    jobs: list[tuple[str, Path, Build]] = [
        ("times", paths["times"], lambda r, c: _times_figure(report, r, c))
    ]
    if worst:
        jobs.append(("steps", paths["steps"], lambda r, c: _steps_figure(worst, r, c)))
    try:
        ensure_config_dir()
        with chart_style() as (cjk, charset):
            render = Renderer(language if cjk is not None or language == "en" else "en")
            for name, path, build in jobs:
                tmp = path.with_name(path.name + ".tmp")
                try:
                    figure = build(render, charset)
                    figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
                    tmp.replace(path)
                    drawn[name] = path.name
                except Exception as exc:  # the report never fails because of a picture
                    log.warning("report chart %s not drawn: %s: %s", name, type(exc).__name__, exc)
                    tmp.unlink(missing_ok=True)
    except Exception as exc:  # matplotlib missing or broken
        log.warning("report charts not drawn: %s: %s", type(exc).__name__, exc)
    return drawn


def _worst_steps(report: Report) -> list[StepFigure]:
    worst = [s for s in report.steps if s.off_plan]
    worst.sort(key=lambda s: (-s.off_plan_share, -s.off_plan, s.runbook))
    return worst[:MAX_STEP_BARS]


def _figure(height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _times_figure(report: Report, render: Renderer, charset: frozenset[int]) -> Figure:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    runbooks = [c.runbook for c in report.runbooks]
    height = 1.5 + 0.45 * len(runbooks)
    figure = _figure(height)
    figure.text(
        0.01, 1 - 0.3 / height, render("report_chart.times_title"), weight="bold", va="center"
    )
    figure.legend(
        handles=[
            Patch(color=COLORS["actual"], label=render("report_chart.median")),
            Line2D(
                [],
                [],
                color=COLORS["late"],
                marker="o",
                markersize=4,
                linewidth=2,
                label=render("report_chart.p90"),
            ),
            Line2D(
                [],
                [],
                color=COLORS["deadline"],
                marker="|",
                markersize=12,
                markeredgewidth=2.5,
                linestyle="none",
                label=render("report_chart.target"),
            ),
        ],
        loc="center right",
        bbox_to_anchor=(0.99, 1 - 0.3 / height),
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    axes = figure.subplots(1, len(MEASURES), sharey=True)
    labels = [fit_text(report.names.get(r, r), charset, MAX_LABEL // 2) or r for r in runbooks]
    ys = list(range(len(runbooks)))
    for ax, measure in zip(axes, MEASURES, strict=True):
        figures = {t.runbook: t for t in report.times if t.measure == measure}
        medians = [_minutes(figures[r].median) for r in runbooks]
        p90s = [_minutes(figures[r].p90) for r in runbooks]
        ax.barh(ys, medians, height=0.5, color=COLORS["actual"])
        ax.hlines(ys, medians, p90s, color=COLORS["late"], linewidth=2)
        ax.plot(p90s, ys, "o", color=COLORS["late"], markersize=4)
        marks = [
            (y, figures[r].targets[-1])
            for y, r in zip(ys, runbooks, strict=True)
            if figures[r].targets
        ]
        if marks:
            ax.plot(
                [_minutes(t) for _, t in marks],
                [y for y, _ in marks],
                marker="|",
                markersize=16,
                markeredgewidth=2.5,
                color=COLORS["deadline"],
                linestyle="none",
            )
        ax.set_title(render(f"report_chart.{measure}"), loc="left", fontsize=10, weight="bold")
        ax.set_xlabel(render("report_chart.minutes"))
        ax.set_xlim(left=0)
        ax.set_yticks(ys, labels)
        ax.set_ylim(len(runbooks) - 0.5, -0.5)
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    figure.subplots_adjust(
        left=0.2, right=0.98, top=1 - 0.95 / height, bottom=0.55 / height, wspace=0.15
    )
    return figure


def _steps_figure(steps: list[StepFigure], render: Renderer, charset: frozenset[int]) -> Figure:
    height = 1.3 + 0.26 * len(steps)
    figure = _figure(height)
    figure.suptitle(render("report_chart.steps_title"), x=0.01, ha="left", weight="bold")
    ax = figure.add_subplot()
    several = len({s.runbook for s in steps}) > 1  # else the runbook is in the title
    labels = []
    for s in steps:
        head = f"{s.runbook} {s.step}" if several else s.step
        room = MAX_LABEL - len(head) - 1
        labels.append(f"{head} {fit_text(s.title, charset, max(room, 8))}".rstrip())
    ys = list(range(len(steps)))
    left = [0.0] * len(steps)
    for segment in SEGMENTS:
        shares = [getattr(s, segment) / s.incidents * 100 if s.incidents else 0.0 for s in steps]
        ax.barh(
            ys,
            shares,
            left=left,
            height=0.7,
            color=COLORS[segment],
            label=render(f"chart.{segment}"),
        )
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_yticks(ys, labels)
    ax.set_ylim(len(steps) - 0.5, -0.5)
    ax.set_xlim(0, 100)
    ax.set_xlabel(render("report_chart.share"))
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=5, frameon=False, fontsize=8)
    figure.subplots_adjust(left=0.42, right=0.98, top=1 - 0.85 / height, bottom=0.55 / height)
    return figure


def _minutes(delta: timedelta | None) -> float:
    return delta.total_seconds() / 60 if delta is not None else 0.0
