"""The baseline for ack latency: a bare slack-bolt app whose `/incident` listener only acks.

Served exactly like bot/slack/server.py serves the bot: the same bolt settings
(signature verification on, `process_before_response=False`, a listener executor of
the same size), the bot's own bounded HTTP server and routes (`bot.http_server.
BoundedHTTPServer` with `bot.slack.http.slack_routes`: the signature checked on the
raw bytes first, then one `App.dispatch(BoltRequest(...))` per POST /slack/events,
GET /healthz).

    SLACK_SIGNING_SECRET=... SLACK_API_URL=http://127.0.0.1:P/api/ \
        python benchmarks/bare_app.py --port 3001

Runs as its own process, so it shares no interpreter with the harness or the bot;
of the bot it uses only that serving code.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.bootstrap import LISTENER_THREADS
from bot.http_server import BoundedHTTPServer
from bot.slack.http import slack_routes
from bot.slack.priority import RequestsFirst


def create_app(signing_secret: str, executor: ThreadPoolExecutor, api_url: str) -> App:
    # bolt's single-team authorization calls auth.test once, at start-up, as it does in the
    # bot: both go to the fake Slack, so neither app ever leaves the machine
    client = WebClient(token="xoxb-bare-app", base_url=api_url.rstrip("/") + "/")
    app = App(
        client=client,
        listener_executor=executor,
        signing_secret=signing_secret,
        request_verification_enabled=True,
        token_verification_enabled=True,
        process_before_response=False,
    )

    @app.command("/incident")
    def incident_command(ack: Ack) -> None:
        ack()

    return app


@dataclass
class BareApp:
    """The bare app as bot.slack.http.slack_routes serves it: always healthy, no
    background work (so nothing ever waits for its requests)."""

    app: App
    events_over_http: bool = True
    priority: RequestsFirst = field(default_factory=RequestsFirst)

    def healthy(self) -> dict[str, str]:
        return {"db": "ok", "scheduler": "running"}


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
    served = BareApp(app)
    server = BoundedHTTPServer(
        args.host, args.port, slack_routes(served, secret), busy=served.priority.request
    )
    server.start()
    print(f"bare bolt app: health at :{args.port}/healthz", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        executor.shutdown(wait=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
