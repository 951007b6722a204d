"""The baseline for ack latency: a bare slack-bolt app whose `/incident` listener only acks.

Served exactly like bot/slack/server.py serves the bot: the same bolt settings
(signature verification on, token verification off, `process_before_response=False`,
a 16-thread listener executor), the bot's own HTTP server class
(`bot.slack.server.SlackHTTPServer`: a thread per request, a listen queue of 128),
one `App.dispatch(BoltRequest(...))` per POST /slack/events, and GET /healthz.

    SLACK_SIGNING_SECRET=... SLACK_API_URL=http://127.0.0.1:P/api/ \
        python benchmarks/bare_app.py --port 3001

Runs as its own process, so it shares no interpreter with the harness or the bot;
of the bot it uses only that server class.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient

from bot.slack.server import SlackHTTPServer

LISTENER_THREADS = 16  # as bot/slack/server.py
MAX_BODY = 1_000_000


def create_app(signing_secret: str, executor: ThreadPoolExecutor, api_url: str) -> App:
    # bolt's single-team authorization calls auth.test once, on the first request, as it
    # does in the bot: both go to the fake Slack, so neither app ever leaves the machine
    client = WebClient(token="xoxb-bare-app", base_url=api_url.rstrip("/") + "/")
    app = App(
        client=client,
        listener_executor=executor,
        signing_secret=signing_secret,
        request_verification_enabled=True,
        token_verification_enabled=False,
        process_before_response=False,
    )

    @app.command("/incident")
    def incident_command(ack: Ack) -> None:
        ack()

    return app


def handler_class(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bare-bolt"

        def do_GET(self) -> None:  # noqa: N802
            if self.path.partition("?")[0] != "/healthz":
                self._send(404, {"error": "not found"})
                return
            self._send(200, {"ok": True})

        def do_POST(self) -> None:  # noqa: N802
            path, _, query = self.path.partition("?")
            if path != "/slack/events":
                self._send(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"error": "too large"})
                return
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            response = app.dispatch(BoltRequest(body=body, query=query, headers=self.headers))
            self.send_response(response.status)
            for name, values in response.headers.items():
                for value in values:
                    self.send_header(name, value)
            payload = response.body.encode("utf-8") if isinstance(response.body, str) else b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _send(self, status: int, data: dict[str, Any]) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    secret = os.environ.get("SLACK_SIGNING_SECRET") or ""
    if not secret:
        parser.error("SLACK_SIGNING_SECRET is not set")
    api_url = os.environ.get("SLACK_API_URL") or ""
    if urlsplit(api_url).hostname != "127.0.0.1":
        parser.error("SLACK_API_URL must point at a fake Slack on 127.0.0.1")
    executor = ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener")
    app = create_app(secret, executor, api_url)
    server = SlackHTTPServer((args.host, args.port), handler_class(app))
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    print(f"bare bolt app: health at :{args.port}/healthz", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        executor.shutdown(wait=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
