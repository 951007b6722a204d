"""Build and send requests to a bolt app's ``/slack/events`` exactly as Slack does.

Why: end-to-end tests should exercise the app's real request path (signature check,
body parsing, ack, lazy work) rather than call listener functions directly.  Payload
shapes follow Slack's slash-command and interactivity payloads closely enough for
``slack_bolt.request.payload_utils`` to classify them and for ``BoltContext`` to find the
user, channel, team, trigger_id and response_url.

Timestamps always come from the caller (``int(time.time())``, or a stale value to test
replay protection), so nothing here depends on the wall clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

# A loopback port nothing listens on: a test that forgets to pass a response_url fails
# loudly (connection refused) instead of silently posting somewhere.
UNSET_RESPONSE_URL = "http://127.0.0.1:1/response/unset"
FORM = "application/x-www-form-urlencoded"


def sign(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Headers Slack adds: v0 HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the secret.

    The content type follows the body: JSON for Events API bodies, form otherwise.
    """
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + body
    digest = hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/json" if body.lstrip().startswith(b"{") else FORM,
    }


def slash_body(
    text: str,
    user_id: str = "U1",
    channel_id: str = "C0",
    response_url: str = UNSET_RESPONSE_URL,
    trigger_id: str = "T.trig",
    command: str = "/incident",
    team_id: str = "T1",
    user_name: str | None = None,
    channel_name: str | None = None,
) -> bytes:
    """A slash-command request body: flat form fields, in Slack's order."""
    fields = {
        "token": "fake-verification-token",  # deprecated by Slack; bolt ignores it
        "team_id": team_id,
        "team_domain": "fake-workspace",
        "channel_id": channel_id,
        "channel_name": channel_name or _channel_name(channel_id),
        "user_id": user_id,
        "user_name": user_name or f"user-{user_id.lower()}",
        "command": command,
        "text": text,
        "api_app_id": "AFAKE",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields).encode("utf-8")


def block_action_body(
    action_id: str,
    value: str,
    user_id: str = "U1",
    channel_id: str = "C0",
    message_ts: str = "1700000000.000100",
    response_url: str = UNSET_RESPONSE_URL,
    trigger_id: str = "T.trig",
    block_id: str = "actions",
    team_id: str = "T1",
    action_type: str = "button",
    message: dict[str, Any] | None = None,
    state_values: dict[str, Any] | None = None,
) -> bytes:
    """A ``block_actions`` payload for a click on a message the bot posted.

    ``value`` lands where Slack puts it for ``action_type``: ``value`` for buttons,
    ``selected_user`` / ``selected_option`` / ``selected_conversation`` for selects.
    Pass ``message`` (e.g. from ``FakeSlack.messages()``) to give handlers the real
    message they may want to update.
    """
    action: dict[str, Any] = {
        "type": action_type,
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": message_ts,
    }
    if action_type == "button":
        action.update(value=value, text={"type": "plain_text", "text": value, "emoji": True})
    elif action_type == "users_select":
        action["selected_user"] = value
    elif action_type == "conversations_select":
        action["selected_conversation"] = value
    elif action_type == "channels_select":
        action["selected_channel"] = value
    elif action_type in ("static_select", "overflow", "radio_buttons"):
        action["selected_option"] = {"text": {"type": "plain_text", "text": value}, "value": value}
    else:
        action["value"] = value
    payload = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": "AFAKE",
        "token": "fake-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": _channel_name(channel_id)},
        "message": message
        or {"type": "message", "ts": message_ts, "user": "UBOT", "bot_id": "BBOT", "text": ""},
        "state": {"values": state_values or {}},
        "response_url": response_url,
        "actions": [action],
    }
    return _interactivity(payload)


def view_submission_body(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    user_id: str = "U1",
    private_metadata: str = "",
    team_id: str = "T1",
    view_id: str = "V00000001",
    trigger_id: str = "T.trig",
    title: str = "Incident",
) -> bytes:
    """A ``view_submission`` payload for a modal the user submitted.

    ``values`` is ``{block_id: {action_id: value}}``; a plain string value is wrapped as a
    ``plain_text_input`` state (``{"type": "plain_text_input", "value": ...}``), a dict is
    used as given (e.g. ``{"type": "users_select", "selected_user": "U2"}``).
    """
    state = {
        block_id: {
            action_id: (
                {"type": "plain_text_input", "value": v} if isinstance(v, str) or v is None else v
            )
            for action_id, v in actions.items()
        }
        for block_id, actions in values.items()
    }
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "fake-workspace"},
        "user": _user(user_id, team_id),
        "api_app_id": "AFAKE",
        "token": "fake-verification-token",
        "trigger_id": trigger_id,
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state},
            "hash": "1.fake",
            "title": {"type": "plain_text", "text": title},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": "AFAKE",
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "BBOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactivity(payload)


def event_body(
    event: dict[str, Any],
    event_id: str = "Ev00000001",
    team_id: str = "T1",
    event_time: int = 1_700_000_000,
) -> bytes:
    """An Events API ``event_callback`` body (JSON), as Slack POSTs it to the request URL
    (and as the payload of a Socket Mode ``events_api`` envelope: ``json.loads`` it)."""
    payload = {
        "token": "fake-verification-token",
        "team_id": team_id,
        "api_app_id": "AFAKE",
        "event": {"event_ts": f"{event_time}.000100", **event},
        "type": "event_callback",
        "event_id": event_id,
        "event_time": event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": "UBOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(payload).encode("utf-8")


def home_opened(user: str, tab: str = "home") -> dict[str, Any]:
    """The ``app_home_opened`` event of ``user`` opening one tab of the App Home."""
    return {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": tab}


def member_joined(user: str, channel: str, inviter: str | None = None) -> dict[str, Any]:
    """The ``member_joined_channel`` event of ``user`` joining ``channel``."""
    event = {"type": "member_joined_channel", "user": user, "channel": channel}
    event.update(channel_type="C", team="T1")
    if inviter:
        event["inviter"] = inviter
    return event


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float = 10
) -> tuple[int, dict[str, str], str]:
    """POST to a local app and return (status, headers, body text), errors included.

    Only 127.0.0.1 is allowed and proxies are bypassed, so tests can never leave the box.
    """
    host = urlsplit(url).hostname
    if host != "127.0.0.1":
        raise ValueError(f"tests only talk to 127.0.0.1, not {host!r}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode("utf-8")


def _interactivity(payload: dict[str, Any]) -> bytes:
    # Slack sends interactivity as a form with one field, payload=<JSON>.
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def _user(user_id: str, team_id: str) -> dict[str, str]:
    name = f"user-{user_id.lower()}"
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _channel_name(channel_id: str) -> str:
    return "directmessage" if channel_id.startswith("D") else f"channel-{channel_id.lower()}"
