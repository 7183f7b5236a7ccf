"""The load test's reference: a bare python-telegram-bot echo bot in webhook mode.

It runs where the bot runs in tests/bench/load.py (behind the same haproxy, against the same fake
Bot API, with PTB's own rate limiter, one update at a time as the bot takes them) and answers
every update with one message, so the load test's figures for the bot stand beside what PTB,
tornado and the network hops cost alone. Configured by the bot's own environment variables
(TELEGRAM_BOT_TOKEN, TELEGRAM_BASE_URL, WEBHOOK_LISTEN, WEBHOOK_PORT, WEBHOOK_URL,
WEBHOOK_SECRET).

    python -m tests.bench.echo_webhook
"""

from __future__ import annotations

import os

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

BUTTONS = InlineKeyboardMarkup([[InlineKeyboardButton("echo", callback_data="echo")]])


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    message = update.effective_message
    text = (message.text if message else None) or "echo"
    await context.bot.send_message(update.effective_chat.id, text, reply_markup=BUTTONS)


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.callback_query is not None and update.effective_chat is not None
    await update.callback_query.answer()
    await context.bot.send_message(update.effective_chat.id, "pressed", reply_markup=BUTTONS)


def main() -> None:
    env = os.environ
    application = (
        Application.builder()
        .token(env["TELEGRAM_BOT_TOKEN"])
        .base_url(env["TELEGRAM_BASE_URL"])
        .rate_limiter(AIORateLimiter(max_retries=3))
        .build()
    )
    application.add_handler(MessageHandler(filters.ALL, echo))
    application.add_handler(CallbackQueryHandler(pressed))
    application.run_webhook(
        listen=env.get("WEBHOOK_LISTEN", "127.0.0.1"),
        port=int(env["WEBHOOK_PORT"]),
        url_path="telegram",
        secret_token=env.get("WEBHOOK_SECRET"),
        webhook_url=env["WEBHOOK_URL"],
    )


if __name__ == "__main__":
    main()
