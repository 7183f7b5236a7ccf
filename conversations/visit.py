"""拜访记录 (/visit): log a visit with location, notes, next step and attachments."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def start_command(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `cv:` (log a visit for a customer) and `cvl:` (list its visits)."""
    raise NotImplementedError
