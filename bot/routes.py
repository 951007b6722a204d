"""Alert routing: which alert group becomes which incident (`INCIDENT_BOT_ROUTES`).

The routes file (DESIGN §4b) is a list tried in order; the first route whose
`match` labels are all equal and whose `match_re` regular expressions all match
the whole label value wins, and an alert group no route matches declares
nothing (it is logged):

    routes:
      - match: {alertname: CheckoutDown}          # every label equal
        match_re: {service: "checkout|payments"}  # optional, full-match regexes
        runbook: service-outage
        severity: sev1                            # optional: else the runbook's default
        title: "{{ commonAnnotations.summary }}"  # optional, sandboxed, escaped
        announce: C0123456789                     # optional: where to announce it

Labels are the group's (`groupLabels` and `commonLabels`). Regular expressions
are RE2, as in Alertmanager itself, so matching takes linear time whatever the
label value. A title is a Jinja2 *expression* template over the payload's own
fields (`commonLabels.service`, `groupLabels.alertname`, `alerts[0].labels…`):
no statements, a few filters, in the sandbox, so it cannot loop or grow; the
result is one line of at most MAX_TITLE characters and is escaped like every
message. Without a title, or when it comes out empty, the title is the common
`summary` annotation, else the `alertname`.

The file is data like a runbook: bounded in size, no YAML aliases, every
problem reported as `file:line: message` (`incident-bot validate`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2
from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.alerts import AlertGroup, template_context
from bot.runbook import MAX_PROBLEMS, Problem, Severity
from bot.yaml_lines import LoadedYaml, YamlSyntaxError, dotted, load_yaml

log = logging.getLogger(__name__)

MAX_ROUTES_BYTES = 256 * 1024
MAX_ROUTES = 1000
MAX_TITLE = 200  # characters of an incident title made from an alert
MAX_TEMPLATE = 1000  # characters of a title template
MAX_PATTERN = 1000  # characters of one regular expression
LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # Prometheus's rule for label names
DEFAULT_TITLE = "Alertmanager alert"


def _scalar(value: Any) -> Any:
    """`code: 500` or `canary: true` in YAML mean the label values "500" and "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class RouteRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    runbook: str = Field(min_length=1)
    severity: Severity | None = None
    title: str | None = Field(None, max_length=MAX_TEMPLATE)
    announce: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("match", "match_re", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _scalar(v) for k, v in value.items()}
        return value

    @field_validator("match", "match_re")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(LABEL_NAME, name):
                raise ValueError(f"'{name}' is not a label name (letters, digits and _)")
        return value

    @field_validator("severity", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class RoutesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[RouteRule] = Field(max_length=MAX_ROUTES)


# --- titles: expression-only Jinja2 in the sandbox --------------------------------------

# what a title may use: values, lookups, comparisons and these filters; no statements (no
# loops), no calls, no arithmetic (`"x" * 10**9`), so rendering is bounded by the payload
_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
)
_FILTERS = {
    "default",
    "d",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "truncate",
    "join",
    "first",
    "last",
    "length",
    "count",
    "string",
}
_TESTS = {"defined", "undefined", "none", "string", "mapping", "sequence"}


class _TitleEnvironment(SandboxedEnvironment):
    def __init__(self) -> None:
        super().__init__(undefined=ChainableUndefined, autoescape=False)


_ENV = _TitleEnvironment()


class TitleError(ValueError):
    """A title template that cannot be used; the message says what to write instead."""


def compile_title(source: str) -> Any:
    """The compiled title template, or TitleError (syntax, or something titles may not use)."""
    try:
        tree = _ENV.parse(source)
    except TemplateError as exc:
        raise TitleError(f"title: template syntax: {exc}") from None
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _NODES):
            raise TitleError(
                f"title: {_what(node)} cannot be used in a title; write expressions such as "
                '"{{ commonLabels.service }}: {{ commonAnnotations.summary }}"'
            )
        if isinstance(node, nodes.Filter) and node.name not in _FILTERS:
            raise TitleError(
                f"title: the filter '{node.name}' is not allowed; use one of "
                + ", ".join(sorted(_FILTERS))
            )
        if isinstance(node, nodes.Test) and node.name not in _TESTS:
            raise TitleError(f"title: the test '{node.name}' is not allowed")
        if isinstance(node, nodes.Name) and node.name.startswith("_"):
            raise TitleError(f"title: '{node.name}' is not a field of the payload")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise TitleError(f"title: '.{node.attr}' is not a field of the payload")
    try:
        return _ENV.from_string(tree)
    except TemplateError as exc:
        raise TitleError(f"title: {exc}") from None


def _what(node: nodes.Node) -> str:
    if isinstance(node, nodes.Stmt):
        return "a statement ({% … %})"
    if isinstance(node, nodes.Call):
        return "a call"
    if isinstance(node, nodes.BinExpr | nodes.UnaryExpr):
        return f"arithmetic ({node.operator})" if hasattr(node, "operator") else "arithmetic"
    return f"{type(node).__name__}"


def one_line(text: str, limit: int = MAX_TITLE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def default_title(group: AlertGroup) -> str:
    labels = group.labels
    first = group.alerts[0]
    title = (
        group.commonAnnotations.get("summary")
        or labels.get("alertname")
        or first.annotations.get("summary")
        or first.labels.get("alertname")
        or DEFAULT_TITLE
    )
    return one_line(title) or DEFAULT_TITLE


# --- routes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    index: int
    rule: RouteRule
    patterns: tuple[tuple[str, Any], ...]  # label, compiled RE2
    title: Any | None  # compiled template

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(name) != value for name, value in self.rule.match.items()):
            return False
        return all(
            pattern.fullmatch(labels.get(name, "")) is not None for name, pattern in self.patterns
        )

    def title_for(self, group: AlertGroup) -> str:
        if self.title is None:
            return default_title(group)
        try:
            text = one_line(str(self.title.render(template_context(group))))
        except Exception as exc:  # the sandbox refused something, a bad lookup: the default
            log.warning("route %d: the title template failed (%s)", self.index + 1, exc)
            return default_title(group)
        return text or default_title(group)


