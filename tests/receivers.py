"""Small HTTP receivers on loopback for the bot's outbound calls: a stand-in for
PagerDuty's Events API v2 and for an event webhook. Each records what it got and
can be told to fail the next requests (an HTTP status, or a hang-up)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int = 202  # what the receiver answered

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-incident-bot-signature", ""))


class Receiver:
    """`pagerduty=True` answers like the Events API (202 with status, message, dedup_key)."""

    def __init__(self, pagerduty: bool = False) -> None:
        self.pagerduty = pagerduty
        self.requests: list[Received] = []
        self.failures: list[int] = []  # statuses to answer next, one per request; 0: hang up
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer(self.path, headers, body)
                if status == 0:  # a receiver that drops the connection
                    self.close_connection = True
                    self.connection.close()
                    return
                if receiver.pagerduty and status == 202:
                    key = json.loads(body).get("dedup_key")
                    answer = {"status": "success", "message": "Event processed", "dedup_key": key}
                elif receiver.pagerduty:
                    answer = {
                        "status": "invalid event",
                        "message": "Event object is invalid",
                        "errors": ["Length of 'routing_key' is incorrect"],
                    }
                else:
                    answer = {"ok": 200 <= status < 300}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )  # a short poll: shutdown() waits for it
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return (
            f"http://{host}:{port}/v2/enqueue" if self.pagerduty else f"http://{host}:{port}/hook"
        )

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._changed:
            status = self.failures.pop(0) if self.failures else 202
            self.requests.append(Received(path, headers, body, status))
            self._changed.notify_all()
            return status

    def fail(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (0: drop the connection)."""
        with self._changed:
            self.failures.extend(statuses)

    def taken(self) -> list[Received]:
        """The requests answered with a 2xx, in order."""
        with self._changed:
            return [r for r in self.requests if r.ok]

    def wait_for(
        self, count: int, seconds: float = 15.0, ok: bool = True, **fields: Any
    ) -> list[Received]:
        """Wait (bounded) until `count` requests (answered 2xx, unless `ok=False`) have JSON
        bodies with these fields (`payload__severity="critical"` looks inside)."""
        deadline = time.monotonic() + seconds

        def found() -> list[Received]:
            return [
                r
                for r in self.requests
                if (r.ok or not ok) and all(_get(r.json, k) == v for k, v in fields.items())
            ]

        with self._changed:
            while len(found()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    shown = [r.body[:200] for r in self.requests]
                    raise AssertionError(f"never got {count} request(s) with {fields}: {shown}")
                self._changed.wait(left)
            return found()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("__"):
        data = data.get(part) if isinstance(data, dict) else None
    return data
