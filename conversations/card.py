"""The customer card: the record with sensitive values masked, and buttons for what to do."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `cu:` (open), `cr:` (reveal) and `ch:` (history) buttons."""
    raise NotImplementedError
