"""Escaping text for Slack: one-line fields such as the channel topic."""

from __future__ import annotations

import pytest

from bot.slack.text import one_line


def test_one_line_escapes_and_folds_newlines():
    assert one_line("<!here> a\n\tb  &  <c>", 250) == "&lt;!here&gt; a b &amp; &lt;c&gt;"


def test_one_line_keeps_user_mentions():
    assert one_line("ask <@U123|ana>", 250) == "ask <@U123|ana>"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("ab &", 6, "ab"),  # "ab &am" would end inside &amp;
        ("ab <@U123> x", 8, "ab"),  # "ab <@U12" would end inside the mention
        ("abc def", 5, "abc d"),
    ],
)
def test_one_line_is_cut_to_the_limit_without_breaking_an_escape(text, limit, expected):
    assert one_line(text, limit) == expected
    assert len(one_line("x & " * 200, 250)) <= 250
