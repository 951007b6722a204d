"""The plan-versus-actual chart: a PNG drawn from the record, in English or Chinese."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import textwrap
import threading
import warnings
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

from bot import chart
from bot.chart import (
    COLORS,
    DPI,
    MARK,
    MAX_STEP_ROWS,
    MAX_TITLE,
    STEP_ROW,
    WIDTH,
    build_figure,
    chart_data,
    chart_path,
    chart_style,
    cjk_font,
    draw_plan_vs_actual,
    draw_review_chart,
    ensure_config_dir,
    fit_text,
    read_mark,
)
from bot.engine import IncidentService
from bot.messages import Renderer
from bot.postmortem import compile_review
from bot.runbook import Catalog

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == PNG
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        chunks.append((kind, data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def _png_size(path: Path) -> tuple[int, int]:
    kind, body = _chunks(path.read_bytes())[0]
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", body[:8])
    return width, height


def _played(
    service: IncidentService, clock, title: str = "Checkout down", runbook="service-outage"
):
    """One incident with a step on time, one late, one skipped, the rest never done."""
    incident = service.start(runbook, title, "ana", severity="sev1").incident
    iid = incident.id
    clock.advance(timedelta(minutes=10))
    service.done(iid, "1.1", "ana")  # due 15m: on time
    clock.advance(timedelta(minutes=15))
    service.done(iid, "1.2", "ana")  # due 20m, done at 25m: late by 5m
    service.skip(iid, "1.3", "Nothing was deployed", "ana")
    clock.advance(timedelta(minutes=50))
    service.next_phase(iid, "ana")  # phase one took 75m against 1h
    clock.advance(timedelta(minutes=15))
    service.mitigated(iid, "ana")  # at 90m
    clock.advance(timedelta(minutes=30))
    service.resolved(iid, "ana")  # at 120m
    clock.advance(timedelta(minutes=10))
    return service.close(iid, "ana").incident


def _review(service: IncidentService, incident, language: str = "en") -> dict:
    return compile_review(service.store, service.store.incident(incident.id), language)


def _runbook_with_steps(tmp_path: Path, count: int, name: str = "Big plan") -> Catalog:
    folder = tmp_path / "runbooks"
    folder.mkdir(exist_ok=True)
    lines = [
        "id: big",
        f"name: {name}",
        "roles:",
        "  - {id: lead, name: Lead}",
        "phases:",
    ]
    per_phase = max(count // 3, 1)
    number = 0
    for phase in range(3):
        lines += [f"  - id: p{phase}", f"    name: Phase {phase}", "    target: 1h", "    steps:"]
        for _ in range(per_phase if phase < 2 else count - 2 * per_phase):
            number += 1
            lines.append(
                f'      - {{id: "s{number}", title: "Check subsystem {number} and report back '
                f'to the commander with the figures", owner: lead, due: {number}m}}'
            )
    (folder / "big.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    catalog = Catalog(folder)
    assert catalog.problems == []
    return catalog


def _many_steps(tmp_path, store, clock, count: int):
    service = IncidentService(store, clock, _runbook_with_steps(tmp_path, count))
    incident = service.start("big", "Many steps", "ana").incident
    for n in range(1, count + 1, 3):
        clock.advance(timedelta(minutes=1))
        service.done(incident.id, f"s{n}", "ana")
    return service, incident


def _built(data, render):
    """The figure built and laid out in the chart's fonts and settings, as the PNG is."""
    with chart_style():
        figure = build_figure(data, render)
        figure.draw_without_rendering()  # the layout the PNG gets, without rasterising it
    return figure


# --- what is drawn ------------------------------------------------------------------


def test_the_chart_is_a_valid_png_of_sane_size(service, clock, tmp_path):
    incident = _played(service, clock)
    target = chart_path(tmp_path / "pm" / f"{incident.ref}.md")
    assert target == tmp_path / "pm" / "INC-1.png"
    assert draw_review_chart(_review(service, incident), target) == target
    width, height = _png_size(target)
    assert width == WIDTH * DPI
    assert 500 <= height <= 2000
    assert 10_000 < target.stat().st_size < 400_000
    from PIL import Image

    with Image.open(target) as image:
        image.verify()
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind


