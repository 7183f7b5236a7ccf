"""/find and /my: searching and listing the customers the user may see."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def find_command(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def my_command(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `f…:` buttons (filters, pages, results)."""
    raise NotImplementedError
