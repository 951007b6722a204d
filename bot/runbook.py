"""Runbooks: emergency plans written in YAML, validated into pydantic models.

A runbook declares roles, ordered phases of time-boxed steps, risks with
fallbacks, the communication cadence and when the review is due. Loading never
raises a traceback at the user: every problem becomes `file:line: message`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from bot.durations import DurationError, format_duration, parse_duration
from bot.yaml_lines import LoadedYaml, YamlSyntaxError, dotted, load_yaml

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
Severity = Literal["sev1", "sev2", "sev3", "sev4"]
MILESTONES = ("start", "phase", "mitigated", "resolved")
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_RUNBOOK_BYTES = 256 * 1024  # the shipped runbooks are under 12 KiB
MAX_PROBLEMS = 50  # per file; a file with more is reported with the first ones and a count

log = logging.getLogger(__name__)


def _to_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{value!r} is not a duration; write it like 15m, 1h30m or 2d")
    if isinstance(value, int):
        raise ValueError(f"'{value}' has no unit; write it like {value}m or {value}h")
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deadline(_Model):
    """`15m` (after the incident start), `30m after phase`, `1h after mitigated`."""

    offset: timedelta
    anchor: Literal["start", "phase", "mitigated", "resolved"] = "start"

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, dict) or isinstance(value, Deadline):
            return value
        text = str(value).strip()
        match = re.fullmatch(r"(?P<offset>.+?)(?:\s+after\s+(?P<anchor>\S+))?", text)
        anchor = (match.group("anchor") if match else None) or "start"
        if anchor not in MILESTONES:
            raise ValueError(
                f"unknown milestone '{anchor}' in '{text}'; "
                f"use one of {', '.join(MILESTONES)} (e.g. '1h after mitigated')"
            )
        return {"offset": _to_duration(match.group("offset") if match else text), "anchor": anchor}

    @model_serializer
    def _text(self) -> str:
        return str(self)

    def __str__(self) -> str:
        offset = format_duration(self.offset)
        return offset if self.anchor == "start" else f"{offset} after {self.anchor}"


class RiskTrigger(_Model):
    """When a risk is taken to have happened, so the bot raises it during the incident:

    - `not mitigated within 2h` (or `not resolved within 6h`): the milestone is late,
      counted from the incident start;
    - `no update within 30m`: no status update for that long, counted from the last
      update (or the start); raised again for each such stretch until resolved."""

    milestone: Literal["mitigated", "resolved", "update"]
    within: timedelta

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, dict) or isinstance(value, RiskTrigger):
            return value
        text = " ".join(str(value).split())
        silence = re.fullmatch(r"(?i)no\s+(?:status\s+)?updates?\s+(?:within|for)\s+(.+)", text)
        if silence:
            return {"milestone": "update", "within": _to_duration(silence.group(1))}
        match = re.fullmatch(r"not\s+(\S+)\s+within\s+(.+)", text)
        if not match:
            raise ValueError(
                f"'{value}' is not a trigger; write it like 'not mitigated within 2h' "
                "or 'no update within 30m'"
            )
        milestone, within = match.groups()
        if milestone not in ("mitigated", "resolved"):
            raise ValueError(f"unknown milestone '{milestone}'; use mitigated or resolved")
        return {"milestone": milestone, "within": _to_duration(within)}

    @model_serializer
    def _text(self) -> str:
        if self.milestone == "update":
            return f"no update within {format_duration(self.within)}"
        return f"not {self.milestone} within {format_duration(self.within)}"


class Role(_Model):
    id: str = Field(pattern=_ID)
    name: str
    responsibilities: list[str] = []


class Contact(_Model):
    name: str
    purpose: str = ""
    how: str = ""


class Step(_Model):
    id: str = Field(pattern=_ID)
    title: str
    owner: Annotated[list[str], BeforeValidator(_as_list)] = Field(min_length=1)
    due: Deadline | None = None
    deliverable: str | None = None
    done_when: str | None = None


class Escalation(_Model):
    message: str
    severity: Severity | None = None


class Phase(_Model):
    id: str = Field(pattern=_ID)
    name: str
    goal: str = ""
    target: Duration
    remind_every: Duration = timedelta(minutes=15)
    escalation: Escalation | None = None
    steps: list[Step] = Field(min_length=1)


class Risk(_Model):
    id: str = Field(pattern=_ID)
    risk: str
    signal: str = ""
    trigger: RiskTrigger | None = None
    fallback: str
    escalate_to: Severity | None = None


class Channel(_Model):
    audience: str
    via: str = ""
    every: Duration | None = None
    content: str = ""


class Communication(_Model):
    update_every: Duration = timedelta(minutes=15)
    internal: Channel | None = None
    external: Channel | None = None


class Targets(_Model):
    """Response targets the postmortem measures against."""

    assemble: Duration | None = None
    mitigate: Duration | None = None
    resolve: Duration | None = None


class PostmortemSettings(_Model):
    due: Duration = timedelta(hours=24)
    owner: str | None = None
    template: str | None = None  # a file inside the runbook's folder (see resolve_template)


class Runbook(_Model):
    id: str = Field(pattern=_ID)
    name: str
    description: str = ""
    language: Literal["en", "zh"] = "en"
    default_severity: Severity = "sev2"
    private: bool = False  # a private channel; announcements carry no title
    targets: Targets = Targets()
    roles: list[Role] = Field(min_length=1)
    contacts: list[Contact] = []
    phases: list[Phase] = Field(min_length=1)
    risks: list[Risk] = []
    communication: Communication = Communication()
    postmortem: PostmortemSettings = PostmortemSettings()

    @field_validator("default_severity", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def role(self, role_id: str) -> Role | None:
        return next((r for r in self.roles if r.id == role_id), None)

    def steps(self) -> Iterable[tuple[Phase, Step]]:
        for phase in self.phases:
            for step in phase.steps:
                yield phase, step

    def step(self, step_id: str) -> tuple[Phase, Step] | None:
        return next(((p, s) for p, s in self.steps() if s.id == step_id), None)

    def phase_index(self, phase_id: str) -> int:
        return next(i for i, p in enumerate(self.phases) if p.id == phase_id)

    def snapshot(self) -> str:
        """Canonical JSON kept with each incident, so later edits never rewrite history."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_snapshot(cls, text: str) -> Runbook:
        """The runbook an incident started from; parsed once per distinct snapshot (models are
        frozen, so incidents of one runbook version share one object)."""
        return _parse_snapshot(text)


