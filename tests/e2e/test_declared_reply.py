"""The declarer's private answer says where the response runs, and why a channel has no title."""

from __future__ import annotations

from tests.e2e.conftest import Harness


def _declared(slack: Harness, text: str) -> tuple[str, str]:
    answer = slack.answer(slack.command(text))
    (created,) = slack.fake.wait_for("conversations.create", lambda c: c.status == 200)
    return answer, created.args["name"]


def test_a_chinese_title_gives_a_bare_channel_name_and_the_reply_says_why(slack: Harness):
    answer, name = _declared(slack, "start service-outage-zh sev1 数据库连接池耗尽")
    assert name == f"inc-{slack.clock.now():%Y%m%d}-1"
    assert (
        "Channel names take only a–z, 0–9 and -, so the title's other characters are left out."
        in answer
    )


def test_a_title_with_some_chinese_says_so_too(slack: Harness):
    answer, name = _declared(slack, "start service-outage sev1 结算 502")
    assert name.endswith("-1-502")
    assert "so the title's other characters are left out" in answer


def test_an_ascii_title_is_in_the_channel_name_and_nothing_more_is_said(slack: Harness):
    answer, name = _declared(slack, "start service-outage sev1 Checkout is failing")
    assert name.endswith("-1-checkout-is-failing")
    assert "Channel names" not in answer and answer.startswith("Declared INC-1.")
