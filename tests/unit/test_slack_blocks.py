"""Block Kit limits, text escaping, channel names and the manifest, without a network."""

from __future__ import annotations

import json
from datetime import timedelta

import yaml

from bot.chat import Button, channel_name
from bot.messages import Renderer
from bot.plan import plan_view
from bot.slack.blocks import MAX_BLOCKS, MAX_SECTION, message_payloads, plan_blocks, start_modal
from bot.slack.manifest import SCOPES, manifest_yaml
from bot.slack.text import escape, from_slack


def test_long_text_is_split_into_sections_within_slack_limits():
    text = "\n".join(f"line {n} " + "x" * 200 for n in range(1000))
    payloads = message_payloads(text)
    assert len(payloads) >= 2  # more than 50 sections of 3000 characters
    for payload in payloads:
        assert len(payload["blocks"]) <= MAX_BLOCKS
        assert all(len(b["text"]["text"]) <= MAX_SECTION for b in payload["blocks"])
        assert payload["text"]  # the notification fallback is never empty
    rebuilt = "\n".join(b["text"]["text"] for p in payloads for b in p["blocks"])
    assert rebuilt == text


def test_a_single_overlong_line_is_cut_not_rejected():
    (payload,) = message_payloads("y" * 5000)
    assert len(payload["blocks"][0]["text"]["text"]) == MAX_SECTION


def test_buttons_become_an_actions_block():
    (payload,) = message_payloads("Take the role?", (Button("Accept", "accept_handoff", "7"),))
    actions = payload["blocks"][-1]
    assert actions["type"] == "actions"
    assert actions["elements"][0]["action_id"] == "accept_handoff"
    assert actions["elements"][0]["value"] == "7"


def test_escape_stops_special_mentions_and_links_but_keeps_user_mentions():
    assert escape("<!channel> hi <@U1> <#C2|ops> <https://evil|bank> & co") == (
        "&lt;!channel&gt; hi <@U1> <#C2|ops> &lt;https://evil|bank&gt; &amp; co"
    )


def test_slack_command_text_becomes_plain_text_with_mentions_kept():
    raw = "see <https://status.example.com> and <https://evil.example|your bank>, R&amp;D &lt;3 <@U2|ben> <!here>"
    assert from_slack(raw) == (
        "see https://status.example.com and your bank (https://evil.example), R&D <3 <@U2|ben> <!here>"
    )
    assert escape(from_slack(raw)) == (
        "see https://status.example.com and your bank (https://evil.example), R&amp;D &lt;3 <@U2|ben> &lt;!here&gt;"
    )


def test_user_text_is_escaped_in_every_message_but_mentions_are_not(service, clock):
    render = Renderer("en", mention=lambda u: f"<@{u}>", escape=escape)
    incident = service.start("service-outage", "<!here> checkout", "U1").incident
    event = service.store.events(incident.id)[0]
    from bot.render import event_text

    text = event_text(render, event, incident)
    assert "&lt;!here&gt; checkout" in text and "<@U1>" in text


def test_plan_of_every_shipped_runbook_fits_in_one_message(service, clock, catalog):
    render = Renderer("en", mention=lambda u: f"<@{u}>", escape=escape)
    for loaded in catalog.all():
        incident = service.start(loaded.runbook.id, "A" * 300, "U1").incident
        clock.advance(timedelta(minutes=30))
        blocks = plan_blocks(render, plan_view(service.view(incident.id)))
        assert len(blocks) <= MAX_BLOCKS
        assert len(blocks[0]["text"]["text"]) <= 150  # header limit, long titles cut
        actions = blocks[-1]
        assert actions["type"] == "actions"
        assert {e["action_id"] for e in actions["elements"]} >= {"post_update", "next_phase"}


def test_start_modal_offers_every_runbook(catalog):
    view = start_modal(Renderer("en"), catalog.all(), "C1")
    options = view["blocks"][0]["element"]["options"]
    assert {o["value"] for o in options} == set(catalog.ids())
    assert len(view["title"]["text"]) <= 24


def test_channel_names_are_lowercase_short_and_slack_safe(service):
    incident = service.start("service-outage", "Checkout: DB pool EXHAUSTED!! " * 10, "U1").incident
    name = channel_name(incident)
    assert name.startswith(f"inc-20260115-{incident.id}-checkout-db-pool-exhausted")
    assert len(name) <= 80 and name == name.lower()
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def test_manifest_declares_the_escaped_slash_command_and_the_scopes():
    socket = yaml.safe_load(manifest_yaml())
    assert socket["settings"]["socket_mode_enabled"] is True
    (command,) = socket["features"]["slash_commands"]
    assert command["command"] == "/incident" and command["should_escape"] is True
    assert set(socket["oauth_config"]["scopes"]["bot"]) == set(SCOPES)
    http = yaml.safe_load(manifest_yaml("https://bot.example.com/"))
    assert http["settings"]["socket_mode_enabled"] is False
    assert http["features"]["slash_commands"][0]["url"] == "https://bot.example.com/slack/events"
    assert (
        http["settings"]["interactivity"]["request_url"] == "https://bot.example.com/slack/events"
    )


