"""关键联系人: add, edit and remove the key persons of a customer."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ck:` (a customer's key persons) and `kp:` (one key person's actions)."""
    raise NotImplementedError
