"""Serving the Slack bot: HTTP (`POST /slack/events`, `GET /healthz`) or Socket Mode.

The bot is built in one place (`bot.bootstrap.build_slack`); `start_bot` starts
what was built (for a process or a test) and `serve` is what `incident-bot
serve` runs until stopped: the checks, the writer lock, the port.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.bootstrap import SlackBot, alert_routes, build_slack
from bot.clock import Clock
from bot.config import Settings, database_file, database_missing
from bot.http_server import BoundedHTTPServer
from bot.routes import RoutesInvalid
from bot.slack.client import web_client
from bot.slack.http import HEALTH_PATH, slack_routes
from bot.slack.socket import SocketMode
from bot.writer_lock import DatabaseInUse, hold_writer_lock

log = logging.getLogger(__name__)
STOP_CHECK = 0.2  # seconds: how soon `serve` notices a SIGTERM, whichever thread it reached


class StartupError(Exception):
    """A setting that keeps the bot from starting; the message says which and why."""


def check_tokens(settings: Settings, http: bool) -> None:
    token = settings.slack_bot_token
    if not token:
        raise StartupError(
            "SLACK_BOT_TOKEN is not set: give the bot token (xoxb-…) of your Slack app"
        )
    if not re.fullmatch(r"xoxb-[A-Za-z0-9-]+", token):
        raise StartupError("SLACK_BOT_TOKEN does not look like a bot token: it starts with xoxb-")
    if http and not settings.slack_signing_secret:
        raise StartupError(
            "SLACK_SIGNING_SECRET is not set: HTTP mode needs it to verify requests from Slack "
            "(Basic Information → Signing Secret), or set SLACK_APP_TOKEN for Socket Mode"
        )
    app_token = settings.slack_app_token
    if not http and app_token and not re.fullmatch(r"xapp-[A-Za-z0-9-]+", app_token):
        raise StartupError(
            "SLACK_APP_TOKEN does not look like an app-level token: it starts with xapp-"
        )


RunningBot = SlackBot  # the bot as `serve` runs it (its HTTP server set when started)


def start_bot(
    settings: Settings,
    client: WebClient | None = None,
    clock: Clock | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    events_over_http: bool = True,
) -> SlackBot:
    """Build the Slack bot (bootstrap.build_slack) and start it: settle what a crash left,
    arm the reminders, pick up unfinished work in the background, serve HTTP on
    `host:port` if `port` is given (with the Alertmanager hook when a token is set)."""
    try:
        routes = alert_routes(settings)
    except RoutesInvalid as exc:
        raise StartupError(
            "INCIDENT_BOT_WEBHOOK_TOKEN is set, so alerts are taken, but the routes file "
            f"(INCIDENT_BOT_ROUTES) cannot be used:\n{exc}\n"
            "Fix it (`incident-bot validate` checks it; config/routes.example.yaml shows the "
            "format) or unset the token"
        ) from None
    running = build_slack(settings, client, clock, events_over_http, routes=routes)
    handler = running.bot.handler
    running.interrupted = handler.outbox.recover()  # before any delivery starts (outbox.py)
    running.plan_redraws.start()
    running.scheduler.start()
    if running.sweeper is not None:
        running.sweeper.start()
    threading.Thread(target=_recover, args=(running,), name="recover", daemon=True).start()
    if port is not None:
        served = slack_routes(
            running,
            settings.slack_signing_secret,
            alerts=running.alerts,
            webhook_token=settings.webhook_token,
        )
        running.server = BoundedHTTPServer(host, port, served, busy=running.priority.request)
        running.server.start()
    return running


def _recover(running: SlackBot) -> None:
    """After a crash or a restart: deliver what was left in the outbox, open channels for
    declarations that got none, run every request that was acknowledged but not finished
    (each in its incident's lane, in journal order, beside new ones), and redraw the plans
    (a redraw still waiting when the last process stopped was lost). Runs beside start-up,
    so /healthz answers at once."""
    bot = running.bot
    try:
        for lane in running.interrupted:
            running.wake_delivery(lane)
        active = bot.service.active()  # loaded once: with many incidents this is the cost
        for incident in active:
            if incident.plan_ref:
                bot.handler.plan_changed(incident.id)  # paced: no burst of chat.update
        bot.handler.recover_declarations(active)
        lanes = bot.handler.pending_lanes()
        for lane in lanes:
            running.commands.wake(lane)
        if lanes:
            log.info("carrying out acknowledged requests left unfinished in %d lane(s)", len(lanes))
    except Exception:
        log.exception("recovering unfinished work failed")


def serve(settings: Settings, http: bool, port: int, host: str | None = None) -> int:
    """`incident-bot serve`: Socket Mode when SLACK_APP_TOKEN is set (and not --http), else HTTP.
    The port listens on `host`: by default every address for HTTP (Slack must reach it),
    only this machine in Socket Mode (it serves /healthz alone)."""
    socket_mode = bool(settings.slack_app_token) and not http
    check_tokens(settings, http=not socket_mode)
    host = host or ("127.0.0.1" if socket_mode else "0.0.0.0")
    path = database_file(settings.db)
    if path is None:  # PostgreSQL: replicas may share it, each serving on its own
        return _serve(settings, socket_mode, port, host)
    try:
        writer = hold_writer_lock(path)
    except DatabaseInUse as exc:
        raise StartupError(str(exc)) from None
    try:
        return _serve(settings, socket_mode, port, host)
    finally:
        writer.release()


def _serve(settings: Settings, socket_mode: bool, port: int, host: str) -> int:
    new_database = database_missing(settings.db)
    client = web_client(settings)
    try:
        client.auth_test()
    except SlackApiError as exc:
        raise StartupError(f"Slack refused SLACK_BOT_TOKEN: {exc.response.get('error')}") from None
    except OSError as exc:
        raise StartupError(
            f"cannot reach the Slack API ({exc.__class__.__name__}); check SLACK_API_URL"
        ) from None
    if new_database:  # said once, and only by a start that goes on to create it
        log.warning("no database at %s: creating a new, empty one", settings.db)
    running = start_bot(
        settings, client=client, port=port, host=host, events_over_http=not socket_mode
    )
    # Installed before the start is announced, so a SIGTERM from then on stops cleanly. The
    # handler only notes the signal: Python runs handlers in the main thread, so one taking
    # a lock (Event.set) could deadlock against that thread, and a SIGTERM the kernel hands
    # to another thread would wait for ever behind a blocking Event.wait().
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
    log.info(
        "incident-bot listening on %s:%s (%s)",
        host,
        port,
        "Socket Mode" if socket_mode else "HTTP",
    )
    print(
        f"incident-bot: {'Socket Mode' if socket_mode else 'HTTP'}; health at :{port}{HEALTH_PATH}",
        flush=True,
    )
    handler: SocketMode | None = None
    try:
        if socket_mode:
            assert settings.slack_app_token
            handler = SocketMode(running.app, settings.slack_app_token, running.priority)
            handler.connect()  # type: ignore[no-untyped-call]
        while not stopping:
            time.sleep(STOP_CHECK)
    except KeyboardInterrupt:
        pass
    finally:
        if handler is not None:  # first: no new envelope is taken while the rest stops
            handler.stopping = True
            # slack_sdk's close() waits seconds for its loops and the socket's close: not on
            # the way out (its threads end with the process)
            threading.Thread(target=handler.close, name="socket-close", daemon=True).start()
        running.stop()
    return 0