def test_manifest_asks_for_private_channels_for_private_runbooks():
    scopes = yaml.safe_load(manifest_yaml())["oauth_config"]["scopes"]["bot"]
    assert "groups:write" in scopes and "private" in SCOPES["groups:write"]


# --- the review form ---------------------------------------------------------------


def _material(service, **parts):
    incident = service.start("service-outage", "Checkout down", "U1").incident
    service.set_channel(incident.id, "C9")
    for kind, text in parts.items():
        service.add_to_review(incident.id, kind, text, "U1")
    return service.store.incident(incident.id), service.review(incident.id)


def test_review_form_is_prefilled_and_within_slack_limits(service):
    from bot.slack.blocks import MAX_INPUT, review_modal

    incident, material = _material(service, why="Pods waited", trigger="A release")
    service.add_to_review(incident.id, "why", "The pool was halved", "U1")
    service.add_to_review(incident.id, "factor", "No alert", "U1", "tooling")
    view = review_modal(Renderer("en"), incident, service.review(incident.id))
    assert view["callback_id"] == "review_form" and len(view["title"]["text"]) <= 24
    assert json.loads(view["private_metadata"]) == {"incident": incident.id, "channel": "C9"}
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert list(inputs) == [
        "summary",
        "impact",
        "cause",
        "whys",
        "factor_people",
        "factor_tooling",
        "factor_data",
        "factor_process",
        "factor_environment",
        "trigger",
        "detection",
        "resolution",
        "lesson_well",
        "lesson_wrong",
        "lesson_lucky",
    ]
    assert inputs["whys"]["element"]["initial_value"] == "Pods waited\nThe pool was halved"
    assert inputs["factor_tooling"]["element"]["initial_value"] == "No alert"
    assert inputs["trigger"]["element"]["initial_value"] == "A release"
    assert "initial_value" not in inputs["summary"]["element"]
    assert all(b["element"]["max_length"] == MAX_INPUT and b["optional"] for b in inputs.values())
    assert len(view["blocks"]) <= 100


def test_a_part_too_long_for_the_form_is_shown_not_offered(service):
    from bot.slack.blocks import review_modal, review_submission

    incident, _ = _material(service)
    for n in range(3):
        service.add_to_review(incident.id, "why", f"{n} " + "x" * 2000, "U1")
    view = review_modal(Renderer("zh"), incident, service.review(incident.id))
    ids = [b.get("block_id") for b in view["blocks"]]
    assert "whys" not in ids  # 6,000 characters: saving a cut copy would lose words
    assert any("太长" in json.dumps(b, ensure_ascii=False) for b in view["blocks"])
    state = {
        b["block_id"]: {"value": {"type": "plain_text_input", "value": None}}
        for b in view["blocks"]
        if b["type"] == "input"
    }
    submitted = review_submission(state)
    assert "whys" not in submitted and submitted["summary"] == ""


def test_review_submission_takes_only_what_the_form_carried():
    from bot.slack.blocks import review_submission

    values = {
        "summary": {"value": {"type": "plain_text_input", "value": "Checkout failed"}},
        "whys": {"value": {"type": "plain_text_input", "value": "one\ntwo"}},
        "factor_people": {"value": {"type": "plain_text_input", "value": None}},
        "lesson_lucky": {"value": {"type": "plain_text_input", "value": "Low traffic"}},
        "unknown": {"value": {"type": "plain_text_input", "value": "ignored"}},
        "trigger": {"value": "not a dict"},
    }
    assert review_submission(values) == {
        "summary": "Checkout failed",
        "trigger": "",
        "whys": "one\ntwo",
        "factors": {"people": ""},
        "lessons": {"lucky": "Low traffic"},
    }


def test_manifest_enables_the_home_tab_and_subscribes_to_its_events():
    for url in (None, "https://bot.example.com"):
        data = yaml.safe_load(manifest_yaml(url))
        assert data["features"]["app_home"]["home_tab_enabled"] is True
        assert data["features"]["app_home"]["messages_tab_enabled"] is True  # briefings
        events = data["settings"]["event_subscriptions"]
        assert events["bot_events"] == ["app_home_opened", "member_joined_channel"]
        scopes = data["oauth_config"]["scopes"]["bot"]
        assert {"channels:read", "groups:read"} <= set(scopes)  # member_joined_channel
    assert "request_url" not in yaml.safe_load(manifest_yaml())["settings"]["event_subscriptions"]
    http = yaml.safe_load(manifest_yaml("https://bot.example.com"))
    assert http["settings"]["event_subscriptions"]["request_url"] == (
        "https://bot.example.com/slack/events"
    )
