"""Running the Slack app: HTTP (`POST /slack/events`, `GET /healthz`) or Socket Mode.

`start_bot` wires everything for a process (or a test) and returns a handle;
`serve` is what `incident-bot serve` runs until stopped.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    BackoffRetryIntervalCalculator,
    FixedValueRetryIntervalCalculator,
)
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator

from bot.bootstrap import Bot, build
from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.http_server import BoundedHTTPServer
from bot.lanes import Lane, Lanes
from bot.persistence_clock import persisted_clock
from bot.reminders import ReminderScheduler
from bot.slack.app import create_app
from bot.slack.chat import SlackChat
from bot.slack.http import HEALTH_PATH, slack_routes
from bot.slack.plan_redraws import PlanRedraws
from bot.slack.priority import RequestsFirst
from bot.slack.socket import SocketMode
from bot.store import Store
from bot.writer_lock import DatabaseInUse, hold_writer_lock

log = logging.getLogger(__name__)
REMINDER_THREADS = 8  # reminders due at once are posted in parallel
LISTENER_THREADS = 16  # requests being journaled and acknowledged at once
WORK_THREADS = 16  # incidents whose commands are being carried out at once
DELIVERY_THREADS = 16  # incidents whose messages are being posted at once (Slack's pace)
COMMAND_DEFER = 0.05  # seconds a state change may wait for acknowledgements in all
# slack-sdk's wait before retrying a failed call: this many seconds, doubled on each try, plus
# up to 1 s of random jitter; 0 retries at once
RETRY_BACKOFF = 0.5
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


class _ServerErrors(ServerErrorRetryHandler):
    """slack-sdk retries 500 and 503; Slack's edge also answers 502 and 504 when busy."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[no-untyped-def]
        return response is not None and response.status_code >= 500


class SlackWebClient(WebClient):
    """slack-sdk's WebClient that lets acknowledgements go first before each call
    (`RequestsFirst.pause`: background work only)."""

    before_call: Callable[[], object] = staticmethod(lambda: None)

    def api_call(self, *args: Any, **kwargs: Any) -> Any:
        self.before_call()
        return super().api_call(*args, **kwargs)


def web_client(settings: Settings) -> SlackWebClient:
    """A WebClient that retries 429 (after Retry-After), 5xx and dropped connections."""
    kwargs: dict[str, Any] = {"token": settings.slack_bot_token}
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    client = SlackWebClient(**kwargs)
    backoff: RetryIntervalCalculator = (
        BackoffRetryIntervalCalculator(backoff_factor=RETRY_BACKOFF)
        if RETRY_BACKOFF > 0
        else FixedValueRetryIntervalCalculator(0.0)
    )
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=3, interval_calculator=backoff),
        RateLimitErrorRetryHandler(max_retry_count=3),
        _ServerErrors(max_retry_count=3, interval_calculator=backoff),
    ]
    return client


@dataclass
class RunningBot:
    bot: Bot
    app: App
    scheduler: ReminderScheduler
    commands: Lanes
    deliveries: Lanes
    priority: RequestsFirst
    plan_redraws: PlanRedraws
    pools: list[ThreadPoolExecutor]  # listeners, commands, deliveries: stopped in this order
    server: BoundedHTTPServer | None = None
    # Socket Mode has no signing secret: then only /healthz is served over HTTP,
    # so nobody on the network can post unsigned commands to /slack/events
    events_over_http: bool = True

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def healthy(self) -> dict[str, str]:
        """What /healthz reports: the database takes a write and the reminder alarm runs."""
        scheduler = "running" if self.scheduler.running else "stopped"
        if self.scheduler.running and self.scheduler.failures:
            scheduler = f"backing off after {self.scheduler.failures} failed firing(s)"
        status = {"db": "ok", "scheduler": scheduler}
        try:
            self.bot.store.probe_write(utc_now())
        except Exception as exc:  # any database failure makes the bot unhealthy
            status["db"] = f"error: {type(exc).__name__}: {exc}"[:200]
        return status

    def idle(self) -> bool:
        """No request being carried out and nothing waiting to be delivered (tests)."""
        return not self.commands.busy and not self.deliveries.busy

    def stop(self) -> None:
        """Stop taking requests, let the work in flight finish, then close the database."""
        if self.server is not None:
            self.server.shutdown()
        for pool in self.pools:  # listeners first: they feed the lanes
            pool.shutdown(wait=True)
        self.commands.close()
        self.deliveries.close()
        self.scheduler.shutdown()
        self.plan_redraws.stop()
        self.bot.close()


