"""A Socket Mode server on loopback speaking Slack's protocol, for end-to-end tests.

The bot's real Socket Mode path runs against it: slack-sdk's built-in client asks the
fake Web API's `apps.connections.open` (with the app token) for a URL, gets
`ws://127.0.0.1:PORT/link`, connects with a plain socket, waits for `hello`, then
receives envelopes (`slash_commands`, `interactive`) and acknowledges each by sending
back `{"envelope_id": …}` (with a `payload` when the ack carries an answer). A
`disconnect` frame asks the client to fetch a new URL and reconnect, as Slack does
before it recycles a connection.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._connections: list[ServerConnection] = []
        self.acks: dict[str, list[dict[str, Any]]] = {}  # envelope id -> what came back
        self.connected = 0  # connections ever made
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeSocketMode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what tests do -----------------------------------------------------------

    def wait_connected(self, count: int = 1, timeout: float = 20) -> None:
        """Until `count` connections have said hello (reconnects count)."""
        self._wait(lambda: self.connected >= count and self._connections, timeout, "a connection")

    def send(self, kind: str, payload: dict[str, Any], envelope_id: str | None = None) -> str:
        """Deliver one envelope on the newest connection; returns its envelope id."""
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self._cond:
            connection = self._connections[-1]
        connection.send(json.dumps(envelope))
        return envelope_id

    def ack(self, envelope_id: str, count: int = 1, timeout: float = 10) -> dict[str, Any]:
        """The client's acknowledgement of one envelope (the `count`-th, for one sent again)."""
        self._wait(
            lambda: len(self.acks.get(envelope_id, [])) >= count,
            timeout,
            f"ack {count} of {envelope_id}",
        )
        return self.acks[envelope_id][count - 1]

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does before recycling a connection."""
        with self._cond:
            connection = self._connections[-1]
        connection.send(json.dumps({"type": "disconnect", "reason": reason}))

    # --- the server side ---------------------------------------------------------------

    def _handle(self, connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        with self._cond:
            self._connections.append(connection)
            self.connected += 1
            self._cond.notify_all()
        try:
            for message in connection:
                data = json.loads(message)
                if isinstance(data, dict) and "envelope_id" in data:
                    with self._cond:
                        self.acks.setdefault(data["envelope_id"], []).append(data)
                        self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                if connection in self._connections:
                    self._connections.remove(connection)
                self._cond.notify_all()

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"waited {timeout}s for {what}")
                self._cond.wait(remaining)
