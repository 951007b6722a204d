"""Durations as written in runbooks and commands: `15m`, `1h30m`, `2d`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.durations import DurationError, format_duration, parse_duration

# --- parse_duration: accepted forms ------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("90s", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("  15m  ", timedelta(minutes=15)),
        ("15M", timedelta(minutes=15)),
        ("1H05M", timedelta(hours=1, minutes=5)),
        ("0h15m", timedelta(minutes=15)),
        ("1h00m", timedelta(hours=1)),
    ],
)
def test_valid_duration_forms_parse_to_the_right_timedelta(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


# --- parse_duration: refused forms -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "15",
        "15 minutes",
        "m",
        "h1",
        "1.5h",
        "-5m",
        "+5m",
        "1w",
        "15m later",
        "abc",
        "1h-30m",
        "1 h 30",
        "PT15M",
    ],
)
def test_invalid_duration_forms_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    message = str(info.value)
    assert f"'{text}'" in message
    assert "15m" in message and "1h30m" in message


@pytest.mark.parametrize("text", ["0m", "0s", "0d", "0h0m", "0h 0m 0s"])
def test_zero_duration_is_refused(text: str) -> None:
    with pytest.raises(DurationError, match="longer than zero"):
        parse_duration(text)


def test_duration_error_is_a_value_error_so_validators_can_report_it() -> None:
    assert issubclass(DurationError, ValueError)


def test_huge_duration_is_refused_as_a_duration_error() -> None:
    with pytest.raises(DurationError):
        parse_duration("99999999999d")


# --- format_duration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=45), "45m"),
        (timedelta(hours=1, minutes=5), "1h05m"),
        (timedelta(hours=2), "2h00m"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=1, seconds=30), "1m30s"),
        (timedelta(minutes=1, seconds=5), "1m05s"),
        (timedelta(days=2), "2d"),
        (timedelta(days=1, hours=3), "1d03h"),
        (timedelta(0), "0s"),
        (timedelta(minutes=-5), "-5m"),
        (timedelta(hours=-1, minutes=-30), "-1h30m"),
        (timedelta(seconds=89.6), "1m30s"),
    ],
)
def test_format_duration_renders_compactly(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


# --- round trip --------------------------------------------------------------


@given(st.integers(min_value=1, max_value=24 * 60 - 1))
def test_whole_minutes_under_a_day_round_trip(minutes: int) -> None:
    delta = timedelta(minutes=minutes)
    assert parse_duration(format_duration(delta)) == delta


@given(st.integers(min_value=1, max_value=3599))
def test_seconds_under_an_hour_round_trip(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@given(st.integers(min_value=1, max_value=365), st.integers(min_value=0, max_value=23))
def test_days_and_whole_hours_round_trip(days: int, hours: int) -> None:
    delta = timedelta(days=days, hours=hours)
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    "delta",
    [
        timedelta(hours=1, seconds=30),
        timedelta(days=1, minutes=30),
        timedelta(days=2, hours=3, minutes=15),
    ],
    ids=["1h00m30s", "1d00h30m", "2d03h15m"],
)
def test_format_then_parse_keeps_every_second(delta: timedelta) -> None:
    assert parse_duration(format_duration(delta)) == delta