def start_bot(
    settings: Settings,
    client: WebClient | None = None,
    clock: Clock | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    events_over_http: bool = True,
) -> RunningBot:
    """Wire store, clock, Slack chat, engine, reminders, lanes and the bolt app; serve HTTP
    on `host:port` if `port` is given."""
    client = client or web_client(settings)
    store = Store(settings.db)
    clock = clock or persisted_clock(store, settings.clock_speed)
    chat = SlackChat(client, settings.language, settings.announce_channel)
    bot = build(settings, clock, chat, store=store, reminder_workers=REMINDER_THREADS)
    handler = bot.handler
    scheduler = ReminderScheduler(bot.reminders, clock)
    handler.after_change = scheduler.poke
    priority = RequestsFirst()
    if isinstance(client, SlackWebClient):
        client.before_call = priority.pause
    plan_redraws = PlanRedraws(lambda incident_id: priority.run(handler.refresh_plan, incident_id))
    # commands and reminders stay quick; the pinned picture follows at chat.update's pace
    bot.reminders.after_post = handler.plan_changed = plan_redraws.mark
    plan_redraws.start()
    listeners = ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener")
    work = ThreadPoolExecutor(max_workers=WORK_THREADS, thread_name_prefix="work")
    deliver = ThreadPoolExecutor(max_workers=DELIVERY_THREADS, thread_name_prefix="deliver")
    # state changes wait for acknowledgements only briefly; what they say may wait longer
    commands = Lanes(
        "commands",
        work,
        handler.run_next,
        run=lambda step, lane: priority.run(step, lane, max_defer=COMMAND_DEFER),
    )
    deliveries = Lanes(
        "deliveries", deliver, handler.outbox.step, run=lambda step, lane: priority.run(step, lane)
    )
    handler.outbox.wake = deliveries.wake
    interrupted = handler.outbox.recover()  # before any delivery starts (see outbox.py)
    app = create_app(bot, client, settings.slack_signing_secret, listeners, commands)
    scheduler.start()
    running = RunningBot(
        bot=bot,
        app=app,
        scheduler=scheduler,
        commands=commands,
        deliveries=deliveries,
        priority=priority,
        plan_redraws=plan_redraws,
        pools=[listeners, work, deliver],
        events_over_http=events_over_http,
    )
    threading.Thread(
        target=_recover, args=(running, interrupted), name="recover", daemon=True
    ).start()
    if port is not None:
        routes = slack_routes(running, settings.slack_signing_secret)
        running.server = BoundedHTTPServer(host, port, routes)
        running.server.start()
    return running


def _recover(running: RunningBot, deliveries: list[Lane]) -> None:
    """After a crash or a restart: deliver what was left in the outbox, open channels for
    declarations that got none, run every request that was acknowledged but not finished
    (each in its incident's lane, in journal order, beside new ones), and redraw the plans
    (a redraw still waiting when the last process stopped was lost). Runs beside start-up,
    so /healthz answers at once."""
    bot = running.bot
    try:
        for lane in deliveries:
            running.deliveries.wake(lane)
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
    try:
        writer = hold_writer_lock(settings.db)
    except DatabaseInUse as exc:
        raise StartupError(str(exc)) from None
    try:
        return _serve(settings, socket_mode, port, host)
    finally:
        writer.release()


def _serve(settings: Settings, socket_mode: bool, port: int, host: str) -> int:
    new_database = not settings.db.exists()
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
        running.stop()
    return 0
