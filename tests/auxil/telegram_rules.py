"""What Telegram refuses, as both test fakes answer it (standard library only).

Why: a fake that takes anything lets a test pass on a message Telegram would reject, so the
page can never be shown to a real user. Both `tests.auxil.fake_telegram` (request layer) and
`tests.e2e.fake_bot_api` (HTTP server) ask `refusal()` before answering a call, and answer
400 with Telegram's own description; `FloodControl` answers 429 with `retry_after` when a
test switches it on.

Lengths are counted as Telegram counts them: UTF-16 code units of the text after entity
parsing. The bot sends plain text (no parse_mode), so the text as sent is the text counted;
with a parse_mode the markup would only make it shorter, so counting the raw text is at
least as strict.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_ANSWER_LIMIT = 200
CALLBACK_DATA_BYTES = 64
MAX_BUTTONS = 100
UPLOAD_LIMIT = 50 * 1024 * 1024  # what a bot may upload through the Bot API

FILE_TOO_BIG = "Request Entity Too Large"
NO_DOCUMENT = "Bad Request: there is no document in the request"

TOO_LONG = "Bad Request: message is too long"
EDIT_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
CAPTION_TOO_LONG = "Bad Request: message caption is too long"
EMPTY_TEXT = "Bad Request: message text is empty"
ANSWER_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
BUTTON_DATA_INVALID = "Bad Request: BUTTON_DATA_INVALID"
BUTTON_TEXT_EMPTY = "Bad Request: BUTTON_TEXT_EMPTY"
MARKUP_TOO_LONG = "Bad Request: reply markup is too long"
PHOTO_TOO_BIG = "Bad Request: file is too big"
PHOTO_DIMENSIONS = "Bad Request: PHOTO_INVALID_DIMENSIONS"
PHOTO_BYTES = 10 * 1024 * 1024  # an uploaded photo: at most 10 MB
PHOTO_SIDES = 10_000  # width and height together at most 10,000 px, their ratio at most 20

_SENDS_WITH_CAPTION = frozenset(
    {"sendphoto", "senddocument", "sendvoice", "sendvideo", "sendaudio", "sendanimation"}
)


def units(text: str) -> int:
    """A text's length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _markup(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _keyboard_refusal(markup: Any) -> str | None:
    """Inline buttons need a label and 1 to 64 bytes of callback data; at most 100 of them."""
    markup = _markup(markup)
    if not markup or "inline_keyboard" not in markup:
        return None
    buttons = [b for row in markup["inline_keyboard"] for b in row]
    if len(buttons) > MAX_BUTTONS:
        return MARKUP_TOO_LONG
    for button in buttons:
        if not str(button.get("text", "")).strip():
            return BUTTON_TEXT_EMPTY
        if "callback_data" in button:
            size = len(str(button["callback_data"]).encode("utf-8"))
            if not 1 <= size <= CALLBACK_DATA_BYTES:
                return BUTTON_DATA_INVALID
    return None


INLINE_RESULTS = 50  # results in one answerInlineQuery
INLINE_ID_BYTES = 64  # a result's id, and next_offset
# titles and descriptions have no documented limit; these are far beyond what a client shows
INLINE_TITLE = 256
INLINE_DESCRIPTION = 512
RESULTS_TOO_MANY = "Bad Request: RESULTS_TOO_MUCH"
RESULT_ID_INVALID = "Bad Request: RESULT_ID_INVALID"
RESULT_ID_DUPLICATE = "Bad Request: RESULT_ID_DUPLICATE"
RESULT_INVALID = "Bad Request: RESULT_INVALID"
NEXT_OFFSET_INVALID = "Bad Request: NEXT_OFFSET_INVALID"
START_PARAM_INVALID = "Bad Request: START_PARAM_INVALID"
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"


