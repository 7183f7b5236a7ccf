"""A fake Telegram Bot API server for end-to-end tests (standard library only).

Why: the test machine has no internet, so the real bot runs (in-process or as a subprocess)
against this server via TELEGRAM_BASE_URL. It behaves like Telegram where the bot would notice
the difference (long polling with offsets, per-chat message ids, "message is not modified"
errors, editing text without reply_markup drops the keyboard) and records every call.

Conventions for tests:
- Messages the bot deleted stay in `sent_messages()` flagged ``"deleted": True``.
- Test-only keys (``seq``, ``event``, ``deleted``) are never sent to the bot.
- Texts are stored as sent: HTML/Markdown is not parsed (look at ``calls`` for parse_mode).
- Only inline keyboards are echoed back to the bot in Message.reply_markup (as Telegram
  does); the test-side copy keeps whatever reply_markup the bot sent.
- What Telegram refuses is refused here too (tests.auxil.telegram_rules: oversize texts, captions
  and callback answers, empty texts, button data over 64 bytes), with Telegram's 400 and its
  description; every refusal is kept in `refused`. `flood.enabled = True` turns on flood
  control (429 with retry_after when a chat or the bot sends too fast).
- With `webhook_address` set, once the bot set a webhook the fake POSTs each queued update
  there as Telegram does to the webhook's URL (the bot must register https://, so the test
  names the plain-HTTP address that URL reaches, TLS ending at a load balancer): JSON, the
  X-Telegram-Bot-Api-Secret-Token header, each update on a connection of its own (two queued
  at once arrive at the same moment), and an update without a 200 is sent again until one
  answers it; every attempt is kept in `deliveries`.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.auxil import telegram_rules
from tests.auxil.telegram_rules import FloodControl, Refused

JSON = dict[str, Any]
_TEST_KEYS = ("seq", "event", "deleted")
# Free-text parameters are never JSON-decoded: a text of "123" must stay a str.
_TEXT_PARAMS = frozenset(
    "text caption callback_query_id parse_mode url inline_message_id query title "  # noqa: SIM905
    "description short_description name secret_token emoji address language_code "
    "business_connection_id message_effect_id action photo document video audio voice sticker "
    "animation ip_address first_name last_name phone_number question".split()
)
_PATH_RE = re.compile(r"/(file/)?bot([^/]*)/(.*)")


class ApiError(Exception):
    """Raised inside a method to answer the way Telegram answers errors."""

    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass(frozen=True)
class Delivery:
    """One POST of an update to the webhook: its HTTP status (0: no answer) and when."""

    update_id: int
    status: int
    started: float  # time.monotonic()
    took: float  # seconds


PUSH_RETRY_SECONDS = 0.5  # Telegram retries a failed webhook delivery later; here soon


@dataclass
class UploadedFile:
    """A file part of a multipart request (e.g. sendDocument with a local file)."""

    filename: str
    content_type: str
    content: bytes


def _decode(key: str, value: str) -> Any:
    """PTB sends every parameter as a string; complex ones (reply_markup...) JSON-encoded."""
    if key in _TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _parse_multipart(body: bytes, content_type: str) -> JSON:
    """Minimal multipart/form-data parser (the `cgi` module is deprecated)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ApiError(400, "Bad Request: multipart boundary missing")
    params: JSON = {}
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        raw_head, _, content = part[2:].partition(b"\r\n\r\n")
        head, content = raw_head.decode(), content[:-2]
        name = re.search(r'\bname="([^"]*)"', head)
        filename = re.search(r'filename="([^"]*)"', head)
        ctype = re.search(r"content-type:\s*([^\r\n]+)", head, re.IGNORECASE)
        if not name:
            continue
        if filename:
            params[name.group(1)] = UploadedFile(
                filename.group(1), ctype.group(1) if ctype else "", content
            )
        else:
            params[name.group(1)] = _decode(name.group(1), content.decode())
    return params


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # connections kept open between requests, as Telegram's are (HTTP/1.0 would make the bot
    # open a connection for each request: a cost no real deployment pays)
    protocol_version = "HTTP/1.1"
    # and each answer leaves at once: headers and body are two writes, and on a kept-open
    # connection Nagle's algorithm would hold the body for the client's delayed ACK (40 ms)
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.server.api._handle(self)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""


