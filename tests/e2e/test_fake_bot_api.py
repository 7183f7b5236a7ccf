"""Self-test of the fake Bot API: a real python-telegram-bot Application must work against it."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, EndPointNotFound, InvalidToken, RetryAfter
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.e2e.fake_bot_api import FakeBotApi, UploadedFile
from tests.e2e.harness import BotProcess
from tests.e2e.support import TOKEN


def _post(url: str, body: bytes = b"", ctype: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Like 👍", callback_data="like")]])
    await update.message.reply_text(f"echo: {update.message.text}", reply_markup=keyboard)


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.message.reply_text(f"welcome {update.effective_user.first_name}")


async def _media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    assert message.api_kwargs == {}, message.api_kwargs  # every field we send is a known one
    kind = type(message.effective_attachment).__name__
    if message.location:
        kind += f" {message.location.latitude},{message.location.horizontal_accuracy}"
    await message.reply_text(f"got {kind} {message.caption or ''}".strip())


async def _pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer("ok")
    await query.edit_message_text(f"pressed {query.data}")


async def test_application_round_trip(api: FakeBotApi) -> None:
    app = ApplicationBuilder().token(TOKEN).base_url(api.base_url).build()
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _echo))
    app.add_handler(MessageHandler(~filters.TEXT, _media))
    app.add_handler(CallbackQueryHandler(_pressed))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        assert app.bot.username == "archive_test_bot"
        user = api.user(42, first_name="小王")

        api.send_text(user, "/start")
        welcome = await api.wait_for_message_async(42)
        assert welcome["text"] == "welcome 小王"
        assert welcome["from"]["id"] == 123456 and welcome["chat"]["type"] == "private"

        api.send_text(user, "你好 123")
        echo = await api.wait_for_message_async(42, lambda m: "echo" in m["text"])
        assert echo["text"] == "echo: 你好 123"  # free text is not JSON-decoded
        assert echo["message_id"] > welcome["message_id"]
        sent = [p for m, p in api.calls if m == "sendMessage"][-1]
        assert sent["chat_id"] == 42
        assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "like"

        mark = api.last_seq()
        api.press_button(user, echo, api.button_data(echo, "Like"))
        edited = await api.wait_for_message_async(42, after=mark)
        assert (edited["event"], edited["text"]) == ("edited", "pressed like")
        assert "reply_markup" not in edited  # edit without reply_markup drops the keyboard
        answer = [p for m, p in api.calls if m == "answerCallbackQuery"][-1]
        assert answer["text"] == "ok" and isinstance(answer["callback_query_id"], str)
        assert api.sent_messages(42)[-1]["text"] == "pressed like"
        with pytest.raises(AssertionError, match="Like"):
            api.button_data(echo, "Dislike")

        user_messages = [
            (api.send_photo, {"caption": "门头"}, "got tuple 门头"),  # effective_attachment: sizes
            (
                api.send_location,
                {"latitude": 31.2, "longitude": 121.5, "horizontal_accuracy": 9},
                "got Location 31.2,9",
            ),
            (api.send_sticker, {}, "got Sticker"),
            (api.send_document, {}, "got Document"),
            (api.send_voice, {}, "got Voice"),
        ]
        for send, kwargs, expected in user_messages:
            mark = api.last_seq()
            send(user, **kwargs)
            assert (await api.wait_for_message_async(42, after=mark))["text"] == expected

        with pytest.raises(BadRequest, match="not modified"):
            await app.bot.edit_message_text("pressed like", 42, edited["message_id"])

        doc = await app.bot.send_document(42, b"hello", filename="a.txt", caption="文件")
        assert doc.document.file_name == "a.txt" and doc.caption == "文件"
        upload = [p for m, p in api.calls if m == "sendDocument"][-1]["document"]
        assert isinstance(upload, UploadedFile) and upload.content == b"hello"
        photo = await app.bot.send_photo(42, b"\x89PNG fake", caption="pic")
        assert len(photo.photo) == 2 and photo.caption == "pic"
        location = await app.bot.send_location(42, 31.2, 121.5)
        assert location.location.longitude == 121.5
        copied = await app.bot.copy_message(42, 42, photo.message_id, caption="copy")
        assert api.sent_messages(42)[-1]["caption"] == "copy"
        assert copied.message_id == photo.message_id + 2
        assert await app.bot.delete_message(42, doc.message_id)
        deleted = [m["caption"] for m in api.sent_messages(42) if m.get("deleted")]
        assert deleted == ["文件"]

        with pytest.raises(EndPointNotFound):
            await app.bot.do_api_request("noSuchMethod")
        with pytest.raises(AssertionError, match="pressed like"):
            api.wait_for_message(42, after=api.last_seq(), timeout=0.1)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert api.calls[-1][0] == "getUpdates"  # PTB confirms the last offset on stop


async def test_wrong_token_is_invalid_token(api: FakeBotApi) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=api.base_url):
            pass


def test_http_level(api: FakeBotApi) -> None:
    root = api.base_url.removesuffix("/bot")
    assert _post(f"{api.base_url}{TOKEN}/getMe")[1]["result"]["is_bot"] is True
    assert _post(f"{api.base_url}{TOKEN}/noSuchMethod")[0] == 404
    assert _post(f"{api.base_url}wrong/getMe") == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert _post(f"{root}/file/bot{TOKEN}/photos/x.jpg")[0] == 404
    form = b"chat_id=7&text=%5B1%5D&reply_markup=%7B%22inline_keyboard%22%3A%5B%5D%7D"
    status, body = _post(
        f"{api.base_url}{TOKEN}/sendMessage", form, "application/x-www-form-urlencoded"
    )
    assert status == 200 and body["result"]["text"] == "[1]"
    assert api.calls[-1][1] == {
        "chat_id": 7,
        "text": "[1]",
        "reply_markup": {"inline_keyboard": []},
    }

    # Long polling: blocks until an update is queued, and offset confirms earlier updates.
    user = api.user(7)
    threading.Timer(0.3, api.send_text, (user, "late")).start()
    started = time.monotonic()
    status, body = _post(f"{api.base_url}{TOKEN}/getUpdates", b'{"timeout": 5}')
    assert 0.2 < time.monotonic() - started < 4
    update_id = body["result"][0]["update_id"]
    assert body["result"][0]["message"]["text"] == "late"
    started = time.monotonic()
    offset = json.dumps({"offset": update_id + 1, "timeout": 0.5}).encode()
    assert _post(f"{api.base_url}{TOKEN}/getUpdates", offset)[1]["result"] == []
    assert time.monotonic() - started >= 0.4


_ECHO_SCRIPT = """
import os
from telegram.ext import ApplicationBuilder, MessageHandler, filters
async def echo(update, context):
    await update.message.reply_text("echo: " + update.message.text)
