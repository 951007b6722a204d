"""Socket Mode: bolt's handler, with the envelope id handed to the listeners.

Slack identifies each Socket Mode delivery by its `envelope_id`; the listeners
journal it (like an HTTP request's signature), so the same envelope delivered
twice runs once. Requests are also counted by `RequestsFirst`, so background
work yields to acknowledgements as it does for HTTP.
"""

from __future__ import annotations

import time

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import send_response
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.app import ENVELOPE_HEADER
from bot.slack.priority import RequestsFirst


class SocketMode(SocketModeHandler):
    def __init__(self, app: App, app_token: str, priority: RequestsFirst) -> None:
        super().__init__(app, app_token)
        self.priority = priority
        # set when serve stops: an envelope then goes unacknowledged rather than half
        # handled. Slack retries an event (on another replica's connection, if there is
        # one); a command typed in that moment gets Slack's timeout and is typed again
        self.stopping = False

    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        if self.stopping:
            return
        started = time.time()
        with self.priority.request():
            if req.retry_attempt:
                # Slack re-sends what it thinks timed out; the first delivery is already
                # journaled and running, so acknowledge and do nothing
                client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
            request = BoltRequest(
                mode="socket_mode", body=req.payload, headers={ENVELOPE_HEADER: req.envelope_id}
            )
            send_response(client, req, self.app.dispatch(request), started)
