"""Reminders in chat: their buttons (`rm:`), the date question, /testreminder. How a reminder
reads (and the buttons it is drawn with) is bot/reminder_text.py's.

Buttons: `rm:o:<id>` opens one reminder of a grouped message with its own buttons; `rm:s:<id>:<d>`
snoozes it d days; `rm:r:<id>` offers new dates, `rm:d:<id>:<d>` takes one, `rm:t:<id>` asks
for a typed date, `rm:b:<id>` goes back; `rm:k:<id>` marks it done; `rm:a:<id>` confirms a record
is still accurate. Log visit is `cv:<customer id>` (the visit flow); Approve / Reject / Open and
Resubmit are the review module's `rv:` buttons. Every press is a claim that `storage.reminders`
checks again: whose reminder it is, whether it is still open, and the customer's current state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from bot.context import BotContext
from bot.i18n import Translator, has_message
from bot.reminder_text import actions_markup, button_data, item_text
from conversations import runner
from conversations.callback_data import REMINDERS, parse_id
from conversations.messages import close_buttons, is_harmless_edit_error
from conversations.steps import Flow, FlowEnv, Step, Submitted
from storage import permissions, validation
from storage import reminders as store
from storage.db import unit_of_work
from storage.errors import Refused
from storage.models import Customer
from storage.reminders import Notice, Outcome, Rules

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# buttons


def _rules(context: BotContext) -> Rules:
    return Rules.from_settings(context.services.settings)


def _local(context: BotContext, moment: datetime) -> str:
    tz = store.zone(context.member.timezone, context.services.settings.TIMEZONE)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def refusal_text(_: Translator, refusal: Refused) -> str:
    for key in (f"reminders.refused.{refusal.code}", f"refused.{refusal.code}"):
        if has_message(key):
            return _(key)
    return _("refused.not_allowed")


def outcome_text(context: BotContext, outcome: Outcome) -> str:
    _ = context._
    if outcome.action == "snoozed" and outcome.until is not None:
        return _("reminders.snoozed", when=_local(context, outcome.until))
    if outcome.action == "rescheduled" and outcome.next_followup_on is not None:
        return _("reminders.rescheduled", on=outcome.next_followup_on.isoformat())
    if outcome.action == "done" and outcome.next_followup_on is not None:
        return _("reminders.done_followup", on=outcome.next_followup_on.isoformat())
    return _(f"reminders.{outcome.action}")


Action = Callable[[AsyncSession], Awaitable[Outcome]]


def _query(update: Update) -> CallbackQuery:
    assert update.callback_query is not None
    return update.callback_query


async def _act(query: CallbackQuery, context: BotContext, action: Action) -> None:
    """Run one action in one transaction; a refusal keeps its audit entry and is explained."""
    result: Outcome | Refused
    async with unit_of_work(context.services.sessions) as session:
        try:
            result = await action(session)
        except Refused as refusal:  # raised before any write but its audit entry
            result = refusal
    if isinstance(result, Refused):
        await query.answer(refusal_text(context._, result), show_alert=True)
        if result.code in ("reminder_handled", "reminder_outdated"):
            await close_buttons(query.message, context._(f"reminders.refused.{result.code}"))
        return
    text = outcome_text(context, result)
    await query.answer(text)
    await close_buttons(query.message, text)


async def _notice(context: BotContext, reminder_id: int) -> Notice | None:
    """The reminder as its recipient reads it now; None once it is gone or not theirs."""
    services = context.services
    async with unit_of_work(services.sessions) as session:
        return await store.notice_of(
            session,
            keyring=services.keyring,
            rules=_rules(context),
            actor=context.member,
            reminder_id=reminder_id,
            now=services.clock(),
        )


async def _open(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    """Send one reminder of a grouped message on its own, with its buttons."""
    query = _query(update)
    notice = await _notice(context, reminder_id)
    if notice is None:
        await query.answer(context._("reminders.gone"), show_alert=True)
        return
    await query.answer()
    chat_id = context.member.telegram_id
    await context.bot.send_message(
        chat_id, item_text(notice, context._), reply_markup=actions_markup(notice, context._)
    )


async def _snooze(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    query = _query(update)
    days = parse_id(arg)
    if days is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await _act(
        query,
        context,
        lambda session: store.snooze(
            session,
            actor=context.member,
            reminder_id=reminder_id,
            days=days,
            now=context.services.clock(),
        ),
    )


async def _check(query: CallbackQuery, context: BotContext, reminder_id: int, action: str) -> bool:
    """May `action` be taken on the reminder now? If not, say why."""
    refusal = None
    async with unit_of_work(context.services.sessions) as session:
        try:
            await store.actionable(
                session, actor=context.member, reminder_id=reminder_id, action=action
            )
        except Refused as error:
            refusal = error
    if refusal is not None:
        await query.answer(refusal_text(context._, refusal), show_alert=True)
        return False
    return True


async def _dates(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    """Offer new dates for the follow-up, in place of the reminder's buttons."""
    query = _query(update)
    if not await _check(query, context, reminder_id, "reschedule"):
        return
    _ = context._
    days = [
        InlineKeyboardButton(
            _("reminders.button.days", days=d), callback_data=button_data("d", reminder_id, d)
        )
        for d in store.RESCHEDULE_DAYS
    ]
    keyboard = InlineKeyboardMarkup(
        [
            days,
            [
                InlineKeyboardButton(
                    _("reminders.button.type_date"), callback_data=button_data("t", reminder_id)
                ),
                InlineKeyboardButton(_("button.back"), callback_data=button_data("b", reminder_id)),
            ],
        ]
    )
    await query.answer(_("reminders.pick_date"))
    await _markup(query, keyboard)