@lru_cache(maxsize=128)
def _parse_snapshot(text: str) -> Runbook:
    return Runbook.model_validate(json.loads(text))


# --- loading and validation ------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class RunbookInvalid(Exception):
    """A runbook file that cannot be used; `problems` lists each as file:line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedRunbook:
    runbook: Runbook
    path: Path
    version: str  # short content hash of the source file


def load_runbook(path: Path) -> LoadedRunbook:
    """Read and validate one runbook file, or raise RunbookInvalid with every problem found,
    sorted by line: the schema's and the cross-references' (an unknown owner, a duplicate
    step id) in one pass, so a file is fixed in one round.

    Whatever the file holds, this returns or raises RunbookInvalid within about the
    time it takes to read MAX_RUNBOOK_BYTES: see bot.yaml_lines for the bounds."""
    text = _read_bounded(path)
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    runbook = _VALID.get(text)
    if runbook is None or (runbook.postmortem.template and _template_problem(path, runbook)):
        runbook = _parse(path, text)  # raises RunbookInvalid with every problem
        _VALID.put(text, runbook)
    return LoadedRunbook(runbook=runbook, path=path, version=version)


def _template_problem(path: Path, runbook: Runbook) -> str | None:
    try:
        resolve_template(path.parent, runbook.postmortem.template or "")
    except TemplateOutside as exc:
        return str(exc)
    return None


def _parse(path: Path, text: str) -> Runbook:
    name = str(path)
    try:
        loaded = load_yaml(text)
    except YamlSyntaxError as exc:
        raise RunbookInvalid([Problem(name, exc.line, exc.message)]) from None
    problems = [Problem(name, line, message) for line, message in loaded.duplicate_keys()]
    if not isinstance(loaded.data, dict):
        problems.append(
            Problem(name, 1, "a runbook is a YAML mapping with id, name, roles, phases")
        )
        raise RunbookInvalid(_sorted(problems))
    problems += [
        Problem(name, loaded.line_of(p), f"{dotted(p)}: {m}") for p, m in _cross_check(loaded.data)
    ]
    runbook: Runbook | None = None
    try:
        runbook = Runbook.model_validate(loaded.data)
    except ValidationError as exc:
        problems += [_problem_from_pydantic(name, loaded, err) for err in exc.errors()]
    except (RecursionError, MemoryError):  # bounded by yaml_lines; never a traceback anyway
        raise RunbookInvalid([Problem(name, 1, "too large or too deeply nested")]) from None
    if runbook is not None and runbook.postmortem.template:
        why = _template_problem(path, runbook)
        if why:
            where = ("postmortem", "template")
            problems.append(Problem(name, loaded.line_of(where), f"postmortem.template: {why}"))
    if problems or runbook is None:
        raise RunbookInvalid(_sorted(problems))
    return runbook


def _sorted(problems: list[Problem]) -> list[Problem]:
    """By line (stable: problems on one line keep the order they were found in), capped."""
    return _at_most(sorted(problems, key=lambda p: p.line))


class _ValidRunbooks:
    """The last few runbook texts that validated, and their models (frozen, so shared).

    A folder is read at every start, by `validate` and by each bot a test builds; parsing
    YAML with line numbers is the cost, so a text already seen valid is not parsed again.
    Only valid texts are kept (a hostile file is never held on to), at most MAX of them."""

    MAX = 32

    def __init__(self) -> None:
        self._items: dict[str, Runbook] = {}
        self._lock = threading.Lock()

    def get(self, text: str) -> Runbook | None:
        with self._lock:
            runbook = self._items.pop(text, None)
            if runbook is not None:
                self._items[text] = runbook  # the most recently used goes last
            return runbook

    def put(self, text: str, runbook: Runbook) -> None:
        with self._lock:
            self._items.pop(text, None)
            self._items[text] = runbook
            while len(self._items) > self.MAX:
                del self._items[next(iter(self._items))]


_VALID = _ValidRunbooks()


def _read_bounded(path: Path) -> str:
    """The file's text, refusing anything but a regular file of at most MAX_RUNBOOK_BYTES
    (a FIFO would block, /dev/zero never ends, and /proc files say their size is 0)."""
    name = str(path)
    limit = f"a runbook may be at most {MAX_RUNBOOK_BYTES // 1024} KiB"
    try:
        if not path.is_file():
            raise RunbookInvalid([Problem(name, 1, "not a regular file")])
        with path.open("rb") as handle:
            raw = handle.read(MAX_RUNBOOK_BYTES + 1)
        if len(raw) > MAX_RUNBOOK_BYTES:
            size = path.stat().st_size
            shown = f"{-(-size // 1024)} KiB" if size > MAX_RUNBOOK_BYTES else "larger"
            raise RunbookInvalid([Problem(name, 1, f"the file is {shown}; {limit}")])
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookInvalid([Problem(name, 1, f"cannot read: {exc}")]) from None


def _at_most(problems: list[Problem]) -> list[Problem]:
    """The first MAX_PROBLEMS problems, and one line saying how many more there were."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    kept = problems[: MAX_PROBLEMS - 1]
    rest = len(problems) - len(kept)
    return [*kept, Problem(kept[-1].file, kept[-1].line, f"… and {rest} more problems")]


