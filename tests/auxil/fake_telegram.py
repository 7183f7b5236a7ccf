"""A fake Telegram at the request layer, and a user who talks to the bot through it.

The real `Application` with every handler runs in-process; only HTTP is replaced (STYLE: PTB's
own test suite). Each Bot API call is recorded and answered the way Telegram would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from bot import scheduler
from tests.auxil import telegram_rules
from tests.auxil.telegram_rules import FloodControl, Refused

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the Bot API serves files up to 20 MB to bots
FILE_BASE = "https://api.telegram.org/file/bot"  # bot.app.file_url of the default base URL
BOT_ID = 4242
BOT_USERNAME = "archive_test_bot"
TOKEN = f"{BOT_ID}:TESTTOKENabcdefghijklmnopqrstuvwxyz"


class TelegramDown(Exception):
    """Raised inside the fake to simulate a network failure on the next call(s)."""


@dataclass(frozen=True)
class Upload:
    """A file the bot uploaded, as Telegram received it."""

    filename: str
    content: bytes
    params: dict[str, Any]
    field: str = "document"  # the call's field that carried it: document, photo, ...


EDITABLE = ("text", "caption", "reply_markup")  # what the edit methods change


class ChatMessages(dict[tuple[int, int], dict[str, Any]]):
    """Messages by (chat id, message id), also indexed by chat: a benchmark's `press` reads a
    chat's newest message on every step, and scanning every chat's messages for it made the
    fake's own bookkeeping a tenth of the measured time as the run went on."""

    def __init__(self) -> None:
        super().__init__()
        self.by_chat: dict[int, dict[int, dict[str, Any]]] = {}

    def __setitem__(self, key: tuple[int, int], message: dict[str, Any]) -> None:
        super().__setitem__(key, message)
        chat = self.by_chat.setdefault(key[0], {})
        out_of_order = bool(chat) and key[1] < next(reversed(chat))
        chat[key[1]] = message
        if out_of_order:  # kept in the order of the ids, so the newest is the last
            self.by_chat[key[0]] = dict(sorted(chat.items()))

    def __delitem__(self, key: tuple[int, int]) -> None:
        super().__delitem__(key)
        del self.by_chat[key[0]][key[1]]

    def pop(self, key: tuple[int, int], *default: Any) -> Any:
        if key in self:
            del self.by_chat[key[0]][key[1]]
        return super().pop(key, *default)

    def of_chat(self, chat_id: int) -> list[dict[str, Any]]:
        """A chat's messages in the order of their ids."""
        return list(self.by_chat.get(chat_id, {}).values())

    def newest(self, chat_id: int) -> dict[str, Any] | None:
        """The chat's message with the highest id."""
        mine = self.by_chat.get(chat_id)
        return mine[next(reversed(mine))] if mine else None


