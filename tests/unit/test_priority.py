"""Requests first: background work pauses while requests arrive, within its allowance."""

from __future__ import annotations

import threading

from bot.slack.priority import RequestsFirst


def test_outside_background_work_nothing_ever_pauses():
    priority = RequestsFirst(max_defer=60)
    with priority.request():
        assert priority.pause() is True  # the request's own thread, and reminders


def test_work_waits_for_the_requests_in_flight_to_be_answered():
    priority = RequestsFirst(quiet=0.0, max_defer=60)
    ran = threading.Event()
    answered = threading.Event()
    order: list[str] = []

    def work() -> None:
        order.append("work")
        ran.set()

    with priority.request():
        thread = threading.Thread(target=priority.run, args=(work,))
        thread.start()
        assert not ran.wait(timeout=0.2)  # held back while the request is in flight
        order.append("answered")
        answered.set()
    thread.join(timeout=10)
    assert order == ["answered", "work"]


def test_steady_requests_hold_work_back_only_up_to_its_allowance():
    priority = RequestsFirst(quiet=0.0, max_defer=0.05)
    results: list[bool] = []
    with priority.request():  # never ends while the work runs
        thread = threading.Thread(
            target=priority.run, args=(lambda: results.append(priority.pause()),)
        )
        thread.start()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert results == [False]  # ran anyway, its allowance used up by the first pause


def test_work_that_already_waited_its_allowance_in_a_queue_does_not_wait_again():
    """`since`: when the work arrived. A command queued behind others for longer than its
    allowance runs at once, even while requests keep arriving."""
    now = [100.0]
    priority = RequestsFirst(quiet=0.0, max_defer=60, monotonic=lambda: now[0])
    results: list[bool] = []
    with priority.request():  # in flight for as long as the work could wait
        priority.run(lambda: results.append(priority.pause()), since=now[0] - 61)
    assert results == [False]  # returned at once: the allowance was spent in the queue


def test_at_a_database_statement_work_steps_aside_until_the_request_is_answered():
    """(PostgreSQL: every statement is a break.) Even once its allowance is spent, work
    about to run a statement waits for the request in flight to be answered."""
    priority = RequestsFirst(quiet=0.0, max_defer=0.0, statement_wait=60, statements_wait=60)
    at_statement = threading.Event()
    order: list[str] = []

    def work() -> None:
        at_statement.set()
        priority.step_aside()
        order.append("statement")

    with priority.request():
        thread = threading.Thread(target=priority.run, args=(work,))
        thread.start()
        assert at_statement.wait(timeout=10)
        thread.join(timeout=0.2)
        assert thread.is_alive()  # waiting for the answer
        order.append("answered")
    thread.join(timeout=10)
    assert order == ["answered", "statement"]


def test_stepping_aside_is_bounded_per_statement_and_only_for_background_work():
    priority = RequestsFirst(quiet=0.0, max_defer=0.0, statement_wait=0.01)
    done: list[str] = []
    with priority.request():  # never answered while the work runs
        priority.step_aside()  # the request's own thread (or a reminder's): at once
        done.append("request thread")
        thread = threading.Thread(
            target=priority.run,
            args=(lambda: [priority.step_aside() for _ in range(3)] and done.append("work"),),
        )
        thread.start()
        thread.join(timeout=10)
    assert done == ["request thread", "work"]  # three statements, each after a short wait


def test_stepping_aside_is_bounded_over_the_whole_piece_of_work():
    """A client that keeps a request in flight (a body sent slowly, for ever) holds each
    piece of background work back `statements_wait` in all, not a wait per statement."""
    priority = RequestsFirst(quiet=0.0, max_defer=0.0, statement_wait=60, statements_wait=0.05)
    done: list[str] = []
    with priority.request():  # never answered while the work runs
        thread = threading.Thread(
            target=priority.run,
            args=(lambda: [priority.step_aside() for _ in range(50)] and done.append("work"),),
        )
        thread.start()
        thread.join(timeout=10)  # a minute per statement without the bound in all
    assert done == ["work"]
