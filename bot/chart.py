"""Plan versus actual as a picture: `INC-n.png`, drawn beside the review's Markdown.

Two panels share one figure. Phases: the target against the time actually spent
(re-entered phases add up), the overrun in red. Steps: each step's deadline
against when it was done, skipped, or never done, in minutes since the incident
was declared, with the mitigated and resolved moments marked.

matplotlib (Agg, no pyplot) is imported only when a chart is drawn: the bot's
start-up and command path never pay for it. Chinese text needs a CJK font:
the Noto Sans CJK SC subset shipped in `bot/fonts/` (the 6,763 characters of
GB 2312; see its OFL.txt), else one installed on the system. Without one the
chart is still drawn, with English labels and the characters no font has left
out, and matplotlib's "Glyph missing" warnings never reach the logs. Drawing
never raises: on any failure `draw_*` logs one line and returns None, so a
review never fails because of its chart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import struct
import tempfile
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.messages import TEMPLATES, Renderer
from bot.metrics import PhaseOutcome, StepOutcome, phase_outcomes, step_outcomes
from bot.model import Incident
from bot.store import Store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text
    from matplotlib.transforms import Transform

log = logging.getLogger(__name__)

DPI = 100
WIDTH = 11.0  # inches: 1,100 px
STEP_ROW = 0.24  # inches per step; 8 pt labels stay legible down to this
PHASE_ROW = 0.42
MAX_STEP_ROWS = 120  # past this the last rows give way to a "… more steps" line
MAX_PHASE_ROWS = 20
MAX_LABEL = 48  # display columns (a CJK character counts two)
MAX_TITLE = 90

# Families tried on the system when no packaged CJK font is installed, best first.
SYSTEM_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "AR PL UKai CN",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
)
SHIPPED_CJK = Path(__file__).parent / "fonts" / "NotoSansCJKsc-Regular-GB2312.otf"

COLORS = {
    "target": "#c9ced6",
    "actual": "#4a78b5",
    "over": "#c0392b",
    "deadline": "#222222",
    "on_time": "#1b9e77",
    "late": "#d95f02",
    "no_deadline": "#4a78b5",
    "skipped": "#7f7f7f",
    "not_done": "#c0392b",
    "band": "#f3f4f6",
    "milestone": "#555555",
}

_LOCK = threading.Lock()  # rcParams and warning filters are process-wide


# --- the data drawn: plain numbers, computed without matplotlib -----------------------


@dataclass(frozen=True)
class PhaseRow:
    label: str
    target: float  # minutes
    actual: float | None  # minutes; None: never started


@dataclass(frozen=True)
class StepRow:
    label: str
    phase: int  # index of its phase, for the background bands
    deadline: float | None  # minutes since declared
    at: float | None  # minutes since declared, done or skipped
    verdict: str  # on_time | late | skipped | not_done | no_deadline


@dataclass(frozen=True)
class ChartData:
    title: str  # the heading: chart.title of ref, name and severity
    subtitle: str
    ref: str
    name: str  # the incident's title as far as the fonts can draw it
    severity: str
    phases: list[PhaseRow]
    steps: list[StepRow]
    hidden_steps: int  # rows left out past MAX_STEP_ROWS
    end: float  # minutes: where "never done" is drawn
    milestones: list[tuple[str, float]]
    labels: dict[str, str]


def _minutes(moment: datetime | None, start: datetime) -> float | None:
    return None if moment is None else (moment - start).total_seconds() / 60


def _span(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds() / 60


def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit_text(text: str, charset: frozenset[int] | None, columns: int) -> str:
    """One line of what the fonts can draw, at most `columns` wide ('…' when cut).

    Characters outside `charset` are left out (None keeps all); a result with no
    letter or digit left is empty. (`$` stays as it is: the chart turns mathtext off.)
    """
    drawable = "".join(
        " " if c.isspace() else c
        for c in text
        if c.isspace() or not unicodedata.category(c).startswith("C")
    )
    kept = "".join(c for c in drawable if charset is None or c == " " or ord(c) in charset)
    kept = " ".join(kept.split())
    if len(kept) < len(" ".join(drawable.split())):  # some left out: no stray punctuation first
        while kept and unicodedata.category(kept[0]) in ("Pd", "Pe", "Pf", "Po"):
            kept = kept[1:].lstrip()
    if not any(c.isalnum() for c in kept):
        return ""
    if sum(map(_width, kept)) > columns:
        cut, used = [], 0
        for char in kept:
            if used + _width(char) > columns - 1:  # room for the ellipsis
                break
            cut.append(char)
            used += _width(char)
        kept = "".join(cut).rstrip() + "…"
    return kept


def chart_data(
    incident: Incident,
    phases: Sequence[PhaseOutcome],
    steps: Sequence[StepOutcome],
    render: Renderer,
    charset: frozenset[int] | None = None,
) -> ChartData:
    """The numbers and labels of the chart, in minutes since the incident was declared."""
    start = incident.started_at
    phase_index = {o.phase.id: n for n, o in enumerate(phases)}
    phase_rows = [
        PhaseRow(
            label=render(
                "chart.phase_label",
                number=n + 1,
                name=fit_text(o.phase.name, charset, MAX_LABEL - 4) or o.phase.id,
                runs=o.runs,
            ),
            target=o.target.total_seconds() / 60,
            actual=_span(o.actual),
        )
        for n, o in enumerate(phases[:MAX_PHASE_ROWS])
    ]
    step_rows = []
    for o in steps:
        title = fit_text(o.step.title, charset, MAX_LABEL - len(o.step.id) - 1)
        step_rows.append(
            StepRow(
                label=f"{o.step.id} {title}".rstrip(),
                phase=phase_index.get(o.phase.id, 0),
                deadline=_minutes(o.deadline, start),
                at=_minutes(o.record.at, start) if o.record is not None else None,
                verdict=o.verdict,
            )
        )
    hidden = max(len(step_rows) - MAX_STEP_ROWS, 0)
    step_rows = step_rows[:MAX_STEP_ROWS]
    milestones = [
        (render(key), minutes)
        for key, moment in (
            ("chart.mitigated", incident.mitigated_at),
            ("chart.resolved", incident.resolved_at),
        )
        if (minutes := _minutes(moment, start)) is not None
    ]
    closed = _minutes(incident.closed_at or incident.resolved_at, start)
    seen = [m for r in step_rows for m in (r.deadline, r.at) if m is not None]
    seen += [m for _, m in milestones]
    end = max([closed or 0.0, *seen, 1.0])
    title = fit_text(incident.title, charset, MAX_TITLE)
    labels = {
        key: render(f"chart.{key}")
        for key in (
            "phases",
            "steps",
            "phase_axis",
            "step_axis",
            "target",
            "actual",
            "over",
            "deadline",
            "on_time",
            "late",
            "no_deadline",
            "skipped",
            "not_done",
            "not_started",
            "no_steps",
            "no_phases",
        )
    }
    labels["hidden"] = render("chart.hidden_steps", count=hidden)
    if incident.resolved_at is None and incident.closed_at is None:
        labels["not_done"] = render("chart.not_done_yet")  # it may still be done
    return ChartData(
        title=render("chart.title", ref=incident.ref, title=title, severity=incident.severity),
        subtitle=render("chart.subtitle", declared=start.strftime("%Y-%m-%d %H:%M UTC")),
        ref=incident.ref,
        name=title,
        severity=incident.severity,
        phases=phase_rows,
        steps=step_rows,
        hidden_steps=hidden,
        end=end,
        milestones=milestones,
        labels=labels,
    )


def _duration_label(render: Renderer, actual: float, target: float) -> str:
    over = actual - target
    return render(
        "chart.phase_value",
        actual=timedelta(minutes=actual),
        over=timedelta(minutes=over) if over > 0 else None,
    )


# --- fonts and matplotlib's environment ----------------------------------------------


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def ensure_config_dir() -> Path | None:
    """Give matplotlib a writable config/cache folder (MPLCONFIGDIR) when HOME has none.

    Left alone when MPLCONFIGDIR is set or matplotlib's own folders are writable;
    otherwise a private folder in the temp directory. Returns the folder it set.
    """
    if os.environ.get("MPLCONFIGDIR"):
        return None
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        home = None
    config = os.environ.get("XDG_CONFIG_HOME") or (str(home / ".config") if home else None)
    cache_dir = os.environ.get("XDG_CACHE_HOME") or (str(home / ".cache") if home else None)
    if config and cache_dir and all(_writable(Path(p) / "matplotlib") for p in (config, cache_dir)):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"incident-bot-matplotlib-{uid or 0}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        mine = uid is None or folder.stat().st_uid == uid
    except OSError:
        mine = False
    if not mine or folder.is_symlink() or not os.access(folder, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="incident-bot-matplotlib-"))  # not someone else's
    os.environ["MPLCONFIGDIR"] = str(folder)
    return folder


@cache
def cjk_font() -> Path | None:
    """The font file Chinese text is drawn in: the shipped Noto Sans CJK SC, else a system one."""
    if SHIPPED_CJK.is_file():
        return SHIPPED_CJK
    from matplotlib import font_manager

    by_name = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    for family in SYSTEM_CJK_FAMILIES:
        if family in by_name:
            return Path(by_name[family])
    return None


@cache
def _font_setup(cjk: Path | None) -> tuple[list[str], frozenset[int]]:
    """Font families for rcParams and every character they can draw."""
    from matplotlib import font_manager, ft2font

    base = font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    families = ["DejaVu Sans"]
    charset = set(ft2font.FT2Font(base).get_charmap())
    if cjk is not None:
        font_manager.fontManager.addfont(str(cjk))
        families.append(font_manager.FontProperties(fname=str(cjk)).get_name())
        charset |= set(ft2font.FT2Font(str(cjk)).get_charmap())
    return families, frozenset(charset)


@contextmanager
def _quiet() -> Iterator[None]:
    """No 'Glyph missing' warnings, no font-cache or font-finding chatter from matplotlib."""
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
            warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")
            yield
    finally:
        logger.setLevel(level)


@contextmanager
def chart_style() -> Iterator[tuple[Path | None, frozenset[int]]]:
    """Fonts and settings the chart is built and drawn in: (CJK font or None, drawable chars).

    One chart at a time (matplotlib's settings are process-wide); mathtext off, so a
    `$` in a title is a dollar sign; matplotlib's warnings and chatter kept out of the logs.
    """
    with _LOCK, _quiet():
        import matplotlib

        cjk = cjk_font()
        families, charset = _font_setup(cjk)
        with matplotlib.rc_context(
            {
                "font.family": families,
                "font.size": 8.5,
                "text.parse_math": False,
                "axes.unicode_minus": False,
            }
        ):
            yield cjk, charset


# --- drawing ------------------------------------------------------------------------


def draw_plan_vs_actual(
    incident: Incident,
    phases: Sequence[PhaseOutcome],
    steps: Sequence[StepOutcome],
    path: Path,
    language: str = "en",
) -> Path | None:
    """Draw the chart to `path` (PNG, written atomically); None if it could not be drawn."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        ensure_config_dir()
        with chart_style() as (cjk, charset):
            if cjk is None and language != "en":
                language = "en"  # the labels would be boxes: English ones instead
            render = Renderer(language)
            data = chart_data(incident, phases, steps, render, charset)
            mark = chart_mark(data, language, cjk)
            if mark is not None and read_mark(path) == mark:  # a rebuild, the same picture
                tmp.unlink(missing_ok=True)  # left by a draw killed halfway, if any
                return path
            path.parent.mkdir(parents=True, exist_ok=True)
            figure = build_figure(data, render)
            metadata: dict[str, str | None] = {"Software": None}
            if mark is not None:
                metadata[MARK] = mark
            figure.savefig(tmp, format="png", dpi=DPI, metadata=metadata)
            # in place before the lock is let go: the next draw of this path reads the
            # finished file's mark, and never writes the same .tmp while it is renamed
            tmp.replace(path)
        return path
    except Exception as exc:  # the review must never fail because of its chart
        log.warning("chart for %s not drawn: %s: %s", incident.ref, type(exc).__name__, exc)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return None


# A PNG text chunk: the digest of everything the picture was drawn from. A rebuild whose
# digest matches the file's leaves the file alone (0.3-2.5 s of CPU saved on each
# `/incident postmortem` after close, where the plan-versus-actual record no longer moves).
MARK = "incident-bot chart"
_MARK_SCAN = 64 * 1024  # the text chunks come before the image data
_IEND = b"\0\0\0\0IEND\xaeB`\x82"  # a PNG's last chunk: the file was written to its end
# the code a picture's look depends on besides matplotlib: drawing, labels, durations
_DRAWING_CODE = ("chart", "messages", "timefmt")


def chart_mark(data: ChartData, language: str, cjk: Path | None) -> str | None:
    """The digest of a picture's inputs: its data and language, matplotlib's settings in
    force (call it inside `chart_style()`), and what draws it (the drawing code, the message
    catalogs, matplotlib's version, the CJK font). Equal marks, equal pictures. None when
    the code cannot be read: then every chart is drawn."""
    import matplotlib

    identity = _drawing_identity(cjk)
    if identity is None:
        return None
    digest = hashlib.sha256(identity.encode())
    digest.update(repr((language, data, sorted(matplotlib.rcParams.items()))).encode())
    return digest.hexdigest()


@cache
def _drawing_identity(cjk: Path | None) -> str | None:
    import matplotlib

    package = Path(__file__).parent
    sources = [package / f"{name}{Path(__file__).suffix}" for name in _DRAWING_CODE]
    sources += sorted(TEMPLATES.glob("messages.*.yaml"))
    sources += [cjk] if cjk is not None else []
    try:
        digests = [_file_digest(p) for p in sources]
    except OSError:
        return None
    return "\n".join([matplotlib.__version__, str(cjk), *digests])


def _file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_mark(path: Path) -> str | None:
    """The mark of the chart at `path`, or None: no such regular file (a symlink, a FIFO
    are never opened for reading), not a PNG written to its end, or no mark."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size < 8 + len(_IEND):
                return None
            head = handle.read(_MARK_SCAN)
            handle.seek(info.st_size - len(_IEND))
            tail = handle.read(len(_IEND))
        except OSError:
            return None
    if not head.startswith(b"\x89PNG\r\n\x1a\n") or tail != _IEND:
        return None
    at, key = 8, MARK.encode("latin-1") + b"\0"
    while at + 8 <= len(head):
        (length,) = struct.unpack(">I", head[at : at + 4])
        kind, body = head[at + 4 : at + 8], head[at + 8 : at + 8 + length]
        if kind == b"IDAT" or len(body) < length:
            return None
        if kind == b"tEXt" and body.startswith(key):
            return body[len(key) :].decode("latin-1")
        at += 12 + length
    return None


def draw_review_chart(review: Mapping[str, Any], path: Path) -> Path | None:
    """The chart of a compiled review (`bot.postmortem.compile_review`'s dict)."""
    try:
        incident, phases, steps = review["incident"], review["phases"], review["steps"]
        language = str(review.get("language", "en"))
    except (KeyError, TypeError) as exc:
        log.warning("chart not drawn: the review has no %s", exc)
        return None
    return draw_plan_vs_actual(incident, phases, steps, path, language)


def draw_incident_chart(
    store: Store, incident: Incident, path: Path, language: str = "en"
) -> Path | None:
    """The chart straight from the record, without compiling the whole review.

    Reads only the phase runs and step records (the timeline only for an incident
    neither resolved nor closed, to know where it stands), so delivering a review
    with its chart does not read a long timeline twice. Figures as `compile_review`'s.
    """
    try:
        runs = store.phase_runs(incident.id)
        end = incident.closed_at or incident.resolved_at
        if end is None:
            events = store.events(incident.id)
            end = events[-1].at if events else incident.started_at
        phases = phase_outcomes(incident, runs, end)
        steps = step_outcomes(incident, store.step_records(incident.id), runs)
    except Exception as exc:  # as in draw_plan_vs_actual: never fail the review
        log.warning("chart for %s not drawn: %s: %s", incident.ref, type(exc).__name__, exc)
        return None
    return draw_plan_vs_actual(incident, phases, steps, path, language)


def chart_path(markdown: Path) -> Path:
    """`…/INC-7.md` → `…/INC-7.png`: the chart lives beside its review."""
    return markdown.with_suffix(".png")


def build_figure(data: ChartData, render: Renderer) -> Figure:
    """The chart as a matplotlib figure, nothing written; build and draw it in `chart_style()`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    phase_rows = max(len(data.phases), 1)
    step_rows = max(len(data.steps), 1) + (1 if data.hidden_steps else 0)
    top, gap, axis, legend, head = 0.75, 0.45, 0.45, 0.35, 0.3
    phase_h = phase_rows * PHASE_ROW + 0.2
    step_h = step_rows * STEP_ROW + 0.2
    height = top + head + phase_h + axis + legend + gap + head + step_h + axis + legend + 0.1

    figure = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(figure)  # text is measured (and the PNG written) by Agg
    x = 0.5 / WIDTH
    heading = figure.text(x, 1 - 0.3 / height, data.title, fontsize=13, weight="bold", va="center")
    _fit_line(
        heading,
        data.name,
        lambda name: render("chart.title", ref=data.ref, title=name, severity=data.severity),
    )
    subtitle = figure.text(x, 1 - 0.58 / height, data.subtitle, fontsize=9, color="#555555")
    _fit_line(subtitle, data.subtitle, lambda text: text)
    phases_top = top + head
    steps_top = phases_top + phase_h + axis + legend + gap + head
    phases_ax = figure.add_axes((0.3, 0.5, 0.5, 0.1))
    steps_ax = figure.add_axes((0.3, 0.1, 0.5, 0.1))
    _draw_phases(phases_ax, data, render)
    _draw_steps(steps_ax, data)

    # the left margin fits the longest row label, as measured in the fonts drawn
    widest = max(
        (
            label.get_window_extent().width / DPI
            for ax in (phases_ax, steps_ax)
            for label in ax.get_yticklabels()
            if label.get_text()
        ),
        default=0.0,
    )
    left, right = min(max(widest + 0.35, 0.8), 4.8), 0.35
    for ax, y_top, h in ((phases_ax, phases_top, phase_h), (steps_ax, steps_top, step_h)):
        ax.set_position(
            (left / WIDTH, 1 - (y_top + h) / height, 1 - (left + right) / WIDTH, h / height)
        )
    return figure


def _fit_line(
    line: Text,
    part: str,
    compose: Callable[[str], str],
    room: float = WIDTH - 0.8,
    smallest: float = 9.0,
) -> None:
    """Shrink `line` (`compose(part)`) to `room` inches, down to `smallest` pt; then cut `part`."""
    width = line.get_window_extent().width / DPI
    if width <= room:
        return
    line.set_fontsize(max(float(line.get_fontsize()) * room / width, smallest))
    part = part.removesuffix("…")
    while part and line.get_window_extent().width / DPI > room:
        part = part[: len(part) * 9 // 10].rstrip()
        line.set_text(compose(part + "…" if part else ""))


def _panel_title(ax: Axes, text: str) -> None:
    ax.set_title(text, loc="left", fontsize=10.5, weight="bold", pad=8)


def _draw_phases(ax: Axes, data: ChartData, render: Renderer) -> None:
    from matplotlib.patches import Patch

    _panel_title(ax, data.labels["phases"])
    rows = data.phases
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xlabel(data.labels["phase_axis"])
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not rows:
        ax.text(0.5, 0.5, data.labels["no_phases"], transform=ax.transAxes, ha="center")
        ax.set_yticks([])
        return
    widest = max([r.target for r in rows] + [r.actual or 0 for r in rows] + [1.0])
    ax.set_xlim(0, widest * 1.18)
    ys = range(len(rows))
    ax.barh([y - 0.19 for y in ys], [r.target for r in rows], height=0.34, color=COLORS["target"])
    within = [min(r.actual or 0, r.target) for r in rows]
    ax.barh([y + 0.19 for y in ys], within, height=0.34, color=COLORS["actual"])
    over = [max((r.actual or 0) - r.target, 0) for r in rows]
    ax.barh(
        [y + 0.19 for y in ys],
        over,
        left=[r.target for r in rows],
        height=0.34,
        color=COLORS["over"],
    )
    pad = widest * 0.01
    for y, row in zip(ys, rows, strict=True):
        if row.actual is None:
            text, color, x = data.labels["not_started"], "#777777", pad
        else:
            text = _duration_label(render, row.actual, row.target)
            color = COLORS["over"] if row.actual > row.target else "#333333"
            x = row.actual + pad
        ax.text(x, y + 0.19, text, va="center", fontsize=7.5, color=color)
    ax.legend(
        handles=[
            Patch(color=COLORS["target"], label=data.labels["target"]),
            Patch(color=COLORS["actual"], label=data.labels["actual"]),
            Patch(color=COLORS["over"], label=data.labels["over"]),
        ],
        loc="upper left",
        bbox_to_anchor=(0, 0),
        bbox_transform=_below(ax, 0.45),
        ncol=3,
        frameon=False,
        fontsize=8,
    )


def _below(ax: Axes, inches: float) -> Transform:
    """Axes coordinates moved down by a fixed distance: wherever the axes end up."""
    from matplotlib.figure import Figure
    from matplotlib.transforms import offset_copy

    figure = ax.get_figure()
    assert isinstance(figure, Figure)
    return offset_copy(ax.transAxes, fig=figure, y=-inches, units="inches")


def _draw_steps(ax: Axes, data: ChartData) -> None:
    from matplotlib.lines import Line2D

    _panel_title(ax, data.labels["steps"])
    rows = data.steps
    count = len(rows) + (1 if data.hidden_steps else 0)
    labels = [r.label for r in rows] + ([data.labels["hidden"]] if data.hidden_steps else [])
    ax.set_yticks(range(count), labels)
    ax.set_ylim(max(count, 1) - 0.5, -0.5)
    ax.set_xlim(0, data.end * 1.04)
    ax.set_xlabel(data.labels["step_axis"])
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not rows:
        ax.text(0.5, 0.5, data.labels["no_steps"], transform=ax.transAxes, ha="center")
        ax.set_yticks([])
        return
    # alternate phases get a light band, so a long list still reads as its phases
    first = 0
    for n in range(1, len(rows) + 1):
        if n == len(rows) or rows[n].phase != rows[first].phase:
            if rows[first].phase % 2 == 1:
                ax.axhspan(first - 0.5, n - 0.5, color=COLORS["band"], zorder=0, linewidth=0)
            first = n
    for name, minutes in data.milestones:
        ax.axvline(minutes, color=COLORS["milestone"], linestyle=":", linewidth=1, zorder=1)
        ax.text(
            minutes,
            0.995,
            f"{name} ",
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="right",
            va="top",
            fontsize=7,
            color=COLORS["milestone"],
        )

    late = [
        (y, r.deadline, r.at)
        for y, r in enumerate(rows)
        if r.verdict == "late" and r.deadline is not None and r.at is not None
    ]
    ax.hlines(
        [y for y, _, _ in late],
        [deadline for _, deadline, _ in late],
        [at for _, _, at in late],
        color=COLORS["late"],
        linewidth=1.4,
        zorder=2,
    )
    never = [
        (y, r.deadline)
        for y, r in enumerate(rows)
        if r.verdict == "not_done" and r.deadline is not None
    ]
    ax.hlines(
        [y for y, _ in never],
        [deadline for _, deadline in never],
        [data.end] * len(never),
        color=COLORS["not_done"],
        linewidth=1.0,
        linestyles="dashed",
        zorder=2,
    )

    def points(verdicts: tuple[str, ...], at_end: bool = False) -> tuple[list[float], list[int]]:
        chosen = [(y, r) for y, r in enumerate(rows) if r.verdict in verdicts]
        xs = [data.end if at_end else (r.at or 0.0) for _, r in chosen]
        return xs, [y for y, _ in chosen]

    deadlines = [(r.deadline, y) for y, r in enumerate(rows) if r.deadline is not None]
    styles: list[tuple[str, list[float], list[int], dict[str, Any]]] = [
        (
            "deadline",
            [d for d, _ in deadlines],
            [y for _, y in deadlines],
            {"marker": "|", "markersize": 11, "markeredgewidth": 2, "color": COLORS["deadline"]},
        ),
        ("on_time", *points(("on_time",)), {"marker": "o", "color": COLORS["on_time"]}),
        ("late", *points(("late",)), {"marker": "o", "color": COLORS["late"]}),
        (
            "no_deadline",
            *points(("no_deadline",)),
            {"marker": "o", "color": COLORS["no_deadline"], "markerfacecolor": "white"},
        ),
        ("skipped", *points(("skipped",)), {"marker": "X", "color": COLORS["skipped"]}),
        (
            "not_done",
            *points(("not_done",), at_end=True),
            {"marker": ">", "color": COLORS["not_done"]},
        ),
    ]
    handles = []
    for key, xs, ys, style in styles:
        style = {"markersize": 6, **style}
        if xs:
            ax.plot(xs, ys, linestyle="none", zorder=3, clip_on=False, **style)
        handles.append(Line2D([], [], linestyle="none", label=data.labels[key], **style))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0, 0),
        bbox_transform=_below(ax, 0.45),
        ncol=6,
        frameon=False,
        fontsize=8,
        handletextpad=0.3,
        columnspacing=1.2,
    )
