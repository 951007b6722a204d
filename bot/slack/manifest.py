"""The Slack app manifest: paste it into api.slack.com/apps → Create New App → From a manifest.

Scopes are exactly what the code calls (SCOPES says which call needs which).
Without a URL the manifest turns on Socket Mode, so no public address is
needed; with `--url https://bot.example.com` it points Slack at
`<url>/slack/events` for the slash command and interactivity.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

EVENTS_PATH = "/slack/events"  # where bot.slack.http takes slash commands and interactivity

SCOPES: dict[str, str] = {
    "commands": "the /incident slash command",
    "chat:write": "chat.postMessage, chat.update, chat.postEphemeral",
    "chat:write.public": "announcements in an incidents channel the bot has not joined",
    "channels:manage": "conversations.create, conversations.invite, conversations.setTopic",
    "groups:write": "the same in private channels, for runbooks with `private: true`",
    "pins:write": "pins.add for the plan message",
    "im:write": "conversations.open for role briefings by direct message",
    "files:write": "files.getUploadURLExternal / completeUploadExternal for the postmortem",
    "channels:read": "member_joined_channel in public incident channels (the catch-up offered)",
    "groups:read": "member_joined_channel in private incident channels (the catch-up offered)",
}
# what the bot subscribes to; app_home_opened needs no scope, views.publish neither
BOT_EVENTS = ("app_home_opened", "member_joined_channel")


def manifest(url: str | None = None, name: str = "Incident Bot") -> dict[str, Any]:
    command: dict[str, Any] = {
        "command": "/incident",
        "description": "Run incidents from your runbooks",
        "usage_hint": "start RUNBOOK [SEV] TITLE… | status | help",
        "should_escape": True,
    }
    settings: dict[str, Any] = {
        "interactivity": {"is_enabled": True},
        "org_deploy_enabled": False,
        "socket_mode_enabled": url is None,
        "token_rotation_enabled": False,
        "event_subscriptions": {"bot_events": list(BOT_EVENTS)},
    }
    if url:
        endpoint = events_url(url)
        command["url"] = endpoint
        settings["interactivity"]["request_url"] = endpoint
        settings["event_subscriptions"]["request_url"] = endpoint
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Runs your runbooks as live incidents: roles, reminders, postmortems.",
            "background_color": "#b91c1c",
        },
        "features": {
            # the Home tab lists incidents and follow-ups; the Messages tab shows briefings
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": "incident-bot", "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": sorted(SCOPES)}},
        "settings": settings,
    }


class BadURL(ValueError):
    """A --url Slack cannot use; the message says what to give instead."""


def events_url(url: str) -> str:
    """The request URL for Slack from the bot's public address: `https://bot.example.com`,
    `https://bot.example.com/incident-bot` (behind a path prefix) or the full
    `https://bot.example.com/slack/events` all work; the path is never doubled."""
    example = "e.g. --url https://bot.example.com"
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https":
        raise BadURL(
            f"--url must start with https:// (Slack sends requests over HTTPS only), {example}"
        )
    if not parts.hostname:
        raise BadURL(f"--url needs a host name after https://, {example}")
    if parts.query or parts.fragment:
        raise BadURL(f"--url takes no ?query or #fragment, {example}")
    path = parts.path.rstrip("/")
    if not path.endswith(EVENTS_PATH):
        path += EVENTS_PATH
    return f"https://{parts.netloc}{path}"


def manifest_yaml(url: str | None = None) -> str:
    return yaml.safe_dump(manifest(url), sort_keys=False, allow_unicode=True)
