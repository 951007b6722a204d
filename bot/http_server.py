"""A small, bounded HTTP/1.1 server: nothing from the network can hold the bot.

The bot's port faces the internet in HTTP mode. A thread per connection (the
standard library's server) lets one slow client hold a thread for as long as
it dribbles bytes, and a thousand of them stop the bot answering Slack. Here
connections are read by one asyncio loop, so an idle or slow connection costs
a socket, not a thread, and every request must arrive whole within
`request_deadline` (headers within `header_deadline`) or the connection is
closed with 408. Only a complete request that passed its route's checks
reaches a worker thread. Limits, each answered at once with its status and no
traceback: request line and headers (431), a missing (411), malformed (400)
or too large (413) Content-Length, chunked bodies (501), and a cap on open
connections (503).

Routing is a table of (method, path) → `Route`: its `check` runs on the loop
before the body is read, its `verify` on the loop with the body (a signature),
its `handle` in a worker thread with the whole request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from http import HTTPStatus

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024  # request line and headers
MAX_HEADERS = 100
HEADER_DEADLINE = 5.0  # seconds from the first byte of a request to the end of its headers
REQUEST_DEADLINE = 10.0  # seconds for the whole request, body included
IDLE_TIMEOUT = 15.0  # seconds a kept-alive connection may wait for its next request
MAX_CONNECTIONS = 4096
LINGER_SECONDS = 1.0  # after a refusal, how long the rest of a request is read and dropped
LINGER_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, text: str) -> Response:
        return cls(status, text.encode("utf-8"), [("Content-Type", "application/json")])


def _accept(request: Request) -> Response | None:
    return None


@dataclass(frozen=True)
class Route:
    handle: Callable[[Request], Response]
    max_body: int = 0
    # run on the loop, so nothing unauthenticated reaches a worker thread: `check` with
    # the headers only (before the body is read), `verify` with the whole request; a
    # response refuses at once
    check: Callable[[Request], Response | None] = _accept
    verify: Callable[[Request], Response | None] = _accept


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BoundedHTTPServer:
    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[tuple[str, str], Route],
        workers: int = 32,
        max_connections: int = MAX_CONNECTIONS,
        header_deadline: float = HEADER_DEADLINE,
        request_deadline: float = REQUEST_DEADLINE,
        idle_timeout: float = IDLE_TIMEOUT,
        busy: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.routes = routes
        # around each request, from when its headers pass their route's check to its
        # answer's last byte: background work holds back meanwhile (bot.slack.priority),
        # also while the loop is still reading a request that no worker thread has yet
        self.busy = busy
        self.max_connections = max_connections
        self.header_deadline = header_deadline
        self.request_deadline = request_deadline
        self.idle_timeout = idle_timeout
        self.open_connections = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, host, port, backlog=1024, limit=MAX_HEAD)
        )
        self.server_address: tuple[str, int] = self._server.sockets[0].getsockname()[:2]
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting, drop open connections, wait for requests being handled."""

        async def close() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # their sockets close now

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)
        self._loop.close()

    # --- one connection ----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            await self._send(writer, Response.json(503, '{"error": "too many connections"}'), False)
            writer.close()
            return
        self.open_connections += 1
        try:
            keep_alive = True
            while keep_alive:
                try:
                    first = await asyncio.wait_for(reader.read(1), self.idle_timeout)
                except TimeoutError:
                    break
                if not first:
                    break
                keep_alive = await self._exchange(first, reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # shutting down
        finally:
            self.open_connections -= 1
            writer.close()

    async def _exchange(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """One request and its answer; whether the connection stays open for another."""
        with ExitStack() as counted:  # `busy` from when its headers pass their route's check
            try:
                request = await asyncio.wait_for(
                    self._read(first, reader, counted), self.request_deadline
                )
            except TimeoutError:
                counted.close()
                await self._send(writer, Response.json(408, '{"error": "too slow"}'), False)
                return False
            except HTTPError as refusal:
                counted.close()
                body = json.dumps({"error": refusal.message})
                await self._send(writer, Response.json(refusal.status, body), False)
                await self._linger(reader, writer)
                return False
            if isinstance(request, Response):  # refused by its route after the headers
                counted.close()
                await self._send(writer, request, False)
                await self._linger(reader, writer)
                return False
            keep_alive = request.header("connection") != "close"
            response = await self._loop.run_in_executor(self._pool, self._handle, request)
            await self._send(writer, response, keep_alive)
            return keep_alive

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """After a refusal, read (and drop) what the client is still sending, briefly and
        up to a cap, so it gets to read the answer instead of a reset mid-send. Our side
        is closed first: a client that sent everything sees the end and leaves at once."""
        drained = 0
        try:
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                while drained < LINGER_BYTES and (chunk := await reader.read(65536)):
                    drained += len(chunk)
        except (TimeoutError, OSError):  # the client already went away
            pass

    async def _read(
        self, first: bytes, reader: asyncio.StreamReader, counted: ExitStack
    ) -> Request | Response:
        try:
            rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.header_deadline)
        except asyncio.LimitOverrunError:
            raise HTTPError(431, "headers too large") from None
        except asyncio.IncompleteReadError:
            raise HTTPError(400, "incomplete request") from None
        except TimeoutError:
            raise HTTPError(408, "too slow") from None
        head = first + rest
        if len(head) > MAX_HEAD:
            raise HTTPError(431, "headers too large")
        method, target, headers = _parse_head(head)
        path, _, query = target.partition("?")
        request = Request(method, path, query, headers)
        route = self.routes.get((method, path))
        if route is None:
            known = {p for _, p in self.routes}
            raise HTTPError(405 if path in known else 404, "not found")
        if "transfer-encoding" in headers:
            raise HTTPError(501, "chunked bodies are not accepted; send Content-Length")
        length = _content_length(headers, required=method == "POST")
        if length > route.max_body:
            raise HTTPError(413, "too large")
        refusal = route.check(request)
        if refusal is not None:
            return refusal
        # a request (e.g. signed, fresh) is arriving: background work holds back from now
        # on; not for a client that stalls before this, which must not hold it back
        counted.enter_context(self.busy())
        body = await reader.readexactly(length) if length else b""
        request = Request(method, path, query, headers, body)
        return route.verify(request) or request

    def _handle(self, request: Request) -> Response:
        route = self.routes[(request.method, request.path)]
        try:
            return route.handle(request)
        except Exception:
            log.exception("handling %s %s failed", request.method, request.path)
            return Response.json(500, '{"error": "internal error"}')

    async def _send(self, writer: asyncio.StreamWriter, response: Response, keep: bool) -> None:
        reason = HTTPStatus(response.status).phrase if response.status in _KNOWN else "Status"
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        lines += [
            f"Content-Length: {len(response.body)}",
            f"Connection: {'keep-alive' if keep else 'close'}",
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        try:
            await asyncio.wait_for(writer.drain(), self.request_deadline)
        except (TimeoutError, OSError):
            pass


_KNOWN = {s.value for s in HTTPStatus}
_SINGLE = ("content-length", "transfer-encoding", "host")  # two different values: refused


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes any byte; kept for clarity
        raise HTTPError(400, "bad request") from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise HTTPError(400, "bad request line")
    if len(lines) - 1 > MAX_HEADERS:
        raise HTTPError(431, "too many headers")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[:1] in " \t":
            raise HTTPError(400, "bad header")
        key, value = name.lower(), value.strip()
        if key in _SINGLE and headers.get(key, value) != value:
            raise HTTPError(400, f"conflicting {name} headers")  # request smuggling
        headers[key] = value
    return parts[0], parts[1], headers


def _content_length(headers: dict[str, str], required: bool) -> int:
    text = headers.get("content-length")
    if text is None:
        if required:
            raise HTTPError(411, "Content-Length required")
        return 0
    if not text.isdigit() or len(text) > 12:  # no sign, no spaces, no hex: -1 is refused
        raise HTTPError(400, "bad Content-Length")
    return int(text)
