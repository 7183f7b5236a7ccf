"""投诉登记 (/complaint): log a complaint; the handler moves it on and records the resolution."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def start_command(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `cc:` (log for a customer), `ccl:` (list) and `cx:` (complaint actions)."""
    raise NotImplementedError