app = (ApplicationBuilder().token(os.environ["TELEGRAM_BOT_TOKEN"])
       .base_url(os.environ["TELEGRAM_BASE_URL"]).build())
app.add_handler(MessageHandler(filters.TEXT, echo))
app.run_polling(poll_interval=0, timeout=1)
"""


def test_harness_runs_and_restarts_a_subprocess(api: FakeBotApi, tmp_path: Path) -> None:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": api.base_url}
    bot = BotProcess(env, log_dir=tmp_path, argv=[sys.executable, "-c", _ECHO_SCRIPT])
    with bot:
        bot.wait_until_polling(api, timeout=30)
        api.send_text(api.user(5), "one")
        assert api.wait_for_message(5)["text"] == "echo: one"
        bot.restart()
        bot.wait_until_polling(api, timeout=30)
        mark = api.last_seq()
        api.send_text(api.user(5), "two")
        assert api.wait_for_message(5, after=mark)["text"] == "echo: two"
    assert bot.stop() == 0, bot.log_text()
    assert bot.log_text().count("===== start") == 2


def test_it_refuses_what_telegram_refuses(api: FakeBotApi) -> None:
    """Oversize texts (UTF-16 units), captions, answers; empty texts; bad buttons: 400."""
    api.expect_refusals = True
    url = f"{api.base_url}{TOKEN}"

    def call(method: str, **params: object) -> tuple[int, dict]:
        return _post(f"{url}/{method}", json.dumps(params).encode())

    wide = "𠀀"  # two UTF-16 units
    assert call("sendMessage", chat_id=7, text=wide * 2048)[0] == 200
    sent = call("sendMessage", chat_id=7, text="short")[1]["result"]
    refusals = [
        (call("sendMessage", chat_id=7, text=wide * 2048 + "a"), "message is too long"),
        (call("sendMessage", chat_id=7, text=" \n "), "message text is empty"),
        (
            call("editMessageText", chat_id=7, message_id=sent["message_id"], text="a" * 4097),
            "MESSAGE_TOO_LONG",
        ),
        (
            call("sendPhoto", chat_id=7, photo="x", caption="c" * 1025),
            "message caption is too long",
        ),
        (call("answerCallbackQuery", callback_query_id="1", text="a" * 201), "MESSAGE_TOO_LONG"),
        (
            call(
                "sendMessage",
                chat_id=7,
                text="ok",
                reply_markup={"inline_keyboard": [[{"text": "b", "callback_data": "好" * 22}]]},
            ),
            "BUTTON_DATA_INVALID",
        ),
        (
            call(
                "sendMessage",
                chat_id=7,
                text="ok",
                reply_markup={"inline_keyboard": [[{"text": "", "callback_data": "x"}]]},
            ),
            "BUTTON_TEXT_EMPTY",
        ),
    ]
    for (status, body), description in refusals:
        assert (status, body["ok"], body["error_code"]) == (400, False, 400)
        assert body["description"] == f"Bad Request: {description}"
    assert len(api.refused) == len(refusals)
    assert [m["text"][:1] for m in api.sent_messages(7)] == [wide[:1], "s"]  # nothing refused
    ok = call("sendPhoto", chat_id=7, photo="x", caption="c" * 1024)
    assert ok[0] == 200 and call("answerCallbackQuery", callback_query_id="1", text="a" * 200)[0]


def test_flood_control_answers_429_when_switched_on(api: FakeBotApi) -> None:
    url = f"{api.base_url}{TOKEN}/sendMessage"
    body = json.dumps({"chat_id": 7, "text": "hi"}).encode()
    assert [_post(url, body)[0] for _ in range(5)] == [200] * 5  # off by default
    api.flood.enabled, api.flood.per_chat, api.flood.chat_window = True, 1, 60
    assert _post(url, body)[0] == 200
    status, answer = _post(url, body)
    assert (status, answer["parameters"]) == (429, {"retry_after": 1})
    assert answer["description"] == "Too Many Requests: retry after 1"
    assert _post(url, json.dumps({"chat_id": 8, "text": "hi"}).encode())[0] == 200


async def test_a_bot_hears_the_refusal_as_telegram_says_it(api: FakeBotApi) -> None:
    api.expect_refusals = True
    async with Bot(TOKEN, base_url=api.base_url) as bot:
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(7, "a" * 4097)
        api.flood.enabled, api.flood.per_chat, api.flood.chat_window = True, 1, 60
        api.flood.retry_after = 3
        await bot.send_message(7, "one")
        with pytest.raises(RetryAfter):
            await bot.send_message(7, "two")