@dataclass
class FakeTelegram(BaseRequest):
    """Records every call and answers like the Bot API; messages are kept with their edits.

    It refuses what Telegram refuses (tests.auxil.telegram_rules: texts over 4,096 UTF-16 units,
    captions over 1,024, empty texts, button data over 64 bytes, ...) with Telegram's 400 and
    keeps each refusal in `refused`; `flood` answers 429 once a test enables it.
    """

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: ChatMessages = field(default_factory=ChatMessages)
    reply_keyboards: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    fail_methods: set[str] = field(default_factory=set)
    # method → how many of its next calls fail with a 502 Bad Gateway, as Telegram's do at times
    fail_next: dict[str, int] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)
    # files the bot uploaded and Telegram took (multipart): (chat id, message id) → the upload
    documents: dict[tuple[int, int], Upload] = field(default_factory=dict)
    refuse: bool = True  # False: record what Telegram would refuse, but take it (to measure)
    expect_refusals: bool = False  # the `world` fixture fails a test that caused any, unless set
    flood: FloodControl = field(default_factory=FloodControl)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _clock: int = 1_790_000_000
    # files people sent (file_id → path, content, declared size)
    files: dict[str, tuple[str, bytes, int]] = field(default_factory=dict)
    file_base: str = FILE_BASE  # where downloads must be asked for (the bot's base_file_url)
    _file_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # inline queries people typed (id → who), and those the bot answered: one answer each
    inline_queries: dict[str, int] = field(default_factory=dict)
    inline_answered: set[str] = field(default_factory=set)
    # command menus by (scope, language code): "default", "chat:<id>"; "" is every language
    menus: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    unreachable: set[int] = field(default_factory=set)  # chats Telegram cannot find (blocked)
    # method → seconds each of its calls takes to come back, as over a network (none: at once);
    # `returned` lists the calls in the order their answers came back
    round_trip: dict[str, float] = field(default_factory=dict)
    returned: list[str] = field(default_factory=list)

    def add_file(self, content: bytes, name: str, *, size: int | None = None) -> dict[str, Any]:
        """A document a person sends: kept for getFile and download, as Telegram keeps it.
        `size` declares another size than the content's (a 100 MB file, without its bytes)."""
        number = next(self._file_ids)
        file_id = f"file-{number}-{name}"
        declared = len(content) if size is None else size
        self.files[file_id] = (f"documents/file_{number}.xlsx", content, declared)
        return {
            "file_id": file_id,
            "file_unique_id": f"uniq-{number}",
            "file_name": name,
            "mime_type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "file_size": declared,
        }

    def _get_file(self, params: dict[str, Any]) -> Any:
        """getFile: an unknown id is a 400, a file over the download limit too (as the API)."""
        found = self.files.get(str(params.get("file_id")))
        if found is None:
            return 400, json.dumps(
                telegram_rules.error_body(400, "Bad Request: invalid file_id")
            ).encode()
        path, _content, size = found
        if size > DOWNLOAD_LIMIT:
            return 400, json.dumps(
                telegram_rules.error_body(400, "Bad Request: file is too big")
            ).encode()
        file_id = str(params["file_id"])
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": size, "file_path": path}

    def _download(self, url: str) -> tuple[int, bytes]:
        """A file download: only under the bot's file URL with its token, only a known path."""
        prefix = f"{self.file_base}{TOKEN}/"
        url = unquote(url)  # PTB sends the token's colon as %3A, as Telegram accepts it
        if not url.startswith(prefix):
            return 404, b'{"ok":false,"error_code":404,"description":"Not Found"}'
        path = url[len(prefix) :]
        for known, content, size in self.files.values():
            if known == path and size <= DOWNLOAD_LIMIT:
                return 200, content
        return 404, b'{"ok":false,"error_code":404,"description":"Not Found"}'

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        if "/file/bot" in url:
            self.calls.append(("download", {"url": url}))
            return self._download(url)
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        files = {
            key: (str(value[0]), bytes(value[1]))
            for key, value in ((request_data.multipart_data or {}) if request_data else {}).items()
        }
        upload = _upload(name, request_data)
        if upload is not None:  # the file's name stands in for it (kept in `documents`)
            params["document"] = f"upload:{upload['filename']}"
        self.calls.append((name, params))
        if self.round_trip.get(name):
            await asyncio.sleep(self.round_trip[name])
        try:
            return self._request(name, params, files, upload)
        finally:
            self.returned.append(name)

    def _request(
        self,
        name: str,
        params: dict[str, Any],
        files: dict[str, tuple[str, bytes]],
        upload: dict[str, Any] | None,
    ) -> tuple[int, bytes]:
        if name in self.fail_methods:
            from telegram.error import NetworkError

            raise NetworkError("fake network failure")
        if self.fail_next.get(name, 0) > 0:
            self.fail_next[name] -= 1
            body = {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            return 502, json.dumps(body).encode()
        description = telegram_rules.refusal(name, params) or telegram_rules.upload_refusal(
            name, params, upload, {key: data for key, (_, data) in files.items()}
        )
        if description is not None:
            self.refused.append(Refused(name, params, description))
            if self.refuse:
                return 400, json.dumps(telegram_rules.error_body(400, description)).encode()
        wait = self.flood.check(name, params)
        if wait is not None:
            body = telegram_rules.error_body(
                429, f"Too Many Requests: retry after {wait}", retry_after=wait
            )
            return 429, json.dumps(body).encode()
        result = self._answer(name, params)
        if isinstance(result, tuple):
            return result
        if files and isinstance(result, dict) and "message_id" in result:
            for key, (filename, content) in files.items():
                upload = Upload(filename, bytes(content), params, key)
                self.documents[(int(params["chat_id"]), result["message_id"])] = upload
                if key == "document":  # echoed as Telegram does, so PTB reads a Document
                    result["document"] = {
                        "file_id": f"file-{result['message_id']}",
                        "file_unique_id": f"u-{result['message_id']}",
                        "file_name": filename,
                        "file_size": len(content),
                    }
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getFile":
            return self._get_file(params)
        if name == "answerInlineQuery":
            return self._answer_inline(params)
        if name in ("setMyCommands", "deleteMyCommands"):
            return self._set_menu(name, params)
        if name == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Archive",
                "username": BOT_USERNAME,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": True,  # inline mode on (README: BotFather)
            }
        if name in ("sendMessage", "sendPhoto", "sendDocument", "sendLocation", "sendVoice"):
            chat_id = int(params["chat_id"])
            message = {
                "message_id": next(self._ids),
                "date": self._clock,
                "chat": {
                    "id": chat_id,
                    "type": "private" if chat_id > 0 else "group",
                    "first_name": "User",
                },
                "from": {
                    "id": BOT_ID,
                    "is_bot": True,
                    "first_name": "Archive",
                    "username": BOT_USERNAME,
                },
                "text": params.get("text", ""),
            }
            if params.get("caption") is not None:
                message["caption"] = params["caption"]
            sent_id = f"sent-{message['message_id']}"
            if name == "sendPhoto":
                message["photo"] = [
                    {"file_id": sent_id, "file_unique_id": sent_id, "width": 1, "height": 1}
                ]
            if name == "sendDocument":
                message["document"] = {"file_id": sent_id, "file_unique_id": sent_id}
            markup = params.get("reply_markup")
            if markup and "inline_keyboard" in markup:
                message["reply_markup"] = markup
            elif markup:  # reply keyboards are not echoed back by Telegram; keep them aside
                self.reply_keyboards[(chat_id, message["message_id"])] = markup
            self.messages[(chat_id, message["message_id"])] = message
            return message
        if name in ("editMessageText", "editMessageCaption", "editMessageReplyMarkup"):
            key = (int(params["chat_id"]), int(params["message_id"]))
            message = self.messages.get(key)
            if message is None:
                return 400, json.dumps(
                    {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: message to edit not found",
                    }
                ).encode()
            before = {field: message.get(field) for field in EDITABLE}
            if name == "editMessageText":
                message["text"] = params["text"]
            if name == "editMessageCaption":
                message["caption"] = params.get("caption") or ""
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            else:
                message.pop("reply_markup", None)
            if {field: message.get(field) for field in EDITABLE} == before:
                return 400, json.dumps(
                    {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: message is not modified",
                    }
                ).encode()
            return message
        if name == "deleteMessage":
            self.messages.pop((int(params["chat_id"]), int(params["message_id"])), None)
            return True
        return True  # answerCallbackQuery, setMyCommands, sendChatAction, ...

    def _answer_inline(self, params: dict[str, Any]) -> Any:
        """An inline query is answered once: a second answer, or one to a query nobody sent,
        is refused as Telegram refuses it (the 10-second timeout is not modelled)."""
        query_id = str(params.get("inline_query_id"))
        if query_id not in self.inline_queries or query_id in self.inline_answered:
            description = telegram_rules.QUERY_INVALID
            self.refused.append(Refused("answerInlineQuery", params, description))
            return 400, json.dumps(telegram_rules.error_body(400, description)).encode()
        self.inline_answered.add(query_id)
        return True

    def _set_menu(self, name: str, params: dict[str, Any]) -> Any:
        """setMyCommands / deleteMyCommands for a scope and language; a chat scope of a chat
        Telegram cannot find (the person blocked the bot, or never started it) is a 400."""
        scope = params.get("scope") or {"type": "default"}
        if isinstance(scope, str):
            scope = json.loads(scope)
        key = scope["type"] if scope["type"] != "chat" else f"chat:{scope['chat_id']}"
        if scope["type"] == "chat" and int(scope["chat_id"]) in self.unreachable:
            return 400, json.dumps(
                telegram_rules.error_body(400, "Bad Request: chat not found")
            ).encode()
        language = str(params.get("language_code") or "")
        if name == "deleteMyCommands":
            self.menus.pop((key, language), None)
        else:
            commands = params.get("commands") or []
            if isinstance(commands, str):
                commands = json.loads(commands)
            self.menus[(key, language)] = [c["command"] for c in commands]
        return True

    def menu_shown(self, chat_id: int, language: str) -> list[str]:
        """The menu a person of this language sees in their private chat, as Telegram picks
        it: the chat's own (in their language, then any), else the default one."""
        for key in (f"chat:{chat_id}", "all_private_chats", "default"):
            for code in (language, ""):
                if (key, code) in self.menus:
                    return self.menus[(key, code)]
        return []

    def menu_descriptions(self, chat_id: int) -> dict[str, str]:
        """The newest command descriptions set for a chat's own menu."""
        for name, params in reversed(self.calls):
            scope = params.get("scope") or {}
            if (
                name == "setMyCommands"
                and isinstance(scope, dict)
                and scope.get("chat_id") == chat_id
            ):
                return {c["command"]: c["description"] for c in params.get("commands") or []}
        return {}

    def inline_answers(self) -> list[dict[str, Any]]:
        """What the bot answered to inline queries, in order (results as dicts)."""
        return [p for name, p in self.calls if name == "answerInlineQuery"]

    # -- what the bot did -------------------------------------------------------------------
    def sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to a chat, in order, as they look now (edits applied)."""
        return self.messages.of_chat(chat_id)

    def reply_keyboard(self, chat_id: int) -> dict[str, Any] | None:
        """The reply keyboard (location button, ...) of the newest message that had one."""
        mine = [(m, k) for (c, m), k in self.reply_keyboards.items() if c == chat_id]
        return max(mine, key=lambda item: item[0])[1] if mine else None

    def uploaded(self, chat_id: int, message: dict[str, Any]) -> tuple[str, bytes]:
        """The file (name, bytes) a sent photo or document carried."""
        upload = self.documents[(chat_id, message["message_id"])]
        return upload.filename, upload.content

    def documents_to(self, chat_id: int, kind: str = "document") -> list[Upload]:
        """The files of `kind` (document, photo) the bot sent to a chat and Telegram took, in
        order."""
        return [
            upload
            for (chat, _message), upload in sorted(self.documents.items())
            if chat == chat_id and upload.field == kind
        ]

    def answers(self) -> list[dict[str, Any]]:
        return [p for name, p in self.calls if name == "answerCallbackQuery"]


def _upload(method: str, request_data: RequestData | None) -> dict[str, Any] | None:
    """The document a sendDocument call uploads (multipart), or None."""
    if method.lower() != "senddocument" or request_data is None:
        return None
    files = request_data.multipart_data if request_data.contains_files else {}
    if "document" not in files:
        return None
    filename, content, *_ = files["document"]
    return {"filename": filename, "content": content}


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    markup = message.get("reply_markup") or {}
    return [
        (b["text"], b.get("callback_data", ""))
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]


class Person:
    """A Telegram user in a private chat with the bot, driving it update by update."""

    _update_ids = itertools.count(1)

    def __init__(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        telegram: FakeTelegram,
        user_id: int,
        first_name: str = "Wang",
        language_code: str = "zh",
    ) -> None:
        self.app, self.telegram = app, telegram
        self.user = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        self.chat = {"id": user_id, "type": "private", "first_name": first_name}
        self._message_ids = itertools.count(1)
        # wait for the deliveries an update kicked off in the background (review cards to the
        # managers) before returning what the bot sent; False: return when the handler did
        self.settle = True

    @property
    def id(self) -> int:
        return int(self.user["id"])

    async def _feed(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        before = len(self.telegram.calls)
        payload["update_id"] = next(self._update_ids)
        await self.app.process_update(Update.de_json(payload, self.app.bot))
        if self.settle:
            await scheduler.settle(self.app)
        return [p for n, p in self.telegram.calls[before:] if n == "sendMessage"]

    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "message": {
                "message_id": next(self._message_ids),
                "date": 1_790_000_000,
                "chat": self.chat,
                "from": self.user,
                **content,
            }
        }

    async def send(self, text: str) -> list[dict[str, Any]]:
        """Type a message (commands get their entity); returns the messages the bot sent."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return await self._feed(self._message(**content))

    async def send_photo(self) -> list[dict[str, Any]]:
        photo = [
            {"file_id": f"photo-{i}", "file_unique_id": f"u{i}", "width": 90 * i, "height": 90 * i}
            for i in (1, 2)
        ]
        return await self._feed(self._message(photo=photo))

    async def send_sticker(self) -> list[dict[str, Any]]:
        sticker = {
            "file_id": "sticker-1",
            "file_unique_id": "s1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
        return await self._feed(self._message(sticker=sticker))

    async def send_document(self, name: str = "report.pdf") -> list[dict[str, Any]]:
        document = {
            "file_id": f"doc-{name}",
            "file_unique_id": f"d-{name}",
            "file_name": name,
            "mime_type": "application/pdf",
        }
        return await self._feed(self._message(document=document))

    async def send_file(
        self, content: bytes, name: str = "customers.xlsx", *, size: int | None = None
    ) -> list[dict[str, Any]]:
        """Send a document with this content (kept by the fake Telegram for getFile)."""
        document = self.telegram.add_file(content, name, size=size)
        return await self._feed(self._message(document=document))

    async def send_voice(self, seconds: int = 3) -> list[dict[str, Any]]:
        voice = {
            "file_id": f"voice-{seconds}",
            "file_unique_id": f"v{seconds}",
            "duration": seconds,
            "mime_type": "audio/ogg",
        }
        return await self._feed(self._message(voice=voice))

    async def send_location(self, latitude: float, longitude: float) -> list[dict[str, Any]]:
        location = {"latitude": latitude, "longitude": longitude}
        return await self._feed(self._message(location=location))

    async def inline(
        self, text: str, offset: str = "", chat_type: str = "supergroup"
    ) -> dict[str, Any] | None:
        """Type `@bot <text>` in some chat; the bot's answer (None if it gave none)."""
        query_id = f"iq-{next(self._update_ids)}"
        self.telegram.inline_queries[query_id] = self.id
        query = {
            "id": query_id,
            "from": self.user,
            "query": text,
            "offset": offset,
            "chat_type": chat_type,
        }
        before = len(self.telegram.calls)
        await self._feed({"inline_query": query})
        answers = [
            p
            for name, p in self.telegram.calls[before:]
            if name == "answerInlineQuery" and p.get("inline_query_id") == query_id
        ]
        return answers[-1] if answers else None

    async def press_data(self, message: dict[str, Any], data: str) -> list[dict[str, Any]]:
        """Press a button with the given callback data on a message (even a forged one)."""
        query = {
            "id": str(next(self._update_ids)),
            "from": self.user,
            "chat_instance": "ci",
            "data": data,
            "message": message,
        }
        return await self._feed({"callback_query": query})

    async def press(self, label: str, message: dict[str, Any] | None = None) -> list[dict]:
        """Press the button whose text contains `label` on `message` (default: the last one)."""
        message = message or self.last_message()
        for text, data in buttons(message):
            if label in text:
                return await self.press_data(message, data)
        raise AssertionError(f"no button {label!r} in {buttons(message)}: {message.get('text')}")

    def last_message(self) -> dict[str, Any]:
        newest = self.telegram.messages.newest(self.id)
        assert newest is not None, "the bot sent nothing"
        return newest

    def last_text(self) -> str:
        return str(self.last_message().get("text", ""))

    def last_answer(self) -> str | None:
        answers = [a for a in self.telegram.answers()]
        return answers[-1].get("text") if answers else None
