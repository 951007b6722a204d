"""The composition root: every part of the bot is built and connected here, once.

`build` makes the core (store, engine, command handler, reminders) around a
chat port: the terminal's for drills and the demo, a recording one in tests.
`build_slack` makes the whole Slack bot around it (Web API client, pacing,
plan redraws, lanes, the bolt app) without starting anything;
`bot/slack/server.py` only starts and serves it. Each part gets what it needs
through its constructor, so a test can swap the clock or the chat without
patching, and nothing is rewired after it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.chat import ChatPort
from bot.clock import Clock
from bot.config import Settings, admin_ids
from bot.dispatch import CommandHandler
from bot.engine import IncidentService, Policy
from bot.messages import Renderer
from bot.outbound import Outbound, OutboundSettings
from bot.outbox import Outbox, is_outbound
from bot.postmortem import ReviewOptions
from bot.reminders import ReminderService
from bot.runbook import Catalog, shipped_runbooks_dir
from bot.store import Store

if TYPE_CHECKING:  # the Slack side is imported only by build_slack: the demo never pays for it
    from slack_bolt import App
    from slack_sdk import WebClient

    from bot.hooks import AlertIntake
    from bot.http_server import BoundedHTTPServer
    from bot.lanes import Lane, Lanes
    from bot.reminders import ReminderScheduler
    from bot.replicas import Sweeper
    from bot.routes import Routes
    from bot.slack.plan_redraws import PlanRedraws
    from bot.slack.priority import RequestsFirst

REMINDER_THREADS = 8  # reminders due at once are posted in parallel
LISTENER_THREADS = 16  # requests being journaled and acknowledged at once
# incidents whose commands are being carried out at once (PostgreSQL): more threads only
# compete with the acknowledgements for Python's lock (16 made 50 acks in flight wait
# 3-5x a bare bolt app's time; 4 keep up with them)
WORK_THREADS = 4
# SQLite runs one transaction at a time, and a command is one transaction: more threads
# than this only queue on its lock, beside the requests waiting to be acknowledged
SQLITE_WORK_THREADS = 2
DELIVERY_THREADS = 16  # incidents whose messages are being posted at once (Slack's pace)
HOME_THREADS = 2  # Home tabs being published at once (a read and one views.publish each)
OUTBOUND_THREADS = 8  # pages and event webhooks being sent at once (apart from Slack's)
COMMAND_DEFER = 0.02  # seconds a state change may wait for acknowledgements in all


@dataclass
class Bot:
    settings: Settings
    store: Store
    clock: Clock
    catalog: Catalog
    service: IncidentService
    handler: CommandHandler
    reminders: ReminderService

    def close(self) -> None:
        self.reminders.close()
        self.store.close()


def runbook_folder(settings: Settings) -> Path:
    """The configured folder, or the runbooks shipped with the bot when it does not exist."""
    return settings.runbooks if settings.runbooks.is_dir() else shipped_runbooks_dir()


def build(
    settings: Settings,
    clock: Clock,
    chat: ChatPort,
    store: Store | None = None,
    reminder_workers: int = 1,
    drill: bool = False,
    after_change: Callable[[], None] = lambda: None,
    plan_changed: Callable[[int], None] | None = None,
    accepts_user: Callable[[str], bool] = lambda user: True,
    wake_delivery: Callable[[Lane], None] | None = None,
    wake_command: Callable[[Lane], None] = lambda lane: None,
    channel_url: Callable[[str], str | None] = lambda channel: None,
) -> Bot:
    """The core around `chat`. `drill=True` (drills, the demo): reviews go to
    `postmortems/drills/`, no follow-up action ever reminds anyone, and nothing is paged or
    sent to event webhooks. The callbacks are the Slack wiring's (see build_slack); by
    default the plan is redrawn at once and what a command says is delivered in the
    caller's thread. `channel_url`: a web link to a channel, for pages and events."""
    store = store or Store(settings.db)
    catalog = Catalog(runbook_folder(settings))
    policy = Policy(settings.policy, admin_ids(settings))
    service = IncidentService(store, clock, catalog, settings.timezone, policy, drill=drill)
    review = ReviewOptions(
        settings.postmortems,
        settings.postmortem_language,
        settings.postmortem_template,
        settings.timezone,
        runbooks=catalog.folder,
        drill=drill,
    )
    render = Renderer(settings.language, mention=chat.mention, escape=chat.escape)
    outbox = Outbox(store, wake=wake_delivery)
    outbound = None if drill else outbound_for(settings, store, outbox, channel_url)
    handler = CommandHandler(
        service,
        chat,
        review,
        outbox,
        render,
        after_change=after_change,
        plan_changed=plan_changed,
        accepts_user=accepts_user,
        wake_lane=wake_command,
        outbound=outbound,
    )
    reminders = ReminderService(
        store,
        clock,
        chat,
        render,
        reminder_workers,
        drill=drill,
        # overdue steps and a raised severity show in the plan
        after_post=handler.plan_changed,
        raised=handler.severity_raised,
    )
    return Bot(settings, store, clock, catalog, service, handler, reminders)


