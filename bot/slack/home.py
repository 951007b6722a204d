"""The App Home tab: what is open, what is yours, what closed lately.

`home_view` lays out `bot.home.HomeData` in Block Kit (slack_sdk's models check
the limits): a *Declare an incident* button (it opens the start form), the open
incidents with the viewer's roles marked, the viewer's open follow-ups with
their due dates, the incidents closed most recently with their reviews. A home
view holds at most 100 blocks, so each list shows its first entries and says
how many more there are and where to see them.

`HomeTab` publishes it when Slack says someone opened the tab
(`app_home_opened`): one read of the store and one `views.publish`, in a small
pool of its own (never in a command's lane), after the event was acknowledged,
pausing while acknowledgements are being written. Opening the tab again while
one is being published publishes once more, not once per click. A failed
publish is logged and dropped: the next open publishes afresh.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_sdk import WebClient
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.clock import Clock
from bot.home import HomeData, home_data
from bot.logs import Throttled
from bot.messages import Renderer, Safe
from bot.slack.blocks import MAX_SECTION, text_sections
from bot.slack.priority import RequestsFirst
from bot.store import Store
from bot.timefmt import date_time

log = logging.getLogger(__name__)

DECLARE_ACTION = "declare_from_home"
MAX_VIEW_BLOCKS = 100  # Slack's limit for a home view
MAX_OPEN = 25  # open incidents listed, one block each
MAX_FOLLOW_UPS = 30  # the viewer's follow-ups listed (lines, a few blocks)
MAX_TITLE = 150  # characters of a title shown
FAILURE_LOG_EVERY = 60.0  # seconds: a Home tab that cannot be published is logged this often


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=_cut(text, MAX_SECTION)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=_cut(text, MAX_SECTION))])


def home_view(
    render: Renderer,
    data: HomeData,
    link: Callable[[str], str],
    max_open: int = MAX_OPEN,
    max_follow_ups: int = MAX_FOLLOW_UPS,
) -> dict[str, Any]:
    """The Home tab of `data.user` as a `views.publish` view (at most 100 blocks)."""
    declare = ButtonElement(
        text=PlainTextObject(text=_cut(render("home.declare"), 75)),
        action_id=DECLARE_ACTION,
        value="declare",
        style="primary",
    )
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_cut(render("home.title"), 150))),
        ActionsBlock(block_id="home_actions", elements=[declare]),
        _section(render("home.open_heading", count=len(data.open))),
    ]
    for item in data.open[:max_open]:
        incident = item.incident
        runbook = incident.runbook
        shown = item.visible
        blocks.append(
            _section(
                render(
                    "home.incident",
                    ref=incident.ref,
                    severity=incident.severity,
                    private=not shown,
                    title=_cut(incident.title, MAX_TITLE),
                    number=incident.phase_index + 1,
                    phase_count=len(runbook.phases),
                    phase_name=_cut(incident.phase.name, MAX_TITLE),
                    elapsed=item.elapsed,
                    lead=item.lead,
                    channel=Safe(link(incident.channel)) if incident.channel and shown else "",
                    mine=list(item.mine),
                )
            )
        )
    if not data.open:
        blocks.append(_context(render("home.no_open")))
    elif len(data.open) > max_open:
        blocks.append(_context(render("home.more_open", count=len(data.open) - max_open)))
    blocks += [
        DividerBlock(),
        _section(render("home.followups_heading", count=len(data.follow_ups))),
    ]
    lines = [
        render(
            "home.followup",
            ref=f.ref,
            id=f.action.id,
            priority=f.action.priority,
            text=_cut(f.action.text, 300),
            due=f.action.due,
            overdue=f.overdue,
        )
        for f in data.follow_ups[:max_follow_ups]
    ]
    if lines:
        blocks += text_sections("\n".join(lines))
        blocks.append(_context(render("home.followups_hint")))
    else:
        blocks.append(_context(render("home.no_followups")))
    if len(data.follow_ups) > max_follow_ups:
        more = len(data.follow_ups) - max_follow_ups
        blocks.append(_context(render("home.more_followups", count=more)))
    blocks += [DividerBlock(), _section(render("home.closed_heading"))]
    for closed in data.closed:
        incident = closed.incident
        blocks.append(
            _section(
                render(
                    "home.closed",
                    ref=incident.ref,
                    severity=incident.severity,
                    private=incident.runbook.private,
                    title=_cut(incident.title, MAX_TITLE),
                    closed_on=date_time(incident.closed_at),
                    duration=closed.duration,
                    mitigate=closed.mitigate,
                    review=date_time(closed.review_at) if closed.review_at else None,
                    channel=Safe(link(incident.channel))
                    if incident.channel and not incident.runbook.private
                    else "",
                )
            )
        )
    if not data.closed:
        blocks.append(_context(render("home.no_closed")))
    footer = _context(render("home.footer", now=f"{date_time(data.now, 'UTC')} UTC"))
    blocks = blocks[: MAX_VIEW_BLOCKS - 1] + [footer]
    return View(type="home", blocks=blocks).to_dict()


class HomeTab:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        client: WebClient,
        render: Renderer,
        link: Callable[[str], str],
        pool: Executor,
        priority: RequestsFirst | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.store = store
        self.clock = clock
        self.client = client
        self.render = render
        self.link = link
        self.timezone = timezone
        self._pool = pool
        self._priority = priority
        self._lock = threading.Lock()
        self._queued: set[str] = set()  # users whose publish has not started yet
        self._failures = Throttled(FAILURE_LOG_EVERY)

    def opened(self, user: str) -> None:
        """`user` opened their Home tab: publish it soon (once, however often they click)."""
        with self._lock:
            if user in self._queued:
                return
            self._queued.add(user)
        try:
            self._pool.submit(self._run, user)
        except RuntimeError:  # shutting down
            with self._lock:
                self._queued.discard(user)

    def _run(self, user: str) -> None:
        if self._priority is not None:
            self._priority.run(self.publish, user)
        else:
            self.publish(user)

    def publish(self, user: str) -> None:
        with self._lock:
            self._queued.discard(user)  # an open from now on publishes again
        try:
            data = home_data(self.store, user, self.clock.now(), self.timezone)
            view = home_view(self.render, data, self.link)
            self.client.views_publish(user_id=user, view=view)
        except Exception as exc:  # the next open tries again
            if self._failures.due():
                log.warning("the Home tab could not be published: %s: %s", type(exc).__name__, exc)
