"""What people write for the review, folded from the timeline events that carry it.

Every piece is an event (`summary`, `trigger`, `why`, `factor`, `lesson`, …), so
the review is rebuilt from the record and never from a file. The fold is:

- a text (summary, impact, cause, trigger, detection, resolution): the latest wins;
- `why`: the next of the 5 Whys; `factor CATEGORY` and `lesson KIND`: one more item
  in that list;
- `review_revised` (the Slack review form): replaces every part it names with what
  the form held, which is how a correction is made (edit or delete an item, reword
  a Why). Parts the form did not carry are left as they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.commands import FACTORS, LESSONS, clean_text
from bot.events import Factor, Lesson, ReviewRevised, Why
from bot.model import Event

TEXTS = ("summary", "impact", "cause", "trigger", "detection", "resolution")
LISTS = ("whys", "factors", "lessons")
# event kinds that carry review material (none of them changes the incident's course)
KINDS = (*TEXTS, "why", "factor", "lesson", "review_revised")
MAX_ITEMS = 30  # per list: the 5 Whys, one area's factors, one kind of lesson


@dataclass(frozen=True)
class ReviewMaterial:
    texts: dict[str, str] = field(default_factory=lambda: dict.fromkeys(TEXTS, ""))
    whys: tuple[str, ...] = ()
    factors: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict.fromkeys(FACTORS, ()))
    lessons: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict.fromkeys(LESSONS, ()))

    def as_form(self) -> dict[str, Any]:
        """Every part, in the shape the review form submits (`revised` takes it back)."""
        return {
            **self.texts,
            "whys": list(self.whys),
            "factors": {k: list(v) for k, v in self.factors.items()},
            "lessons": {k: list(v) for k, v in self.lessons.items()},
        }


def fold(events: Iterable[Event]) -> ReviewMaterial:
    """The review material as the record has it after these events (in order)."""
    texts = dict.fromkeys(TEXTS, "")
    whys: list[str] = []
    factors: dict[str, list[str]] = {k: [] for k in FACTORS}
    lessons: dict[str, list[str]] = {k: [] for k in LESSONS}
    for event in events:
        payload = event.payload
        if event.kind in TEXTS:
            texts[event.kind] = event.text
        elif isinstance(payload, Why):
            whys.append(event.text)
        elif isinstance(payload, Factor) and payload.category in factors:
            factors[payload.category].append(event.text)
        elif isinstance(payload, Lesson) and payload.lesson in lessons:
            lessons[payload.lesson].append(event.text)
        elif isinstance(payload, ReviewRevised):
            changed = payload.changes
            texts.update({k: v for k, v in changed.items() if k in TEXTS})
            if "whys" in changed:
                whys = list(changed["whys"])
            for name, lists in (("factors", factors), ("lessons", lessons)):
                lists.update({k: list(v) for k, v in changed.get(name, {}).items() if k in lists})
    return ReviewMaterial(
        texts,
        tuple(whys),
        {k: tuple(v) for k, v in factors.items()},
        {k: tuple(v) for k, v in lessons.items()},
    )


def _text(value: object) -> str:
    """User text from a form, cleaned like a typed command (see commands.clean_text)."""
    return clean_text(value) if isinstance(value, str) else ""


def clean_items(value: object) -> list[str]:
    """A list from a form (a list, or text with one item per line), bounded."""
    items = value.splitlines() if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    cleaned = [_text(item) for item in items[: MAX_ITEMS * 4]]
    return [item for item in cleaned if item][:MAX_ITEMS]


def revised(current: ReviewMaterial, submitted: Mapping[str, Any]) -> dict[str, Any]:
    """What a form submission changes: the parts it carries that differ from the record,
    cleaned and bounded. Parts it does not carry, and anything malformed, are ignored."""
    changes: dict[str, Any] = {}
    for name in TEXTS:
        if name in submitted:
            text = _text(submitted[name])
            if text != current.texts[name]:
                changes[name] = text
    if "whys" in submitted:
        whys = clean_items(submitted["whys"])
        if tuple(whys) != current.whys:
            changes["whys"] = whys
    for name, known in (("factors", current.factors), ("lessons", current.lessons)):
        given = submitted.get(name)
        if not isinstance(given, Mapping):
            continue
        parts = {
            key: clean_items(given[key])
            for key in known
            if key in given and tuple(clean_items(given[key])) != known[key]
        }
        if parts:
            changes[name] = parts
    return changes
