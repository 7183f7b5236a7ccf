"""Editing a customer: pick a field, give the new value; approved records get a pending change."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ce:` buttons."""
    raise NotImplementedError