def test_the_same_record_gives_the_same_bytes_and_no_time_or_version_metadata(
    service, clock, tmp_path
):
    incident = _played(service, clock)
    review = _review(service, incident)
    first = draw_review_chart(review, tmp_path / "a.png")
    second = draw_review_chart(review, tmp_path / "b.png")
    assert first and second
    assert first.read_bytes() == second.read_bytes()
    kinds = [kind for kind, _ in _chunks(first.read_bytes())]
    assert b"tIME" not in kinds
    assert not [body for kind, body in _chunks(first.read_bytes()) if b"Software" in body]


def test_chart_data_is_the_record_in_minutes_since_declared(service, clock):
    incident = _played(service, clock)
    review = _review(service, incident)
    data = chart_data(review["incident"], review["phases"], review["steps"], Renderer("en"))
    assert [(p.target, p.actual) for p in data.phases] == [
        (60, 75),
        (240, 55),
        (1440, None),
    ]  # closed at 130m
    rows = {r.label.split()[0]: r for r in data.steps}
    assert (rows["1.1"].deadline, rows["1.1"].at, rows["1.1"].verdict) == (15, 10, "on_time")
    assert (rows["1.2"].deadline, rows["1.2"].at, rows["1.2"].verdict) == (20, 25, "late")
    assert (rows["1.3"].at, rows["1.3"].verdict) == (25, "skipped")
    assert (rows["1.4"].deadline, rows["1.4"].at, rows["1.4"].verdict) == (45, None, "not_done")
    assert rows["2.1"].deadline == 90 + 60  # 1h after mitigated
    assert data.milestones == [("mitigated", 90), ("resolved", 120)]
    assert data.end == 90 + 24 * 60  # the furthest deadline: 3.4, 24h after mitigated
    assert data.title == "INC-1 · Checkout down (sev1)"


def test_overrun_and_every_step_outcome_are_drawn_distinctly_with_a_legend(service, clock):
    incident = _played(service, clock)
    review = _review(service, incident)
    render = Renderer("en")
    data = chart_data(review["incident"], review["phases"], review["steps"], render)
    figure = _built(data, render)
    phases_ax, steps_ax = figure.axes
    from matplotlib.colors import to_hex

    over = [p for p in phases_ax.patches if to_hex(p.get_facecolor()) == COLORS["over"]]
    assert sorted(p.get_width() for p in over if p.get_width() > 0) == [15]  # 75m against 60m
    assert "1h15m (+15m over)" in [t.get_text() for t in phases_ax.texts]
    assert "never started" in [t.get_text() for t in phases_ax.texts]  # phase three

    by_marker = {line.get_marker(): line for line in steps_ax.get_lines() if line.get_marker()}
    index = {r.label.split()[0]: y for y, r in enumerate(data.steps)}
    assert list(by_marker["X"].get_ydata()) == [index["1.3"]]  # skipped
    never = by_marker[">"]
    assert set(never.get_xdata()) == {data.end}  # never done: drawn at the far end
    assert index["1.4"] in list(never.get_ydata()) and index["1.1"] not in list(never.get_ydata())
    done = [line for line in steps_ax.get_lines() if line.get_marker() == "o"]
    colours = {to_hex(line.get_color()): list(line.get_ydata()) for line in done}
    assert colours[COLORS["on_time"]] == [index["1.1"]]
    assert colours[COLORS["late"]] == [index["1.2"]]
    legend = [t.get_text() for t in steps_ax.get_legend().get_texts()]
    assert legend == [
        "deadline",
        "done on time",
        "done late",
        "done (no deadline)",
        "skipped",
        "never done",
    ]
    assert [t.get_text() for t in phases_ax.get_legend().get_texts()] == [
        "target",
        "actual",
        "over target",
    ]


