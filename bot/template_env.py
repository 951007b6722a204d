"""The sandboxed Jinja2 environment postmortem templates render in, with their filters.

Shared by the built-in postmortem (bot.postmortem) and the worker process that renders a
team's template (bot.template_worker). It imports only Jinja2 and the time formatter, so
the worker starts without the database layer or the engine.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from bot import timefmt

if TYPE_CHECKING:
    from bot.runbook import Deadline

_TOKEN = re.compile(r"<([@#])([UWC][A-Z0-9]+)(?:\|([^<>]*))?>")


def plain_mentions(text: str) -> str:
    """`<@U123|ana>` → `@ana`, `<@U123>` → `@U123`, `<#C1|ops>` → `#ops`: readable in a file."""
    return _TOKEN.sub(lambda m: f"{m.group(1)}{m.group(3) or m.group(2)}", text)


@pass_context
def _duration(context: Context, delta: timedelta | None) -> str:
    return timefmt.duration(delta, str(context.get("language") or "en"))


@pass_context
def _deadline(context: Context, due: Deadline | None) -> str:
    """A step's deadline as the runbook states it (`1h after mitigated`, `缓解后 1小时`)."""
    if due is None:
        return timefmt.NONE
    return timefmt.deadline(due.offset, due.anchor, str(context.get("language") or "en"))


@lru_cache(maxsize=16)
def sandbox(loader_dir: Path) -> SandboxedEnvironment:
    """One sandbox per template folder, kept: templates compile once (a changed file is
    recompiled, as Jinja checks its modification time)."""
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(loader_dir)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # the same formatter as the bot's messages (bot/timefmt.py): a moment reads alike in both
    env.filters["dur"] = _duration
    env.filters["utc"] = timefmt.utc_time
    env.filters["local"] = timefmt.date_time
    env.filters["hm"] = timefmt.clock_time
    env.filters["due"] = _deadline
    env.filters["cell"] = lambda s: " ".join(plain_mentions(str(s or "")).split()).replace(
        "|", "\\|"
    )
    env.filters["plain"] = lambda s: plain_mentions(str(s or ""))
    return env
