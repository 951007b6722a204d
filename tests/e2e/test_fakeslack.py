"""The test harness itself: FakeSlack driven by the real slack_sdk WebClient, and slackreq.

Why test a fake: every Slack end-to-end test trusts it to accept what Slack accepts and
refuse what Slack refuses.  If it drifted (say, silently took 51 blocks) those tests would
pass while production failed.  All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from tests import slackreq
from tests.fakeslack import Call, FakeSlack

SECRET = "test-signing-secret"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    # No retry handlers: tests see exactly what the fake answered.
    return WebClient(base_url=fake.url, token="xoxb-test", retry_handlers=[])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return excinfo.value.response["error"]


# ---------------------------------------------------------------------- auth


def test_auth_test_identifies_the_bot_and_records_the_token(fake: FakeSlack, client: WebClient):
    reply = client.auth_test()
    assert (reply["user_id"], reply["bot_id"], reply["team_id"]) == ("UBOT", "BBOT", "T1")
    assert fake.calls == [Call("auth.test", {}, "xoxb-test")]


def test_requests_without_a_bot_token_are_not_authed(fake: FakeSlack):
    for token in (None, "xoxp-user-token"):
        with pytest.raises(SlackApiError) as excinfo:
            WebClient(base_url=fake.url, token=token).auth_test()
        assert slack_error(excinfo) == "not_authed"
    assert [c.token for c in fake.calls_to("auth.test")] == [None, "xoxp-user-token"]


def test_unknown_methods_are_refused_and_recorded(fake: FakeSlack, client: WebClient):
    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("reactions.add", params={"name": "eyes"})
    assert slack_error(excinfo) == "unknown_method"
    assert fake.calls_to("reactions.add")[0].args == {"name": "eyes"}


# ---------------------------------------------------------------------- conversations


def test_channel_creation_applies_slack_name_rules(fake: FakeSlack, client: WebClient):
    created = client.conversations_create(name="inc-1-db_down", is_private=True)
    cid = created["channel"]["id"]
    assert cid.startswith("C")
    assert created["channel"]["is_private"] is True
    assert fake.channels == {cid: "inc-1-db_down"}
    assert fake.members(cid) == ["UBOT"]
    # slack_sdk sends booleans in form bodies as "1"/"0".
    assert fake.calls_to("conversations.create")[0].args == {
        "name": "inc-1-db_down",
        "is_private": "1",
    }

    for name, error in [
        ("Inc-2", "invalid_name_specials"),
        ("inc 2", "invalid_name_specials"),
        ("inc#2", "invalid_name_specials"),
        ("x" * 81, "invalid_name_maxlength"),
        ("", "invalid_name_required"),
        ("inc-1-db_down", "name_taken"),
    ]:
        with pytest.raises(SlackApiError) as excinfo:
            client.conversations_create(name=name)
        assert slack_error(excinfo) == error, name
    assert client.conversations_create(name="x" * 80)["ok"]


def test_precreated_names_are_taken(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("inc-7")
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_create(name="inc-7")
    assert slack_error(excinfo) == "name_taken"
    assert fake.channels[cid] == "inc-7"


def test_invite_topic_open_and_info(fake: FakeSlack, client: WebClient):
    cid = client.conversations_create(name="inc-3")["channel"]["id"]
    client.conversations_invite(channel=cid, users=["U1", "U2"])
    assert fake.members(cid) == ["UBOT", "U1", "U2"]
    for kwargs, error in [
        ({"channel": "C404", "users": "U1"}, "channel_not_found"),
        ({"channel": cid, "users": "U1"}, "already_in_channel"),
        ({"channel": cid, "users": "UBOT"}, "cant_invite_self"),
    ]:
        with pytest.raises(SlackApiError) as excinfo:
            client.conversations_invite(**kwargs)
        assert slack_error(excinfo) == error

    client.conversations_setTopic(channel=cid, topic="SEV2 | lead: <@U1>")
    assert fake.topic(cid) == "SEV2 | lead: <@U1>"
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_setTopic(channel=cid, topic="x" * 251)
    assert slack_error(excinfo) == "too_long"

    assert client.conversations_open(users="U9")["channel"]["id"] == "DU9"
    info = client.conversations_info(channel=cid)["channel"]
    assert (info["name"], info["num_members"], info["topic"]["value"]) == (
        "inc-3",
        3,
        "SEV2 | lead: <@U1>",
    )
    assert client.users_info(user="U1")["user"]["id"] == "U1"


# ---------------------------------------------------------------------- messages


def test_post_message_stores_messages_with_increasing_ts(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    first = client.chat_postMessage(channel=cid, text="one")
    second = client.chat_postMessage(channel=cid, text="two", blocks=[section("*two*")])
    assert first["ts"] < second["ts"]
    assert first["ts"].startswith("1700000000.")
    assert [(m["text"], m["user"]) for m in fake.messages(cid)] == [
        ("one", "UBOT"),
        ("two", "UBOT"),
    ]
    assert fake.messages(cid)[1]["blocks"] == [section("*two*")]

    dm = client.chat_postMessage(channel="U5", text="your role")
    assert dm["channel"] == "DU5"
    assert fake.messages("U5") == fake.messages("DU5")


def test_blocks_sent_as_a_form_field_are_decoded(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    client.api_call(
        "chat.postMessage", params={"channel": cid, "blocks": json.dumps([section("x")])}
    )
    assert fake.calls_to("chat.postMessage")[0].args["blocks"] == [section("x")]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_checks_channel_and_text(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    for kwargs, error in [
        ({"channel": "C404", "text": "x"}, "channel_not_found"),
        ({"channel": cid}, "no_text"),
        ({"channel": cid, "text": ""}, "no_text"),
    ]:
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_postMessage(**kwargs)
        assert slack_error(excinfo) == error, kwargs
    # A name works as well as an id, as on Slack.
    assert client.chat_postMessage(channel="#general", text="x")["channel"] == cid


def test_post_message_rejects_blocks_slack_rejects(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    button = {"type": "button", "text": {"type": "plain_text", "text": "ok"}, "action_id": "a"}
    long_button = {**button, "text": {"type": "plain_text", "text": "b" * 76}}
    long_header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    bad_blocks: list[list[dict[str, Any]]] = [
        [section("x")] * 51,
        [section("x" * 3001)],
        [section("")],
        [{"text": "no type"}],
        [long_header],
        [{**section("x"), "block_id": "b" * 256}],
        [{**section("x"), "block_id": "same"}, {**section("y"), "block_id": "same"}],
        [{"type": "actions", "elements": [button] * 26}],
        [{"type": "actions", "elements": [long_button]}],
    ]
    for blocks in bad_blocks:
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_postMessage(channel=cid, text="fallback", blocks=blocks)
        assert slack_error(excinfo) == "invalid_blocks", blocks
    assert fake.messages(cid) == []
    # Rejections explain themselves like Slack's do, and the limits are inclusive.
    rejected = fake.calls_to("chat.postMessage")[0].response
    assert rejected is not None
    assert rejected["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]
    fine = [section("x" * 3000)] * 49 + [{"type": "actions", "elements": [button] * 25}]
    client.chat_postMessage(channel=cid, text="fallback", blocks=fine)
    assert len(fake.messages(cid)[0]["blocks"]) == 50


def test_update_replaces_known_messages_only(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    ts = client.chat_postMessage(channel=cid, text="old", blocks=[section("old")])["ts"]
    client.chat_update(channel=cid, ts=ts, text="new", blocks=[section("new")])
    [message] = fake.messages(cid)
    assert (message["ts"], message["text"], message["blocks"]) == (ts, "new", [section("new")])

    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel=cid, ts="1700000000.999999", text="x")
    assert slack_error(excinfo) == "message_not_found"
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel=cid, ts=ts, text="t", blocks=[section("")])
    assert slack_error(excinfo) == "invalid_blocks"


def test_ephemeral_and_pins(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    assert client.chat_postEphemeral(channel=cid, user="U1", text="only you")["message_ts"]
    assert fake.calls_to("chat.postEphemeral")[0].args["user"] == "U1"

    ts = client.chat_postMessage(channel=cid, text="summary")["ts"]
    client.pins_add(channel=cid, timestamp=ts)
    assert fake.pins == {cid: [ts]}
    with pytest.raises(SlackApiError) as excinfo:
        client.pins_add(channel=cid, timestamp=ts)
    assert slack_error(excinfo) == "already_pinned"


# ---------------------------------------------------------------------- views


def test_views_open_validates_and_update_replaces(fake: FakeSlack, client: WebClient):
    view = {
        "type": "modal",
        "callback_id": "declare",
        "title": {"type": "plain_text", "text": "Declare an incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "blocks": [
            {
                "type": "input",
                "block_id": "summary",
                "label": {"type": "plain_text", "text": "What is broken?"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    opened = client.views_open(trigger_id="T.trig", view=view)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "declare"

    updated = {**view, "title": {"type": "plain_text", "text": "Declared"}}
    client.views_update(view_id=opened["id"], view=updated)
    assert fake.views[opened["id"]]["title"]["text"] == "Declared"

    for kwargs in [
        {"trigger_id": "", "view": view},
        {
            "trigger_id": "T.trig",
            "view": {**view, "title": {"type": "plain_text", "text": "t" * 25}},
        },
        {"trigger_id": "T.trig", "view": {**view, "blocks": [section("x")] * 101}},
        {"trigger_id": "T.trig", "view": {k: v for k, v in view.items() if k != "submit"}},
    ]:
        with pytest.raises(SlackApiError) as excinfo:
            client.views_open(**kwargs)
        assert slack_error(excinfo) == "invalid_arguments"


# ---------------------------------------------------------------------- files


def test_files_upload_v2_ends_in_uploads(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("inc-1")
    done = client.files_upload_v2(
        content="hello", filename="a.md", channel=cid, initial_comment="postmortem"
    )
    file_id = done["file"]["id"]
    assert fake.uploads == {
        file_id: {
            "filename": "a.md",
            "content": b"hello",
            "channel": cid,
            "title": "a.md",
            "initial_comment": "postmortem",
        }
    }
    assert [c.method for c in fake.calls] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


def test_completing_a_file_that_was_never_uploaded_fails(fake: FakeSlack, client: WebClient):
    file_id = client.files_getUploadURLExternal(filename="a.md", length=5)["file_id"]
    with pytest.raises(SlackApiError) as excinfo:
        client.files_completeUploadExternal(files=[{"id": file_id, "title": "a"}])
    assert slack_error(excinfo) == "file_not_found"
    assert fake.uploads == {}


# ---------------------------------------------------------------------- response_url


def _post_json(url: str, payload: object) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_response_url_posts_are_recorded(fake: FakeSlack):
    url = fake.response_url("cmd1")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/response/cmd1")
    assert _post_json(url, {"text": "INC-1 declared", "response_type": "ephemeral"}) == (200, "ok")
    [call] = fake.wait_for("response_url:cmd1")
    assert call.args == {"text": "INC-1 declared", "response_type": "ephemeral"}
    assert call.token is None

    assert _post_json(url, {"blocks": [{"no": "type"}]}) == (400, "invalid_blocks")


# ---------------------------------------------------------------------- faults


def test_rate_limit_fault_raises_429_without_a_retry_handler(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    fake.fail("chat.postMessage", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel=cid, text="x")
    assert excinfo.value.response.status_code == 429
    assert excinfo.value.response.headers["Retry-After"] == "1"
    assert slack_error(excinfo) == "ratelimited"
    # Only the next call fails; both are recorded.
    assert client.chat_postMessage(channel=cid, text="x")["ok"]
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]


def test_server_error_faults_are_retried_by_slack_sdk(fake: FakeSlack):
    fake.fail("auth.test", status=503, times=2)
    retry = ServerErrorRetryHandler(
        max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0)
    )
    client = WebClient(base_url=fake.url, token="xoxb-test", retry_handlers=[retry])
    assert client.auth_test()["ok"]
    assert [c.status for c in fake.calls_to("auth.test")] == [503, 503, 200]


def test_error_faults_answer_ok_false(fake: FakeSlack, client: WebClient):
    fake.fail("conversations.create", error="restricted_action")
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_create(name="inc-1")
    assert slack_error(excinfo) == "restricted_action"
    assert excinfo.value.response.status_code == 200
    assert fake.channels == {}


def test_delay_makes_a_client_time_out(fake: FakeSlack):
    fake.delay("auth.test", 5)
    hasty = WebClient(base_url=fake.url, token="xoxb-test", timeout=0.2, retry_handlers=[])
    with pytest.raises(TimeoutError):
        hasty.auth_test()
    # close() cuts the pending delay short, so teardown stays fast.


# ---------------------------------------------------------------------- waiting


def test_wait_for_wakes_on_calls_from_other_threads(fake: FakeSlack, client: WebClient):
    cid = fake.precreate("general")
    worker = threading.Thread(
        target=lambda: [client.chat_postMessage(channel=cid, text=f"m{i}") for i in range(3)]
    )
    worker.start()
    calls = fake.wait_for("chat.postMessage", lambda c: c.args["text"] != "m0", count=2)
    worker.join()
    assert [c.args["text"] for c in calls] == ["m1", "m2"]
    # Predicates may query the fake: the condition's lock is re-entrant.
    assert fake.wait_for("chat.postMessage", lambda c: len(fake.messages(cid)) == 3, count=3)


def test_wait_for_times_out_with_a_summary(fake: FakeSlack, client: WebClient):
    client.auth_test()
    started = time.monotonic()
    with pytest.raises(AssertionError) as excinfo:
        fake.wait_for("chat.postMessage", timeout=0.2)
    assert time.monotonic() - started < 2
    assert "chat.postMessage" in str(excinfo.value)
    assert "auth.test [200]" in str(excinfo.value)


# ---------------------------------------------------------------------- slackreq


def test_sign_is_accepted_by_slack_sdk_signature_verifier():
    body = slackreq.slash_body("declare db is down")
    now = int(time.time())
    headers = slackreq.sign(SECRET, body, now)
    timestamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert SignatureVerifier(SECRET).is_valid(body, timestamp, signature)
    assert not SignatureVerifier("another-secret").is_valid(body, timestamp, signature)
    stale = slackreq.sign(SECRET, body, now - 600)
    assert not SignatureVerifier(SECRET).is_valid(
        body, stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"]
    )


def test_slackreq_payloads_drive_a_real_bolt_app(fake: FakeSlack):
    """Slash command, button click and modal submission through bolt's real request path."""
    fake.precreate("general", channel_id="C0")
    app = App(client=WebClient(base_url=fake.url, token="xoxb-test"), signing_secret=SECRET)

    @app.command("/incident")
    def declare(ack, respond, command, client, context) -> None:
        ack()
        respond(text=f"declaring: {command['text']}")
        client.chat_postMessage(channel=context.channel_id, text=f"<@{context.user_id}> declared")

    @app.action("accept")
    def accept(ack, respond, action) -> None:
        ack()
        respond(text=f"accepted {action['value']}")

    @app.view("declare")
    def submitted(ack, view) -> None:
        summary = view["state"]["values"]["summary"]["value"]["value"]
        ack(response_action="errors", errors={"summary": f"{summary}/{view['private_metadata']}"})

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Keep pytest output clean."""

    server = make_server("127.0.0.1", 0, SlackRequestHandler(app), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/slack/events"

    def send(body: bytes, timestamp: int | None = None) -> tuple[int, str]:
        headers = slackreq.sign(SECRET, body, timestamp or int(time.time()))
        status, _, text = slackreq.post(url, body, headers)
        return status, text

    try:
        assert send(slackreq.slash_body("db down", response_url=fake.response_url("s")))[0] == 200
        assert fake.wait_for("response_url:s")[0].args["text"] == "declaring: db down"
        assert fake.wait_for("chat.postMessage")[0].args["text"] == "<@U1> declared"

        click = slackreq.block_action_body("accept", "INC-1", response_url=fake.response_url("b"))
        assert send(click)[0] == 200
        assert fake.wait_for("response_url:b")[0].args["text"] == "accepted INC-1"

        modal = slackreq.view_submission_body("declare", {"summary": {"value": "x"}}, "U1", "m")
        status, text = send(modal)
        assert status == 200
        assert json.loads(text) == {"response_action": "errors", "errors": {"summary": "x/m"}}

        assert send(modal, timestamp=int(time.time()) - 600)[0] == 401
    finally:
        server.shutdown()
        server.server_close()


def test_post_refuses_anything_but_loopback():
    with pytest.raises(ValueError):
        slackreq.post("http://example.com/slack/events", b"", {})
