"""Socket Mode end to end: the real `serve` process, slack-sdk's built-in client, a local
server speaking Slack's envelopes; the HTTP port serves health checks only."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.request
from urllib.parse import parse_qsl

import pytest

from tests import forkserver
from tests.e2e.test_serve import SECRET, _env, _free_port, _wait_healthy
from tests.fakeslack import FakeSlack
from tests.slackreq import (
    block_action_body,
    event_body,
    home_opened,
    member_joined,
    post,
    sign,
    slash_body,
)
from tests.socketmode import FakeSocketMode
from tests.unpaced import BOT


def _slash(text: str, channel: str = "C0", user: str = "U1", reply: str = "") -> dict:
    return dict(
        parse_qsl(slash_body(text, user_id=user, channel_id=channel, response_url=reply).decode())
    )


def _click(action: str, value: str, channel: str) -> dict:
    form = dict(parse_qsl(block_action_body(action, value, channel_id=channel).decode()))
    return json.loads(form["payload"])


@pytest.fixture
def socket_bot(tmp_path):
    with FakeSlack() as fake, FakeSocketMode() as socket:
        fake.precreate("general", channel_id="C0")
        fake.socket_url = socket.url
        port = _free_port()
        proc = forkserver.Popen(
            [*BOT, "serve", "--port", str(port)],
            env=_env(
                tmp_path, fake, SLACK_APP_TOKEN="xapp-1-socket-test", INCIDENT_BOT_CLOCK_SPEED="1"
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", proc)
            socket.wait_connected()
            yield fake, socket, port, proc
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
            assert "Traceback" not in out, out


def _rows(folder, sql: str) -> list[tuple]:
    conn = sqlite3.connect(folder / "bot.db", timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_socket_mode_runs_commands_and_buttons_and_survives_a_reconnect(socket_bot, tmp_path):
    fake, socket, port, _ = socket_bot
    start = socket.send("slash_commands", _slash("start service-outage sev1 Socket outage"))
    assert socket.ack(start)["envelope_id"] == start  # acknowledged by its envelope id
    (created,) = fake.wait_for("conversations.create")
    channel = created.response["channel"]["id"]
    fake.wait_for("pins.add")

    once = socket.send("slash_commands", _slash("note delivered once", channel))
    socket.ack(once)
    socket.send("slash_commands", _slash("note delivered once", channel), envelope_id=once)
    socket.ack(once, count=2)  # acknowledged again, and ignored
    next_phase = socket.send("interactive", _click("next_phase", "1", channel))
    socket.ack(next_phase)
    fake.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == channel and "Phase 2/3" in (c.args.get("text") or ""),
    )
    notes = [
        c
        for c in fake.calls_to("chat.postMessage")
        if "delivered once" in (c.args.get("text") or "")
    ]
    assert len(notes) == 1  # the same envelope twice ran once
    journal = _rows(tmp_path, "SELECT delivery FROM inbox WHERE payload LIKE '%delivered once%'")
    assert journal == [(f"env:{once}",)]  # as a repeated delivery, not a double click:
    assert _rows(tmp_path, "SELECT id FROM outbox WHERE body LIKE '%arrived twice%'") == []

    socket.disconnect()  # Slack recycles the connection: the client fetches a new URL
    socket.wait_connected(count=2)
    assert len(fake.calls_to("apps.connections.open")) >= 2
    after = socket.send("slash_commands", _slash("update back after the reconnect", channel))
    socket.ack(after)
    fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("channel") == channel
            and "back after the reconnect" in (c.args.get("text") or "")
        ),
    )


def test_in_socket_mode_the_port_serves_no_slack_events(socket_bot):
    fake, _, port, _ = socket_bot
    url = f"http://127.0.0.1:{port}"
    body = slash_body("start service-outage sev1 Unsigned from the network")
    assert (
        post(url + "/slack/events", body, {"Content-Type": "application/x-www-form-urlencoded"})[0]
        == 404
    )
    signed = sign(SECRET, body, int(time.time()))  # even signed: Socket Mode takes no HTTP events
    assert post(url + "/slack/events", body, signed)[0] == 404
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
        assert response.status == 200
    assert fake.calls_to("conversations.create") == []


def test_socket_mode_listens_on_loopback_by_default(socket_bot):
    _, _, port, proc = socket_bot
    with open(f"/proc/{proc.pid}/net/tcp") as table:  # the process's listening sockets
        listening = [line.split() for line in table.readlines()[1:] if line.split()[3] == "0A"]
    ours = [
        local
        for local, *_ in (row[1:] for row in listening)
        if int(local.split(":")[1], 16) == port
    ]
    assert ours == ["0100007F:" + f"{port:04X}"]  # 127.0.0.1, not 0.0.0.0


def test_socket_mode_events_publish_the_home_tab_and_offer_the_catch_up(socket_bot):
    """Events API envelopes (`events_api`) reach the same listeners as over HTTP."""
    fake, socket, _, _ = socket_bot
    start = socket.send("slash_commands", _slash("start service-outage sev2 Socket events"))
    socket.ack(start)
    (created,) = fake.wait_for("conversations.create")
    channel = created.response["channel"]["id"]
    fake.wait_for("pins.add")

    opened = socket.send("events_api", json.loads(event_body(home_opened("U1"), "EvSockHome")))
    assert socket.ack(opened) == {"envelope_id": opened}
    (published,) = fake.wait_for("views.publish")
    assert published.args["user_id"] == "U1"
    assert "Socket events" in json.dumps(published.args["view"]["blocks"])

    joined = socket.send(
        "events_api", json.loads(event_body(member_joined("U2", channel), "EvSockJoin"))
    )
    socket.ack(joined)
    (offer,) = fake.wait_for("chat.postEphemeral")
    assert (offer.args["user"], offer.args["channel"]) == ("U2", channel)
    assert "Catching up on INC-1 Socket events" in offer.args["text"]


def test_after_slack_refreshes_the_connection_commands_are_acknowledged_at_once(socket_bot):
    """Slack asks for a new connection every few hours and keeps the old one open a while;
    an envelope it sends on the new one must be acknowledged inside Slack's 3 s. (The
    built-in client read the new connection only once it had closed the old one, under a
    lock the old one's reader holds for up to its 3 s receive timeout.)"""
    _, socket, _, _ = socket_bot
    for refresh in range(2, 5):
        socket.disconnect()
        socket.wait_connected(count=refresh)
        envelope = socket.send("slash_commands", _slash(f"help {refresh}"))
        socket.ack(envelope, timeout=1.5)  # was 3 s each time, every refresh
