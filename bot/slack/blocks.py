"""Block Kit for the Slack adapter, built with slack_sdk's typed models.

The models check Slack's limits (text lengths, option counts) when turned into
dicts, so a message that Slack would refuse fails here, in our tests, first.
Every message also carries a plain `text` fallback for notifications.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.chat import Button
from bot.commands import FACTORS, LESSONS
from bot.messages import Renderer
from bot.model import Incident
from bot.plan import PlanView
from bot.render import plan_parts
from bot.review import TEXTS, ReviewMaterial
from bot.runbook import SEVERITIES, LoadedRunbook

MAX_BLOCKS = 50  # per message
MAX_SECTION = 3000  # characters of one section's text
MAX_OPTIONS = 100  # per select menu
MAX_INPUT = 3000  # characters of one plain-text input (its max_length and initial value)
REVIEW_FORM = "review_form"  # the review modal's callback id


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_sections(text: str) -> list[Block]:
    """Split mrkdwn text into sections on line boundaries, each within Slack's limit."""
    sections: list[Block] = []
    chunk = ""
    for line in text.splitlines() or [""]:
        line = _cut(line, MAX_SECTION)
        if chunk and len(chunk) + 1 + len(line) > MAX_SECTION:
            sections.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
            chunk = line
        else:
            chunk = f"{chunk}\n{line}" if chunk else line
    if chunk.strip():
        sections.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
    return sections


def message_payloads(text: str, buttons: tuple[Button, ...] = ()) -> list[dict[str, Any]]:
    """One or more chat.postMessage payloads (blocks ≤ 50 each) for a text and its buttons."""
    blocks = text_sections(text)
    if buttons:
        blocks.append(ActionsBlock(elements=[_button(b) for b in buttons]))
    pages = [blocks[i : i + MAX_BLOCKS] for i in range(0, len(blocks), MAX_BLOCKS)] or [[]]
    payloads = []
    for number, page in enumerate(pages):
        fallback = text if len(pages) == 1 else f"{_cut(text, 3500)} ({number + 1}/{len(pages)})"
        payloads.append({"text": _cut(fallback, 3900), "blocks": [b.to_dict() for b in page]})
    return payloads


def _button(button: Button, style: str | None = "primary") -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=_cut(button.label, 75)),
        action_id=button.action,
        value=button.value,
        style=style,
    )


def plan_blocks(render: Renderer, plan: PlanView) -> list[dict[str, Any]]:
    """The pinned plan: phases with step states, roles, and buttons for common actions."""
    parts = plan_parts(render, plan)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_cut(parts.header, 150))),
        ContextBlock(elements=[MarkdownTextObject(text=parts.summary)]),
    ]
    if parts.alert:
        blocks += text_sections(parts.alert)
    for text in parts.phases:
        blocks += text_sections(text)
    blocks.append(DividerBlock())
    blocks += text_sections(parts.roles)
    if not plan.incident.is_closed:
        blocks.append(_plan_actions(render, plan))
    if len(blocks) > MAX_BLOCKS:  # a very long runbook: keep the head, point at status
        blocks = blocks[: MAX_BLOCKS - 2] + [
            SectionBlock(text=MarkdownTextObject(text=render("plan.truncated"))),
            blocks[-1],
        ]
    return [b.to_dict() for b in blocks]


def _plan_actions(render: Renderer, plan: PlanView) -> ActionsBlock:
    value = str(plan.incident.id)
    elements: list[Any] = []
    open_steps = plan.open_steps[:MAX_OPTIONS]
    if open_steps:
        elements.append(
            StaticSelectElement(
                placeholder=PlainTextObject(text=_cut(render("label.mark_done"), 150)),
                action_id="step_done",
                options=[
                    Option(text=_cut(f"{s.id} {s.title}", 75), value=f"{value}:{s.id}")
                    for s in open_steps
                ],
            )
        )
    elements.append(_button(Button(render("label.post_update"), "post_update", value)))
    if plan.has_next_phase:
        elements.append(_button(Button(render("label.next_phase"), "next_phase", value), None))
    return ActionsBlock(block_id="plan_actions", elements=elements)


