"""Socket Mode: bolt's handler, with the envelope id handed to the listeners.

Slack identifies each Socket Mode delivery by its `envelope_id`; the listeners
journal it (like an HTTP request's signature), so the same envelope delivered
twice runs once. Requests are also counted by `RequestsFirst`, so background
work yields to acknowledgements as it does for HTTP.

The connection is slack-sdk's built-in client, but for one thing: when Slack
asks for a new connection (every few hours, keeping the old one open a while),
the built-in client starts reading the new one only once it has closed the old
one, and closing waits for the old one's reader, which is blocked in a receive
with a 3 s timeout. So for about 3 s after every refresh, commands waited for
their acknowledgement as long as Slack waits for it. Here the old socket is shut
down first, which ends that receive at once.
"""

from __future__ import annotations

import socket
import time
from contextlib import suppress
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import send_response
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.app import ENVELOPE_HEADER
from bot.slack.priority import RequestsFirst


class PromptRefreshClient(SocketModeClient):
    """The built-in client, whose old connection, once a new one is up, is shut down before
    it is closed: its reader's receive returns at once (an end of stream, which the reader
    takes for the end it was told of), and the new connection is read without waiting."""

    def connect(self) -> None:
        old = self.current_session
        if old is not None:
            # the built-in connect() closes the old session once the new one is up
            old.close = lambda: _close_now(old)  # type: ignore[method-assign]
        super().connect()


def _close_now(session: Any) -> None:
    sock = session.sock
    if sock is not None:
        with suppress(OSError):  # already gone
            # below TLS, when there is TLS: the reader's read sees the end of the stream
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
    type(session).close(session)


class SocketMode(SocketModeHandler):
    def __init__(self, app: App, app_token: str, priority: RequestsFirst) -> None:
        # bolt's handler, on the client above: what SocketModeHandler.__init__ does with
        # the built-in one, with bolt's defaults
        self.app = app
        self.app_token = app_token
        self.client = PromptRefreshClient(
            app_token=app_token,
            logger=app.logger,
            web_client=app.client,
            proxy=app.client.proxy,
            ping_interval=10,  # bolt's (slack-sdk's own is 5)
        )
        self.client.socket_mode_request_listeners.append(self.handle)
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