class TemplateOutside(ValueError):
    """A postmortem template a runbook names that is not a file inside its folder."""


def resolve_template(folder: Path, name: str) -> Path:
    """The file `postmortem.template: NAME` means: inside `folder`, never outside it.

    Refused: absolute paths, `..`, and symlinks (of the file or a folder on the way)
    that resolve outside the folder. Checked at validation and again before each render,
    since the folder may change in between."""
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
        raise TemplateOutside(
            f"'{name}' is an absolute path; name a file inside the runbook folder "
            "(e.g. templates/review.md.j2)"
        )
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise TemplateOutside(
            f"'{name}' climbs out of the runbook folder with '..'; "
            "name a file inside it (e.g. templates/review.md.j2)"
        )
    try:
        root = folder.resolve()
        target = (root / name).resolve()
        inside = target.is_relative_to(root)
        exists = inside and target.is_file()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        raise TemplateOutside(f"'{name}' cannot be used: {exc}") from None
    if not inside:
        raise TemplateOutside(
            f"'{name}' leads outside the runbook folder through a symlink; "
            "copy the template into the folder instead"
        )
    if not exists:
        raise TemplateOutside(f"no file '{name}' in the runbook folder {folder}")
    return target


def _problem_from_pydantic(name: str, loaded: LoadedYaml, err: Any) -> Problem:
    loc = tuple(part for part in err["loc"] if not _is_internal_loc(part))
    kind = err["type"]
    if kind == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'"
        loc_for_msg = loc[:-1]
    elif kind == "missing":
        message = f"missing required key '{loc[-1]}'"
        loc_for_msg = loc[:-1]
    elif kind == "too_short":
        message = f"'{loc[-1]}' must not be empty"
        loc_for_msg = loc[:-1]
    else:
        message = err["msg"].removeprefix("Value error, ")
        loc_for_msg = loc
    where = dotted(loc_for_msg)
    line = loaded.line_of(loc) if kind != "missing" else loaded.line_of(loc[:-1])
    return Problem(name, line, f"{where}: {message}" if where else message)


