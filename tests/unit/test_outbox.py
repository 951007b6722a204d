"""The outbox: rows commit with their change, go out in order, retry while Slack is away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.outbox import GIVE_UP_AFTER, Outbox
from tests.conftest import RecordingChat


class Wall:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class FlakyChat(RecordingChat):
    """Posts fail with `errors` (in order) before they succeed."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[Exception] = []

    def post(self, channel: str, text: str, buttons=()) -> None:
        if self.errors:
            raise self.errors.pop(0)
        super().post(channel, text, buttons)


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def chat() -> FlakyChat:
    return FlakyChat()


@pytest.fixture
def outbox(store, chat, wall) -> Outbox:
    return Outbox(store, chat, wall)


def test_rows_wait_for_their_transaction_and_vanish_with_its_rollback(outbox, store, chat):
    woken = []
    outbox.wake = woken.append
    with store.transaction():
        outbox.post(1, "C1", "kept")
        assert woken == []  # not before the commit: a worker would look too early
    assert woken == [("incident", 1)]
    with pytest.raises(RuntimeError), store.transaction():
        outbox.post(1, "C1", "rolled back")
        raise RuntimeError("the command failed")
    assert woken == [("incident", 1)]
    while outbox.step(("incident", 1)) == 0:
        pass
    assert chat.posts == [("C1", "kept")]


def test_one_incidents_rows_go_out_in_order(outbox, store, chat):
    with store.transaction():
        for n in range(5):
            outbox.post(1, "C1", f"m{n}")
    outbox.deliver_now()
    assert [t for _, t in chat.posts] == [f"m{n}" for n in range(5)]
    assert [r.state for r in store.failed_outgoing()] == []


def test_a_transient_failure_holds_the_lane_and_is_retried_with_backoff(outbox, store, chat, wall):
    chat.errors = [ConnectionError("down"), ConnectionError("still down")]
    with store.transaction():
        outbox.post(1, "C1", "first")
        outbox.post(1, "C1", "second")
    lane = ("incident", 1)
    assert outbox.step(lane) == 1.0  # the head failed: wait a second, keep its place
    assert outbox.step(lane) == pytest.approx(1.0)  # not due yet: nothing is sent out of order
    assert chat.posts == []
    wall.now += timedelta(seconds=1)
    assert outbox.step(lane) == 2.0  # second failure: the wait doubles
    wall.now += timedelta(seconds=2)
    while outbox.step(lane) == 0:
        pass
    assert [t for _, t in chat.posts] == ["first", "second"]


def test_a_permanent_failure_is_told_and_the_lane_goes_on(outbox, store, chat):
    told = []
    outbox.on_failure = lambda row, error: told.append((row.body["text"], str(error)))
    chat.errors = [ValueError("channel_not_found")]
    with store.transaction():
        outbox.post(1, "C1", "lost")
        outbox.post(1, "C1", "next")
    outbox.deliver_now()
    assert [t for _, t in chat.posts] == ["next"]
    assert told == [("lost", "channel_not_found")]
    (failed,) = store.failed_outgoing()
    assert failed.state == "failed" and "channel_not_found" in (failed.error or "")


def test_slack_away_longer_than_the_limit_drops_the_message(outbox, store, chat, wall):
    chat.errors = [ConnectionError("down")] * 100
    with store.transaction():
        outbox.post(1, "C1", "too late")
    lane = ("incident", 1)
    while (wait := outbox.step(lane)) is not None and wall.now - datetime(
        2026, 12, 1, 3, 0, tzinfo=UTC
    ) <= GIVE_UP_AFTER + timedelta(minutes=2):
        wall.now += timedelta(seconds=wait or 0)
    (failed,) = store.failed_outgoing()
    assert failed.state == "failed" and chat.posts == []


def test_after_a_crash_a_row_caught_sending_is_not_sent_again(store, chat, wall):
    first = Outbox(store, chat, wall)
    with store.transaction():
        first.post(1, "C1", "maybe sent")
        first.put(1, "notify", user="U1", text="briefing")
    row = store.next_outgoing(1)
    assert row is not None
    store.set_outgoing(row.id, "sending", wall())  # the process died here, mid-post
    second = Outbox(store, chat, wall)
    lanes = second.recover()
    assert lanes == [("incident", 1)]
    second.deliver_now()  # nothing touched by this thread yet: deliver the lane explicitly
    while second.step(("incident", 1)) == 0:
        pass
    assert chat.posts == [] and [u for u, _ in chat.direct] == ["U1"]
    assert [r.state for r in store.failed_outgoing()] == ["unknown"]


def test_resumable_steps_are_resumed_after_a_crash(store, chat, wall):
    opened = []
    first = Outbox(store, chat, wall)
    first.handlers["declare"] = lambda row: opened.append(row.incident_id)
    with store.transaction():
        first.put(1, "declare")
    row = store.next_outgoing(1)
    assert row is not None
    store.set_outgoing(row.id, "sending", wall())
    second = Outbox(store, chat, wall)
    second.handlers["declare"] = lambda row: opened.append(row.incident_id)
    assert second.recover() == [("incident", 1)]
    while second.step(("incident", 1)) == 0:
        pass
    assert opened == [1]
