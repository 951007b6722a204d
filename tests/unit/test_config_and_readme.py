"""config/settings.example.env documents every setting with its default; the README agrees
with it and with the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "settings.example.env"
ALIASES = sorted(str(info.validation_alias) for info in Settings.model_fields.values())


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALIASES:
        monkeypatch.delenv(name, raising=False)


def test_the_example_names_every_setting_once_with_a_comment_above_it():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    named = [
        (i, m.group(1))
        for i, line in enumerate(lines)
        if (m := re.match(r"^#? ?([A-Z][A-Z_]+)=", line))
    ]
    assert sorted(name for _, name in named) == ALIASES
    for i, name in named:
        above = lines[i - 1] if lines[i - 1].startswith("#") else lines[i - 2]
        assert above.startswith("# ") and len(above) > 10, f"{name} has no explanation"


def test_the_example_used_as_it_is_gives_the_defaults(monkeypatch, tmp_path):
    """`cp config/settings.example.env .env` changes nothing until a value is edited."""
    _clean_environment(monkeypatch)
    from_file = Settings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_file.model_dump() == defaults.model_dump()


def test_the_example_shows_each_uncommented_default_exactly(monkeypatch):
    _clean_environment(monkeypatch)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        field = next(f for f, i in Settings.model_fields.items() if i.validation_alias == name)
        default = getattr(defaults, field)
        if isinstance(default, float):
            assert float(value) == default, name
        else:
            assert value == ("" if default is None else str(default)), name


def test_a_dot_env_file_is_read_and_kept_out_of_git(monkeypatch, tmp_path):
    _clean_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("INCIDENT_BOT_LANGUAGE=zh\n", encoding="utf-8")
    assert Settings().language == "zh"
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored


def test_the_readme_settings_table_lists_every_setting_and_points_at_the_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Settings") :]
    table = table[: table.index("\n## ", 1)]
    assert sorted(set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.M))) == ALIASES
    assert "config/settings.example.env" in table and ".env" in table


def test_the_readme_command_table_is_one_table_with_a_row_per_command():
    """A blank line inside a Markdown table ends it: the rows after it show as plain text."""
    from bot.cli import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Commands") :]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| command"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    rows = lines[start + 2 : end]
    assert lines[end] == "" and not lines[end + 1].startswith("| `incident-bot")
    commands = [re.match(r"\| `incident-bot (\w+)", row).group(1) for row in rows]
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert sorted(commands) == sorted(choices)


def test_the_systemd_replica_unit_runs_a_real_command_with_known_settings(monkeypatch):
    """config/systemd: its ExecStart parses as `incident-bot serve`, its env example names
    only real settings and loads as replicas need it (a PostgreSQL database)."""
    from bot.cli import build_parser

    unit = (ROOT / "config" / "systemd" / "incident-bot@.service").read_text(encoding="utf-8")
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    program, *argv = exec_start.removeprefix("ExecStart=").replace("%i", "3000").split()
    assert program.endswith("/incident-bot")
    args = build_parser().parse_args(argv)
    assert (args.command, args.port) == ("serve", 3000)
    env = ROOT / "config" / "systemd" / "env.example"
    names = re.findall(r"^([A-Z][A-Z_]+)=", env.read_text(encoding="utf-8"), re.M)
    assert names and set(names) <= set(ALIASES)
    _clean_environment(monkeypatch)
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.db.startswith("postgresql://")
