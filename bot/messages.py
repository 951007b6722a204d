"""Everything the bot says, rendered from the en/zh catalogs in `templates/`.

A catalog maps a key (`event.handoff_requested`, `error.unknown_role`) to a
short Jinja2 template. Adapters decide how a user is mentioned and how user
text is escaped; the renderer applies both so templates stay adapter-free.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined, Template, pass_context
from jinja2.runtime import Context

from bot import timefmt
from bot.yaml_lines import load_yaml

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("en", "zh")


def _hm(moment: datetime | None) -> str:
    """Clock time to the nearest minute, exactly as reviews write it (see timefmt)."""
    return timefmt.clock_time(moment)


@pass_context
def _dur(context: Context, delta: timedelta | None) -> str:
    """A duration for people, in the language being rendered (see timefmt)."""
    return timefmt.duration(delta, str(context.get(LANGUAGE_VAR) or "en"))


LANGUAGE_VAR = "_language"  # set by the Renderer: which language `| dur` writes


@cache
def _environment() -> Environment:
    # Not sandboxed: these catalogs ship with the bot, and user text only ever arrives as
    # values, which Jinja prints and never evaluates. (Postmortem templates a team
    # supplies are rendered in a sandbox; see postmortem.py.)
    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["hm"] = _hm
    env.filters["dur"] = _dur
    return env


@cache
def _template(source: str) -> Template:  # compiled once per distinct source
    return _environment().from_string(source)


@cache
def catalog(language: str) -> dict[str, str]:
    # load_yaml joins wrapped Chinese lines without the space YAML folding puts there
    data = load_yaml((TEMPLATES / f"messages.{language}.yaml").read_text(encoding="utf-8")).data
    assert isinstance(data, dict)
    return data


class Safe(str):
    """Text an adapter produced itself (a channel link): rendered without escaping."""


def _plain_mention(user: str | None) -> str:
    return f"@{user}" if user else "—"


def _no_escape(text: str) -> str:
    return text


class Renderer:
    """Renders catalog keys in one language for one adapter."""

    def __init__(
        self,
        language: str = "en",
        mention: Callable[[str | None], str] = _plain_mention,
        escape: Callable[[str], str] = _no_escape,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        self.language = language
        self.mention = mention
        self.escape = escape

    def _escaped(self, value: Any) -> Any:
        """User text is escaped wherever it sits: top level, in dicts, in lists."""
        if type(value) is str:
            return self.escape(value)
        if isinstance(value, dict):
            return {k: self._escaped(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._escaped(v) for v in value]
        return value

    def has(self, key: str) -> bool:
        return key in catalog(self.language)

    def __call__(self, key: str, **params: Any) -> str:
        source = catalog(self.language).get(key) or catalog("en")[key]
        safe = {k: self._escaped(v) for k, v in params.items()}
        return (
            _template(source)
            .render(mention=self.mention, **{LANGUAGE_VAR: self.language}, **safe)
            .strip()
        )


def english(key: str, **params: Any) -> str:
    return Renderer("en")(key, **params)
