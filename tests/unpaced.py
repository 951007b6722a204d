"""The waits a test may turn off, and `incident-bot` run without them in a subprocess.

Production keeps its defaults: about one message a second per Slack channel
(`bot.slack.pacing.CHANNEL_INTERVAL`), slack-sdk's backoff between retries of a failed
call (`bot.slack.client.RETRY_BACKOFF`), the outbox's first retry after 1 s
(`bot.outbox.FIRST_BACKOFF`) and a failed request's next try after 1 s times its tries
(`bot.dispatch.RETRY_AFTER`). A test whose subject is not those waits runs with them at
zero, or a hundredth of a second where a retry must still wait (the outbox retries a
row for an hour, so it must back off, if briefly), and spends no seconds in them. Each
wait is tested on its own (test_pacing.py, test_outbox.py, test_lanes.py), and
test_serve.py and test_serve_logs.py run with every production value.

In-process: `no_waits(monkeypatch)`. In a subprocess: `python tests/unpaced.py ARGS…` is
`python -m bot ARGS…` with the same waits at zero (`BOT` below is that command line);
`--set=bot.dispatch.GIVE_UP_AFTER=1000` (before ARGS) gives one of the names below another
value, for a test whose scenario is made of it (requests held up behind a failing one
until a kill: each new arrival wakes the lane and retries its head at once, so only the
number of tries holds them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

WAITS = {
    "bot.slack.pacing": {"CHANNEL_INTERVAL": 0.0},
    "bot.slack.client": {"RETRY_BACKOFF": 0.0},
    "bot.outbox": {"FIRST_BACKOFF": 0.01},
    "bot.dispatch": {"RETRY_AFTER": 0.01},
}
SETTABLE = {"bot.dispatch.GIVE_UP_AFTER"}  # with `--set=` only, never changed otherwise
BOT = [sys.executable, str(Path(__file__).resolve())]  # + ["serve", "--http", …]


def no_waits(monkeypatch: Any) -> None:
    """Set every wait above to zero for this test (undone after it)."""
    import importlib

    for module, values in WAITS.items():
        target = importlib.import_module(module)
        for name, value in values.items():
            monkeypatch.setattr(target, name, value)


def _main() -> int:
    import faulthandler
    import importlib
    import signal

    faulthandler.register(signal.SIGUSR1)  # a test that sees a hang can ask for the stacks
    args = sys.argv[1:]
    chosen = dict(a.removeprefix("--set=").split("=", 1) for a in args if a.startswith("--set="))
    args = [a for a in args if not a.startswith("--set=")]
    unknown = set(chosen) - SETTABLE - {f"{m}.{n}" for m, values in WAITS.items() for n in values}
    if unknown:
        raise SystemExit(f"tests/unpaced.py: cannot set {', '.join(sorted(unknown))}")
    for module, values in WAITS.items():
        target = importlib.import_module(module)
        for name, value in values.items():
            setattr(target, name, float(chosen.pop(f"{module}.{name}", value)))
    for dotted, value in chosen.items():
        module, name = dotted.rsplit(".", 1)
        target = importlib.import_module(module)
        setattr(target, name, type(getattr(target, name))(value))
    from bot.cli import main

    return main(args)


if __name__ == "__main__":
    raise SystemExit(_main())