def outbound_for(
    settings: Settings, store: Store, outbox: Outbox, channel_url: Callable[[str], str | None]
) -> Outbound | None:
    """Pages and event webhooks as configured (DESIGN §4b), or None when neither is."""
    options = OutboundSettings(
        pagerduty_key=settings.pagerduty_routing_key,
        pagerduty_url=settings.pagerduty_url,
        notify_urls=tuple(settings.notify_targets),
        notify_secret=settings.notify_secret,
    )
    return Outbound(options, store, outbox, channel_url) if options.enabled else None


def alert_routes(settings: Settings) -> Routes | None:
    """The routes file when alerts are taken (a webhook token is set), checked against the
    runbooks there are; raises RoutesInvalid with each problem as file:line."""
    from bot.routes import load_routes
    from bot.runbook import validate_paths

    if not settings.webhook_token:
        return None
    good, _ = validate_paths([runbook_folder(settings)])  # quietly: Catalog logs the rest
    return load_routes(settings.routes, [loaded.runbook.id for loaded in good])


def slack_channel_url(channel: str) -> str:
    """A link that opens a channel in Slack (the workspace is the viewer's own)."""
    return f"https://slack.com/app_redirect?channel={channel}"


@dataclass
class SlackBot:
    """Everything `serve` runs, built and connected but not yet started."""

    bot: Bot
    app: App
    scheduler: ReminderScheduler
    commands: Lanes
    deliveries: Lanes
    priority: RequestsFirst
    plan_redraws: PlanRedraws
    pools: list[ThreadPoolExecutor]  # listeners, commands, deliveries, homes, outbound: in order
    outbound: Lanes | None = None  # pages and event webhooks, apart from the chat deliveries
    alerts: AlertIntake | None = None  # POST /hooks/alertmanager, when a token is set
    server: BoundedHTTPServer | None = None
    # Socket Mode has no signing secret: then only /healthz is served over HTTP,
    # so nobody on the network can post unsigned commands to /slack/events
    events_over_http: bool = True
    interrupted: list[Lane] = field(default_factory=list)  # outbox lanes a crash left
    sweeper: Sweeper | None = None  # replicas (PostgreSQL): takes up work others left

    def wake_delivery(self, lane: Lane) -> None:
        """Wake an outbox lane in its own lanes: outbound targets apart from the chat."""
        if is_outbound(lane) and self.outbound is not None:
            self.outbound.wake(lane)
        else:
            self.deliveries.wake(lane)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def healthy(self) -> dict[str, str]:
        """What /healthz reports: the database takes a write and the reminder alarm runs."""
        from bot.clock import utc_now

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
        """No request being carried out and nothing being delivered (tests)."""
        return not self.commands.busy and not self.deliveries.busy

    def stop(self) -> None:
        """Stop taking requests, let the work in flight finish, then close the database."""
        if self.server is not None:
            self.server.shutdown()
        for pool in self.pools:  # the listener pool (forms being opened), then the lanes
            pool.shutdown(wait=True)
        if self.sweeper is not None:
            self.sweeper.stop()
        self.commands.close()
        self.deliveries.close()
        if self.outbound is not None:
            self.outbound.close()
        self.scheduler.shutdown()
        self.plan_redraws.stop()
        self.bot.close()


