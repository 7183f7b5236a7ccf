"""Telegram sends only the update kinds the bot asks for: a handler whose kind is missing from
`UPDATE_KINDS` would never run in production, while the tests (which feed updates directly)
would still pass."""

from telegram.ext import (
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
)

from bot.app import UPDATE_KINDS
from tests.auxil.world import World


def _kinds_of(handler: object) -> set[str]:
    if isinstance(handler, CommandHandler | MessageHandler):
        return {"message"}
    if isinstance(handler, CallbackQueryHandler):
        return {"callback_query"}
    if isinstance(handler, InlineQueryHandler):
        return {"inline_query"}
    if isinstance(handler, ChatMemberHandler):
        return {
            ChatMemberHandler.MY_CHAT_MEMBER: {"my_chat_member"},
            ChatMemberHandler.CHAT_MEMBER: {"chat_member"},
        }.get(handler.chat_member_types, {"my_chat_member", "chat_member"})
    if isinstance(handler, TypeHandler):
        return set()  # the gate: sees whatever arrives
    raise AssertionError(f"unknown handler type {type(handler).__name__}: map it here")


async def test_every_handled_update_kind_is_asked_for(world: World) -> None:
    handled = {
        kind
        for group in world.app.handlers.values()
        for handler in group
        for kind in _kinds_of(handler)
    }
    assert {"message", "callback_query", "inline_query", "my_chat_member"} <= handled
    assert handled <= set(UPDATE_KINDS), handled - set(UPDATE_KINDS)
