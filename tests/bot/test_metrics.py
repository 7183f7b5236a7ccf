"""The counters behind /metrics that no end-to-end run reaches cheaply: 429s from Telegram."""

from __future__ import annotations

import pytest
from telegram.error import RetryAfter
from telegram.ext import ExtBot

from bot import metrics
from tests.auxil.fake_telegram import TOKEN, FakeTelegram


def too_many_requests() -> float:
    return metrics.REGISTRY.get_sample_value("archive_bot_telegram_429_total") or 0.0


async def test_every_429_is_counted_also_those_the_rate_limiter_retries() -> None:
    telegram = FakeTelegram()
    telegram.flood.enabled, telegram.flood.per_chat, telegram.flood.chat_window = True, 1, 60
    bot = ExtBot(
        TOKEN,
        request=telegram,
        get_updates_request=FakeTelegram(),
        rate_limiter=metrics.CountingRateLimiter(max_retries=1),
    )
    await bot.initialize()
    try:
        before = too_many_requests()
        await bot.send_message(7, "first")  # within the chat's allowance
        assert too_many_requests() == before
        with pytest.raises(RetryAfter):  # refused, retried once after the wait, refused again
            await bot.send_message(7, "second")
        assert too_many_requests() == before + 2
        assert [name for name, _ in telegram.calls].count("sendMessage") == 3
    finally:
        await bot.shutdown()


def test_update_kinds_are_labels_without_people() -> None:
    from telegram import Update

    assert metrics.update_kind(Update.de_json({"update_id": 1}, None)) == "other"
    assert metrics.update_kind(object()) == "other"
