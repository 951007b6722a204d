"""Outbound rows (pages, event webhooks) in lanes of their own: a receiver that is down
never holds up the channel, order is kept per target, and they are resumed after a crash."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.outbox import Outbox, is_outbound, lane_of


class Wall:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Down(Exception):
    pass


class Deliverer:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.down: set[str] = set()  # targets failing for now

    def deliver(self, row) -> None:
        target = row.lane or "chat"
        if target in self.down:
            raise Down(target)
        self.sent.append(f"{target}:{row.body['n']}")

    def failed(self, row, error: Exception) -> None:
        pass

    def is_transient(self, error: Exception) -> bool:
        return isinstance(error, Down)


def test_a_target_that_is_down_holds_up_only_its_own_lane(store):
    wall, deliverer = Wall(), Deliverer()
    outbox = Outbox(store, wall=wall)
    deliverer.down.add("pagerduty")
    outbox.put(1, "page", lane="pagerduty", n=1)
    outbox.put(1, "page", lane="pagerduty", n=2)
    outbox.put(1, "webhook", lane="https://a.example/hook", n=1)
    outbox.put(1, "post", n=1)
    page, hook, chat = (
        lane_of(1, 0, "pagerduty"),
        lane_of(1, 0, "https://a.example/hook"),
        lane_of(1, 0),
    )
    assert is_outbound(page) and is_outbound(hook) and not is_outbound(chat)
    assert outbox.step(page, deliverer) == 1.0  # the first retry in a second
    while outbox.step(chat, deliverer) == 0:
        pass
    while outbox.step(hook, deliverer) == 0:
        pass
    assert deliverer.sent == ["chat:1", "https://a.example/hook:1"]
    deliverer.down.clear()
    wall.now = wall.now.replace(second=2)
    while outbox.step(page, deliverer) == 0:
        pass
    assert deliverer.sent[-2:] == ["pagerduty:1", "pagerduty:2"]  # in order, after the retry


def test_outbound_rows_cut_off_by_a_crash_are_resumed_in_their_lanes(store):
    """At least once by contract: PagerDuty dedups by dedup_key, receivers by event id."""
    wall = Wall()
    outbox = Outbox(store, wall=wall)
    outbox.put(3, "page", lane="pagerduty", n=1)
    outbox.put(3, "webhook", lane="https://a.example/hook", n=1)
    outbox.put(3, "post", n=1)
    for row in store.pending_outgoing():  # the crash came while all three were going out
        store.set_outgoing(row.id, "sending", wall())
    lanes = outbox.recover()
    assert set(lanes) == {("out:pagerduty", 3), ("out:https://a.example/hook", 3)}
    states = {r["kind"]: r["state"] for r in store._db.rows("SELECT kind, state FROM outbox")}
    assert states == {"page": "pending", "webhook": "pending", "post": "unknown"}
