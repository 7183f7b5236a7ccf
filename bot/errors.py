"""The one error handler: log first (without personal data), then tell the user kindly."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import BadRequest, Forbidden, NetworkError

from bot import metrics, side_calls
from bot.context import LANGUAGE_KEY, BotContext
from bot.i18n import pick_language

log = logging.getLogger(__name__)


def answer_language(update: object, context: BotContext) -> str:
    """The language the gate chose for this user (PTB hands us a fresh context), else their
    Telegram app's, else the default."""
    remembered = context.user_data.get(LANGUAGE_KEY) if context.user_data is not None else None
    user = update.effective_user if isinstance(update, Update) else None
    return pick_language(
        remembered,
        user.language_code if user else None,
        context.services.settings.DEFAULT_LANGUAGE,
    )


async def on_error(update: object, context: BotContext) -> None:
    """Log the failure with ids only, and ask the user to try again; their draft is kept."""
    error = context.error
    user_id = chat_id = update_id = None
    if isinstance(update, Update):
        update_id = update.update_id
        user_id = update.effective_user.id if update.effective_user else None
        chat_id = update.effective_chat.id if update.effective_chat else None
    network = isinstance(error, NetworkError) and not isinstance(error, Forbidden)
    metrics.ERRORS.labels("network" if network else "handler").inc()
    if network:
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
    context.language = answer_language(update, context)
    text = context._("error.try_again")
    await side_calls.settled()  # the press's own answer first: the apology is what stays
    try:
        if isinstance(update, Update) and update.callback_query is not None:
            try:
                await update.callback_query.answer(text, show_alert=True)
                return
            except BadRequest:  # the press was answered before the failure: write instead
                pass
        await context.bot.send_message(chat_id, text)
    except (NetworkError, Forbidden):
        log.warning("could not tell user %s about the error", user_id)
