"""The Slack app manifest: the request URL Slack is given, and the copy kept in config/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from bot.slack.manifest import BadURL, events_url, manifest_yaml
from tests import forkserver

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_config_manifest_is_what_incident_bot_manifest_prints():
    """config/manifest.yaml is the Socket Mode manifest, byte for byte; regenerate it with
    `incident-bot manifest > config/manifest.yaml` when the scopes or the command change."""
    assert (CONFIG / "manifest.yaml").read_text(encoding="utf-8") == manifest_yaml()
    assert yaml.safe_load(manifest_yaml())["settings"]["socket_mode_enabled"] is True


@pytest.mark.parametrize(
    "given",
    [
        "https://bot.example.com",
        "https://bot.example.com/",
        "https://bot.example.com/slack/events",
        "https://bot.example.com/slack/events/",
        " https://bot.example.com ",
    ],
)
def test_the_request_url_gets_slack_events_once_whatever_form_it_was_given_in(given):
    assert events_url(given) == "https://bot.example.com/slack/events"
    http = yaml.safe_load(manifest_yaml(given))
    assert http["features"]["slash_commands"][0]["url"] == "https://bot.example.com/slack/events"
    assert (
        http["settings"]["interactivity"]["request_url"]
        == http["features"]["slash_commands"][0]["url"]
    )


def test_a_path_prefix_is_kept_before_slack_events():
    assert events_url("https://x.example/bots/") == "https://x.example/bots/slack/events"


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("http://bot.example.com", "must start with https://"),
        ("bot.example.com", "must start with https://"),
        ("ftp://bot.example.com", "must start with https://"),
        ("https://", "needs a host name"),
        ("https://bot.example.com/?token=1", "no ?query"),
    ],
)
def test_a_request_url_slack_cannot_use_is_refused_with_the_right_form(given, why):
    with pytest.raises(BadURL) as info:
        events_url(given)
    assert why in str(info.value) and "--url https://bot.example.com" in str(info.value)


def test_cli_manifest_refuses_http_in_one_line_and_prints_nothing_else():
    done = forkserver.run(
        [sys.executable, "-m", "bot", "manifest", "--url", "http://bot.example.com"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "--url must start with https:// (Slack sends requests over HTTPS only), "
        "e.g. --url https://bot.example.com"
    ]


def test_cli_manifest_with_the_full_events_url_does_not_double_the_path():
    done = forkserver.run(
        [sys.executable, "-m", "bot", "manifest", "--url", "https://x.example/slack/events"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "slack/events/slack/events" not in done.stdout
    assert yaml.safe_load(done.stdout)["features"]["slash_commands"][0]["url"] == (
        "https://x.example/slack/events"
    )
