"""The outbox: what a change says to people, committed with the change, delivered after.

A command's state change, the messages it causes and the request being marked
done commit in one transaction; the messages wait here as rows and go out
afterwards, one at a time and in order per incident (`Lanes`), so Slack's pace
or an outage may delay what people read but never the record, and never its
order. Rows survive a crash.

Each row is one step: post in a channel, a direct message, an announcement, a
private reply, open the incident's channel, post the plan, publish the review;
a `Deliverer` (the command handler) carries it out. A failure Slack may
get over (rate limit, 5xx, no connection) is retried with backoff for up to
`GIVE_UP_AFTER`; any other failure marks the row failed, tells the person who
asked when there is one, and the lane goes on.

Never twice, as with reminders: a row is committed as `sending` before it goes
out, and a row found `sending` at start-up is marked `unknown`, not resent.
The steps that check what is already done before acting (`RESUMABLE`: opening
the channel, posting the plan, the review) are resumed instead, and so are the
outbound ones, which are at least once by contract (a page to PagerDuty is
deduplicated by its dedup_key, an event webhook carries an event id).

Outbound rows (`page`, `webhook`; bot/outbound.py) name a `lane` of their own,
their target: they go out in order per incident and target, beside the chat
lane, so a slow or unreachable receiver never holds up what the channel reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.chat import Button
from bot.clock import utc_now
from bot.lanes import Lane
from bot.model import Outgoing
from bot.store import LEASE, Store

log = logging.getLogger(__name__)

RESUMABLE = ("declare", "plan", "review", "page", "webhook")
OUT = "out:"  # lanes of outbound targets: ("out:pagerduty", incident id)
CLAIM_POLL = 1.0  # seconds between looks at a head another replica is delivering
GIVE_UP_AFTER = timedelta(hours=1)  # Slack unreachable this long: the message is dropped
# seconds before the second try, doubled for each try after it; above 0 (a delay of 0 would
# mean "the lane goes on", and the row would be retried in a tight loop)
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0  # seconds between tries at most


def lane_of(incident_id: int | None, outgoing_id: int, target: str | None = None) -> Lane:
    """Rows of one incident share a lane (one more per outbound target); a row of no
    incident is a lane of its own."""
    if incident_id is None:
        return ("row", outgoing_id)
    return (OUT + target, incident_id) if target is not None else ("incident", incident_id)


def is_outbound(lane: Lane) -> bool:
    return lane[0].startswith(OUT)


class Deliverer(Protocol):
    """Carries one row out (the command handler: chat calls, opening channels, reviews)."""

    def deliver(self, row: Outgoing) -> None: ...

    def failed(self, row: Outgoing, error: Exception) -> None:
        """The row failed for good (e.g. tell whoever caused it)."""
        ...

    def is_transient(self, error: Exception) -> bool:
        """Whether the failure may pass if tried later (rate limit, Slack away)."""
        ...


KINDS = ("post", "notify", "announce", "reply", "declare", "plan", "review", "page", "webhook")


class Outbox:
    def __init__(
        self,
        store: Store,
        wall: Callable[[], datetime] = utc_now,
        wake: Callable[[Lane], None] | None = None,
    ) -> None:
        self.store = store
        self.wall = wall
        # the Slack wiring wakes the delivery lane of a committed row; without it (the
        # terminal, tests) rows are delivered by `deliver_now` in the caller's thread
        self.wake = wake
        self._touched = threading.local()  # lanes this thread filled (terminal delivery)
        self._mine: set[int] = set()  # rows this process marked `sending` and not yet settled

    # --- filling ---------------------------------------------------------------

    def put(
        self, incident_id: int | None, kind: str, *, lane: str | None = None, **body: Any
    ) -> None:
        """Add a row (`lane`: an outbound target); inside a transaction it is delivered only
        once that commits."""
        if kind not in KINDS:
            raise ValueError(f"no outbox rows of kind {kind!r}")
        row_id = self.store.put_outgoing(incident_id, kind, body, self.wall(), lane=lane)
        lane_key = lane_of(incident_id, row_id, lane)
        touched: list[Lane] = self._lanes_touched()
        if lane_key not in touched:
            touched.append(lane_key)
        if self.wake is not None:
            wake = self.wake
            self.store.on_commit(lambda: wake(lane_key))

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

    def deliver_now(self, deliverer: Deliverer) -> None:
        """Deliver, in this thread, every lane this thread filled (the terminal and tests,
        where there are no background workers). A row waiting for a retry stays."""
        touched = self._lanes_touched()
        while touched:
            lane = touched.pop(0)
            while self.step(lane, deliverer) == 0:
                pass

    def _lanes_touched(self) -> list[Lane]:
        lanes: list[Lane] | None = getattr(self._touched, "lanes", None)
        if lanes is None:
            lanes = self._touched.lanes = []
        return lanes

    # --- delivering --------------------------------------------------------------

    def step(self, lane: Lane, deliverer: Deliverer) -> float | None:
        """Deliver the head of one lane. None: nothing left; 0: more may follow; else the
        seconds until the head may be tried again."""
        kind, ident = lane
        if kind == "incident":
            row = self.store.next_outgoing(ident)
        elif kind.startswith(OUT):
            row = self.store.next_outgoing(ident, lane=kind.removeprefix(OUT))
        else:
            row = self.store.next_outgoing(None, ident)
        if row is None:
            return None
        now = self.wall()
        if row.state == "sending":  # the head is going out, or was left half-way
            if self._abandoned(row, now):
                self._interrupted(row, now)
                return 0
            return CLAIM_POLL  # a replica is delivering it: its successors wait their turn
        wait = (row.due_at - now).total_seconds()
        if wait > 0:
            return wait
        if not self.store.set_outgoing(row.id, "sending", now, expect="pending"):
            return 0  # someone else took it
        self._mine.add(row.id)
        try:
            deliverer.deliver(row)
        except Exception as error:
            delay = self._failed(row, error, deliverer)
            self._mine.discard(row.id)
            return delay
        self.store.set_outgoing(row.id, "sent", self.wall())
        self._mine.discard(row.id)
        return 0

    def _abandoned(self, row: Outgoing, now: datetime) -> bool:
        """A head left `sending`: by this process (recording what became of it failed, say
        the disk was full), by the only writer there is (SQLite), or by a replica that has
        not finished it within the lease (it died)."""
        if row.id in self._mine or not self.store.is_postgres:
            return True
        return row.done_at is None or now - row.done_at > LEASE

    def _interrupted(self, row: Outgoing, now: datetime) -> None:
        """Resumable steps are taken up again; a message that may have gone out is not."""
        self._mine.discard(row.id)
        if row.kind in RESUMABLE:
            self.store.retry_outgoing(row.id, now, "resumed after an interruption")
            return
        self.store.set_outgoing(row.id, "unknown", now, "interrupted while going out")
        log.warning(
            "%s for INC-%s was interrupted while going out; not resent", row.kind, row.incident_id
        )

    def recover(self) -> list[Lane]:
        """At start-up: rows a crash left `sending` (see module doc; with replicas, only
        those past the lease); returns every lane with rows still to deliver."""
        now = self.wall()
        before = now - LEASE if self.store.is_postgres else None
        for row in self.store.interrupted_outgoing(before):
            self._interrupted(row, now)
        lanes: list[Lane] = []
        for row in self.store.pending_outgoing():
            lane = lane_of(row.incident_id, row.id, row.lane)
            if lane not in lanes:
                lanes.append(lane)
        return lanes

    def waiting_lanes(self) -> list[Lane]:
        """Every lane with rows still to deliver (or being delivered by some replica)."""
        return [
            lane_of(incident, row, target)
            for incident, row, target in self.store.waiting_outgoing()
        ]

    def _will_retry(self, row: Outgoing, error: Exception, deliverer: Deliverer) -> bool:
        return deliverer.is_transient(error) and self.wall() - row.created_at < GIVE_UP_AFTER

    def _failed(self, row: Outgoing, error: Exception, deliverer: Deliverer) -> float:
        """Retry later (returns the delay) or give up (returns 0: the lane goes on)."""
        now = self.wall()
        reason = f"{type(error).__name__}: {error}"[:300]
        if self._will_retry(row, error, deliverer):
            delay = min(FIRST_BACKOFF * 2.0**row.attempts, MAX_BACKOFF)
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
            deliverer.failed(row, error)
        except Exception:
            log.exception("telling about a failed %s", row.kind)
        return 0
