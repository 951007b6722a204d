"""`incident-bot demo`: a whole outage played from the shipped runbook.

The script is a list of lines (minutes since start, who, command). Time is a
fake clock moved forward between lines, so a three-hour incident plays in about
a second and reads like the channel's transcript. Reminders, deadline nudges and
escalations fire at their own bot times on the way. The review meeting the next
morning adds what the team learned and rebuilds the review.

The demo runs on its own throw-away database, deleted when it ends, so it never
touches live or drill incidents; its review is `postmortems/drills/INC-n.md`.
With `INCIDENT_BOT_LANGUAGE=zh` it plays the Chinese runbook in Chinese.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from bot.bootstrap import build
from bot.clock import FakeClock
from bot.config import Settings
from bot.console.chat import ConsoleChat
from bot.dispatch import Context
from bot.reminders import run_until
from bot.store import Store

RUNBOOK = "service-outage"
START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # the seed plan's 2 a.m. alert


@dataclass(frozen=True)
class Line:
    minute: int
    user: str
    en: str
    zh: str | None = None  # the same command in Chinese, where it carries text

    def command(self, language: str) -> str:
        return self.zh if language == "zh" and self.zh else self.en


SCRIPT: list[Line] = [
    Line(
        0,
        "ana",
        f"start {RUNBOOK} sev1 Checkout API returns 502 for every user",
        f"start {RUNBOOK}-zh sev1 结算接口对所有用户返回 502",
    ),
    Line(1, "ana", "assign tech-lead @ben"),
    Line(1, "ana", "assign ops-a @chen"),
    Line(2, "ana", "assign ops-b @dana"),
    Line(2, "ana", "assign developer @eli"),
    Line(3, "ana", "assign support-lead @fay"),
    Line(3, "ana", "assign product @gus"),
    Line(11, "ana", "done 1.1"),
    Line(
        14,
        "chen",
        "update 502s come from the API gateway; checkout pods crash-loop since 01:52",
        "update 502 来自 API 网关；结算服务的 Pod 自 01:52 起反复重启",
    ),
    Line(22, "chen", "done 1.2"),
    Line(
        24,
        "ben",
        "note Release 2026.01.15-1 went out at 01:50 and halved the DB pool size",
        "note 版本 2026.01.15-1 于 01:50 上线，数据库连接池减半",
    ),
    Line(28, "eli", "done 1.3"),
    Line(36, "ana", "done 1.4"),
    Line(
        37,
        "ana",
        "update Rolling back release 2026.01.15-1; ETA 10 minutes",
        "update 正在回滚版本 2026.01.15-1，预计 10 分钟完成",
    ),
    Line(40, "ana", "handoff commander @ivy"),
    Line(42, "ivy", "accept"),
    Line(49, "dana", "done 1.5"),
    Line(50, "ivy", "mitigated"),
    Line(51, "ivy", "next"),
    Line(55, "fay", "done 3.1"),
    Line(58, "ivy", "status"),
    Line(70, "fay", "done 3.2"),
    Line(80, "ben", "done 2.1"),
    Line(
        82,
        "ivy",
        "update Root cause: the release halved the DB pool; permanent fix in review",
        "update 根因：该版本使数据库连接池减半；正式修复方案评审中",
    ),
    Line(83, "ivy", "snooze 30m"),
    Line(85, "ivy", "sev sev2"),
    Line(100, "ben", "done 2.2"),
    Line(130, "eli", "done 2.3"),
    Line(150, "chen", "done 2.4"),
    Line(151, "ivy", "next"),
    Line(160, "ivy", "done 3.3"),
    Line(165, "ivy", "resolved"),
    Line(
        166,
        "ivy",
        "trigger Release 2026.01.15-1 at 01:50 halved the checkout database pool, from 40 to 20 connections.",
        "trigger 01:50 上线的版本 2026.01.15-1 把结算数据库连接池从 40 个连接减到 20 个。",
    ),
    Line(
        167,
        "chen",
        "detection The 502 alert paged on-call at 01:58; pool saturation, climbing since 01:52, had no alert.",
        "detection 01:58 的 502 告警通知了值班人员；连接池自 01:52 起持续饱和，却没有告警。",
    ),
    Line(
        168,
        "ivy",
        "resolution Rolled back the release (service back at 02:50), then pinned the pool size and redeployed at 04:30.",
        "resolution 回滚版本后服务于 02:50 恢复；随后固定连接池大小，04:30 重新发布。",
    ),
    Line(
        170,
        "ivy",
        "summary Checkout failed for 50 minutes after a release halved the DB connection pool.",
        "summary 一次发布使数据库连接池减半，结算功能因此中断 50 分钟。",
    ),
    Line(
        170,
        "ivy",
        "impact About 12,000 checkout attempts failed; no data was lost.",
        "impact 约 12,000 次结算请求失败，没有数据丢失。",
    ),
    Line(
        171,
        "ben",
        "cause A config default changed in the pool library; our release did not pin it.",
        "cause 连接池组件升级后默认配置改变，而我们的发布没有固定该配置。",
    ),
    Line(
        171,
        "ben",
        "why Checkout pods crash-looped: every request waited for a DB connection and timed out.",
        "why 结算 Pod 反复重启：每个请求都在等待数据库连接，直到超时。",
    ),
    Line(
        171,
        "ben",
        "why The pool had half its usual connections after the release.",
        "why 发布后连接池只剩平时一半的连接。",
    ),
    Line(
        171,
        "ben",
        "why The release picked up a new default from the pool library upgrade.",
        "why 该版本随连接池组件升级带入了新的默认值。",
    ),
    Line(
        171,
        "ben",
        "why Our service config did not pin the pool size, so the library default applied.",
        "why 服务配置没有固定连接池大小，于是使用了组件的默认值。",
    ),
    Line(
        171,
        "ben",
        "why Config review does not look at library defaults that change between versions.",
        "why 配置评审不检查组件版本之间变化的默认值。",
    ),
    Line(
        172,
        "eli",
        "factor process Config review does not check library defaults that changed",
        "factor 法 配置评审不检查组件默认值的变化",
    ),
    Line(
        172,
        "chen",
        "factor tooling No alert on connection pool saturation",
        "factor 机 没有连接池饱和告警",
    ),
    Line(
        172,
        "ben",
        "action Pin connection pool settings in the service config @eli due 2026-01-22 p1 https://tracker.example.com/OPS-101",
        "action 在服务配置中固定连接池参数 @eli due 2026-01-22 p1 https://tracker.example.com/OPS-101",
    ),
    Line(
        172,
        "ivy",
        "action Alert on pool exhaustion before errors reach users @chen due 2026-01-29 p2 https://tracker.example.com/OPS-102",
        "action 在错误影响用户之前对连接池耗尽告警 @chen due 2026-01-29 p2 https://tracker.example.com/OPS-102",
    ),
    Line(
        173,
        "ivy",
        "lesson well The rollback plan was ready: service was back 13 minutes after the decision.",
        "lesson well 回滚方案早已备好：决定回滚后 13 分钟服务即恢复。",
    ),
    Line(
        173,
        "chen",
        "lesson wrong Pool metrics were not on the dashboard, so the cause was found only after the rollback.",
        "lesson wrong 仪表盘上没有连接池指标，直到回滚之后才找到原因。",
    ),
    Line(175, "ivy", "close"),
    # the review meeting, the next morning: a closed incident still takes review material
    Line(
        1440,
        "ivy",
        "lesson lucky It happened at 2 a.m., when checkout traffic is at its lowest.",
        "lesson lucky 故障发生在凌晨 2 点，正是结算流量最低的时候。",
    ),
    Line(
        1440,
        "ben",
        "factor environment Night-time traffic was too low for the canary to exhaust the smaller pool.",
        "factor 环 夜间流量太低，灰度发布时没能把变小的连接池耗尽。",
    ),
    Line(1441, "ivy", "postmortem"),
]


@dataclass(frozen=True)
class Demo:
    incident_id: int
    review: Path  # where its review was written


def run_demo(settings: Settings, out: TextIO, db: Path | None = None) -> Demo:
    """Play SCRIPT on a throw-away database (or `db`, kept, for tests)."""
    with tempfile.TemporaryDirectory(prefix="incident-bot-demo-") as scratch:
        return _play(settings, out, db or Path(scratch) / "demo.db")


def _play(settings: Settings, out: TextIO, db: Path) -> Demo:
    clock = FakeClock(START)
    chat = ConsoleChat(clock, out, show_direct=False, language=settings.language)
    bot = build(settings, clock, chat, store=Store(db), drill=True)
    incident_id: int | None = None
    try:
        for line in SCRIPT:
            command = line.command(settings.language)
            run_until(bot.reminders, clock, START + timedelta(minutes=line.minute))
            chat.said(line.user, f"/incident {command}")
            result = bot.handler.handle(command, Context(actor=line.user, incident_id=incident_id))
            if result.error is not None:
                raise RuntimeError(f"demo script step failed: {command!r}: {result.error}")
            if incident_id is None and result.incident is not None:
                incident_id = result.incident.id
        assert incident_id is not None
        record = bot.store.postmortem(incident_id)
        assert record is not None
        return Demo(incident_id, Path(record["path"]))
    finally:
        bot.close()
