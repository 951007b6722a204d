"""YAML loading that remembers on which line every key and list item stands.

Validation errors must point at `file:line`, so the loader returns the data
together with a map from a path (`("phases", 0, "steps", 1, "owner")`) to its
1-based line number. Duplicate keys, which PyYAML silently collapses, are
reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


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


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document with the safe loader, keeping line numbers."""
    loaded = LoadedYaml(data=None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return loaded
        loaded.lines[()] = node.start_mark.line + 1
        loaded.data = _build(node, (), loaded, yaml.SafeLoader(""))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(line, f"YAML syntax: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML syntax: {exc}") from None
    return loaded


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
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. `!!int abc`
        raise YamlSyntaxError(
            node.start_mark.line + 1, f"cannot read {node.value!r}: {exc}"
        ) from None