def _inline_refusal(params: dict[str, Any]) -> str | None:
    """answerInlineQuery: at most 50 results with distinct ids of 1 to 64 bytes, texts of at
    most 4,096 characters, a next_offset of at most 64 bytes, a button's start parameter of
    1 to 64 of A-Z, a-z, 0-9, _ and -."""
    results = params.get("results") or []
    if isinstance(results, str):
        results = json.loads(results)
    if len(results) > INLINE_RESULTS:
        return RESULTS_TOO_MANY
    ids = [str(r.get("id", "")) for r in results]
    if any(not 1 <= len(i.encode("utf-8")) <= INLINE_ID_BYTES for i in ids):
        return RESULT_ID_INVALID
    if len(set(ids)) != len(ids):
        return RESULT_ID_DUPLICATE
    for result in results:
        content = result.get("input_message_content") or {}
        text = str(content.get("message_text") or "")
        if not text.strip() or units(text) > MESSAGE_LIMIT:
            return TOO_LONG if text.strip() else EMPTY_TEXT
        if not str(result.get("title") or "").strip() or units(result["title"]) > INLINE_TITLE:
            return RESULT_INVALID
        if units(str(result.get("description") or "")) > INLINE_DESCRIPTION:
            return RESULT_INVALID
        keyboard = _keyboard_refusal(result.get("reply_markup"))
        if keyboard is not None:
            return keyboard
    if len(str(params.get("next_offset") or "").encode("utf-8")) > INLINE_ID_BYTES:
        return NEXT_OFFSET_INVALID
    button = _markup(params.get("button"))
    if button is not None and "start_parameter" in button:
        start = str(button["start_parameter"])
        if not 1 <= len(start) <= 64 or not all(c.isalnum() or c in "_-" for c in start):
            return START_PARAM_INVALID
    return None


MAX_COMMANDS = 100
COMMAND_INVALID = "Bad Request: BOT_COMMAND_INVALID"
COMMAND_DESCRIPTION_INVALID = "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"
COMMANDS_TOO_MUCH = "Bad Request: BOT_COMMANDS_TOO_MUCH"


def _commands_refusal(params: dict[str, Any]) -> str | None:
    """setMyCommands: at most 100 commands of 1 to 32 of a-z, 0-9 and _, each described in 1
    to 256 characters."""
    commands = params.get("commands") or []
    if isinstance(commands, str):
        commands = json.loads(commands)
    if len(commands) > MAX_COMMANDS:
        return COMMANDS_TOO_MUCH
    for command in commands:
        name = str(command.get("command", ""))
        if not 1 <= len(name) <= 32 or not all(
            c.isascii() and (c.isalnum() or c == "_") for c in name
        ):
            return COMMAND_INVALID
        if name != name.lower():
            return COMMAND_INVALID
        if not 1 <= units(str(command.get("description", "")).strip()) <= 256:
            return COMMAND_DESCRIPTION_INVALID
    return None


def refusal(method: str, params: dict[str, Any]) -> str | None:
    """Telegram's description of why it refuses this call, or None if it would take it."""
    name = method.lower()
    if name == "setmycommands":
        return _commands_refusal(params)
    if name == "answerinlinequery":
        return _inline_refusal(params)
    if name in ("sendmessage", "editmessagetext"):
        text = str(params.get("text") or "")
        if not text.strip():
            return EMPTY_TEXT
        if units(text) > MESSAGE_LIMIT:
            return TOO_LONG if name == "sendmessage" else EDIT_TOO_LONG
    if name in _SENDS_WITH_CAPTION or name in ("editmessagecaption", "copymessage"):
        caption = params.get("caption")
        if caption is not None and units(str(caption)) > CAPTION_LIMIT:
            return CAPTION_TOO_LONG
    if name == "answercallbackquery":
        answer = params.get("text")
        if answer is not None and units(str(answer)) > CALLBACK_ANSWER_LIMIT:
            return ANSWER_TOO_LONG
    return _keyboard_refusal(params.get("reply_markup"))


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's width and height, from its header (None if it is no PNG)."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _photo_refusal(method: str, files: dict[str, bytes]) -> str | None:
    """What Telegram says of an uploaded photo it will not take."""
    name = method.lower()
    for data in files.values():
        if name == "sendphoto":
            if len(data) > PHOTO_BYTES:
                return PHOTO_TOO_BIG
            size = png_size(data)
            if size is not None:
                width, height = size
                if width + height > PHOTO_SIDES or max(width, height) > 20 * min(width, height):
                    return PHOTO_DIMENSIONS
    return None