def start_modal(render: Renderer, runbooks: list[LoadedRunbook], channel: str) -> dict[str, Any]:
    """The form behind a bare `/incident`: runbook, severity, title."""
    options = [
        Option(text=_cut(f"{r.runbook.name} ({r.runbook.id})", 75), value=r.runbook.id)
        for r in runbooks[:MAX_OPTIONS]
    ]
    view = View(
        type="modal",
        callback_id="start_incident",
        private_metadata=channel,
        title=PlainTextObject(text=_cut(render("label.start_title"), 24)),
        submit=PlainTextObject(text=_cut(render("label.declare"), 24)),
        close=PlainTextObject(text=_cut(render("label.cancel"), 24)),
        blocks=[
            InputBlock(
                block_id="runbook",
                label=PlainTextObject(text=render("label.runbook")),
                element=StaticSelectElement(action_id="value", options=options),
            ),
            InputBlock(
                block_id="severity",
                label=PlainTextObject(text=render("label.severity")),
                optional=True,
                element=StaticSelectElement(
                    action_id="value", options=[Option(text=s, value=s) for s in SEVERITIES]
                ),
            ),
            InputBlock(
                block_id="title",
                label=PlainTextObject(text=render("label.title")),
                element=PlainTextInputElement(action_id="value", max_length=150),
            ),
        ],
    )
    return view.to_dict()


def update_modal(render: Renderer, incident_id: int, channel: str | None) -> dict[str, Any]:
    """The form behind the plan's "Post update" button; it remembers the incident and the
    channel it was opened from, which must still match when it is submitted."""
    view = View(
        type="modal",
        callback_id="post_update",
        private_metadata=json.dumps({"incident": incident_id, "channel": channel}),
        title=PlainTextObject(text=_cut(render("label.update_title"), 24)),
        submit=PlainTextObject(text=_cut(render("label.post"), 24)),
        blocks=[
            InputBlock(
                block_id="text",
                label=PlainTextObject(text=render("label.update_text")),
                element=PlainTextInputElement(action_id="value", multiline=True, max_length=3000),
            )
        ],
    )
    return view.to_dict()


def review_modal(render: Renderer, incident: Incident, material: ReviewMaterial) -> dict[str, Any]:
    """The form behind `/incident review`: every part people write, prefilled from the
    record. A part too long for one input (3,000 characters) is shown, not offered for
    editing, so saving can never cut it short."""
    current = material.as_form()
    fields: list[tuple[str, str, str]] = [  # block id, label, current text
        (name, render(f"label.review_{name}"), current[name]) for name in TEXTS[:3]
    ]
    fields.append(("whys", render("label.review_whys_hint"), "\n".join(current["whys"])))
    fields += [
        (
            f"factor_{area}",
            render("label.factor_hint", area=render(f"label.factor_{area}")),
            "\n".join(current["factors"][area]),
        )
        for area in FACTORS
    ]
    fields += [(name, render(f"label.review_{name}"), current[name]) for name in TEXTS[3:]]
    fields += [
        (
            f"lesson_{kind}",
            render("label.lesson_hint", kind=render(f"label.lesson_{kind}")),
            "\n".join(current["lessons"][kind]),
        )
        for kind in LESSONS
    ]
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=render("label.review_intro", ref=incident.ref)))
    ]
    for block_id, label, text in fields:
        if len(text) > MAX_INPUT:
            note = render("label.review_too_long", part=label)
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_cut(note, MAX_SECTION))]))
            continue
        element = PlainTextInputElement(
            action_id="value", multiline=True, max_length=MAX_INPUT, initial_value=text or None
        )
        blocks.append(
            InputBlock(
                block_id=block_id,
                label=PlainTextObject(text=_cut(label, 2000)),
                element=element,
                optional=True,
            )
        )
    view = View(
        type="modal",
        callback_id=REVIEW_FORM,
        private_metadata=json.dumps({"incident": incident.id, "channel": incident.channel}),
        title=PlainTextObject(text=_cut(render("label.review_title", ref=incident.ref), 24)),
        submit=PlainTextObject(text=_cut(render("label.save"), 24)),
        close=PlainTextObject(text=_cut(render("label.cancel"), 24)),
        blocks=blocks,
    )
    return view.to_dict()


def review_submission(values: dict[str, Any]) -> dict[str, Any]:
    """A review form's state as the engine takes it (`IncidentService.revise_review`): only
    the parts the form carried; an input left empty clears its part."""

    def text(block: str) -> str:
        field = values.get(block, {}).get("value")
        value = field.get("value") if isinstance(field, dict) else None
        return value if isinstance(value, str) else ""

    submitted: dict[str, Any] = {name: text(name) for name in TEXTS if name in values}
    if "whys" in values:
        submitted["whys"] = text("whys")
    factors = {a: text(f"factor_{a}") for a in FACTORS if f"factor_{a}" in values}
    lessons = {k: text(f"lesson_{k}") for k in LESSONS if f"lesson_{k}" in values}
    if factors:
        submitted["factors"] = factors
    if lessons:
        submitted["lessons"] = lessons
    return submitted


def selected(values: dict[str, Any], block: str) -> str | None:
    """The value a person gave in a modal input (text or select)."""
    field = values.get(block, {}).get("value", {})
    if field.get("selected_option"):
        return str(field["selected_option"]["value"])
    value = field.get("value")
    return value if isinstance(value, str) else None
