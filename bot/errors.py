"""The one error handler: log first (without personal data), then tell the user kindly."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden, NetworkError

from bot.context import BotContext

log = logging.getLogger(__name__)


async def on_error(update: object, context: BotContext) -> None:
    """Log the failure with ids only, and ask the user to try again; their draft is kept."""
    error = context.error
    user_id = chat_id = update_id = None
    if isinstance(update, Update):
        update_id = update.update_id
        user_id = update.effective_user.id if update.effective_user else None
        chat_id = update.effective_chat.id if update.effective_chat else None
    if isinstance(error, NetworkError) and not isinstance(error, Forbidden):
        log.warning("network error on update %s: %s", update_id, type(error).__name__)
    else:
        log.error(
            "error handling update %s (user %s)",
            update_id,
            user_id,
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )
    if chat_id is None or isinstance(error, Forbidden):
        return
    try:
        if isinstance(update, Update) and update.callback_query is not None:
            await update.callback_query.answer(context._("error.try_again"), show_alert=True)
        else:
            await context.bot.send_message(chat_id, context._("error.try_again"))
    except (NetworkError, Forbidden):
        log.warning("could not tell user %s about the error", user_id)
