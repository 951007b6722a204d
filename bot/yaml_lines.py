"""YAML loading that remembers on which line every key and list item stands.

Validation errors must point at `file:line`, so the loader returns the data
together with a map from a path (`("phases", 0, "steps", 1, "owner")`) to its
1-based line number. Duplicate keys, which PyYAML silently collapses, are
reported instead.

A runbook is data someone else may have written, so reading one is bounded:
aliases (`*name`, the root of "billion laughs" and of self-containing lists) are
refused, and so is nesting deeper than MAX_DEPTH or more than MAX_NODES values.
The composer stops at the first such event, so a hostile file costs no more than
reading it; the caller caps the file's size.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int | float | None, ...]  # mapping keys and list indexes

MAX_DEPTH = 32  # a runbook needs about 7 levels (phases → steps → owner list)
MAX_NODES = 10_000  # the shipped runbooks have fewer than 500 values each


@dataclass
class LoadedYaml:
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """The line of the longest known prefix of `path` (1 when nothing matches)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1

    def duplicate_keys(self) -> list[tuple[int, str]]:
        """Each key given twice in one mapping: its line and what to say of it."""
        return [(line, f"{dotted(p)}: duplicate key '{p[-1]}'") for p, line in self.duplicates]


def dotted(path: Path) -> str:
    """A place in the document as a reader writes it: `phases[0].steps[2].owner`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, composing without aliases and within MAX_DEPTH and MAX_NODES."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise YamlSyntaxError(
                line,
                f"YAML aliases (*{event.anchor}) are not allowed in a runbook; "
                "write the value out where it is used",
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlSyntaxError(
                line, f"more than {MAX_NODES:,} values; split the plan into smaller runbooks"
            )
        nested = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if nested:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise YamlSyntaxError(
                    line, f"nested deeper than {MAX_DEPTH} levels; a runbook needs fewer than 10"
                )
        try:
            node = super().compose_node(parent, index)
        finally:
            if nested:
                self.depth -= 1
        return node


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document with the safe loader, keeping line numbers."""
    loaded = LoadedYaml(data=None)
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return loaded
        loaded.lines[()] = node.start_mark.line + 1
        loaded.data = _build(node, (), loaded, loader)
    except yaml.MarkedYAMLError as exc:
        line, message = plain_syntax_error(exc)
        raise YamlSyntaxError(line, f"YAML syntax: {message}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML syntax: {exc}") from None
    except (RecursionError, MemoryError):  # the bounds above should make this unreachable
        raise YamlSyntaxError(1, "too large or too deeply nested to read") from None
    finally:
        loader.dispose()
    return loaded


# PyYAML's problem -> (plain words, whether to point at where the construct began rather
# than where the parser gave up); checked in order, the first match wins
_PLAIN: list[tuple[re.Pattern[str], str, bool]] = [
    (
        re.compile(r"found character '\\t' that cannot start any token|found a tab"),
        "a tab character; indent with spaces only",
        False,
    ),
    (
        re.compile(r"found character '(.)' that cannot start any token"),
        "'{0}' cannot start a value; put the value in quotes",
        False,
    ),
    (
        re.compile(r"mapping values are not allowed here"),
        "a second ': ' on one line; put a value that contains ': ' in quotes",
        False,
    ),
    (
        re.compile(r"expected <block end>, but found|did not find expected (?:key|'-' indicator)"),
        "this line is not indented like the lines above it (a key or `- ` item out of line)",
        False,
    ),
    (
        re.compile(r"could not find expected ':'"),
        "a line without ': ' where a key was expected; write `key: value`",
        True,
    ),
    (
        re.compile(r"expected ',' or '\]'"),
        "a list opened with [ is not closed with ]",
        True,
    ),
    (
        re.compile(r"expected ',' or '\}'"),
        "a mapping opened with { is not closed with }",
        True,
    ),
    (
        re.compile(r"found unexpected end of stream"),
        "the file ends inside a quoted value: a quote opened here is never closed",
        True,
    ),
    (
        re.compile(r"found unknown escape character '?(.)"),
        "\\{0} is not an escape YAML knows inside double quotes; use single quotes or write \\\\",
        False,
    ),
    (
        re.compile(r"but found another document"),
        "a second YAML document (after `---`); a runbook is one document",
        False,
    ),
    (
        re.compile(r"could not determine a constructor for the tag '([^']*)'"),
        "the tag {0} means nothing in a runbook; remove it",
        False,
    ),
    (
        re.compile(r"expected chomping or indentation indicators"),
        "after | or > only -, + or an indent digit may follow on the same line; "
        "start the text on the next line",
        False,
    ),
    (
        re.compile(r"expected alphabetic or numeric character"),
        "* and & start YAML aliases and anchors and need a name after them; put the value "
        "in quotes",
        False,
    ),
]


def plain_syntax_error(exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    """PyYAML's parser message in plain words, and the 1-based line it concerns."""
    problem = str(exc.problem or exc)
    for pattern, words, at_start in _PLAIN:
        match = pattern.search(problem)
        if match:
            mark = (exc.context_mark if at_start else None) or exc.problem_mark
            text = words.replace("{0}", match.group(1)) if match.groups() else words
            return (mark.line + 1 if mark else 1), text
    mark = exc.problem_mark or exc.context_mark
    return (mark.line + 1 if mark else 1), problem


def _build(node: yaml.Node, path: Path, out: LoadedYaml, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, path, LoadedYaml(None), loader)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise YamlSyntaxError(line, "a key must be a plain word, not a list or mapping")
            child = (*path, key)
            if key in result:
                out.duplicates.append((child, line))
            out.lines[child] = line
            result[key] = _build(value_node, child, out, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            out.lines[child] = item.start_mark.line + 1
            items.append(_build(item, child, out, loader))
        return items
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. `!!int abc`
        raise YamlSyntaxError(
            node.start_mark.line + 1, f"cannot read {node.value!r}: {exc}"
        ) from None
    folded = getattr(node, "style", None) != "|" and node.start_mark.line != node.end_mark.line
    return join_cjk_lines(value) if folded and isinstance(value, str) else value


def _wide(ch: str) -> bool:
    """Chinese or Japanese characters and full-width punctuation (Hangul uses spaces)."""
    return unicodedata.east_asian_width(ch) in ("W", "F") and not "\uac00" <= ch <= "\ud7af"


def join_cjk_lines(text: str) -> str:
    """Undo the spaces that YAML folding (`>-`, or a plain or quoted scalar over several
    lines) puts where a line of Chinese was wrapped: Chinese has no spaces between words, so
    `…恢复\n  可用` must read `…恢复可用`, not `…恢复 可用`.

    The rule is CSS Text's for segment breaks between East Asian wide characters, plus
    punctuation: a space goes when the characters on both sides are wide, or when it
    follows punctuation that closes Chinese text (`。`, or `,` `;` `:` right after a
    Chinese character, as runbooks written with half-width punctuation have it). A space
    between Chinese and a Latin word stays. Only multi-line scalars are touched, so a
    one-line value keeps exactly what was typed."""
    if " " not in text:
        return text
    kept = []
    for i, ch in enumerate(text):
        if ch == " " and 0 < i < len(text) - 1:
            before, after = text[i - 1], text[i + 1]
            punct = unicodedata.category(before).startswith("P")
            closes = punct and (_wide(before) or (i >= 2 and _wide(text[i - 2])))
            if (_wide(before) and _wide(after)) or (closes and after != " "):
                continue
        kept.append(ch)
    return "".join(kept)
