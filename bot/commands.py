"""The `/incident …` grammar: one parser shared by Slack and the terminal.

`parse("handoff commander <@U123|ana>")` returns a `Command`; anything else
raises `ParseError` whose message shows the right form. The parser never
raises any other exception, whatever the input (a property test checks it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from bot.durations import DurationError, parse_duration
from bot.errors import ParseError
from bot.runbook import SEVERITIES

# verb -> usage line; the order is the order of `/incident help`
USAGE: dict[str, str] = {
    "start": "/incident start RUNBOOK [SEV] TITLE…",
    "assign": "/incident assign ROLE @user",
    "handoff": "/incident handoff ROLE @user",
    "accept": "/incident accept",
    "update": "/incident update TEXT…",
    "note": "/incident note TEXT…",
    "done": "/incident done STEP",
    "skip": "/incident skip STEP REASON…",
    "next": "/incident next",
    "sev": "/incident sev SEV",
    "snooze": "/incident snooze [DURATION]",
    "mitigated": "/incident mitigated",
    "resolved": "/incident resolved",
    "close": "/incident close",
    "summary": "/incident summary TEXT…",
    "impact": "/incident impact TEXT…",
    "cause": "/incident cause TEXT…",
    "action": "/incident action TEXT… [@owner] [due YYYY-MM-DD]",
    "actions": "/incident actions",
    "postmortem": "/incident postmortem",
    "status": "/incident status",
    "list": "/incident list",
    "runbooks": "/incident runbooks",
    "help": "/incident help",
}
_NO_ARGS = {
    "accept",
    "next",
    "mitigated",
    "resolved",
    "close",
    "status",
    "list",
    "runbooks",
    "help",
    "actions",
    "postmortem",
}
_TEXT = {"update", "note", "summary", "impact", "cause"}
MAX_TEXT = 3000
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn"}

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|([^>]*))?>$|^@([\w.\-]+)$")


@dataclass(frozen=True)
class Mention:
    """A user as typed: Slack `<@U123|ana>` (id U123) or terminal `@ana` (id ana)."""

    id: str
    name: str | None = None


@dataclass(frozen=True)
class Command:
    verb: str
    runbook: str | None = None
    severity: str | None = None
    title: str | None = None
    role: str | None = None
    user: Mention | None = None
    text: str | None = None
    step: str | None = None
    owner: Mention | None = None
    due: date | None = None
    duration: timedelta | None = None


def parse_mention(token: str) -> Mention | None:
    match = _MENTION.match(token)
    if not match:
        return None
    slack_id, slack_name, plain = match.groups()
    return Mention(slack_id, slack_name or None) if slack_id else Mention(plain, plain)


def parse_severity(token: str) -> str | None:
    token = token.lower()
    return token if token in SEVERITIES else None


def _fail(form: str, problem: str, **params: object) -> ParseError:
    return ParseError(problem, usage=USAGE[form], **params)


def _clean(text: str) -> str:
    """Drop control and format characters (bidi overrides, zero-width) but keep
    newlines, tabs and every kind of space; cap the length."""
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _INVISIBLE)
    return kept.strip()[:MAX_TEXT]


def parse(text: str) -> Command:
    """Parse the text after `/incident` (a leading `/incident` is also accepted)."""
    raw = _clean(text or "")
    if raw.lower().startswith("/incident"):
        raw = raw[len("/incident") :].strip()
    if not raw:
        return Command("open")
    head, _, rest = raw.partition(" ")
    verb = head.lower()
    rest = rest.strip()
    if verb not in USAGE:
        raise ParseError("unknown_verb", verb=head[:40], verbs=", ".join(USAGE))
    if verb in _NO_ARGS:
        if rest:
            raise _fail(verb, "no_arguments", verb=verb)
        return Command(verb)
    if verb in _TEXT:
        if not rest:
            raise _fail(verb, "text_required", verb=verb)
        return Command(verb, text=rest)
    return _PARSERS[verb](rest)


def _start(rest: str) -> Command:
    words = rest.split()
    if len(words) < 2:
        raise _fail("start", "start_needs_title")
    runbook, words = words[0], words[1:]
    severity = parse_severity(words[0])
    if severity:
        words = words[1:]
    elif re.fullmatch(r"(?i)sev\d+", words[0]):
        raise _fail("start", "bad_severity", given=words[0], choices=", ".join(SEVERITIES))
    if not words:
        raise _fail("start", "start_needs_title")
    title = rest.split(None, 2 if severity else 1)[-1]
    return Command("start", runbook=runbook.lower(), severity=severity, title=title)


def _role_and_user(verb: str):
    def parse_it(rest: str) -> Command:
        words = rest.split()
        if len(words) != 2:
            raise _fail(verb, "role_and_user")
        role, who = words
        mention = parse_mention(who)
        if mention is None:
            mention_first = parse_mention(role)
            if mention_first is not None:  # `assign @ana commander` is a natural slip
                return Command(verb, role=who.lower(), user=mention_first)
            raise _fail(verb, "not_a_mention", given=who[:40])
        return Command(verb, role=role.lower(), user=mention)

    return parse_it


def _done(rest: str) -> Command:
    words = rest.split()
    if len(words) != 1:
        raise _fail("done", "one_step")
    return Command("done", step=words[0])


def _skip(rest: str) -> Command:
    step, _, reason = rest.partition(" ")
    if not step or not reason.strip():
        raise _fail("skip", "skip_needs_reason")
    return Command("skip", step=step, text=reason.strip())


def _sev(rest: str) -> Command:
    words = rest.split()
    severity = parse_severity(words[0]) if len(words) == 1 else None
    if severity is None:
        raise _fail("sev", "bad_severity", given=rest[:40], choices=", ".join(SEVERITIES))
    return Command("sev", severity=severity)


def _snooze(rest: str) -> Command:
    if not rest:
        return Command("snooze")
    try:
        return Command("snooze", duration=parse_duration(rest))
    except DurationError:
        raise _fail("snooze", "bad_duration", given=rest[:40]) from None


def _action(rest: str) -> Command:
    words = rest.split()
    due: date | None = None
    owner: Mention | None = None
    changed = True
    while changed and words:
        changed = False
        if len(words) >= 2 and words[-2].lower() == "due" and due is None:
            try:
                due = date.fromisoformat(words[-1])
            except ValueError:
                raise _fail("action", "bad_date", given=words[-1][:40]) from None
            words = words[:-2]
            changed = True
        elif owner is None and (mention := parse_mention(words[-1])) is not None:
            owner = mention
            words = words[:-1]
            changed = True
    if not words:
        raise _fail("action", "text_required", verb="action")
    return Command("action", text=" ".join(words), owner=owner, due=due)


_PARSERS = {
    "start": _start,
    "assign": _role_and_user("assign"),
    "handoff": _role_and_user("handoff"),
    "done": _done,
    "skip": _skip,
    "sev": _sev,
    "action": _action,
    "snooze": _snooze,
}