def test_a_fresh_incident_with_phases_never_started_and_no_steps_still_draws(
    service, clock, tmp_path
):
    incident = service.start("service-outage", "Just declared", "ana").incident
    review = _review(service, incident)
    assert [p.actual for p in review["phases"]][1:] == [None, None]
    assert draw_review_chart(review, tmp_path / "fresh.png") == tmp_path / "fresh.png"
    # no steps and no phases at all (e.g. a caller that has none): a chart that says so
    empty = draw_plan_vs_actual(review["incident"], [], [], tmp_path / "empty.png")
    assert empty == tmp_path / "empty.png"
    render = Renderer("en")
    figure = _built(chart_data(review["incident"], [], [], render), render)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "No steps to show" in texts and "No phases to show" in texts


def _tick_boxes(figure, ax):
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    return labels, [t.get_window_extent() for t in labels]


def test_sixty_steps_stay_legible(tmp_path, store, clock):
    service, incident = _many_steps(tmp_path, store, clock, 60)
    review = _review(service, incident)
    path = draw_review_chart(review, tmp_path / "sixty.png")
    assert path is not None
    width, height = _png_size(path)
    assert height >= 60 * STEP_ROW * DPI  # the figure grew with the steps
    render = Renderer("en")
    data = chart_data(review["incident"], review["phases"], review["steps"], render)
    figure = _built(data, render)
    labels, boxes = _tick_boxes(figure, figure.axes[1])
    assert len(labels) == 60
    assert min(t.get_fontsize() for t in labels) >= 8
    for upper, lower in zip(boxes, boxes[1:], strict=False):
        assert lower.y1 <= upper.y0 + 0.5  # no two labels overlap
    assert all(box.x0 >= 0 for box in boxes)  # none cut off at the left edge


def test_hundreds_of_steps_are_capped_with_a_line_saying_how_many_more(tmp_path, store, clock):
    service, incident = _many_steps(tmp_path, store, clock, 200)
    review = _review(service, incident)
    path = draw_review_chart(review, tmp_path / "many.png")
    assert path is not None
    _, height = _png_size(path)
    assert height <= 4_000
    render = Renderer("en")
    data = chart_data(review["incident"], review["phases"], review["steps"], render)
    assert len(data.steps) == MAX_STEP_ROWS and data.hidden_steps == 200 - MAX_STEP_ROWS
    figure = _built(data, render)
    labels = [t.get_text() for t in figure.axes[1].get_yticklabels()]
    assert labels[-1] == f"… and {200 - MAX_STEP_ROWS} more steps"


# --- Chinese ------------------------------------------------------------------------

ZH_TITLE = "支付服务大面积超时，订单无法提交"


def test_a_chinese_title_is_drawn_in_the_cjk_font(service, clock, tmp_path):
    font = cjk_font()
    assert font is not None, "no CJK font: bot/fonts/ ships a Noto Sans CJK SC subset"
    from matplotlib import font_manager

    families, charset = chart._font_setup(font)
    assert families[0] == "DejaVu Sans" and len(families) == 2
    assert font_manager.findfont(font_manager.FontProperties(family=families[1])) == str(font)
    assert all(ord(c) in charset for c in ZH_TITLE)

    incident = _played(service, clock, ZH_TITLE, runbook="service-outage-zh")
    review = _review(service, incident, "zh")
    path = draw_review_chart(review, tmp_path / "zh.png")
    assert path == tmp_path / "zh.png"
    data = chart_data(
        review["incident"], review["phases"], review["steps"], Renderer("zh"), charset
    )
    assert data.title == f"INC-1 · {ZH_TITLE}（sev1）"
    assert data.labels["steps"] == Renderer("zh")("chart.steps") != Renderer("en")("chart.steps")
    assert data.steps[0].label.startswith("1.1 应急团队集结")


