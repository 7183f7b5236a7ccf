"""The bot's own membership of a team's review group: removed, restricted, added back.

Telegram sends `my_chat_member` when someone removes the bot from a group, restricts it, or
adds it again. For a team's review group (/setgroup) that decides where review cards go
(storage.review_groups), and the team's managers are told privately, through the outbox, in the
same transaction. Any other chat, or an update about someone other than the bot, is ignored.
This runs before the gate: whoever removed the bot need not be staff, and is told nothing.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.context import BotContext
from bot.i18n import Translator, pick_language
from conversations import fit
from storage import outbox
from storage import review_groups as store

log = logging.getLogger(__name__)


async def on_my_chat_member(update: Update, context: BotContext) -> None:
    """Record a review group lost or regained, and tell its team's managers."""
    change = update.my_chat_member
    if change is None:
        return
    try:
        await _changed(update, context)
    except Exception:  # logged here: the gate must not go on to answer the update
        log.exception("my_chat_member in chat %s not recorded", change.chat.id)
    raise ApplicationHandlerStop  # nothing else handles it


async def _changed(update: Update, context: BotContext) -> None:
    change = update.my_chat_member
    assert change is not None
    member = change.new_chat_member
    if member.user.id != context.bot.id:  # about someone else: not ours to act on
        log.info("my_chat_member about user %s in chat %s ignored", member.user.id, change.chat.id)
        return
    services = context.services
    title = fit.clip(change.chat.title or str(change.chat.id), 60)
    async with context.unit_of_work() as session:
        now = services.clock()
        changes = await store.access_changed(
            session,
            chat_id=change.chat.id,
            status=member.status,
            can_send_messages=getattr(member, "can_send_messages", None),
            changed_by_telegram_id=change.from_user.id if change.from_user else None,
            now=now,
        )
        for team in changes:
            key = "review_ux.group.lost" if team.lost else "review_ux.group.restored"
            for manager in team.managers:
                _ = Translator(
                    pick_language(manager.language, None, services.settings.DEFAULT_LANGUAGE)
                )
                await outbox.queue_confirmation(
                    session,
                    keyring=services.keyring,
                    recipient=manager,
                    text=fit.message(_(key, team=team.team_name, group=title)),
                    markup=None,
                    now=now,
                )
            await store.send_waiting_privately(session, team, now)  # after the explanation
        queued = outbox.queued_in(session)
    await context.send_queued(queued)
