"""A fake Slack Web API served over HTTP on 127.0.0.1, for end-to-end tests.

Why a real HTTP server rather than a mocked client: the bot talks to Slack through the
real ``slack_sdk.WebClient`` (pointed here with ``WebClient(base_url=fake.url)``), so the
tests also cover how slack_sdk encodes each call (form vs JSON bodies, ``blocks`` as a
JSON string, booleans as ``"1"``/``"0"``), its error handling and its retry handlers.

The fake keeps just enough state to answer like Slack does (channels, members, messages,
pins, modals, file uploads) and rejects what Slack would reject (bad channel names,
oversized or malformed Block Kit), so a bot that passes here does not fail on first
contact with the real thing.  Every request is recorded as a :class:`Call`; tests wait
for calls with :meth:`FakeSlack.wait_for`, which blocks on a condition variable instead
of sleeping.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T1"
WORKSPACE_URL = "https://fake-workspace.slack.com/"

# Form-encoded requests carry these fields as JSON strings; we decode them so tests can
# assert on Python objects whatever encoding the client chose.
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "files", "user_auth_blocks")

_CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")
_TEXT_TYPES = ("plain_text", "mrkdwn")


@dataclass(frozen=True)
class Call:
    """One request the fake received, with the answer it gave.

    ``method`` is the Web API method ("chat.postMessage"), ``"response_url:<name>"`` for a
    slash-command response URL, or ``"upload"`` for a file upload.  ``status`` and
    ``response`` let hardening tests tell injected failures from real answers.
    """

    method: str
    args: dict[str, Any]
    token: str | None
    status: int = field(default=200, compare=False)
    response: dict[str, Any] | None = field(default=None, compare=False, repr=False)


class SlackError(Exception):
    """An ``{"ok": false, "error": ...}`` answer raised from inside a method handler."""

    def __init__(self, error: str, *messages: str) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.messages:
            # Slack explains Block Kit rejections this way; it makes test failures readable.
            body["response_metadata"] = {"messages": self.messages}
        return body


@dataclass
class _Fault:
    status: int
    retry_after: int
    error: str | None
    remaining: int


# A handler's answer: HTTP status, extra headers, and a JSON object or a plain-text body.
_Answer = tuple[int, dict[str, str], dict[str, Any] | str]


class FakeSlack:
    """A stateful fake of the Slack Web API on ``127.0.0.1:<random port>``.

    Use as a context manager (or call :meth:`close`).  The server starts in ``__init__``
    so a pytest fixture can simply ``with FakeSlack() as fake: yield fake``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())  # RLock: predicates may query us
        self._closing = threading.Event()
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._members: dict[str, list[str]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._pins: dict[str, list[str]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._homes: dict[str, dict[str, Any]] = {}  # user id -> their published Home tab
        self._files: dict[str, dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._counter = 0
        self._ts_counter = 0
        # where apps.connections.open sends a Socket Mode client (tests/socketmode.py)
        self.socket_url: str | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "conversations.create": self._conversations_create,
            "conversations.invite": self._conversations_invite,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "pins.add": self._pins_add,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "users.info": self._users_info,
        }
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._port: int = self._server.server_address[1]
        # A short poll interval keeps close() (which waits for the loop to notice) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fakeslack:{self._port}",
            daemon=True,
        )
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The ``base_url`` for ``WebClient``: ``http://127.0.0.1:PORT/api/``."""
        return f"http://127.0.0.1:{self._port}/api/"

    def response_url(self, name: str) -> str:
        """A response_url to put in a slash command or interaction payload."""
        return f"http://127.0.0.1:{self._port}/response/{name}"

    def close(self) -> None:
        """Stop serving; delayed answers are cut short so shutdown never hangs."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ recorded calls

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every call so far, in arrival order."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """A snapshot of the calls to one method."""
        with self._cond:
            return [call for call in self._calls if call.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda call: True,
        count: int = 1,
        timeout: float = 10,
    ) -> list[Call]:
        """Block until ``count`` calls to ``method`` satisfy ``predicate``; return them all.

        The bot answers Slack asynchronously (bolt acks first, works after), so tests
        must wait for its side effects; this waits on the fake's condition variable and
        wakes on every recorded call, so it is as fast as the bot and never sleeps.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matched = [c for c in self._calls if c.method == method and predicate(c)]
                if len(matched) >= count:
                    return matched
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"waited {timeout}s for {count} matching call(s) to {method!r}, "
                        f"got {len(matched)}; recorded calls:\n{self._summary()}"
                    )
                self._cond.wait(remaining)

    def _summary(self, limit: int = 40) -> str:
        calls = self._calls[-limit:]
        if not calls:
            return "  (none)"
        lines = [] if len(self._calls) <= limit else [f"  ... {len(self._calls) - limit} more"]
        for call in calls:
            args = json.dumps(call.args, default=repr, ensure_ascii=False)
            if len(args) > 160:
                args = args[:157] + "..."
            error = (call.response or {}).get("error")
            outcome = f"{call.status}" + (f" {error}" if error else "")
            lines.append(f"  {call.method} [{outcome}] {args}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ state for tests

    @property
    def channels(self) -> dict[str, str]:
        """Channel id -> name, for every channel created or precreated."""
        with self._cond:
            return {cid: info["name"] for cid, info in self._channels.items()}

    def precreate(self, name: str, channel_id: str | None = None, is_private: bool = False) -> str:
        """Make a channel exist already (so its name is taken); return its id.

        Also how tests provide the channel a slash command comes from.
        """
        with self._cond:
            cid = channel_id or self._new_id("C")
            self._channels[cid] = self._channel_info(cid, name, is_private)
            self._members.setdefault(cid, [])
            self._messages.setdefault(cid, [])
            return cid

    def add_user(self, user_id: str, **fields: Any) -> None:
        """Override parts of the profile users.info returns (name, real_name, tz, ...)."""
        with self._cond:
            self._users.setdefault(user_id, {}).update(fields)

    def members(self, channel: str) -> list[str]:
        """Who is in a channel (the bot joins the channels it creates)."""
        with self._cond:
            return list(self._members.get(channel, []))

    def topic(self, channel: str) -> str:
        with self._cond:
            return self._channels[channel]["topic"]["value"]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Messages currently in a channel (after updates), oldest first, as copies.

        A user id ``U…`` means the bot's DM with that user, as in chat.postMessage.
        """
        with self._cond:
            return copy.deepcopy(self._messages.get(self._dm_for(channel), []))

    @property
    def pins(self) -> dict[str, list[str]]:
        """Channel id -> pinned message timestamps."""
        with self._cond:
            return {cid: list(ts) for cid, ts in self._pins.items()}

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        """View id -> the view as last opened/updated."""
        with self._cond:
            return copy.deepcopy(self._views)

    @property
    def homes(self) -> dict[str, dict[str, Any]]:
        """User id -> the Home tab view last published for them."""
        with self._cond:
            return copy.deepcopy(self._homes)

    @property
    def uploads(self) -> dict[str, dict[str, Any]]:
        """File id -> {"filename", "content", "channel", "title", "initial_comment"}.

        Only files whose bytes arrived; ``channel`` stays None until completeUploadExternal.
        """
        with self._cond:
            return {
                fid: {
                    k: f[k] for k in ("filename", "content", "channel", "title", "initial_comment")
                }
                for fid, f in self._files.items()
                if f["content"] is not None
            }

    # ------------------------------------------------------------------ fault injection

    def fail(
        self,
        method: str,
        status: int = 429,
        times: int = 1,
        retry_after: int = 1,
        error: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (queued after earlier faults).

        Without ``error``: answer HTTP ``status`` (429 carries ``Retry-After``, as Slack's
        rate limiter does).  With ``error``: answer HTTP 200 ``{"ok": false, "error":
        error}``, which is how Slack reports application-level failures.  ``method`` may
        also be ``"upload"`` or ``"response_url:<name>"``.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if error is None and not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {status}")
        with self._cond:
            self._faults.setdefault(method, []).append(_Fault(status, retry_after, error, times))

    def delay(self, method: str, seconds: float) -> None:
        """Answer every later call of ``method`` ``seconds`` late (0 to stop)."""
        with self._cond:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    # ------------------------------------------------------------------ request plumbing

    def _exchange(
        self,
        method: str,
        args: dict[str, Any],
        token: str | None,
        answer: Callable[[], _Answer],
    ) -> _Answer:
        """Delay, inject faults, compute the answer, record the call: shared by all routes."""
        with self._cond:
            delay = self._delays.get(method, 0)
        if delay:
            self._closing.wait(delay)
        with self._cond:
            fault = self._take_fault(method)
            if fault is not None:
                result = fault
            else:
                try:
                    result = answer()
                except SlackError as exc:
                    result = (200, {}, exc.body())
                except Exception as exc:  # a bug in the fake: say so instead of hanging up
                    result = (500, {}, {"ok": False, "error": f"fake_bug: {exc!r}"})
            status, _headers, body = result
            response = body if isinstance(body, dict) else None
            self._calls.append(Call(method, args, token, status, response))
            self._cond.notify_all()
            return result

    def _take_fault(self, method: str) -> _Answer | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            queue.pop(0)
        if fault.error is not None:
            return 200, {}, {"ok": False, "error": fault.error}
        if fault.status == 429:
            return (
                429,
                {"Retry-After": str(fault.retry_after)},
                {"ok": False, "error": "ratelimited"},
            )
        return fault.status, {}, {"ok": False, "error": "fatal_error"}

    def _serve_api(self, method: str, args: dict[str, Any], token: str | None) -> _Answer:
        undecodable = args.pop("_decode_error", False)

        def answer() -> _Answer:
            if undecodable:
                raise SlackError("invalid_form_data")
            if method == "apps.connections.open":  # the one call made with the app token
                if token is None or not token.startswith("xapp-"):
                    raise SlackError("not_allowed_token_type")
                if self.socket_url is None:
                    raise SlackError("internal_error", "no Socket Mode server is running")
                return 200, {}, {"ok": True, "url": self.socket_url}
            if token is None or not token.startswith("xoxb-"):
                raise SlackError("not_authed")
            handler = self._methods.get(method)
            if handler is None:
                raise SlackError("unknown_method")
            return 200, {}, {"ok": True, **handler(args)}

        return self._exchange(method, args, token, answer)

    def _serve_response_url(self, name: str, raw: bytes) -> _Answer:
        try:
            args = json.loads(raw or b"null")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            args = {"_raw": raw.decode("utf-8", "replace")}

        def answer() -> _Answer:
            if "_raw" in args:
                return 400, {}, "invalid_payload"
            if "blocks" in args:
                try:
                    _check_blocks(args["blocks"], limit=50)
                except SlackError:
                    return 400, {}, "invalid_blocks"
            if not args.get("text") and not args.get("blocks") and not args.get("delete_original"):
                return 400, {}, "no_text"
            return 200, {}, "ok"

        return self._exchange(f"response_url:{name}", args, None, answer)

    def _serve_upload(self, file_id: str, raw: bytes) -> _Answer:
        def answer() -> _Answer:
            entry = self._files.get(file_id)
            if entry is None:
                return 404, {}, "not_found"
            entry["content"] = raw
            return 200, {}, f"OK - {len(raw)}"

        return self._exchange("upload", {"file_id": file_id, "length": len(raw)}, None, answer)

    # ------------------------------------------------------------------ ids and lookups

    def _new_id(self, prefix: str) -> str:
        while True:
            self._counter += 1
            new = f"{prefix}{self._counter:08d}"
            if new not in self._channels and new not in self._files and new not in self._views:
                return new

    def _new_ts(self) -> str:
        """Unique, increasing, fixed-width Slack-style timestamps: 1700000000.000100, ..."""
        self._ts_counter += 1
        micros = 1_700_000_000_000_000 + self._ts_counter * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _channel_info(cid: str, name: str, is_private: bool) -> dict[str, Any]:
        return {
            "id": cid,
            "name": name,
            "is_channel": not is_private,
            "is_group": is_private,
            "is_private": is_private,
            "is_archived": False,
            "creator": BOT_USER_ID,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    @staticmethod
    def _dm_for(channel: str) -> str:
        # Posting to a user id lands in the bot's DM with them, as on Slack.
        return "D" + channel if channel.startswith(("U", "W")) else channel

    def _resolve_channel(self, channel: Any) -> str:
        """Map a chat.* ``channel`` argument to where the message lands."""
        if not isinstance(channel, str) or not channel:
            raise SlackError("channel_not_found")
        if channel in self._channels or channel in self._messages:
            return channel
        if channel.startswith(("D", "U", "W")):
            return self._dm_for(channel)
        name = channel.removeprefix("#")
        for cid, info in self._channels.items():
            if info["name"] == name:
                return cid
        raise SlackError("channel_not_found")

    def _known_channel(self, channel: Any) -> str:
        if not isinstance(channel, str) or channel not in self._channels:
            raise SlackError("channel_not_found")
        return channel

    def _find_message(self, channel: str, ts: Any) -> dict[str, Any]:
        for message in self._messages.get(channel, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    # ------------------------------------------------------------------ Web API methods
    # Each runs under the lock and returns the fields to add to {"ok": true}.

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": WORKSPACE_URL,
            "team": "Fake Workspace",
            "user": "incident-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("name")
        if not name:
            raise SlackError("invalid_name_required")
        if not isinstance(name, str) or len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not _CHANNEL_NAME.fullmatch(name):
            raise SlackError("invalid_name_specials")
        if any(info["name"] == name for info in self._channels.values()):
            raise SlackError("name_taken")
        cid = self._new_id("C")
        self._channels[cid] = self._channel_info(cid, name, _truthy(args.get("is_private")))
        self._members[cid] = [BOT_USER_ID]
        self._messages[cid] = []
        return {"channel": copy.deepcopy(self._channels[cid])}

    def _conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._known_channel(args.get("channel"))
        users = _split_ids(args.get("users"))
        if not users:
            raise SlackError("no_user")
        if BOT_USER_ID in users:
            raise SlackError("cant_invite_self")
        members = self._members.setdefault(cid, [])
        new = [user for user in users if user not in members]
        if not new:
            raise SlackError("already_in_channel")
        members.extend(new)
        return {"channel": copy.deepcopy(self._channels[cid])}

    def _conversations_set_topic(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._known_channel(args.get("channel"))
        topic = str(args.get("topic", ""))
        if len(topic) > 250:
            raise SlackError("too_long")
        self._channels[cid]["topic"] = {"value": topic, "creator": BOT_USER_ID, "last_set": 0}
        return {"channel": copy.deepcopy(self._channels[cid])}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = _split_ids(args.get("users"))
        if not users:
            raise SlackError("users_list_not_supplied")
        cid = "D" + users[0] if len(users) == 1 else "G" + "".join(sorted(users))
        self._messages.setdefault(cid, [])
        return {"channel": {"id": cid}}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if isinstance(channel, str) and channel.startswith("D"):
            return {"channel": {"id": channel, "is_im": True, "user": channel[1:]}}
        cid = self._known_channel(channel)
        info = copy.deepcopy(self._channels[cid])
        info["num_members"] = len(self._members.get(cid, []))
        return {"channel": info}

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve_channel(args.get("channel"))
        _check_message(args)
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._new_ts(),
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "text": args.get("text") or "",
            "blocks": args.get("blocks") or [],
        }
        for key in ("attachments", "thread_ts", "metadata"):
            if args.get(key):
                message[key] = args[key]
        self._messages.setdefault(cid, []).append(message)
        return {"channel": cid, "ts": message["ts"], "message": copy.deepcopy(message)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve_channel(args.get("channel"))
        message = self._find_message(cid, args.get("ts"))
        _check_message(args)
        # Like Slack, fields left out keep their old value; blocks=[] removes the blocks.
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args and args[key] is not None:
                message[key] = args[key]
        message["edited"] = {"user": BOT_USER_ID, "ts": self._new_ts()}
        return {
            "channel": cid,
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self._resolve_channel(args.get("channel"))
        user = args.get("user")
        if not isinstance(user, str) or not user.startswith(("U", "W")):
            raise SlackError("user_not_found")
        _check_message(args)
        return {"message_ts": self._new_ts()}

    def _pins_add(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve_channel(args.get("channel"))
        ts = args.get("timestamp")
        self._find_message(cid, ts)
        pinned = self._pins.setdefault(cid, [])
        if ts in pinned:
            raise SlackError("already_pinned")
        pinned.append(ts)
        return {}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            raise SlackError("invalid_arguments", "[ERROR] missing required field: trigger_id")
        return self._store_view(self._new_id("V"), args.get("view"))

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._views_open(args)

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (vid for vid, v in self._views.items() if v["external_id"] == args["external_id"]),
                None,
            )
        if not view_id:
            raise SlackError("invalid_arguments", "[ERROR] missing view_id or external_id")
        old = self._views.get(view_id)
        if old is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != old["hash"]:
            raise SlackError("hash_conflict")
        return self._store_view(view_id, args.get("view"))

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user_id")
        if not isinstance(user, str) or not user.startswith(("U", "W")):
            raise SlackError("invalid_arguments", "invalid `user_id`")
        view = args.get("view")
        _check_home_view(view)
        old = self._homes.get(user)
        if args.get("hash") and (old is None or args["hash"] != old["hash"]):
            raise SlackError("hash_conflict")
        self._counter += 1
        view_id = old["id"] if old else self._new_id("V")
        stored = {
            "team_id": TEAM_ID,
            "app_id": "AFAKE",
            "bot_id": BOT_ID,
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "state": {"values": {}},
            **view,
            "id": view_id,
            "hash": f"{self._counter}.{view_id}",
        }
        self._homes[user] = stored
        return {"view": copy.deepcopy(stored)}

    def _store_view(self, view_id: str, view: Any) -> dict[str, Any]:
        _check_view(view)
        stored = {
            "team_id": TEAM_ID,
            "app_id": "AFAKE",
            "bot_id": BOT_ID,
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "state": {"values": {}},
            **view,
            "id": view_id,
        }
        self._counter += 1
        stored["hash"] = f"{self._counter}.{view_id}"  # changes on every update, as on Slack
        self._views[view_id] = stored
        return {"view": copy.deepcopy(stored)}

    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        length = str(args.get("length", ""))
        if not filename or not length.isdigit():
            raise SlackError("invalid_arguments", "[ERROR] filename and length are required")
        file_id = self._new_id("F")
        self._files[file_id] = {
            "filename": filename,
            "length": int(length),
            "content": None,
            "channel": None,
            "title": None,
            "initial_comment": None,
        }
        return {"upload_url": f"http://127.0.0.1:{self._port}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments", "[ERROR] files must be a non-empty array")
        channel = args.get("channel_id") or None
        if channel is not None:
            channel = self._resolve_channel(channel)
        done = []
        for spec in files:
            entry = self._files.get(spec.get("id")) if isinstance(spec, dict) else None
            if entry is None or entry["content"] is None:
                raise SlackError("file_not_found", f"[ERROR] file {spec!r} was never uploaded")
            done.append((spec, entry))
        answer = []
        for spec, entry in done:
            entry["title"] = spec.get("title") or entry["filename"]
            entry["channel"] = channel
            entry["initial_comment"] = args.get("initial_comment")
            answer.append(
                {
                    "id": spec["id"],
                    "name": entry["filename"],
                    "title": entry["title"],
                    "size": len(entry["content"]),
                    "channels": [channel] if channel else [],
                }
            )
        return {"files": answer}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user")
        if not isinstance(user, str) or not user.startswith(("U", "W")):
            raise SlackError("user_not_found")
        name = f"user-{user.lower()}"
        profile: dict[str, Any] = {
            "id": user,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": f"User {user}",
            "tz": "Etc/UTC",
            "tz_offset": 0,
            "is_bot": user == BOT_USER_ID,
            "deleted": False,
        }
        profile.update(self._users.get(user, {}))
        profile["profile"] = {
            "display_name": profile["name"],
            "real_name": profile["real_name"],
            "email": f"{user.lower()}@example.com",
        }
        return {"user": profile}


# ---------------------------------------------------------------------- validation
# A practical subset of Slack's Block Kit limits: the ones a bot plausibly trips over.


def _check_message(args: dict[str, Any]) -> None:
    text, blocks, attachments = args.get("text"), args.get("blocks"), args.get("attachments")
    if not text and not blocks and not attachments:
        raise SlackError("no_text")
    if isinstance(text, str) and len(text) > 40_000:
        raise SlackError("msg_too_long")
    if blocks is not None:
        _check_blocks(blocks, limit=50)


def _check_blocks(blocks: Any, limit: int, pointer: str = "/blocks") -> None:
    """Raise SlackError("invalid_blocks") the way Slack would for these blocks."""

    def bad(where: str, why: str) -> SlackError:
        return SlackError("invalid_blocks", f"[ERROR] {why} [json-pointer:{where}]")

    if not isinstance(blocks, list):
        raise bad(pointer, "must be an array")
    if len(blocks) > limit:
        raise bad(pointer, f"no more than {limit} items allowed")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        at = f"{pointer}/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise bad(at, "missing required field: type")
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                raise bad(f"{at}/block_id", "must be a string of at most 255 characters")
            if block_id in seen_ids:
                raise bad(f"{at}/block_id", "duplicate block_id")
            seen_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                raise bad(at, "must provide either text or fields")
            if "text" in block:
                _check_text(block["text"], 3000, f"{at}/text", bad)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                raise bad(f"{at}/fields", "no more than 10 items allowed")
            for j, item in enumerate(fields):
                _check_text(item, 2000, f"{at}/fields/{j}", bad)
            if "accessory" in block:
                _check_element(block["accessory"], f"{at}/accessory", bad)
        elif kind == "header":
            _check_text(block.get("text"), 150, f"{at}/text", bad, plain_only=True)
        elif kind in ("actions", "context"):
            most = 25 if kind == "actions" else 10
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                raise bad(f"{at}/elements", "must provide a non-empty array")
            if len(elements) > most:
                raise bad(f"{at}/elements", f"no more than {most} items allowed")
            for j, element in enumerate(elements):
                if kind == "actions":
                    _check_element(element, f"{at}/elements/{j}", bad)
                elif not isinstance(element, dict) or "type" not in element:
                    raise bad(f"{at}/elements/{j}", "missing required field: type")
        elif kind == "input":
            _check_text(block.get("label"), 2000, f"{at}/label", bad, plain_only=True)
            _check_element(block.get("element"), f"{at}/element", bad)


def _check_text(
    obj: Any, most: int, at: str, bad: Callable[[str, str], SlackError], plain_only: bool = False
) -> None:
    allowed = ("plain_text",) if plain_only else _TEXT_TYPES
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        raise bad(at, f"must be a text object of type {' or '.join(allowed)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise bad(f"{at}/text", "must be more than 0 characters")
    if len(text) > most:
        raise bad(f"{at}/text", f"must be less than {most + 1} characters")


def _check_element(element: Any, at: str, bad: Callable[[str, str], SlackError]) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        raise bad(at, "missing required field: type")
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > 255):
        raise bad(f"{at}/action_id", "must be a string of at most 255 characters")
    if element["type"] == "button":
        _check_text(element.get("text"), 75, f"{at}/text", bad, plain_only=True)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            raise bad(f"{at}/value", "must be a string of at most 2000 characters")
        if element.get("style") not in (None, "primary", "danger"):
            raise bad(f"{at}/style", "must be primary or danger")


def _check_view(view: Any) -> None:
    """Raise SlackError("invalid_arguments") for a view Slack would refuse to open."""

    def bad(where: str, why: str) -> SlackError:
        return SlackError("invalid_arguments", f"[ERROR] {why} [json-pointer:{where}]")

    if not isinstance(view, dict):
        raise bad("/view", "must be an object")
    if view.get("type") != "modal":
        raise bad("/view/type", "must be modal")
    _check_text(view.get("title"), 24, "/view/title", bad, plain_only=True)
    for button in ("submit", "close"):
        if button in view:
            _check_text(view[button], 24, f"/view/{button}", bad, plain_only=True)
    for key, most in (("callback_id", 255), ("external_id", 255), ("private_metadata", 3000)):
        if len(str(view.get(key, ""))) > most:
            raise bad(f"/view/{key}", f"must be at most {most} characters")
    blocks = view.get("blocks")
    try:
        _check_blocks(blocks, limit=100, pointer="/view/blocks")
    except SlackError as exc:
        raise SlackError("invalid_arguments", *exc.messages) from None
    if "submit" not in view and any(b.get("type") == "input" for b in blocks):
        raise bad("/view/submit", "must provide submit when the view has input blocks")


def _check_home_view(view: Any) -> None:
    """Raise SlackError the way views.publish refuses a Home tab: a `home` view of at most
    100 valid blocks and 250 kB, with none of a modal's title or buttons."""

    def bad(where: str, why: str) -> SlackError:
        return SlackError("invalid_arguments", f"[ERROR] {why} [json-pointer:{where}]")

    if not isinstance(view, dict):
        raise bad("/view", "must be an object")
    if view.get("type") != "home":
        raise bad("/view/type", "must be home")
    for key in ("title", "submit", "close"):
        if key in view:
            raise bad(f"/view/{key}", "is not allowed in a home view")
    for key, most in (("callback_id", 255), ("external_id", 255), ("private_metadata", 3000)):
        if len(str(view.get(key, ""))) > most:
            raise bad(f"/view/{key}", f"must be at most {most} characters")
    if len(json.dumps(view)) > 250_000:
        raise SlackError("view_too_large")
    try:
        _check_blocks(view.get("blocks"), limit=100, pointer="/view/blocks")
    except SlackError as exc:
        raise SlackError("invalid_arguments", *exc.messages) from None


# ---------------------------------------------------------------------- decoding helpers


def _truthy(value: Any) -> bool:
    """slack_sdk sends booleans as "1"/"0" in forms and true/false in JSON."""
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true"))


def _split_ids(value: Any) -> list[str]:
    """``users`` arrives comma-joined in forms, maybe as a list in JSON."""
    if isinstance(value, list):
        return [str(v) for v in value if v]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return []


def _decode_args(content_type: str, raw: bytes, query: str) -> dict[str, Any]:
    """Decode a Web API request the way Slack does: query string plus form or JSON body."""
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("JSON body is not an object")
            args.update(body)
        elif kind.startswith("multipart/"):
            raise ValueError("multipart bodies are not supported by the fake")
        elif raw:
            args.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except ValueError:
        args["_decode_error"] = True
        return args
    for key in _JSON_FIELDS:
        value = args.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                args[key] = json.loads(value)
            except ValueError:
                pass  # left as a string, so validation rejects it like Slack would
    return args


# ---------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the benchmarks connect hundreds of times a second

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeSlack) -> None:
        super().__init__(address, handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = parts.path
        if path.startswith("/api/"):
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
            args = _decode_args(self.headers.get("Content-Type", ""), raw, parts.query)
            answer = fake._serve_api(path.removeprefix("/api/"), args, token)
        elif path.startswith("/response/"):
            answer = fake._serve_response_url(path.removeprefix("/response/"), raw)
        elif path.startswith("/upload/"):
            answer = fake._serve_upload(path.removeprefix("/upload/"), raw)
        else:
            answer = (404, {}, "not_found")
        self._reply(*answer)

    def _reply(self, status: int, headers: dict[str, str], body: dict[str, Any] | str) -> None:
        if isinstance(body, dict):
            data = json.dumps(body).encode("utf-8")
            content_type = "application/json; charset=utf-8"
        else:
            data = body.encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout during delay()); nothing to tell it

    def log_message(self, format: str, *args: Any) -> None:
        """Keep pytest output clean; the recorded calls are the log."""