def _is_internal_loc(part: Any) -> bool:
    # pydantic adds names such as 'function-before[...]' for wrapped validators
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _cross_check(data: dict[Any, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Rules pydantic cannot see alone: references between parts, unique ids.

    Read from the YAML as written rather than from the model, so they are reported in the
    same pass as the schema's problems; parts of the wrong shape are left to the schema."""
    found: list[tuple[tuple[Any, ...], str]] = []
    roles = _items(data, "roles")
    phases = _items(data, "phases")
    found += _duplicates([("roles", i) for i in range(len(roles))], roles, "role")
    found += _duplicates([("phases", i) for i in range(len(phases))], phases, "phase")
    risks = _items(data, "risks")
    found += _duplicates([("risks", i) for i in range(len(risks))], risks, "risk")
    steps = [
        (("phases", pi, "steps", si), step)
        for pi, phase in enumerate(phases)
        for si, step in enumerate(_items(phase, "steps"))
    ]
    found += _duplicates([p for p, _ in steps], [s for _, s in steps], "step")
    role_ids = {r["id"] for r in roles if isinstance(r, dict) and isinstance(r.get("id"), str)}
    if not role_ids:
        return found  # no roles to refer to: the schema says so once, not once per owner
    known = ", ".join(sorted(role_ids))
    for path, step in steps:
        if not isinstance(step, dict):
            continue
        owners = step.get("owner")
        for oi, owner in enumerate([owners] if isinstance(owners, str) else _list(owners)):
            if isinstance(owner, str) and owner not in role_ids:
                found.append(
                    ((*path, "owner", oi), f"owner '{owner}' is not a declared role ({known})")
                )
    review = data.get("postmortem")
    review_owner = review.get("owner") if isinstance(review, dict) else None
    if isinstance(review_owner, str) and review_owner not in role_ids:
        found.append(
            (("postmortem", "owner"), f"owner '{review_owner}' is not a declared role ({known})")
        )
    return found


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(data: Any, key: str) -> list[Any]:
    return _list(data.get(key)) if isinstance(data, dict) else []


def _duplicates(
    paths: list[tuple[Any, ...]], items: list[Any], what: str
) -> list[tuple[tuple[Any, ...], str]]:
    seen: set[str] = set()
    found = []
    for path, item in zip(paths, items, strict=True):
        item_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(item_id, str):
            continue
        if item_id in seen:
            found.append(((*path, "id"), f"duplicate {what} id '{item_id}'"))
        seen.add(item_id)
    return found


# --- the folder of runbooks ------------------------------------------------


def runbook_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their *.yaml / *.yml files, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    return files


def validate_paths(paths: Iterable[Path]) -> tuple[list[LoadedRunbook], list[Problem]]:
    """Validate every runbook under `paths`; also refuse two files with one id."""
    good: list[LoadedRunbook] = []
    problems: list[Problem] = []
    files = runbook_files(paths)
    for path in files:
        if not path.exists():
            problems.append(Problem(str(path), 1, "no such file or folder"))
            continue
        try:
            good.append(load_runbook(path))
        except RunbookInvalid as exc:
            problems += exc.problems
    by_id: dict[str, LoadedRunbook] = {}
    for loaded in good:
        first = by_id.setdefault(loaded.runbook.id, loaded)
        if first is not loaded:
            problems.append(
                Problem(
                    str(loaded.path), 1, f"id '{loaded.runbook.id}' is already used by {first.path}"
                )
            )
    return good, problems


class Catalog:
    """The runbooks a bot can start, by id; bad files are kept aside as problems."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        loaded, self.problems = validate_paths([folder]) if folder.is_dir() else ([], [])
        self._by_id = {item.runbook.id: item for item in loaded}
        for file in dict.fromkeys(p.file for p in self.problems):  # once per file
            found = [str(p) for p in self.problems if p.file == file]
            more = f" (and {len(found) - 1} more; see `incident-bot validate`)" if found[1:] else ""
            log.warning("runbook set aside: %s%s", found[0], more)

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, runbook_id: str) -> LoadedRunbook | None:
        return self._by_id.get(runbook_id)

    def all(self) -> list[LoadedRunbook]:
        return [self._by_id[i] for i in self.ids()]


def shipped_runbooks_dir() -> Path:
    """The runbooks that come with the bot: beside the source, or inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "runbooks", here / "_shipped_runbooks"):
        if candidate.is_dir():
            return candidate
    return here.parent / "runbooks"