def build_slack(
    settings: Settings,
    client: WebClient | None = None,
    clock: Clock | None = None,
    events_over_http: bool = True,
    routes: Routes | None = None,
) -> SlackBot:
    """The Slack bot: chat on the Web API, commands in per-incident lanes, what they say
    from the outbox, reminders on their alarm, plans redrawn at chat.update's pace, the
    bolt app whose listeners journal and acknowledge, and (with a webhook token and
    `routes`) the Alertmanager intake; pages and event webhooks go out in lanes of their
    own."""
    from bot.lanes import Lanes
    from bot.persistence_clock import persisted_clock
    from bot.reminders import ReminderScheduler
    from bot.replicas import Sweeper
    from bot.slack.app import create_app
    from bot.slack.chat import SlackChat
    from bot.slack.client import web_client
    from bot.slack.home import HomeTab
    from bot.slack.plan_redraws import PlanRedraws
    from bot.slack.priority import RequestsFirst
    from bot.slack.text import is_slack_user

    priority = RequestsFirst()  # acknowledgements first: background work pauses for them
    client = client or web_client(settings, before_call=priority.pause)
    store = Store(settings.db)
    store.before_statement(priority.step_aside)  # PostgreSQL: each statement is a break
    clock = clock or persisted_clock(store, settings.clock_speed)
    chat = SlackChat(client, settings.language, settings.announce_channel)
    # built below; the closures find them when they first run
    core: Bot
    scheduler: ReminderScheduler
    commands: Lanes
    deliveries: Lanes
    outbound: Lanes
    plan_redraws = PlanRedraws(
        lambda incident_id: priority.run(core.handler.refresh_plan, incident_id)
    )
    core = build(
        settings,
        clock,
        chat,
        store=store,
        reminder_workers=REMINDER_THREADS,
        after_change=lambda: scheduler.changed(),
        # commands and reminders stay quick; the pinned picture follows at chat.update's pace
        plan_changed=plan_redraws.mark,
        accepts_user=is_slack_user,
        wake_delivery=lambda lane: (outbound if is_outbound(lane) else deliveries).wake(lane),
        wake_command=lambda lane: commands.wake(lane),
        channel_url=slack_channel_url,
    )
    handler = core.handler
    scheduler = ReminderScheduler(core.reminders, clock)
    listeners = ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener")
    workers = WORK_THREADS if store.is_postgres else SQLITE_WORK_THREADS
    work = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="work")
    deliver = ThreadPoolExecutor(max_workers=DELIVERY_THREADS, thread_name_prefix="deliver")
    send = ThreadPoolExecutor(max_workers=OUTBOUND_THREADS, thread_name_prefix="outbound")
    # state changes wait for acknowledgements only briefly; what they say may wait longer
    commands = Lanes(
        "commands",
        work,
        handler.run_next,
        run=lambda step, lane, since: priority.run(
            step, lane, max_defer=COMMAND_DEFER, since=since
        ),
    )
    deliveries = Lanes(
        "deliveries",
        deliver,
        lambda lane: handler.outbox.step(lane, handler),
        run=lambda step, lane, since: priority.run(step, lane),
    )
    # pages and webhooks wait for nothing of Slack's (no RequestsFirst): other hosts
    outbound = Lanes("outbound", send, lambda lane: handler.outbox.step(lane, handler))
    homes = ThreadPoolExecutor(max_workers=HOME_THREADS, thread_name_prefix="home")
    home = HomeTab(
        store, clock, client, handler.render, chat.channel_link, homes, priority, settings.timezone
    )
    app = create_app(core, client, settings.slack_signing_secret, listeners, commands, home)
    alerts = None
    if settings.webhook_token and routes is not None:
        from bot.hooks import AlertIntake

        alerts = AlertIntake(handler, store, routes, commands.wake)
    sweeper = None
    if store.is_postgres:

        def sweep() -> None:
            for lane in handler.pending_lanes():
                commands.wake(lane)
            for lane in handler.outbox.waiting_lanes():
                (outbound if is_outbound(lane) else deliveries).wake(lane)
            scheduler.poke()

        sweeper = Sweeper(sweep)
    return SlackBot(
        bot=core,
        app=app,
        scheduler=scheduler,
        commands=commands,
        deliveries=deliveries,
        priority=priority,
        plan_redraws=plan_redraws,
        pools=[listeners, work, deliver, homes, send],
        events_over_http=events_over_http,
        outbound=outbound,
        alerts=alerts,
        sweeper=sweeper,
    )
