"""Socket Mode while serve stops: an envelope is left unacknowledged, never half handled."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.slack.priority import RequestsFirst
from bot.slack.socket import SocketMode


class Client:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.logger = logging.getLogger("socket-test")

    def send_socket_mode_response(self, response: Any) -> None:
        self.sent.append(response)


def test_an_envelope_arriving_while_serve_stops_is_neither_run_nor_acknowledged():
    def authorize(**_: Any) -> AuthorizeResult:  # no auth.test: this test has no network
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-test")

    app = App(signing_secret="s", authorize=authorize)
    ran: list[str] = []

    @app.command("/incident")
    def incident(ack: Any, command: dict[str, Any]) -> None:
        ran.append(command["text"])
        ack()

    handler = SocketMode(app, "xapp-test", RequestsFirst())
    request = SocketModeRequest(
        type="slash_commands",
        envelope_id="e1",
        payload={"command": "/incident", "text": "status", "user_id": "U1", "channel_id": "C1"},
    )
    client = Client()
    handler.stopping = True
    handler.handle(client, request)  # type: ignore[arg-type]
    assert ran == [] and client.sent == []
    handler.stopping = False
    handler.handle(client, request)  # type: ignore[arg-type]
    assert ran == ["status"] and len(client.sent) == 1
    handler.client.close()
