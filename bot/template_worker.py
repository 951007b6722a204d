"""Renders a team's postmortem template in a child process of its own.

A team's template is not ours: even inside Jinja2's sandbox it can loop for ever
(`{% for i in range(99999) %}{% for j in range(99999) %}`), build a huge string,
divide by zero or recurse. So `bot.postmortem` runs it here, in
`python -m bot.template_worker`, and abandons it when it takes too long:

- this process first caps its own CPU time and address space (`--cpu SECONDS
  --memory BYTES`), then reads the fields of one `Job`, pickled, from stdin (the parent is
  trusted; nothing the template makes is ever unpickled, only read back as text);
- it loads templates only from inside `Job.root` (no `..`, no symlink out, regular
  files only, each at most MAX_TEMPLATE_BYTES) and stops once the output passes
  `Job.max_output` bytes;
- it answers on stdout with `OK\\n` and the text, or `ERR\\n` and one line saying why.

Its environment is scrubbed by the parent: no Slack tokens or bot settings.
"""

from __future__ import annotations

import argparse
import io
import pickle
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, TemplateError, TemplateNotFound
from jinja2.loaders import split_template_path

MAX_TEMPLATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Job:
    root: str  # the folder templates (and their includes) may be read from
    name: str  # the template, relative to root
    context: dict[str, Any]
    max_output: int  # bytes of UTF-8


class ConfinedLoader(BaseLoader):
    """Loads templates from inside one folder only, resolving symlinks before deciding."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.root.joinpath(*split_template_path(template)).resolve()
        if not path.is_relative_to(self.root):
            raise TemplateNotFound(f"{template} (outside the template folder)")
        if not path.is_file():
            raise TemplateNotFound(template)
        with path.open("rb") as handle:
            raw = handle.read(MAX_TEMPLATE_BYTES + 1)
        if len(raw) > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"{template} is larger than {MAX_TEMPLATE_BYTES // 1024} KiB")
        return raw.decode("utf-8"), str(path), lambda: False


class OutputTooLarge(Exception):
    pass


def render(job: Job) -> str:
    """Render `job` with the postmortem filters, stopping once the output is too large."""
    from jinja2.sandbox import SandboxedEnvironment

    from bot.template_env import sandbox  # the filters the built-in template has

    env = sandbox(Path(job.root))
    assert isinstance(env, SandboxedEnvironment)
    env.loader = ConfinedLoader(Path(job.root))
    out, size = io.StringIO(), 0
    for chunk in env.get_template(job.name).generate(**job.context):
        size += len(chunk.encode("utf-8", "surrogatepass"))
        if size > job.max_output:
            raise OutputTooLarge(f"its output passed {job.max_output // (1024 * 1024)} MiB")
        out.write(chunk)
    return out.getvalue()


def _limit(kind: int, value: int) -> None:
    """Lower the soft limit (a template cannot raise it again: it runs no Python of its own)."""
    _, hard = resource.getrlimit(kind)
    resource.setrlimit(kind, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))


def main(argv: list[str]) -> int:
    options = argparse.ArgumentParser(prog="python -m bot.template_worker")
    options.add_argument("--cpu", type=int, required=True, help="CPU seconds")
    options.add_argument("--memory", type=int, required=True, help="bytes of address space")
    limits = options.parse_args(argv)
    _limit(resource.RLIMIT_CPU, limits.cpu)
    _limit(resource.RLIMIT_AS, limits.memory)
    try:
        job = Job(**pickle.load(sys.stdin.buffer))
        answer = b"OK\n" + render(job).encode("utf-8", "surrogatepass")
    except OutputTooLarge as exc:
        answer = b"ERR\n" + str(exc).encode()
    except MemoryError:
        answer = b"ERR\n" + f"it used more than {limits.memory // (1024 * 1024)} MiB".encode()
    except RecursionError:
        answer = b"ERR\nRecursionError: it recursed too deeply"
    except Exception as exc:  # whatever a template raises: one line for the channel
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        answer = b"ERR\n" + text.encode("utf-8", "replace")
    sys.stdout.buffer.write(answer)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