async def _markup(query: CallbackQuery, keyboard: InlineKeyboardMarkup | None) -> None:
    message = query.message
    if not isinstance(message, Message):
        return
    try:
        await message.edit_reply_markup(keyboard)
    except BadRequest as error:
        if not is_harmless_edit_error(error):
            raise


async def _back(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    """Put the reminder's own buttons back."""
    query = _query(update)
    notice = await _notice(context, reminder_id)
    if notice is None:
        await query.answer(context._("reminders.gone"), show_alert=True)
        await _markup(query, None)
        return
    await query.answer()
    await _markup(query, actions_markup(notice, context._))


async def _reschedule_in(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    query = _query(update)
    days = parse_id(arg)
    if days is None or days not in store.RESCHEDULE_DAYS:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    services = context.services
    rules = _rules(context)
    on = rules.today_of(context.member, services.clock()) + timedelta(days=days)
    await _act(
        query,
        context,
        lambda session: store.reschedule(
            session,
            keyring=services.keyring,
            rules=rules,
            actor=context.member,
            reminder_id=reminder_id,
            on=on,
            now=services.clock(),
        ),
    )


async def _type_date(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    """Ask for the date in a one-question flow (typed dates are checked like any answer)."""
    query = _query(update)
    if not await _check(query, context, reminder_id, "reschedule"):
        return
    await query.answer()
    await _markup(query, None)
    await runner.start(update, context, FLOW, initial={"reminder_id": str(reminder_id)})


async def _done(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    query = _query(update)
    services = context.services
    await _act(
        query,
        context,
        lambda session: store.done(
            session,
            keyring=services.keyring,
            rules=_rules(context),
            actor=context.member,
            reminder_id=reminder_id,
            now=services.clock(),
        ),
    )


async def _confirm(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    query = _query(update)
    await _act(
        query,
        context,
        lambda session: store.confirm_accurate(
            session, actor=context.member, reminder_id=reminder_id, now=context.services.clock()
        ),
    )


_BUTTONS = {
    "o": _open,
    "s": _snooze,
    "r": _dates,
    "d": _reschedule_in,
    "t": _type_date,
    "b": _back,
    "k": _done,
    "a": _confirm,
}


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `rm:` buttons on reminders."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = REMINDERS.parse(query.data)
    handler = _BUTTONS.get(press.fields[0]) if press is not None and len(press) in (2, 3) else None
    reminder_id = press.id(1) if press is not None and handler is not None else None
    if press is None or handler is None or reminder_id is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await handler(update, context, reminder_id, press.text(2) or "")


# ---------------------------------------------------------------------------------------------
# the typed date: a one-question flow


def _within_a_year(value: str, env: FlowEnv) -> str:
    """A date from today to a year ahead."""
    day = validation.day(value, today=env.today, past_ok=False)
    if day > env.today + timedelta(days=store.MAX_RESCHEDULE_DAYS):
        raise validation.Invalid("reminder_too_far")
    return day.isoformat()


async def _prepare(env: FlowEnv, session: AsyncSession, initial: dict[str, Any]) -> dict | None:
    """The reminder must still be the user's to reschedule."""
    try:
        reminder_id = int(initial.get("reminder_id", ""))
        reminder = await store.actionable(
            session, actor=env.staff, reminder_id=reminder_id, action="reschedule"
        )
    except (ValueError, Refused):
        return None
    customer = await session.get(Customer, reminder.subject_id or 0)
    return {"reminder_id": str(reminder_id), "_customer": customer.name if customer else ""}


async def _submit(env: FlowEnv, session: AsyncSession, answers: dict[str, Any]) -> Submitted:
    """Move the follow-up to the typed date; if things changed meanwhile, say so."""
    services = env.services
    try:
        outcome = await store.reschedule(
            session,
            keyring=services.keyring,
            rules=Rules.from_settings(services.settings),
            actor=env.staff,
            reminder_id=int(answers["reminder_id"]),
            on=date.fromisoformat(answers["next_followup_on"]),
            now=services.clock(),
        )
    except Refused as refusal:  # raised before any write: the flow ends with the reason
        return Submitted(refusal_text(env._, refusal))
    assert outcome.next_followup_on is not None
    return Submitted(env._("reminders.rescheduled", on=outcome.next_followup_on.isoformat()))


FLOW = runner.register(
    Flow(
        name="reminders",
        steps=(
            Step(
                "next_followup_on",
                required=True,
                parse=_within_a_year,
                example="example.date",
                prompt_values=lambda env, data: {"customer": data.get("_customer", "")},
                editable=False,
            ),
        ),
        submit=_submit,
        confirm=False,
        prepare=_prepare,
    )
)


# ---------------------------------------------------------------------------------------------
# /testreminder


async def testreminder_command(update: Update, context: BotContext) -> None:
    """Send the admin a sample of each kind of reminder through the real outbox."""
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    _ = context._
    member = context.member
    if not permissions.can_send_samples(member):
        await context.bot.send_message(chat_id, _("refused.not_allowed"))
        return
    async with unit_of_work(context.services.sessions) as session:
        count = await store.queue_samples(session, actor=member, now=context.services.clock())
    await context.bot.send_message(chat_id, _("reminders.test_queued", count=count))
    assert member.id is not None
    sent = await context.deliver_due_to(member.id) or 0
    if sent < count:
        await context.bot.send_message(
            chat_id, _("reminders.test_incomplete", sent=sent, count=count)
        )