class _Server(ThreadingHTTPServer):
    def __init__(self, api: FakeBotApi) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A killed bot leaves long polls whose answer hits a closed socket: not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeBotApi:
    """The fake server plus the test-side API; every method is thread-safe."""

    def __init__(self, token: str, username: str = "archive_test_bot") -> None:
        self.token, self.username = token, username
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 100000
        self.bot_user: JSON = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Archive Test Bot",
            "username": username,
        }
        self.calls: list[tuple[str, JSON]] = []
        self.refused: list[Refused] = []
        self.expect_refusals = False  # the `api` fixture fails a test that caused any, unless set
        self.flood = FloodControl()
        self._call_times: list[float] = []
        self._cond = threading.Condition()
        self._pending: list[JSON] = []
        self._messages: dict[int, dict[int, JSON]] = {}  # chat id -> message id -> message
        self._next_message_id: dict[int, int] = {}
        self._users: dict[int, JSON] = {}
        self._events: list[JSON] = []
        self._seq = 0
        self._counter = itertools.count(1)  # update ids, file ids, callback query ids
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        # where Telegram's POSTs to the registered webhook URL land (see the module's notes)
        self.webhook_address: str | None = None
        self.deliveries: list[Delivery] = []
        # called with every message event (sent or edited): a load test's hundreds of waiting
        # people cannot each scan every event (wait_for_message) at every notification
        self.listeners: list[Callable[[JSON], None]] = []
        # seconds each request takes before it is answered: the round trip to Telegram's
        # servers, which a bot pays for every call (0: a fake next door)
        self.round_trip = 0.0
        self.updates_queued = 0
        self._pushing: set[int] = set()  # update ids on their way to the webhook
        self._pusher: threading.Thread | None = None
        self._commands: dict[str, list[JSON]] = {}
        self._stopping = False
        self._held_method: str | None = None  # calls of this method wait for release()
        self._held_calls = 0
        self._hold_round = 0  # each hold() starts a round; release() ends it
        self._released_round = 0
        self._dropped_rounds: set[int] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        me = {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False}
        me.update(supports_inline_queries=False, can_connect_to_business=False)
        self._methods: dict[str, Callable[[JSON], Any]] = {
            "getme": lambda p: me,
            "getupdates": self._get_updates,
            "deletewebhook": self._set_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": lambda p: {
                "url": self._webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
            },
            "setmycommands": self._set_commands,
            "getmycommands": lambda p: self._commands.get(self._cmd_key(p), []),
            "deletemycommands": self._set_commands,
            "sendmessage": self._send_message,
            "editmessagetext": lambda p: self._edit(p, "text", "entities"),
            "editmessagecaption": lambda p: self._edit(p, "caption", "caption_entities"),
            "editmessagereplymarkup": lambda p: self._edit(p),
            "deletemessage": self._delete_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendvoice": lambda p: self._bot_message(
                p, voice={**self._file("voice"), "duration": 1}, caption=p.get("caption")
            ),
            "sendlocation": lambda p: self._bot_message(
                p, location={"latitude": p["latitude"], "longitude": p["longitude"]}
            ),
            "copymessage": self._copy_message,
            **dict.fromkeys(
                ["answercallbackquery", "sendchataction", "setchatmenubutton", "close", "logout"],
                self._ok,
            ),
        }

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeBotApi:
        self._stopping = False
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:  # wake pending long polls so their threads finish
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def webhook_url(self) -> str:
        """The URL the bot registered with setWebhook ("" after deleteWebhook)."""
        with self._cond:
            return self._webhook_url

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeBotApi is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    # ----------------------------------------------------------------- HTTP side
    def _handle(self, handler: _Handler) -> None:
        if self.round_trip:
            time.sleep(self.round_trip)  # this request's own thread: others are not held
        url = urlsplit(handler.path)
        match = _PATH_RE.fullmatch(url.path)
        try:
            if not match:
                raise ApiError(404, "Not Found")
            if match.group(2) != self.token:
                raise ApiError(401, "Unauthorized")
            if match.group(1):
                raise ApiError(404, "Not Found: file not found")
            params = self._read_params(handler, url.query)
            if self._wait_if_held(match.group(3)):
                raise ApiError(502, "Bad Gateway: the request never reached Telegram")
            with self._cond:
                self.calls.append((match.group(3), params))
                self._call_times.append(time.monotonic())
                self._cond.notify_all()
                method = self._methods.get(match.group(3).lower())
                if method is None:
                    raise ApiError(404, "Not Found: method not found")
                self._check_limits(match.group(3), params)
                body: JSON = {"ok": True, "result": method(params)}
            status = 200
        except ApiError as err:
            status = err.code
            body = telegram_rules.error_body(err.code, err.description, **err.parameters)
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except ConnectionError:
            pass  # the bot gave up on this request (killed, or its read timeout hit)

    @staticmethod
    def _read_params(handler: _Handler, query: str) -> JSON:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        ctype = handler.headers.get("Content-Type", "")
        params = {k: _decode(k, v) for k, v in parse_qsl(query, keep_blank_values=True)}
        if ctype.startswith("application/json"):
            params.update(json.loads(body or b"{}"))
        elif ctype.startswith("multipart/form-data"):
            params.update(_parse_multipart(body, ctype))
        elif body:
            pairs = parse_qsl(body.decode(), keep_blank_values=True)
            params.update({k: _decode(k, v) for k, v in pairs})
        return params

    def _check_limits(self, method: str, params: JSON) -> None:
        """Refuse what Telegram refuses (kept in `refused`), then apply flood control."""
        description = telegram_rules.refusal(method, params)
        if description is not None:
            self.refused.append(Refused(method, params, description))
            raise ApiError(400, description)
        wait = self.flood.check(method, params)
        if wait is not None:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    # ------------------------------------------------- Bot API methods (lock held)
    def _get_updates(self, params: JSON) -> list[JSON]:
        """Real long polling: confirm by offset, then wait up to `timeout` for an update."""
        offset = int(params.get("offset") or 0)
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while not self._pending and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        return copy.deepcopy(self._pending[:limit])

    def _set_webhook(self, params: JSON) -> bool:
        self._webhook_url = params.get("url", "")
        self._webhook_secret = params.get("secret_token") or None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        if self.webhook_address and self._webhook_url and self._pusher is None:
            self._pusher = threading.Thread(target=self._push_updates, daemon=True)
            self._pusher.start()
        return True

    # ------------------------------------------------------- webhook delivery
    def _push_updates(self) -> None:
        """Start a delivery for every queued update not already on its way (Telegram keeps up
        to max_connections requests open; the tests queue few updates at a time)."""
        with self._cond:
            while not self._stopping and self._webhook_url:
                waiting = [u for u in self._pending if u["update_id"] not in self._pushing]
                for update in waiting:
                    self._pushing.add(update["update_id"])
                    threading.Thread(target=self._deliver, args=(update,), daemon=True).start()
                self._cond.wait(0.2)
            self._pusher = None

    def _deliver(self, update: JSON) -> None:
        """POST one update until the webhook answers 200 (or the fake stops)."""
        body = json.dumps(update, ensure_ascii=False).encode()
        while True:
            with self._cond:
                url, secret = self.webhook_address, self._webhook_secret
                if self._stopping or not url or not self._webhook_url:
                    self._pushing.discard(update["update_id"])
                    return
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            if secret is not None:
                request.add_header("X-Telegram-Bot-Api-Secret-Token", secret)
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = int(response.status)
            except urllib.error.HTTPError as error:
                status = int(error.code)
            except (urllib.error.URLError, OSError):
                status = 0
            with self._cond:
                self.deliveries.append(
                    Delivery(update["update_id"], status, started, time.monotonic() - started)
                )
                if status == 200:
                    self._pending = [u for u in self._pending if u is not update]
                    self._pushing.discard(update["update_id"])
                    self._cond.notify_all()
                    return
            time.sleep(PUSH_RETRY_SECONDS)

    def send_at_once(self, *queue: Callable[[], int]) -> list[int]:
        """Queue several updates under one lock: pushed to the webhook, they leave together."""
        with self._cond:
            return [put() for put in queue]

    def _set_commands(self, params: JSON) -> bool:
        """setMyCommands, or deleteMyCommands (no `commands` parameter)."""
        self._commands[self._cmd_key(params)] = params.get("commands", [])
        return True

    def _ok(self, params: JSON) -> bool:
        return True

    @staticmethod
    def _cmd_key(params: JSON) -> str:
        scope = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True)
        return f"{scope}|{params.get('language_code', '')}"

    def _send_message(self, params: JSON) -> JSON:
        return self._bot_message(params, text=params["text"], entities=params.get("entities"))

    def _send_photo(self, params: JSON) -> JSON:
        return self._bot_message(params, photo=self._photo_sizes(), caption=params.get("caption"))

    def _send_document(self, params: JSON) -> JSON:
        doc = params.get("document")
        name = doc.filename if isinstance(doc, UploadedFile) else "document"
        return self._bot_message(
            params, document={**self._file("doc"), "file_name": name}, caption=params.get("caption")
        )

    def _copy_message(self, params: JSON) -> JSON:
        source = self._find(params.get("from_chat_id"), params.get("message_id"))
        if source is None:
            raise ApiError(400, "Bad Request: message to copy not found")
        skip = {"message_id", "date", "edit_date", "chat", "from", "reply_markup", *_TEST_KEYS}
        content = {k: v for k, v in copy.deepcopy(source).items() if k not in skip}
        if "caption" in params:
            content["caption"] = params["caption"]
        return {"message_id": self._bot_message(params, **content)["message_id"]}

    def _bot_message(self, params: JSON, **content: Any) -> JSON:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        content["reply_markup"] = params.get("reply_markup")
        msg = self._new_message(chat_id, self.bot_user, content)
        self._emit(msg, "sent")
        return self._public(msg)

    def _edit(self, params: JSON, *fields: str) -> JSON | bool:
        """Edits apply in place; fields not passed are removed, like Telegram does."""
        if params.get("inline_message_id"):
            return True
        msg = self._find(params.get("chat_id"), params.get("message_id"))
        if msg is None or msg.get("deleted"):
            raise ApiError(400, "Bad Request: message to edit not found")
        if fields and fields[0] not in msg:
            raise ApiError(400, f"Bad Request: there is no {fields[0]} in the message to edit")
        changes = {key: params.get(key) for key in (*fields, "reply_markup")}
        if all(msg.get(key) == value for key, value in changes.items()):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        for key, value in changes.items():
            if value is None:
                msg.pop(key, None)
            else:
                msg[key] = value
        msg["edit_date"] = int(time.time())
        self._emit(msg, "edited")
        return self._public(msg)

    def _delete_message(self, params: JSON) -> bool:
        msg = self._find(params.get("chat_id"), params.get("message_id"))
        if msg is None or msg.get("deleted"):
            raise ApiError(400, "Bad Request: message to delete not found")
        msg["deleted"] = True
        return True

    # ----------------------------------------------------------- shared helpers
    def _find(self, chat_id: Any, message_id: Any) -> JSON | None:
        try:
            return self._messages.get(int(chat_id), {}).get(int(message_id))
        except (TypeError, ValueError):
            return None

    def _new_message(self, chat_id: int, sender: JSON, content: JSON) -> JSON:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        user = self._users.get(chat_id, {})
        chat = {"id": chat_id, "type": "private", "first_name": user.get("first_name", "Test")}
        if user.get("username"):
            chat["username"] = user["username"]
        msg = {"message_id": message_id, "date": int(time.time()), "chat": chat, "from": sender}
        msg.update({k: v for k, v in content.items() if v is not None})
        self._messages.setdefault(chat_id, {})[message_id] = msg
        return msg

    def _emit(self, msg: JSON, event: str) -> None:
        self._seq += 1
        msg["seq"] = self._seq
        happened = {**copy.deepcopy(msg), "event": event}
        self._events.append(happened)
        for listener in self.listeners:  # under the lock: they must only hand the event on
            listener(happened)
        self._cond.notify_all()

    @staticmethod
    def _public(msg: JSON) -> JSON:
        """The message as Telegram would show it to the bot."""
        out = {k: v for k, v in copy.deepcopy(msg).items() if k not in _TEST_KEYS}
        if "inline_keyboard" not in (out.get("reply_markup") or {}):
            out.pop("reply_markup", None)
        return out

    def _file(self, kind: str) -> JSON:
        n = next(self._counter)
        return {"file_id": f"fake-{kind}-{n}", "file_unique_id": f"u{kind}{n}", "file_size": 1234}

    def _photo_sizes(self) -> list[JSON]:
        return [{**self._file("photo"), "width": w, "height": w} for w in (90, 1280)]

    def _queue(self, update: JSON) -> int:
        update_id = next(self._counter)
        self.updates_queued += 1
        self._pending.append({"update_id": update_id, **update})
        self._cond.notify_all()
        return update_id

    def _wait_if_held(self, method: str) -> bool:
        """Hold a call of the held method until release(); True if it is then dropped."""
        with self._cond:
            if self._held_method is None or method.lower() != self._held_method:
                return False
            self._held_calls += 1
            held_round = self._hold_round
            self._cond.notify_all()
            while self._released_round < held_round and not self._stopping:
                self._cond.wait()
            return held_round in self._dropped_rounds

    # ------------------------------------------------------------ test-side API
    def hold(self, method: str) -> None:
        """From now on every `method` call waits, unanswered, until release(): a test can kill
        the bot while its message is on the way."""
        with self._cond:
            self._held_method, self._held_calls = method.lower(), 0
            self._hold_round += 1

    def wait_held(self, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until `count` calls are held."""
        self._wait(
            lambda: True if self._held_calls >= count else None,
            timeout,
            lambda: f"{self._held_calls} of {count} calls held in {timeout}s",
        )

    def release(self, *, drop: bool) -> None:
        """Let the held calls go: `drop` as if they never reached Telegram, else carried out
        (Telegram got the message; the bot, killed meanwhile, never heard back)."""
        with self._cond:
            self._held_method, self._released_round = None, self._hold_round
            if drop:
                self._dropped_rounds.add(self._hold_round)
            self._cond.notify_all()

    @staticmethod
    def user(
        user_id: int,
        first_name: str = "Test",
        language_code: str = "zh",
        username: str | None = None,
    ) -> JSON:
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        if username:
            user["username"] = username
        return user

    def _user_message(self, user: JSON, **content: Any) -> int:
        with self._cond:
            self._users[user["id"]] = user
            msg = self._new_message(user["id"], user, content)
            return self._queue({"message": self._public(msg)})

    def send_text(self, user: JSON, text: str) -> int:
        """Queue a private message; a leading /command gets its bot_command entity."""
        entities = None
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0].encode("utf-16-le")) // 2
            entities = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._user_message(user, text=text, entities=entities)

    def send_location(
        self,
        user: JSON,
        latitude: float,
        longitude: float,
        horizontal_accuracy: float | None = None,
    ) -> int:
        location = {"latitude": latitude, "longitude": longitude}
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = horizontal_accuracy
        return self._user_message(user, location=location)

    def send_photo(self, user: JSON, caption: str | None = None) -> int:
        photo = self._photo_sizes()
        return self._user_message(user, photo=photo, caption=caption)

    def send_sticker(self, user: JSON) -> int:
        sticker = {**self._file("sticker"), "type": "regular", "width": 512, "height": 512}
        sticker.update(is_animated=False, is_video=False, emoji="👍")
        return self._user_message(user, sticker=sticker)

    def send_document(
        self, user: JSON, file_name: str = "report.pdf", mime_type: str = "application/pdf"
    ) -> int:
        doc = {**self._file("doc"), "file_name": file_name, "mime_type": mime_type}
        return self._user_message(user, document=doc)

    def send_voice(self, user: JSON, duration: int = 3) -> int:
        voice = {**self._file("voice"), "duration": duration, "mime_type": "audio/ogg"}
        return self._user_message(user, voice=voice)

    def press_button(self, user: JSON, message: JSON, data: str) -> int:
        """Queue a callback query carrying the *current* state of the bot's message."""
        with self._cond:
            chat_id = message["chat"]["id"]
            current = self._find(chat_id, message["message_id"]) or message
            query = {
                "id": f"cbq-{next(self._counter)}",
                "from": user,
                "chat_instance": f"ci-{chat_id}",
                "data": data,
                "message": self._public(current),
            }
            return self._queue({"callback_query": query})

    def sent_messages(self, chat_id: int) -> list[JSON]:
        """Current state of the bot's messages in a chat (deleted ones have "deleted": True)."""
        with self._cond:
            chat = self._messages.get(chat_id, {}).values()
            return [copy.deepcopy(m) for m in chat if m["from"]["id"] == self.bot_id]

    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 15.0,
        after: int = 0,
    ) -> JSON:
        """First message event (sent or edited) in the chat with seq > `after` matching."""

        def find() -> JSON | None:
            for event in self._events:
                mine = event["seq"] > after and event["chat"]["id"] == chat_id
                if mine and (predicate is None or predicate(event)):
                    return copy.deepcopy(event)
            return None

        return self._wait(find, timeout, lambda: self._dump(chat_id, after, timeout))

    def wait_for_call(self, method: str, timeout: float = 15.0, since: float = 0.0) -> JSON:
        """Params of the first `method` call received at/after `since` (time.monotonic())."""

        def find() -> JSON | None:
            for (name, params), at in zip(self.calls, self._call_times, strict=True):
                if name.lower() == method.lower() and at >= since:
                    return params
            return None

        def failure() -> str:
            return f"no {method} call in {timeout}s; last: {[m for m, _ in self.calls[-15:]]}"

        return self._wait(find, timeout, failure)

    def _wait(self, find: Callable[[], Any], timeout: float, failure: Callable[[], str]) -> Any:
        """Block until find() (run under the lock) returns something; notify_all wakes us."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (found := find()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(failure())
                self._cond.wait(remaining)
            return found

    async def wait_for_message_async(
        self,
        chat_id: int,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 15.0,  # noqa: ASYNC109 - passed on to the waiting thread
        after: int = 0,
    ) -> JSON:
        """For async tests whose bot runs on the same event loop (don't block the loop)."""
        return await asyncio.to_thread(self.wait_for_message, chat_id, predicate, timeout, after)

    def _dump(self, chat_id: int, after: int, timeout: float) -> str:
        lines = [f"no matching message to chat {chat_id} after seq {after} within {timeout}s."]
        lines.append("Last message events in that chat:")
        for event in [e for e in self._events if e["chat"]["id"] == chat_id][-10:]:
            body = event.get("text") or event.get("caption") or "<media>"
            buttons = self.button_texts(event)
            lines.append(f"  seq={event['seq']} {event['event']}: {body!r} buttons={buttons}")
        lines.append(f"Last calls: {[name for name, _ in self.calls[-15:]]}")
        return "\n".join(lines)

    @staticmethod
    def button_texts(message: JSON) -> list[str]:
        markup = message.get("reply_markup") or {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        return [b["text"] if isinstance(b, dict) else str(b) for row in rows for b in row]

    @staticmethod
    def button_data(message: JSON, text_substring: str) -> str:
        """callback_data of the first inline button whose text contains `text_substring`."""
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        for button in (b for row in rows for b in row):
            if text_substring in button.get("text", "") and "callback_data" in button:
                return button["callback_data"]
        raise AssertionError(
            f"no inline button containing {text_substring!r}; buttons: "
            f"{FakeBotApi.button_texts(message)}; text: {message.get('text')!r}"
        )
