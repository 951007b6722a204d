"""The outbox: what a change says to people, committed with the change, delivered after.

A command's state change, the messages it causes and the request being marked
done commit in one transaction; the messages wait here as rows and go out
afterwards, one at a time and in order per incident (`Lanes`), so Slack's pace
or an outage may delay what people read but never the record, and never its
order. Rows survive a crash.

Each row is one step: post in a channel, a direct message, an announcement, a
private reply, or one of the steps the command handler registers (open the
incident's channel, post the plan, publish the review). A failure Slack may
get over (rate limit, 5xx, no connection) is retried with backoff for up to
`GIVE_UP_AFTER`; any other failure marks the row failed, tells the person who
asked when there is one, and the lane goes on.

Never twice, as with reminders: a row is committed as `sending` before it goes
out, and a row found `sending` at start-up is marked `unknown`, not resent.
The steps that check what is already done before acting (`RESUMABLE`: opening
the channel, posting the plan, the review) are resumed instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.chat import Button, ChatPort
from bot.clock import utc_now
from bot.lanes import Lane
from bot.model import Outgoing
from bot.store import Store

log = logging.getLogger(__name__)

RESUMABLE = ("declare", "plan", "review")
GIVE_UP_AFTER = timedelta(hours=1)  # Slack unreachable this long: the message is dropped
# seconds before the second try, doubled for each try after it; above 0 (a delay of 0 would
# mean "the lane goes on", and the row would be retried in a tight loop)
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0  # seconds between tries at most


def lane_of(incident_id: int | None, outgoing_id: int) -> Lane:
    """Rows of one incident share a lane; a row of no incident is a lane of its own."""
    return ("incident", incident_id) if incident_id is not None else ("row", outgoing_id)


class Outbox:
    def __init__(
        self,
        store: Store,
        chat: ChatPort,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.chat = chat
        self.wall = wall
        # set by the Slack wiring: wake the delivery lane of a committed row. Without it
        # (terminal, tests) rows are delivered by `deliver_now` in the caller's thread.
        self.wake: Callable[[Lane], None] | None = None
        # called with a row that failed for good and the error, e.g. to tell the typist
        self.on_failure: Callable[[Outgoing, Exception], None] = lambda row, error: None
        self.handlers: dict[str, Callable[[Outgoing], None]] = {
            "post": self._post,
            "notify": self._notify,
            "announce": self._announce,
            "reply": self._reply,
        }
        self._touched = threading.local()  # lanes this thread filled (terminal delivery)

    # --- filling ---------------------------------------------------------------

    def put(self, incident_id: int | None, kind: str, **body: Any) -> None:
        """Add a row; inside a transaction it is delivered only once that commits."""
        if kind not in self.handlers:
            raise ValueError(f"no handler for outbox rows of kind {kind!r}")
        row_id = self.store.put_outgoing(incident_id, kind, body, self.wall())
        lane = lane_of(incident_id, row_id)
        touched: list[Lane] = self._lanes_touched()
        if lane not in touched:
            touched.append(lane)
        if self.wake is not None:
            wake = self.wake
            self.store.on_commit(lambda: wake(lane))

    def post(
        self,
        incident_id: int,
        channel: str,
        text: str,
        buttons: tuple[Button, ...] = (),
        tell: dict[str, Any] | None = None,
    ) -> None:
        self.put(
            incident_id,
            "post",
            channel=channel,
            text=text,
            buttons=[[b.label, b.action, b.value] for b in buttons],
            tell=tell,
        )

    def deliver_now(self) -> None:
        """Deliver, in this thread, every lane this thread filled (the terminal and tests,
        where there are no background workers). A row waiting for a retry stays."""
        touched = self._lanes_touched()
        while touched:
            lane = touched.pop(0)
            while self.step(lane) == 0:
                pass

    def _lanes_touched(self) -> list[Lane]:
        lanes: list[Lane] | None = getattr(self._touched, "lanes", None)
        if lanes is None:
            lanes = self._touched.lanes = []
        return lanes

    # --- delivering --------------------------------------------------------------

    def step(self, lane: Lane) -> float | None:
        """Deliver the head of one lane. None: nothing left; 0: more may follow; else the
        seconds until the head may be tried again."""
        kind, ident = lane
        row = (
            self.store.next_outgoing(ident)
            if kind == "incident"
            else self.store.next_outgoing(None, ident)
        )
        if row is None:
            return None
        now = self.wall()
        wait = (row.due_at - now).total_seconds()
        if wait > 0:
            return wait
        if not self.store.set_outgoing(row.id, "sending", now, expect="pending"):
            return 0  # someone else took it
        try:
            self.handlers[row.kind](row)
        except Exception as error:
            return self._failed(row, error)
        self.store.set_outgoing(row.id, "sent", self.wall())
        return 0

    def recover(self) -> list[Lane]:
        """At start-up: rows a crash left `sending` (see module doc); returns every lane with
        rows still to deliver."""
        now = self.wall()
        for row in self.store.interrupted_outgoing():
            if row.kind in RESUMABLE:
                self.store.retry_outgoing(row.id, now, "resumed after a restart")
            else:
                self.store.set_outgoing(row.id, "unknown", now, "interrupted by a restart")
                log.warning(
                    "%s for INC-%s was interrupted while going out; not resent",
                    row.kind,
                    row.incident_id,
                )
        lanes: list[Lane] = []
        for row in self.store.pending_outgoing():
            lane = lane_of(row.incident_id, row.id)
            if lane not in lanes:
                lanes.append(lane)
        return lanes

    def _will_retry(self, row: Outgoing, error: Exception) -> bool:
        return self.chat.is_transient(error) and self.wall() - row.created_at < GIVE_UP_AFTER

    def _backoff(self, row: Outgoing) -> float:
        return min(FIRST_BACKOFF * 2.0**row.attempts, MAX_BACKOFF)

    def _failed(self, row: Outgoing, error: Exception) -> float:
        """Retry later (returns the delay) or give up (returns 0: the lane goes on)."""
        now = self.wall()
        reason = f"{type(error).__name__}: {error}"[:300]
        if self._will_retry(row, error):
            delay = self._backoff(row)
            self.store.retry_outgoing(row.id, now + timedelta(seconds=delay), reason)
            if row.attempts == 0:  # said once per row, not on every try
                log.warning(
                    "%s for INC-%s failed (%s); trying again for up to %s",
                    row.kind,
                    row.incident_id,
                    reason,
                    GIVE_UP_AFTER,
                )
            return delay
        self.store.set_outgoing(row.id, "failed", now, reason)
        log.error("%s for INC-%s failed for good: %s", row.kind, row.incident_id, reason)
        try:
            self.on_failure(row, error)
        except Exception:
            log.exception("telling about a failed %s", row.kind)
        return 0

    # --- the chat steps -------------------------------------------------------------

    def _post(self, row: Outgoing) -> None:
        body = row.body
        buttons = tuple(Button(*b) for b in body.get("buttons") or [])
        self.chat.post(body["channel"], body["text"], buttons)

    def _notify(self, row: Outgoing) -> None:
        self.chat.notify(row.body["user"], row.body["text"])

    def _announce(self, row: Outgoing) -> None:
        self.chat.announce(row.body["text"])

    def _reply(self, row: Outgoing) -> None:
        body = row.body
        self.chat.reply(body["user"], body.get("channel"), body["text"], body.get("url"))
