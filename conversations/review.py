"""审核: notices to managers, Approve / Reject in chat, and the /review queue."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def announce(context: BotContext, review_id: int) -> None:
    """Send the notice of a new submission to the team's managers (or their group chat)."""
    return None


async def queue_command(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def setgroup_command(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `rv:` buttons."""
    raise NotImplementedError
