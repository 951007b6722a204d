"""Text between Slack and the bot.

Slash-command text arrives escaped (`should_escape: true`): `&amp; &lt; &gt;`,
mentions as `<@U123|ana>`, channels as `<#C123|name>`, links as
`<https://…|label>` and @channel as `<!channel>`. The bot stores plain text
with mention tokens kept; on the way out everything but user and channel
mentions is escaped again, so nothing a user typed can ping @channel/@here or
show a link under a misleading label.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"<([^<>]*)>")
_MENTION = re.compile(r"<(?:@[UW][A-Z0-9]+|#C[A-Z0-9]+)(?:\|[^<>]*)?>")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]+$")


def is_slack_user(user: str) -> bool:
    """Whether a mentioned id is a Slack user (`U…`, `W…`): `@ben` typed as text is not."""
    return bool(SLACK_USER.match(user))


def from_slack(text: str) -> str:
    """Slack's escaped command text to plain text (mentions stay tokens, links show their URL)."""

    def token(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner.startswith(("@", "#", "!")):
            return match.group(0)  # mentions stay; special mentions are escaped on output
        url, _, label = inner.partition("|")
        return f"{label} ({url})" if label and label != url else url

    text = _TOKEN.sub(token, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _escape_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape(text: str) -> str:
    """Escape for Slack mrkdwn, keeping user and channel mentions as they are."""
    parts, last = [], 0
    for match in _MENTION.finditer(text):
        parts += [_escape_plain(text[last : match.start()]), match.group(0)]
        last = match.end()
    parts.append(_escape_plain(text[last:]))
    return "".join(parts)


def one_line(text: str, limit: int) -> str:
    """Escaped like every message, whitespace (newlines too) folded to single spaces, and at
    most `limit` characters without cutting an `&amp;` or a mention in half (channel topics)."""
    escaped = escape(" ".join(text.split()))
    if len(escaped) <= limit:
        return escaped
    cut = escaped[:limit]
    for opener, closer in (("&", ";"), ("<", ">")):
        start = cut.rfind(opener)
        if start != -1 and closer not in cut[start:]:
            cut = cut[:start]
    return cut.rstrip()