def test_without_a_cjk_font_it_still_draws_in_english_and_quietly(
    service, clock, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(chart, "cjk_font", lambda: None)
    incident = _played(service, clock, f"DB 主从切换 failover {ZH_TITLE}", "service-outage-zh")
    review = _review(service, incident, "zh")
    drawn: list = []
    real = chart.build_figure
    monkeypatch.setattr(
        chart, "build_figure", lambda data, render: drawn.append(data) or real(data, render)
    )
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        path = draw_review_chart(review, tmp_path / "fallback.png")
    assert path == tmp_path / "fallback.png" and _png_size(path)[0] == WIDTH * DPI
    (data,) = drawn
    assert data.title == "INC-1 · DB failover (sev1)"  # what no font could draw is left out
    assert data.labels["steps"] == "Steps: deadline against done"  # English labels instead
    assert data.steps[0].label == "1.1"  # the step id stands for a title no font can draw
    _, charset = chart._font_setup(None)
    drawn_text = [data.title, *(r.label for r in data.steps), *(r.label for r in data.phases)]
    assert all(ord(c) in charset for text in drawn_text for c in text)
    assert not seen
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_glyph_missing_warnings_never_reach_the_logs(tmp_path, service, clock, monkeypatch):
    """Even text that slipped past the filtering draws without a warning."""
    monkeypatch.setattr(chart, "cjk_font", lambda: None)
    monkeypatch.setattr(chart, "fit_text", lambda text, charset, columns: text)
    incident = service.start("service-outage-zh", ZH_TITLE, "ana").incident
    review = _review(service, incident, "zh")

    def draw(name: str) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert draw_review_chart(review, tmp_path / name) is not None
        return [str(w.message) for w in seen]

    assert draw("quiet.png") == []
    monkeypatch.setattr(chart, "_quiet", nullcontext)  # the control: matplotlib does warn
    assert any("missing from font" in m for m in draw("loud.png"))


# --- failure never reaches the caller -------------------------------------------------


def test_a_chart_that_cannot_be_written_returns_none_and_logs_one_line(
    service, clock, tmp_path, caplog
):
    incident = _played(service, clock)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="bot.chart")
    assert draw_review_chart(_review(service, incident), blocker / "INC-1.png") is None
    lines = [r for r in caplog.records if r.name == "bot.chart"]
    assert len(lines) == 1 and "INC-1" in lines[0].getMessage()
    assert lines[0].exc_info is None  # one line, no traceback


def test_a_drawing_error_returns_none_and_leaves_no_partial_file(
    service, clock, tmp_path, monkeypatch, caplog
):
    incident = _played(service, clock)
    review = _review(service, incident)

    def broken(data, render):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(chart, "build_figure", broken)
    assert draw_review_chart(review, tmp_path / "INC-1.png") is None
    assert list(tmp_path.glob("INC-1*")) == []
    assert "renderer exploded" in caplog.text


def test_without_matplotlib_the_chart_is_skipped(service, clock, tmp_path, monkeypatch):
    incident = _played(service, clock)
    review = _review(service, incident)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    assert draw_review_chart(review, tmp_path / "INC-1.png") is None
    assert draw_review_chart({"language": "en"}, tmp_path / "INC-1.png") is None


# --- hostile text ---------------------------------------------------------------------


def test_hostile_titles_are_bounded_and_never_taken_for_mathtext(service, clock, tmp_path):
    title = "$\\frac{1}{$ \x00\x1b[31m" + "Ω" * 5_000 + " 中" * 3_000
    incident = _played(service, clock, title)
    review = _review(service, incident)
    path = draw_review_chart(review, tmp_path / "hostile.png")
    assert path is not None
    assert _png_size(path)[0] == WIDTH * DPI
    fitted = fit_text(title, None, MAX_TITLE)
    assert fitted.startswith("$\\frac{1}{$ [31mΩ") and fitted.endswith("…")
    assert sum(2 if c == "中" else 1 for c in fitted) <= MAX_TITLE
    render = Renderer("en")
    data = chart_data(review["incident"], review["phases"], review["steps"], render)
    figure = _built(data, render)
    heading = figure.texts[0]
    assert heading.get_text().startswith("INC-1 · $\\frac{1}{$")  # drawn as typed, no mathtext
    box = heading.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= WIDTH * DPI  # shrunk or cut to fit the picture
    assert heading.get_fontsize() >= 9
    assert heading.get_text().endswith("… (sev1)") and "……" not in heading.get_text()


