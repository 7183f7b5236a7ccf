"""The in-process fake Telegram refuses what Telegram refuses, and the bot copes with 429.

The same rules (tests/auxil/telegram_rules.py) serve the HTTP fake; tests/e2e/test_fake_bot_api.py
checks them there.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, RetryAfter

from bot.app import _post_init, build_application
from bot.context import Services
from bot.sender import Pacer
from conversations import fit
from tests.auxil.fake_telegram import FakeTelegram
from tests.auxil.telegram_rules import FloodControl, units
from tests.auxil.world import World

CHAT = 700_001
WIDE = "𠀀"  # one character, two UTF-16 units


def keyboard(text: str = "OK", data: str = "x") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data)]])


async def test_a_text_counts_in_utf16_units_up_to_4096(world: World) -> None:
    world.telegram.expect_refusals = True
    bot = world.app.bot
    await bot.send_message(CHAT, "a" * 4096)
    await bot.send_message(CHAT, WIDE * 2048)
    for too_long in ("a" * 4097, WIDE * 2048 + "a", "好" * 4097):
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await bot.send_message(CHAT, too_long)
    assert [r.description for r in world.telegram.refused] == [
        "Bad Request: message is too long"
    ] * 3
    assert len(world.telegram.sent_to(CHAT)) == 2  # a refused message is not in the chat


async def test_empty_texts_and_bad_buttons_are_refused(world: World) -> None:
    world.telegram.expect_refusals = True
    bot = world.app.bot
    for empty in (" ", "\n\t "):
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(CHAT, empty)
    await bot.send_message(CHAT, "ok", reply_markup=keyboard(data="d" * 64))
    await bot.send_message(CHAT, "ok", reply_markup=keyboard(data="好" * 21))  # 63 bytes
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "ok", reply_markup=keyboard(data="好" * 22))  # 66 bytes
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "ok", reply_markup=keyboard(data="d" * 65))
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_TEXT_EMPTY"):
        await bot.send_message(CHAT, "ok", reply_markup=keyboard(text=" "))
    many = InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(i), callback_data=str(i))] for i in range(101)]
    )
    with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
        await bot.send_message(CHAT, "ok", reply_markup=many)


async def test_edits_captions_and_answers_have_their_limits(world: World) -> None:
    world.telegram.expect_refusals = True
    bot = world.app.bot
    message = await bot.send_message(CHAT, "short")
    with pytest.raises(BadRequest, match=r"(?i)MESSAGE_TOO_LONG"):
        await bot.edit_message_text(WIDE * 2049, CHAT, message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.edit_message_text("  ", CHAT, message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.edit_message_reply_markup(
            CHAT, message.message_id, reply_markup=keyboard(data="")
        )
    await bot.send_photo(CHAT, "photo-1", caption="c" * 1024)
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await bot.send_photo(CHAT, "photo-1", caption=WIDE * 513)
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await bot.send_document(CHAT, "doc-1", caption="c" * 1025)
    photo = await bot.send_photo(CHAT, "photo-1", caption="c")
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await bot.edit_message_caption(CHAT, photo.message_id, caption="c" * 1025)
    await bot.edit_message_caption(CHAT, photo.message_id, caption="c" * 1024)
    await bot.answer_callback_query("1", text="a" * 200)
    with pytest.raises(BadRequest, match=r"(?i)MESSAGE_TOO_LONG"):
        await bot.answer_callback_query("1", text=WIDE * 101)


async def test_the_helper_fits_what_the_fake_would_refuse(world: World) -> None:
    """fit.* produce exactly what Telegram takes: the longest text, label, caption, answer."""
    bot = world.app.bot
    text = fit.compose([("title", fit.Slot(WIDE * 3000)), fit.Slot("b" * 5000)])
    assert units(text) <= 4096 and text.startswith("title𠀀") and text.endswith("…")
    await bot.send_message(CHAT, text, reply_markup=keyboard(text=fit.label(WIDE * 100)))
    await bot.send_message(CHAT, fit.message(WIDE * 5000))
    await bot.send_photo(CHAT, "p", caption=fit.caption(WIDE * 600))
    await bot.answer_callback_query("1", text=fit.answer("好" * 300))
    long_list = "\n".join(f"{n}. " + WIDE * 300 for n in range(20))
    pieces = fit.split(long_list)
    assert len(pieces) == 4 and all(units(p) <= 4096 for p in pieces)  # six lines each
    assert "\n".join(pieces) == long_list  # cut at line ends, nothing lost
    for piece in pieces:
        await bot.send_message(CHAT, piece)
    assert fit.clip(WIDE * 3, 4) == WIDE + "…"  # a character is never split in half
    assert world.telegram.refused == []


async def test_flood_control_answers_429_with_retry_after(world: World) -> None:
    telegram = world.telegram
    telegram.flood = FloodControl(enabled=True, per_chat=2, chat_window=60, retry_after=7)
    await world.app.bot.send_message(CHAT, "1")
    await world.app.bot.send_message(CHAT, "2")
    with pytest.raises(RetryAfter) as raised:
        await world.app.bot.send_message(CHAT, "3")
    assert raised.value._retry_after.total_seconds() == 7  # type: ignore[attr-defined]
    await world.app.bot.send_message(CHAT + 1, "another chat is not held up")
    assert telegram.flood.refused == 1


async def test_the_reminder_pacer_keeps_a_burst_within_flood_control(world: World) -> None:
    """About one message a second in a chat and 30 a second overall: the sender's Pacer never
    makes Telegram answer 429, not for 40 people at once nor for three messages to one."""
    telegram = world.telegram
    telegram.flood = FloodControl(enabled=True, per_chat=1, chat_window=1.0, overall=30)
    pacer = Pacer()

    async def send(chat_id: int, text: str) -> None:
        async with pacer.turn(chat_id):
            await world.app.bot.send_message(chat_id, text)

    started = time.monotonic()
    chats = [CHAT + n for n in range(40)] + [CHAT] * 2
    await asyncio.gather(*(send(chat, f"reminder {n}") for n, chat in enumerate(chats)))
    assert telegram.flood.refused == 0
    assert len(telegram.sent_to(CHAT)) == 3
    assert time.monotonic() - started >= 1.0  # the 31st message waited for the next second


async def test_replies_flooded_in_a_chat_still_arrive_through_the_rate_limiter(
    services: Services,
) -> None:
    """Handlers answer with an edit and a message at once; when Telegram's flood control
    refuses one, PTB's AIORateLimiter (max_retries=3) waits as asked and sends it again."""
    telegram = FakeTelegram()
    telegram.flood = FloodControl(enabled=True, per_chat=1, chat_window=1.0, retry_after=1)
    app = build_application(services, request=telegram, rate_limit=True)
    await app.initialize()
    await _post_init(app)
    try:
        world = World(app, telegram, services, itertools.count(700_001))
        person = await world.member("salesperson")
        await person.send("/new")
        await person.press("企业")
        assert telegram.flood.refused >= 1
        assert "名称" in person.last_text()  # the next question arrived all the same
        assert not [m for m in telegram.sent_to(person.id) if "出错" in str(m.get("text"))]
    finally:
        await app.shutdown()
