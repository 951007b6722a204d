"""One way to write times and durations, for messages and reviews alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import timefmt
from bot.messages import Renderer


def test_clock_times_round_to_the_nearest_minute_and_carry_into_the_next_day():
    assert timefmt.clock_time(datetime(2026, 1, 15, 2, 49, 29, tzinfo=UTC)) == "02:49"
    assert timefmt.clock_time(datetime(2026, 1, 15, 2, 49, 30, tzinfo=UTC)) == "02:50"
    late = datetime(2026, 1, 15, 23, 59, 45, tzinfo=UTC)
    assert timefmt.date_time(late) == "2026-01-16 00:00"
    assert timefmt.utc_time(late) == "2026-01-16 00:00 UTC"
    assert timefmt.date_time(late, "Asia/Shanghai") == "2026-01-16 08:00"
    assert timefmt.clock_time(None) == "—"


@pytest.mark.parametrize(
    ("delta", "en", "zh"),
    [
        (timedelta(seconds=30), "30s", "30秒"),
        (timedelta(minutes=49, seconds=40), "50m", "50分钟"),
        (timedelta(hours=1), "1h00m", "1小时"),
        (timedelta(hours=2, minutes=45), "2h45m", "2小时45分钟"),
        (timedelta(days=1), "1d", "1天"),
        (timedelta(days=1, hours=3), "1d03h", "1天3小时"),
        (-timedelta(minutes=5), "-5m", "-5分钟"),
    ],
)
def test_durations_are_whole_minutes_in_either_language(delta, en, zh):
    assert timefmt.duration(delta) == en
    assert timefmt.duration(delta, "zh") == zh


def test_the_message_catalogs_use_the_same_formatter():
    render = Renderer("zh")
    moment = datetime(2026, 1, 15, 2, 49, 40, tzinfo=UTC)
    text = render("error.already_mitigated", at=moment)
    assert "02:50" in text
    assert Renderer("en")("event.snoozed", actor="a", until_at=moment).endswith("until 02:50.")
    reminder = render(
        "reminder.risk",
        ref="INC-1",
        risk="信息滞后",
        trigger="update",
        within=timedelta(minutes=30),
        fallback="指定专人",
        severity=None,
        commander=None,
    )
    assert "已 30分钟 没有进展更新" in reminder


def test_deadlines_read_in_the_language_of_the_text():
    assert timefmt.deadline(timedelta(hours=1), "mitigated") == "1h00m after mitigated"
    assert timefmt.deadline(timedelta(hours=1), "mitigated", "zh") == "缓解后 1小时"
    assert timefmt.deadline(timedelta(minutes=15), "start", "zh") == "开始后 15分钟"
    assert timefmt.deadline(timedelta(minutes=15), "start") == "15m"