def test_fit_text_counts_wide_characters_and_drops_what_no_font_draws():
    assert fit_text("abcdef", None, 6) == "abcdef"
    assert fit_text("abcdefg", None, 6) == "abcde…"
    assert fit_text("故障确认与恢复", None, 6) == "故障…"  # two columns each
    assert fit_text("故障 (restore)", frozenset(map(ord, "restoe ()")), 20) == "(restore)"
    assert fit_text("故障——", frozenset(map(ord, "—")), 20) == ""  # nothing meaningful left
    assert fit_text("a\n\tb  c", None, 20) == "a b c"
    assert fit_text('"Quoted", she said', None, 30) == '"Quoted", she said'
    latin = frozenset(map(ord, "(B) x"))
    assert fit_text("实施，(B) x", latin, 20) == "(B) x"  # no stray comma left in front


# --- the bot's own start-up does not pay for matplotlib -------------------------------


def test_importing_the_bot_does_not_import_matplotlib():
    code = (
        "import sys, bot.chart, bot.postmortem, bot.cli, bot.bootstrap, bot.dispatch;"
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def _without_matplotlib_folders(monkeypatch) -> None:
    """No MPLCONFIGDIR or XDG_* for this test, and none after it: set first, so that the
    monkeypatch puts back what there was (it forgets a variable deleted while unset, and
    would then restore the MPLCONFIGDIR `ensure_config_dir` set, for the next tests)."""
    for name in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_matplotlib_gets_a_writable_folder_when_home_has_none(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    _without_matplotlib_folders(monkeypatch)
    monkeypatch.setenv("HOME", str(blocker / "home"))  # cannot be created: its parent is a file
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    folder = ensure_config_dir()
    assert folder is not None and folder.parent == tmp_path / "tmp"
    assert os.environ["MPLCONFIGDIR"] == str(folder) and os.access(folder, os.W_OK)
    # set already, or a writable home: left alone
    assert ensure_config_dir() is None
    monkeypatch.delenv("MPLCONFIGDIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ensure_config_dir() is None and "MPLCONFIGDIR" not in os.environ


def test_a_planted_temp_folder_is_not_used(tmp_path, monkeypatch):
    _without_matplotlib_folders(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("HOME", str(blocker / "home"))
    shared = tmp_path / "tmp"
    (tmp_path / "elsewhere").mkdir()
    shared.mkdir()
    uid = os.getuid()
    (shared / f"incident-bot-matplotlib-{uid}").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("TMPDIR", str(shared))
    monkeypatch.setattr("tempfile.tempdir", None)
    folder = ensure_config_dir()
    assert folder is not None and not folder.is_symlink()
    assert folder.parent == shared and folder.name != f"incident-bot-matplotlib-{uid}"
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_process_with_an_unwritable_home_draws_without_a_word_on_stderr(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    (tmp_path / "tmp").mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")
    }
    env.update(HOME=str(blocker / "home"), TMPDIR=str(tmp_path / "tmp"))
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from bot.chart import draw_review_chart
        from bot.clock import FakeClock
        from bot.engine import IncidentService
        from bot.postmortem import compile_review
        from bot.runbook import Catalog, shipped_runbooks_dir
        from bot.store import Store
        from tests.conftest import START

        store = Store(Path({str(tmp_path / "bot.db")!r}))
        service = IncidentService(store, FakeClock(START), Catalog(shipped_runbooks_dir()))
        incident = service.start("service-outage-zh", "数据库故障", "ana").incident
        review = compile_review(store, store.incident(incident.id), "zh")
        print(draw_review_chart(review, Path({str(tmp_path / "INC-1.png")!r})))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "INC-1.png")
    assert result.stderr == ""  # no "Matplotlib created a temporary cache directory…"
    assert list((tmp_path / "tmp").glob("incident-bot-matplotlib-*"))


# --- a rebuild of the same record --------------------------------------------------


def _counting_builds(monkeypatch) -> list[object]:
    builds: list[object] = []
    real = chart.build_figure

    def counted(data, render):
        builds.append(data)
        return real(data, render)

    monkeypatch.setattr(chart, "build_figure", counted)
    return builds


def test_a_rebuild_of_an_unchanged_record_keeps_the_picture_without_drawing_it(
    service, clock, tmp_path, monkeypatch
):
    incident = _played(service, clock)  # closed: its plan-versus-actual no longer moves
    path = tmp_path / "INC-1.png"
    assert draw_review_chart(_review(service, incident), path) == path
    drawn = path.read_bytes()
    assert read_mark(path) and [b for k, b in _chunks(drawn) if k == b"tEXt"] == [
        f"{MARK}\0{read_mark(path)}".encode("latin-1")
    ]
    builds = _counting_builds(monkeypatch)
    os.utime(path, (1, 1))
    assert draw_review_chart(_review(service, incident), path) == path
    assert builds == [] and path.stat().st_mtime == 1 and path.read_bytes() == drawn
    # another language is another picture
    assert draw_review_chart(_review(service, incident, "zh"), path) == path
    assert len(builds) == 1 and path.read_bytes() != drawn


def test_a_changed_record_or_a_file_the_bot_did_not_draw_is_drawn_again(
    service, clock, tmp_path, monkeypatch
):
    incident = service.start("service-outage", "Checkout down", "ana").incident
    path = tmp_path / "INC-1.png"
    assert draw_review_chart(_review(service, incident), path) == path
    before = path.read_bytes()
    builds = _counting_builds(monkeypatch)
    clock.advance(timedelta(minutes=5))
    service.done(incident.id, "1.1", "ana")
    assert draw_review_chart(_review(service, incident), path) == path
    assert len(builds) == 1 and path.read_bytes() != before
    after = path.read_bytes()
    # someone's own picture, its mark taken off, one cut short with its mark still in it,
    # a link to a marked chart, a FIFO (never opened for reading): none has a mark
    unmarked = after.replace(MARK.encode(), b"x" * len(MARK))
    for planted in (b"not a png", unmarked, after[: len(after) // 3]):
        path.write_bytes(planted)
        assert read_mark(path) is None, planted[:20]
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(after)
    assert read_mark(elsewhere) is not None
    path.unlink()
    path.symlink_to(elsewhere)
    assert read_mark(path) is None
    path.unlink()
    os.mkfifo(path)
    assert read_mark(path) is None
    # and so the picture is drawn again, in place of what was there
    assert draw_review_chart(_review(service, incident), path) == path
    assert path.is_file() and path.read_bytes() == after
    assert len(builds) == 2


def test_two_rebuilds_at_once_draw_the_picture_once(service, clock, tmp_path, monkeypatch):
    """Two deliveries of one review (a `/incident postmortem` beside the close's) in two
    threads: one draws, the other finds the finished file's mark; nothing half-written."""
    incident = _played(service, clock)
    review = _review(service, incident)
    path = tmp_path / "INC-1.png"
    builds = _counting_builds(monkeypatch)
    start = threading.Barrier(2)
    results: list[object] = []

    def rebuild() -> None:
        start.wait(timeout=30)
        results.append(draw_review_chart(review, path))

    threads = [threading.Thread(target=rebuild) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [path, path] and len(builds) == 1
    assert read_mark(path) is not None  # a whole PNG, IEND and all
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("INC-1")) == ["INC-1.png"]


def test_what_a_draw_killed_halfway_left_is_cleared_by_the_next(
    service, clock, tmp_path, monkeypatch
):
    """A process killed inside savefig leaves `INC-n.png.tmp` (the picture itself is only
    ever renamed into place): the next build, drawing or not, leaves no such file."""
    incident = _played(service, clock)
    path = tmp_path / "INC-1.png"
    leftover = tmp_path / "INC-1.png.tmp"
    leftover.write_bytes(b"\x89PNG\r\n\x1a\n half")  # killed on the first draw
    assert draw_review_chart(_review(service, incident), path) == path
    assert read_mark(path) is not None and not leftover.exists()
    drawn = path.read_bytes()
    builds = _counting_builds(monkeypatch)
    leftover.write_bytes(drawn[:100])  # killed while redrawing an unchanged picture
    assert draw_review_chart(_review(service, incident), path) == path
    assert builds == [] and path.read_bytes() == drawn and not leftover.exists()


def test_a_setting_that_changes_the_look_changes_the_mark(service, clock, tmp_path, monkeypatch):
    """matplotlib's settings in force (a matplotlibrc, MPLCONFIGDIR's) are part of the mark:
    with another background the picture is drawn again."""
    import matplotlib

    incident = _played(service, clock)
    path = tmp_path / "INC-1.png"
    assert draw_review_chart(_review(service, incident), path) == path
    before, mark = path.read_bytes(), read_mark(path)
    monkeypatch.setitem(matplotlib.rcParams, "axes.facecolor", "yellow")
    assert draw_review_chart(_review(service, incident), path) == path
    assert read_mark(path) != mark and path.read_bytes() != before


# --- straight from the record ------------------------------------------------------


def _captured(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    real = chart.draw_plan_vs_actual

    def spy(incident, phases, steps, path, language="en"):
        calls.append((phases, steps, language))
        return real(incident, phases, steps, path, language)

    monkeypatch.setattr(chart, "draw_plan_vs_actual", spy)
    return calls


def test_the_chart_from_the_record_has_the_reviews_figures_without_reading_the_timeline(
    service, store, clock, tmp_path, monkeypatch
):
    incident = _played(service, clock)
    review = _review(service, incident, "zh")
    calls = _captured(monkeypatch)
    read: list[int] = []
    events = store.events
    monkeypatch.setattr(store, "events", lambda iid, *a: read.append(iid) or events(iid, *a))
    path = chart.draw_incident_chart(store, store.incident(incident.id), tmp_path / "r.png", "zh")
    assert path == tmp_path / "r.png" and _png_size(path)[0] == WIDTH * DPI
    assert calls == [(review["phases"], review["steps"], "zh")]
    assert read == []  # closed: its end is known without the timeline


def test_an_open_incidents_chart_ends_at_its_last_event_and_says_not_done_yet(
    service, store, clock, tmp_path, monkeypatch
):
    incident = service.start("service-outage", "Still going", "ana").incident
    clock.advance(timedelta(minutes=40))
    service.update(incident.id, "Looking at the database", "ana")
    clock.advance(timedelta(minutes=30))  # no event since: the record ends at 40m
    review = _review(service, incident)
    calls = _captured(monkeypatch)
    assert chart.draw_incident_chart(store, store.incident(incident.id), tmp_path / "o.png")
    assert calls == [(review["phases"], review["steps"], "en")]
    assert review["phases"][0].actual == timedelta(minutes=40)
    render = Renderer("en")
    data = chart_data(review["incident"], review["phases"], review["steps"], render)
    assert data.labels["not_done"] == "not done yet"


def test_a_record_that_cannot_be_read_gives_no_chart_and_one_line(
    service, store, clock, tmp_path, monkeypatch, caplog
):
    incident = _played(service, clock)

    def gone(iid):
        raise OSError("database is locked")

    monkeypatch.setattr(store, "phase_runs", gone)
    caplog.set_level(logging.WARNING, logger="bot.chart")
    assert chart.draw_incident_chart(store, incident, tmp_path / "x.png") is None
    assert [r.getMessage() for r in caplog.records] == [
        "chart for INC-1 not drawn: OSError: database is locked"
    ]
