"""Editing the bot's own messages, where an edit Telegram refuses as pointless is no failure."""

from __future__ import annotations

from telegram import CallbackQuery, InlineKeyboardMarkup, Message
from telegram.error import BadRequest

from bot.side_calls import meanwhile
from conversations import fit

HARMLESS_EDIT_ERRORS = ("not modified", "can't be edited", "not found")


def is_harmless_edit_error(error: BadRequest) -> bool:
    """The edit changed nothing, or the message is too old to edit or gone."""
    return any(known in str(error).lower() for known in HARMLESS_EDIT_ERRORS)


async def close_buttons(message: object, note: str | None = None) -> None:
    """Take the buttons off an answered message, adding `→ note` under its text if given.

    Cosmetic: a message already edited, too old or gone is left as it is.
    """
    if not isinstance(message, Message):
        return
    try:
        if note and message.text:  # a long text gives way to the note, which must show
            await message.edit_text(fit.compose([fit.Slot(message.text), "", f"→ {note}"]))
        else:
            await message.edit_reply_markup(None)
    except BadRequest as error:
        if not is_harmless_edit_error(error):
            raise


async def press_taken(query: CallbackQuery, note: str | None = None) -> None:
    """The press is taken: its spinner stops and its buttons close (`→ note`), beside the
    handler's answer (bot.side_calls), so the person waits for the next question alone."""
    await meanwhile(query.answer())
    await meanwhile(close_buttons(query.message, note))


async def edit_quietly(
    message: object, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Show `text` (and `markup`) in `message`; a harmless refusal leaves it as it is."""
    if not isinstance(message, Message):
        return
    try:
        await message.edit_text(text, reply_markup=markup)
    except BadRequest as error:
        if not is_harmless_edit_error(error):
            raise


async def replace_page(message: object, text: str, markup: InlineKeyboardMarkup) -> bool:
    """Show a new page in the text `message`: False if it cannot (send the page anew then)."""
    if not isinstance(message, Message) or not message.text:
        return False
    try:
        await message.edit_text(text, reply_markup=markup)
    except BadRequest as error:
        if not is_harmless_edit_error(error):
            raise
        return "not modified" in str(error).lower()
    return True
