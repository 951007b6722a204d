"""Group commit: callers that arrive while a round is written share the next round."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bot.group_commit import GroupCommit


class Journal:
    """A stand-in transaction log: what each round committed, in order."""

    def __init__(self) -> None:
        self.rounds: list[list[str]] = []
        self.open: list[str] | None = None
        self.hold = threading.Event()  # the first round waits for this (to let others queue)
        self.hold.set()
        self.fail_commit = False
        self.lost = False  # an entry's failure ended the whole transaction (a full disk)

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.open = []
        self.hold.wait(5)
        yield
        if self.fail_commit:
            raise OSError("disk full")
        self.rounds.append(self.open)
        self.open = None

    def intact(self) -> bool:
        return not self.lost

    def write(self, work: str) -> str:
        if work == "poison":  # undone alone, as the database undoes a failed statement
            raise ValueError("bad entry")
        if work == "disk full":
            self.lost = True
            raise OSError("database or disk is full")
        assert self.open is not None
        self.open.append(work)
        return work.upper()


def _lined_up(group: GroupCommit[str, str], waiting: int) -> None:
    with group.queued:
        assert group.queued.wait_for(lambda: len(group._waiting) == waiting, timeout=5)


def _submit_all(group: GroupCommit[str, str], works: list[str], out: dict[str, object]) -> list:
    def one(work: str) -> None:
        try:
            out[work] = group.submit(work)
        except Exception as exc:
            out[work] = exc

    threads = [threading.Thread(target=one, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    return threads


def test_one_caller_alone_writes_its_own_round_and_gets_its_result():
    journal = Journal()
    group = GroupCommit.in_one_transaction(journal.batch, journal.write, journal.intact)
    assert group.submit("a") == "A"
    assert group.submit("b") == "B"
    assert journal.rounds == [["a"], ["b"]]


def test_callers_arriving_during_a_round_share_the_next_one():
    journal = Journal()
    group = GroupCommit.in_one_transaction(journal.batch, journal.write, journal.intact)
    journal.hold.clear()
    out: dict[str, object] = {}
    first = _submit_all(group, ["first"], out)
    with group.queued:  # the first caller leads and is inside its round
        assert group.queued.wait_for(lambda: group._writing, timeout=5)
    rest = _submit_all(group, [f"r{i}" for i in range(20)], out)
    _lined_up(group, 20)
    journal.hold.set()
    for thread in first + rest:
        thread.join(5)
    assert journal.rounds[0] == ["first"]
    assert sorted(journal.rounds[1]) == sorted(f"r{i}" for i in range(20))  # one round, not 20
    assert len(journal.rounds) == 2 and group.rounds == 2
    assert out == {work: work.upper() for work in ["first"] + [f"r{i}" for i in range(20)]}


def _second_round(journal: Journal, works: list[str]) -> dict[str, object]:
    """`works` submitted together while a first round is being written: they share round two."""
    group = GroupCommit.in_one_transaction(journal.batch, journal.write, journal.intact)
    journal.hold.clear()
    out: dict[str, object] = {}
    first = _submit_all(group, ["first"], out)
    with group.queued:
        assert group.queued.wait_for(lambda: group._writing, timeout=5)
    rest = _submit_all(group, works, out)
    _lined_up(group, len(works))
    journal.hold.set()
    for thread in first + rest:
        thread.join(5)
    return out


def test_an_entry_that_fails_fails_only_its_own_caller():
    journal = Journal()
    out = _second_round(journal, ["a", "poison", "b"])
    assert isinstance(out["poison"], ValueError)
    assert (out["a"], out["b"]) == ("A", "B")
    assert sorted(journal.rounds[1]) == ["a", "b"]


def test_an_entry_whose_failure_ended_the_transaction_fails_the_whole_round():
    """(SQLite may roll back the whole transaction on a full disk.) No caller of the round
    is told its entry was written: the ones written before it were rolled back too."""
    journal = Journal()
    out = _second_round(journal, ["a", "disk full", "b"])
    assert out["first"] == "FIRST" and journal.rounds == [["first"]]
    assert all(isinstance(out[w], OSError) for w in ("a", "disk full", "b")), out


def test_a_failed_commit_fails_every_caller_of_its_round_and_the_next_round_still_runs():
    journal = Journal()
    group = GroupCommit.in_one_transaction(journal.batch, journal.write, journal.intact)
    journal.fail_commit = True
    with pytest.raises(OSError, match="disk full"):
        group.submit("lost")
    journal.fail_commit = False
    assert group.submit("kept") == "KEPT"  # no caller is left leading a round that hung
    assert journal.rounds == [["kept"]]


def test_a_round_ended_by_a_base_exception_tells_no_caller_it_was_written():
    """(KeyboardInterrupt, SystemExit: what _write does not catch.) Its followers get an
    error, never a result from a transaction that was rolled back."""
    journal = Journal()

    def write(work: str) -> str:
        if work == "interrupt":
            raise KeyboardInterrupt
        return journal.write(work)

    group = GroupCommit.in_one_transaction(journal.batch, write, journal.intact)
    journal.hold.clear()
    out: dict[str, object] = {}

    def one(work: str) -> None:
        try:
            out[work] = group.submit(work)
        except BaseException as exc:  # the leader of round two re-raises what ended it
            out[work] = exc

    first = threading.Thread(target=one, args=("first",))
    first.start()
    with group.queued:
        assert group.queued.wait_for(lambda: group._writing, timeout=5)
    rest = [threading.Thread(target=one, args=(w,)) for w in ("before", "interrupt", "after")]
    for thread in rest:
        thread.start()
    _lined_up(group, 3)
    journal.hold.set()
    for thread in [first, *rest]:
        thread.join(5)
    assert out["first"] == "FIRST"
    assert journal.rounds == [["first"]]  # round two was never committed
    # whoever led round two re-raises what ended it; the others get an error too
    errors = [out[work] for work in ("before", "interrupt", "after")]
    assert all(isinstance(e, BaseException) for e in errors), errors
    assert sum(isinstance(e, KeyboardInterrupt) for e in errors) == 1
