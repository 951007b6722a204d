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


class Courier:
    """A Deliverer over the chat: what the command handler does for post and notify rows."""

    def __init__(self, chat: FlakyChat) -> None:
        self.chat = chat
        self.told: list[tuple[str, str]] = []
        self.extra: dict[str, object] = {}

    def deliver(self, row) -> None:
        if row.kind in self.extra:
            self.extra[row.kind](row)
        elif row.kind == "post":
            self.chat.post(row.body["channel"], row.body["text"])
        else:
            self.chat.notify(row.body["user"], row.body["text"])

    def failed(self, row, error: Exception) -> None:
        self.told.append((row.body["text"], str(error)))

    def is_transient(self, error: Exception) -> bool:
        return self.chat.is_transient(error)


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def chat() -> FlakyChat:
    return FlakyChat()


@pytest.fixture
def courier(chat) -> Courier:
    return Courier(chat)


@pytest.fixture
def outbox(store, wall) -> Outbox:
    return Outbox(store, wall)


def test_rows_wait_for_their_transaction_and_vanish_with_its_rollback(outbox, store, chat, courier):
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
    while outbox.step(("incident", 1), courier) == 0:
        pass
    assert chat.posts == [("C1", "kept")]


def test_one_incidents_rows_go_out_in_order(outbox, store, chat, courier):
    with store.transaction():
        for n in range(5):
            outbox.post(1, "C1", f"m{n}")
    outbox.deliver_now(courier)
    assert [t for _, t in chat.posts] == [f"m{n}" for n in range(5)]
    assert [r.state for r in store.failed_outgoing()] == []


def test_a_transient_failure_holds_the_lane_and_is_retried_with_backoff(
    outbox, store, chat, wall, courier
):
    chat.errors = [ConnectionError("down"), ConnectionError("still down")]
    with store.transaction():
        outbox.post(1, "C1", "first")
        outbox.post(1, "C1", "second")
    lane = ("incident", 1)
    assert outbox.step(lane, courier) == 1.0  # the head failed: wait a second, keep its place
    assert outbox.step(lane, courier) == pytest.approx(1.0)  # not due: nothing out of order
    assert chat.posts == []
    wall.now += timedelta(seconds=1)
    assert outbox.step(lane, courier) == 2.0  # second failure: the wait doubles
    wall.now += timedelta(seconds=2)
    while outbox.step(lane, courier) == 0:
        pass
    assert [t for _, t in chat.posts] == ["first", "second"]


def test_a_permanent_failure_is_told_and_the_lane_goes_on(outbox, store, chat, courier):
    chat.errors = [ValueError("channel_not_found")]
    with store.transaction():
        outbox.post(1, "C1", "lost")
        outbox.post(1, "C1", "next")
    outbox.deliver_now(courier)
    assert [t for _, t in chat.posts] == ["next"]
    assert courier.told == [("lost", "channel_not_found")]
    (failed,) = store.failed_outgoing()
    assert failed.state == "failed" and "channel_not_found" in (failed.error or "")


def test_slack_away_longer_than_the_limit_drops_the_message(outbox, store, chat, wall, courier):
    chat.errors = [ConnectionError("down")] * 100
    with store.transaction():
        outbox.post(1, "C1", "too late")
    lane = ("incident", 1)
    while (wait := outbox.step(lane, courier)) is not None and wall.now - datetime(
        2026, 12, 1, 3, 0, tzinfo=UTC
    ) <= GIVE_UP_AFTER + timedelta(minutes=2):
        wall.now += timedelta(seconds=wait or 0)
    (failed,) = store.failed_outgoing()
    assert failed.state == "failed" and chat.posts == []


def test_after_a_crash_a_row_caught_sending_is_not_sent_again(store, chat, wall, courier):
    first = Outbox(store, wall)
    with store.transaction():
        first.post(1, "C1", "maybe sent")
        first.put(1, "notify", user="U1", text="briefing")
    row = store.next_outgoing(1)
    assert row is not None
    store.set_outgoing(row.id, "sending", wall())  # the process died here, mid-post
    second = Outbox(store, wall)
    lanes = second.recover()
    assert lanes == [("incident", 1)]
    while second.step(("incident", 1), courier) == 0:
        pass
    assert chat.posts == [] and [u for u, _ in chat.direct] == ["U1"]
    assert [r.state for r in store.failed_outgoing()] == ["unknown"]


def test_resumable_steps_are_resumed_after_a_crash(store, wall, courier):
    opened = []
    courier.extra["declare"] = lambda row: opened.append(row.incident_id)
    first = Outbox(store, wall)
    with store.transaction():
        first.put(1, "declare")
    row = store.next_outgoing(1)
    assert row is not None
    store.set_outgoing(row.id, "sending", wall())
    second = Outbox(store, wall)
    assert second.recover() == [("incident", 1)]
    while second.step(("incident", 1), courier) == 0:
        pass
    assert opened == [1]