FILE_EMPTY = "Bad Request: file must be non-empty"
FILENAME_LIMIT = 255


def upload_refusal(
    method: str,
    params: dict[str, Any],
    upload: dict[str, Any] | None,
    files: dict[str, bytes] | None = None,
) -> str | None:
    """What Telegram says to an upload it refuses: a photo too big or of bad dimensions; a
    sendDocument with no document (neither an upload nor a file id), an empty or oversized
    file, or a file name it cannot take."""
    photo = _photo_refusal(method, files or {})
    if photo is not None or method.lower() != "senddocument":
        return photo
    if upload is None:
        document = params.get("document")
        return NO_DOCUMENT if not isinstance(document, str) or not document else None
    content = upload["content"]
    if not content:
        return FILE_EMPTY
    if len(content) > UPLOAD_LIMIT:
        return FILE_TOO_BIG
    filename = upload.get("filename") or ""
    if not filename or len(filename.encode("utf-8")) > FILENAME_LIMIT:
        return "Bad Request: wrong file name"
    return None


def error_body(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    """Telegram's error answer: `{"ok": false, "error_code", "description", "parameters"}`."""
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


@dataclass
class Refused:
    """One call a fake refused: what it was, and what Telegram said."""

    method: str
    params: dict[str, Any]
    description: str


_SENDING = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendvoice",
        "sendlocation",
        "copymessage",
        "editmessagetext",
        "editmessagecaption",
        "editmessagereplymarkup",
    }
)
SENDING = _SENDING  # the methods flood control counts, for benchmarks to count too


@dataclass
class FloodControl:
    """Telegram's flood control, off until a test switches it on.

    Telegram allows about one message a second in a chat (short bursts pass) and about 30 a
    second over all chats; beyond that it answers 429 "Too Many Requests: retry after N".
    `per_chat` messages in any `chat_window` seconds and `overall` in any second are let
    through, and in a group chat (a negative id) `per_group` in any `group_window` seconds (20 a
    minute, as Telegram documents); `retry_after` is what the 429 asks for.
    """

    enabled: bool = False
    per_chat: int = 3
    chat_window: float = 1.0
    overall: int = 30
    retry_after: int = 1
    per_group: int = 20
    group_window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    refused: int = 0
    _chats: dict[int, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)

    def check(self, method: str, params: dict[str, Any]) -> int | None:
        """Seconds to wait if this send is one too many now, else None (and it is counted)."""
        if not self.enabled or method.lower() not in _SENDING:
            return None
        now = self.clock()
        try:
            chat_id = int(params.get("chat_id") or 0)
        except (TypeError, ValueError):
            chat_id = 0
        chat = self._chats.setdefault(chat_id, deque())
        chat_window = self.group_window if chat_id < 0 else self.chat_window
        chat_limit = self.per_group if chat_id < 0 else self.per_chat
        for times, window in ((chat, max(chat_window, self.chat_window)), (self._all, 1.0)):
            while times and times[0] <= now - window:
                times.popleft()
        in_window = sum(1 for t in chat if t > now - self.chat_window)
        if (
            in_window >= self.per_chat
            or (chat_id < 0 and len(chat) >= chat_limit)
            or len(self._all) >= self.overall
        ):
            self.refused += 1
            return self.retry_after
        chat.append(now)
        self._all.append(now)
        return None