@dataclass(frozen=True)
class Decision:
    """Where an alert group goes: the route's runbook, severity, title and announce channel."""

    route: int  # 1-based, as people count lines of a list
    runbook: str
    severity: str | None
    title: str
    announce: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "runbook": self.runbook,
            "severity": self.severity,
            "title": self.title,
            "announce": self.announce,
        }


class Routes:
    """The loaded routes, tried in order."""

    def __init__(self, routes: Iterable[Route], path: Path | None = None) -> None:
        self.routes = list(routes)
        self.path = path

    def __len__(self) -> int:
        return len(self.routes)

    def decide(self, group: AlertGroup) -> Decision | None:
        labels = group.labels
        for route in self.routes:
            if route.matches(labels):
                rule = route.rule
                return Decision(
                    route.index + 1,
                    rule.runbook,
                    rule.severity,
                    route.title_for(group),
                    rule.announce,
                )
        return None


class RoutesInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is reported as file:line, not on stderr
    options.max_mem = 8 << 20
    return options


def load_routes(path: Path, runbooks: Iterable[str] | None = None) -> Routes:
    """Read and check the routes file, or raise RoutesInvalid with every problem as
    file:line. `runbooks`: the runbook ids that may be named (None: not checked)."""
    name = str(path)
    text = _read(path)
    try:
        loaded = load_yaml(text)
    except YamlSyntaxError as exc:
        raise RoutesInvalid([Problem(name, exc.line, exc.message)]) from None
    problems = [Problem(name, line, message) for line, message in loaded.duplicate_keys()]
    if not isinstance(loaded.data, dict):
        problems.append(Problem(name, 1, "a routes file is a YAML mapping with a list `routes:`"))
        raise RoutesInvalid(problems)
    try:
        parsed = RoutesFile.model_validate(loaded.data)
    except ValidationError as exc:
        problems += [_pydantic_problem(name, loaded, err) for err in exc.errors()]
        raise RoutesInvalid(problems[:MAX_PROBLEMS]) from None
    known = sorted(runbooks) if runbooks is not None else None
    routes = []
    for index, rule in enumerate(parsed.routes):
        where = ("routes", index)
        if known is not None and rule.runbook not in known:
            problems.append(
                Problem(
                    name,
                    loaded.line_of((*where, "runbook")),
                    f"routes[{index}].runbook: unknown runbook '{rule.runbook}' "
                    f"(known: {', '.join(known) or 'none'})",
                )
            )
        patterns = []
        for label, pattern in rule.match_re.items():
            line = loaded.line_of((*where, "match_re", label))
            if len(pattern) > MAX_PATTERN:
                problems.append(
                    Problem(
                        name,
                        line,
                        f"routes[{index}].match_re.{label}: longer than {MAX_PATTERN} characters",
                    )
                )
                continue
            try:
                patterns.append((label, re2.compile(pattern, _options())))
            except re2.error as exc:
                reason = (
                    exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
                )
                problems.append(
                    Problem(
                        name,
                        line,
                        f"routes[{index}].match_re.{label}: bad regular expression "
                        f"{pattern!r}: {reason} (RE2 syntax, as in Alertmanager)",
                    )
                )
        title = None
        if rule.title is not None:
            try:
                title = compile_title(rule.title)
            except TitleError as exc:
                problems.append(
                    Problem(name, loaded.line_of((*where, "title")), f"routes[{index}].{exc}")
                )
        routes.append(Route(index, rule, tuple(patterns), title))
    if problems:
        raise RoutesInvalid(problems[:MAX_PROBLEMS])
    return Routes(routes, path)


def _read(path: Path) -> str:
    name = str(path)
    try:
        if not path.is_file():
            raise RoutesInvalid([Problem(name, 1, "no such file (INCIDENT_BOT_ROUTES)")])
        with path.open("rb") as handle:
            raw = handle.read(MAX_ROUTES_BYTES + 1)
        if len(raw) > MAX_ROUTES_BYTES:
            raise RoutesInvalid(
                [Problem(name, 1, f"a routes file may be at most {MAX_ROUTES_BYTES // 1024} KiB")]
            )
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesInvalid([Problem(name, 1, f"cannot read: {exc}")]) from None


def is_routes_file(path: Path) -> bool:
    """Whether a YAML file given to `validate` is a routes file (a mapping with `routes:` and
    no runbook keys) rather than a runbook."""
    try:
        loaded = load_yaml(_read(path))
    except (RoutesInvalid, YamlSyntaxError):
        return False
    data = loaded.data
    return isinstance(data, dict) and "routes" in data and "phases" not in data


def _pydantic_problem(name: str, loaded: LoadedYaml, err: Any) -> Problem:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    kind = err["type"]
    if kind == "extra_forbidden":
        message, shown = f"unknown key '{loc[-1]}'", loc[:-1]
    elif kind == "missing":
        message, shown = f"missing required key '{loc[-1]}'", loc[:-1]
    else:
        message, shown = str(err["msg"]).removeprefix("Value error, "), loc
    line = loaded.line_of(loc if kind != "missing" else loc[:-1])
    where = dotted(shown)
    return Problem(name, line, f"{where}: {message}" if where else message)
