"""Nothing from the network holds the bot: malformed, unsigned, oversized and slow requests
are refused at once with their status, no traceback and no body in the log."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from bot.http_server import BoundedHTTPServer, Request, Response, Route
from bot.slack.priority import RequestsFirst
from tests import forkserver
from tests.e2e.conftest import Harness, declare
from tests.e2e.test_serve import SECRET as SERVE_SECRET
from tests.e2e.test_serve import _env, _free_port, _wait_healthy
from tests.fakeslack import FakeSlack
from tests.slackreq import post, sign, slash_body

SECRET_WORDS = "do-not-log-this-body"


def _raw(port: int, data: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send raw bytes, read the answer until the server closes; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _port(slack: Harness) -> int:
    assert slack.running.server is not None
    return slack.running.server.server_address[1]


def _post_head(length: str | None, extra: str = "") -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: x", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (_post_head("-1"), 400),  # passed a `> 1 MB` check once and took 1.65 GB
        (_post_head("1e3"), 400),
        (_post_head("10", "Content-Length: 20\r\n"), 400),
        (_post_head(None), 411),
        (_post_head("99999999999"), 413),  # refused before a byte of the body is read
        (_post_head("5", "Transfer-Encoding: chunked\r\n"), 501),
        (_post_head("0", "X-Big: " + "a" * 20000 + "\r\n"), 431),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /nowhere HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405),
    ],
)
def test_malformed_requests_are_refused_at_once(slack: Harness, data: bytes, status: int, caplog):
    assert _raw(_port(slack), data)[0] == status
    assert "Traceback" not in caplog.text
    assert slack.running.bot.store.unfinished_requests() == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # unsigned
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},  # was a 500
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "1" * 40, "X-Slack-Signature": "v0=00"},
    ],
)
def test_unsigned_requests_are_refused_before_they_are_parsed(slack: Harness, headers, caplog):
    caplog.set_level(logging.DEBUG)
    body = b"payload={not json at all " + SECRET_WORDS.encode()
    status, _, answer = post(
        slack.events_url, body, {"Content-Type": "application/x-www-form-urlencoded", **headers}
    )
    assert status == 401 and "error" in answer
    assert SECRET_WORDS not in caplog.text and "Traceback" not in caplog.text
    assert slack.running.bot.store.unfinished_requests() == []


def test_a_signed_body_over_the_limit_is_refused(slack: Harness):
    body = slash_body("note " + "x" * 1_100_000)
    assert slack.send(body) == 413


def test_a_signed_request_still_works_after_all_that(slack: Harness):
    for data in (_post_head("-1"), b"GARBAGE\r\n\r\n"):
        _raw(_port(slack), data)
    channel = declare(slack)
    slack.command("note still here", channel=channel)
    slack.posted(channel, "still here")


# --- the server itself: deadlines and the connection cap --------------------------------


@pytest.fixture
def tiny():
    """A bounded server with short deadlines and room for 50 connections."""
    hello = Route(lambda request: Response(200, b"hello"))
    server = BoundedHTTPServer(
        "127.0.0.1",
        0,
        {("GET", "/"): hello},
        max_connections=50,
        header_deadline=0.5,
        request_deadline=1.0,
        idle_timeout=1.0,
    )
    server.start()
    yield server
    server.shutdown()


def test_a_slow_client_is_cut_off_at_the_deadline(tiny):
    port = tiny.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
        started = time.monotonic()
        answer = slow.recv(1000)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408")
    assert waited < 5  # the deadline held (0.5 s), not the 10 s socket timeout


def test_slow_clients_never_keep_a_quick_one_waiting(tiny):
    port = tiny.server_address[1]
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        for conn in slow:
            conn.sendall(b"GET / HTT")  # a byte at a time, forever
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"hello"
    finally:
        for conn in slow:
            conn.close()


def test_past_the_connection_cap_a_client_is_told_at_once(tiny):
    port = tiny.server_address[1]
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    try:
        deadline = time.monotonic() + 5
        while tiny.open_connections < 50 and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop accepts them one by one
        assert _raw(port, b"GET / HTTP/1.1\r\n\r\n")[0] == 503
    finally:
        for conn in held:
            conn.close()


def test_background_work_holds_back_while_a_request_arrives_but_not_for_a_stalled_client():
    """A request counts as in flight (bot.slack.priority) from when its headers pass their
    route's check, while the loop still reads its body, before any worker thread has it:
    a burst being read is not a quiet moment. A client stalled before that (one byte,
    unsigned headers) holds nothing back."""
    priority = RequestsFirst()

    def signed(request: Request) -> Response | None:
        ok = request.header("x-signed") == "yes"
        return None if ok else Response.json(401, '{"error": "not signed"}')

    hello = Route(lambda request: Response(200, b"hello"), max_body=100, check=signed)
    server = BoundedHTTPServer("127.0.0.1", 0, {("POST", "/"): hello}, busy=priority.request)
    server.start()
    port = server.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stalled:
            stalled.sendall(b"P")  # and nothing more
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                head = b"POST / HTTP/1.1\r\nX-Signed: yes\r\nContent-Length: 5\r\n"
                c.sendall(head + b"Connection: close\r\n\r\nhe")  # the body is not all here
                deadline = time.monotonic() + 5
                while priority._in_flight == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)  # the loop reads the headers
                # work that may wait no longer goes on, and is told it is not quiet
                assert priority.run(priority.pause, max_defer=0) is False
                c.sendall(b"llo")
                assert c.recv(1000).startswith(b"HTTP/1.1 200")
            # answered: quiet again although the stalled client is still connected
            assert priority.run(priority.pause, max_defer=5) is True
            assert priority._in_flight == 0
        assert _raw(port, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")[0] == 401
        assert priority._in_flight == 0  # a refusal is not counted while it lingers
    finally:
        server.shutdown()


def test_a_handler_that_fails_answers_500_without_the_request(caplog):
    def boom(request: Request) -> Response:
        raise RuntimeError("broken")

    server = BoundedHTTPServer("127.0.0.1", 0, {("GET", "/"): Route(boom)})
    server.start()
    try:
        assert (
            _raw(server.server_address[1], b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 500
        )
    finally:
        server.shutdown()


# --- the real process under a thousand slow connections ------------------------------


def test_a_thousand_slow_connections_do_not_stop_health_or_commands(tmp_path):
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        port = _free_port()
        proc = forkserver.Popen(
            [sys.executable, "-m", "bot", "serve", "--http", "--port", str(port)],
            env=_env(tmp_path, fake, INCIDENT_BOT_CLOCK_SPEED="1"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        slow: list[socket.socket] = []
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", proc)
            for _ in range(1100):
                conn = socket.create_connection(("127.0.0.1", port))
                conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                slow.append(conn)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as health:
                assert health.status == 200
            body = slash_body("start service-outage sev2 Under a slow-loris")
            status, _, _ = post(
                f"http://127.0.0.1:{port}/slack/events",
                body,
                sign(SERVE_SECRET, body, int(time.time())),
            )
            assert status == 200
            fake.wait_for("conversations.create")
            with open(f"/proc/{proc.pid}/status") as info:
                threads = int(next(line for line in info if line.startswith("Threads:")).split()[1])
            assert threads < 150  # connections cost sockets, not threads
        finally:
            for conn in slow:
                conn.close()
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in out, out[-3000:]
