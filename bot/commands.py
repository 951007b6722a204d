"""The `/incident …` grammar: one parser shared by Slack and the terminal.

`parse("handoff commander <@U123|ana>")` returns a `Command`; anything else
raises `ParseError` whose message shows the right form. The parser never
raises any other exception, whatever the input (a property test checks it).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlsplit

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
    "trigger": "/incident trigger TEXT…",
    "detection": "/incident detection TEXT…",
    "resolution": "/incident resolution TEXT…",
    "why": "/incident why TEXT…",
    "factor": "/incident factor people|tooling|data|process|environment TEXT…",
    "lesson": "/incident lesson well|wrong|lucky TEXT…",
    "review": "/incident review",
    "action": "/incident action TEXT… [@owner] [due YYYY-MM-DD] [p1|p2|p3] [LINK]",
    "actions": "/incident actions [done N]",
    "postmortem": "/incident postmortem",
    "status": "/incident status",
    "catchup": "/incident catchup",
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
    "catchup",
    "list",
    "runbooks",
    "help",
    "postmortem",
    "review",
}
_TEXT = {"update", "note", "summary", "impact", "cause", "why"}
_TEXT |= {"trigger", "detection", "resolution"}
# review material: accepted at any time, also after close (the review meeting comes later)
REVIEW_VERBS = (
    "summary",
    "impact",
    "cause",
    "trigger",
    "detection",
    "resolution",
    "why",
    "factor",
    "lesson",
    "action",
)
FACTORS = ("people", "tooling", "data", "process", "environment")
FACTOR_ALIASES = dict(zip("人机料法环", FACTORS, strict=True))  # 人机料法环, as in the seeds
LESSONS = ("well", "wrong", "lucky")
PRIORITIES = ("p1", "p2", "p3")
MAX_LINK = 2000
MAX_TEXT = 3000
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn"}

_BARE_PREFIX = re.compile(r"(?i)^incident(?:\s+|$)")
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
    category: str | None = None  # factor: people … environment; lesson: well | wrong | lucky
    priority: str | None = None  # action: p1 | p2 | p3
    link: str | None = None  # action: the tracker issue, an http(s) URL
    number: int | None = None  # actions done N: which follow-up


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


def clean_text(text: str) -> str:
    """Drop control and format characters (bidi overrides, zero-width) but keep
    newlines, tabs and every kind of space; cap the length."""
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _INVISIBLE)
    return kept.strip()[:MAX_TEXT]


def without_prefix(cleaned: str) -> str:
    """Cleaned command text (`clean_text`) without a leading `/incident` (or `incident`),
    as `parse` reads it."""
    if cleaned.lower().startswith("/incident"):
        return cleaned[len("/incident") :].strip()
    # `incident status`: the slash left out (or eaten by the terminal or a client)
    return _BARE_PREFIX.sub("", cleaned, count=1)


def verb_of(cleaned: str) -> str:
    """The verb `parse` would read in cleaned command text, lower case ("" when none)."""
    words = without_prefix(cleaned).split(None, 1)
    return words[0].lower() if words else ""


def parse(text: str) -> Command:
    """Parse the text after `/incident` (a leading `/incident` is also accepted)."""
    raw = without_prefix(clean_text(text or ""))
    if not raw:
        return Command("open")
    head, *tail = raw.split(None, 1)  # any space: a Chinese IME types U+3000
    verb = head.lower()
    rest = tail[0].strip() if tail else ""
    if verb not in USAGE:
        guess = difflib.get_close_matches(verb, list(USAGE), n=1, cutoff=0.6)
        raise ParseError(
            "unknown_verb",
            verb=head[:40],
            verbs=", ".join(USAGE),
            suggestion=guess[0] if guess else None,
            usage=USAGE[guess[0]] if guess else None,
        )
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


def _role_and_user(verb: str) -> Callable[[str], Command]:
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


# after `due`, words that show a date was meant, though not as YYYY-MM-DD ("due next friday")
_DATE_WORDS = re.compile(
    r"(?i)^(\d.*|today|tomorrow|tonight|next|this|in|eod|eow|end|by|on|before|"
    r"mon(day)?|tue(s(day)?)?|wed(nesday)?|thu(r(s(day)?)?)?|fri(day)?|sat(urday)?|sun(day)?)$"
)
_PRIORITY_LIKE = re.compile(r"(?i)^p\d+$")
_LINK_LIKE = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://")


def _action(rest: str) -> Command:
    """Text first, then any of `@owner`, `due YYYY-MM-DD`, `p1..p3`, `LINK` in any order.

    What looks like one of those but cannot be read is refused, never dropped into the
    text: `due next friday`, `p4`, `ftp://…`, a second owner or an owner inside the text."""
    words = rest.split()
    due: date | None = None
    owner: Mention | None = None
    priority: str | None = None
    link: str | None = None
    while words:
        last = words[-1]
        if len(words) >= 2 and words[-2].lower() == "due" and due is None:
            try:
                due = date.fromisoformat(last)
            except ValueError:
                raise _fail("action", "bad_date", given=last[:40]) from None
            words = words[:-2]
        elif owner is None and (mention := parse_mention(last)) is not None:
            owner, words = mention, words[:-1]
        elif priority is None and last.lower() in PRIORITIES:
            priority, words = last.lower(), words[:-1]
        elif link is None and _LINK_LIKE.match(last):
            link, words = _link(last), words[:-1]
        else:
            break
    if words and _PRIORITY_LIKE.match(words[-1]):
        raise _fail("action", "bad_priority", given=words[-1][:40])
    for index, word in enumerate(words):  # a date that was meant but cannot be read
        following = words[index + 1 : index + 3]
        if word.lower() == "due" and (not following or _DATE_WORDS.match(following[0])):
            if following and _is_date(following[0]):
                raise _fail("action", "option_in_text", given=f"due {following[0]}"[:40])
            raise _fail("action", "bad_date", given=" ".join(following)[:40] or "due")
    for word in words:  # an owner who would otherwise vanish into the text
        if word.startswith(("@", "<@")):
            raise _fail("action", "owner_in_text", given=word[:40])
    if not words:
        raise _fail("action", "text_required", verb="action")
    return Command(
        "action", text=" ".join(words), owner=owner, due=due, priority=priority, link=link
    )


def _is_date(token: str) -> bool:
    try:
        date.fromisoformat(token)
    except ValueError:
        return False
    return True


def _link(token: str) -> str:
    """An http(s) URL as the tracker link; anything else that looks like a URL is refused."""
    try:
        parts = urlsplit(token)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise _fail("action", "bad_link", given=token[:80]) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or len(token) > MAX_LINK:
        raise _fail("action", "bad_link", given=token[:80])
    return token


def _actions(rest: str) -> Command:
    """`actions` lists the open follow-ups; `actions done N` (or `done #N`) marks one done."""
    if not rest:
        return Command("actions")
    words = rest.split()
    number = words[1].removeprefix("#") if len(words) == 2 else ""
    if words[0].lower() != "done" or not re.fullmatch(r"[0-9]{1,9}", number):
        raise _fail("actions", "actions_done_needs_number", given=rest[:40])
    return Command("actions", number=int(number))


def _factor(rest: str) -> Command:
    parts = rest.split(None, 1)
    head = parts[0] if parts else ""
    text = parts[1].strip() if len(parts) > 1 else ""
    category = FACTOR_ALIASES.get(head) or (head.lower() if head.lower() in FACTORS else None)
    if category is None or not text:
        raise _fail("factor", "factor_needs_category", given=head[:40])
    return Command("factor", category=category, text=text)


def _lesson(rest: str) -> Command:
    parts = rest.split(None, 1)
    kind = parts[0].lower() if parts else ""
    text = parts[1].strip() if len(parts) > 1 else ""
    if kind not in LESSONS or not text:
        raise _fail("lesson", "lesson_needs_kind", given=(parts[0] if parts else "")[:40])
    return Command("lesson", category=kind, text=text)


_PARSERS: dict[str, Callable[[str], Command]] = {
    "start": _start,
    "assign": _role_and_user("assign"),
    "handoff": _role_and_user("handoff"),
    "done": _done,
    "skip": _skip,
    "sev": _sev,
    "action": _action,
    "actions": _actions,
    "snooze": _snooze,
    "factor": _factor,
    "lesson": _lesson,
}
