"""A request refused before its body is read (too large, bad signature) is answered with its
status, not a connection reset, even while the client is still sending the body."""

from __future__ import annotations

import socket
import time

import pytest

from bot.http_server import LINGER_BYTES, LINGER_SECONDS, BoundedHTTPServer, Response, Route

BODY = 1_100_000  # more than the socket buffers below hold: the client is still sending


@pytest.fixture
def small():
    route = Route(lambda request: Response(200, b"ok"), max_body=1000)
    server = BoundedHTTPServer("127.0.0.1", 0, {("POST", "/in"): route})
    server.start()
    yield server.server_address[1]
    server.shutdown()


def _post_too_much(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)  # fills at once
        head = f"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n".encode()
        conn.sendall(head + b"x" * BODY)  # without lingering: EPIPE or ECONNRESET here
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_body_over_the_limit_gets_413_while_it_is_still_being_sent(small):
    for _ in range(5):  # not a lucky race: every time
        answer = _post_too_much(small)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
        assert b'"error": "too large"' in answer


def test_lingering_is_bounded_in_bytes_and_time(small):
    """A client that keeps sending after its refusal is cut off after LINGER_BYTES or LINGER_SECONDS
    seconds, whichever comes first: a refusal holds the connection no longer than that."""
    with socket.create_connection(("127.0.0.1", small), timeout=10) as conn:
        conn.sendall(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        started = time.monotonic()
        sent = 0
        with pytest.raises(OSError):  # the server closes: EPIPE or ECONNRESET
            while sent < 10 * LINGER_BYTES:
                sent += conn.send(b"x" * 65536)
            conn.recv(1)
    assert time.monotonic() - started < LINGER_SECONDS + 5
    assert sent < 10 * LINGER_BYTES
