"""Reminders in chat: their buttons (`rm:`), the date question, /testreminder. How a reminder
reads (and the buttons it is drawn with) is bot/reminder_text.py's.

Buttons: `rm:o:<id>` opens one reminder of a grouped message with its own buttons; `rm:s:<id>:<d>`
snoozes it d days; `rm:r:<id>` offers new dates, `rm:d:<id>:<d>` takes one, `rm:t:<id>` asks
for a typed date, `rm:b:<id>` goes back; `rm:k:<id>` marks it done; `rm:a:<id>` confirms a record
is still accurate. In a grouped message `rm:K:<id>` (done), `rm:A:<id>` (confirm) and `rm:c:<id>`
(a complaint's take, or its resolution) act on one item and settle only that item's button;
`rm:m:<id>[:<page>]` lists every reminder of that kind that came in the same message (the "…and
N more" of a backlog). Log visit is `cv:<customer id>` (the visit flow); Approve / Reject / Open
and Resubmit are the review module's `rv:` buttons, the card `cu:`, key persons `ck:`, a
complaint `cx:`, the pool's claim `pl:`. Every press is a claim that `storage.reminders`
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
from bot.reminder_text import actions_markup, button_data, item_text, list_page
from conversations import complaint as complaint_flow
from conversations import fit, runner
from conversations.callback_data import REMINDERS, parse_id
from conversations.messages import close_buttons, is_harmless_edit_error
from conversations.steps import Flow, FlowEnv, Step, Submitted
from storage import complaints, permissions, validation
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
    if outcome.action == "snoozed" and outcome.until and outcome.next_followup_on is not None:
        return _(
            "reminders.snoozed_followup",
            on=outcome.next_followup_on.isoformat(),
            when=_local(context, outcome.until),
        )
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


async def _act(
    query: CallbackQuery, context: BotContext, action: Action, *, item: int | None = None
) -> None:
    """Run one action in one transaction; a refusal keeps its audit entry and is explained.
    `item`: the reminder is one of a grouped message's, whose other buttons stay."""
    result: Outcome | Refused
    async with unit_of_work(context.services.sessions) as session:
        try:
            result = await action(session)
        except Refused as refusal:  # raised before any write but its audit entry
            result = refusal
    if isinstance(result, Refused):
        await query.answer(refusal_text(context._, result), show_alert=True)
        if result.code in ("reminder_handled", "reminder_outdated"):
            note = context._(f"reminders.refused.{result.code}")
            await _settle(query, item, note) if item is not None else await close_buttons(
                query.message, note
            )
        return
    text = outcome_text(context, result)
    await query.answer(fit.answer(text))
    if item is not None:
        await _settle(query, item, text)
    else:
        await close_buttons(query.message, text)


def _of_item(data: str | None, reminder_id: int) -> bool:
    press = REMINDERS.parse(data)
    return press is not None and press.id(1) == reminder_id


async def _settle(query: CallbackQuery, reminder_id: int, note: str) -> None:
    """One item of a grouped message is answered: its button goes, the others stay, and its
    outcome is noted under the text with the label of the button pressed."""
    message = query.message
    if not isinstance(message, Message) or not message.text:
        return
    rows, pressed = [], ""
    for row in message.reply_markup.inline_keyboard if message.reply_markup else ():
        kept = []
        for key in row:
            if key.callback_data == query.data:
                pressed = key.text
            if not _of_item(str(key.callback_data), reminder_id):
                kept.append(key)
        if kept:
            rows.append(kept)
    line = f"→ {pressed}: {note}" if pressed else f"→ {note}"
    text = fit.compose([fit.Slot(message.text), line], sep="\n")
    try:
        await message.edit_text(text, reply_markup=InlineKeyboardMarkup(rows) if rows else None)
    except BadRequest as error:
        if not is_harmless_edit_error(error):
            raise


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
    services = context.services
    await _act(
        query,
        context,
        lambda session: store.snooze(
            session,
            keyring=services.keyring,
            rules=_rules(context),
            actor=context.member,
            reminder_id=reminder_id,
            days=days,
            now=services.clock(),
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


async def _done(
    update: Update, context: BotContext, reminder_id: int, arg: str, *, item: bool = False
) -> None:
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
        item=reminder_id if item else None,
    )


async def _confirm(
    update: Update, context: BotContext, reminder_id: int, arg: str, *, item: bool = False
) -> None:
    query = _query(update)
    await _act(
        query,
        context,
        lambda session: store.confirm_accurate(
            session, actor=context.member, reminder_id=reminder_id, now=context.services.clock()
        ),
        item=reminder_id if item else None,
    )


async def _done_item(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    await _done(update, context, reminder_id, arg, item=True)


async def _confirm_item(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    await _confirm(update, context, reminder_id, arg, item=True)


async def _complaint(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    """A complaint item of a grouped message: take it (open → in progress) or, once taken,
    give its resolution, by the complaint flow's own rules (storage.complaints checks the
    presser and the complaint's state again); only this item's button goes."""
    query = _query(update)
    _ = context._
    notice = await _notice(context, reminder_id)
    if notice is None or notice.complaint_id is None:
        await query.answer(_("reminders.gone"), show_alert=True)
        await _settle(query, reminder_id, _("reminders.gone"))
        return
    complaint_id = notice.complaint_id
    services = context.services
    refusal: Refused | None = None
    view = None
    taking = "take" in notice.actions
    async with unit_of_work(services.sessions) as session:
        try:
            if taking:
                await complaints.start_progress(
                    session,
                    keyring=services.keyring,
                    actor=context.member,
                    complaint_id=complaint_id,
                    now=services.clock(),
                )
                view = await complaints.visible_complaint(
                    session,
                    actor=context.member,
                    complaint_id=complaint_id,
                    purpose="complaint.view",
                )
            else:
                await complaints.complaint_for_action(
                    session, actor=context.member, complaint_id=complaint_id, action="resolve"
                )
        except Refused as error:
            refusal = error
    if refusal is not None:
        await query.answer(fit.answer(complaint_flow.refusal_text(_, refusal)), show_alert=True)
        return
    if not taking:
        await query.answer()
        await runner.start(
            update, context, complaint_flow.RESOLUTION_FLOW, initial={"complaint_id": complaint_id}
        )
        return
    await query.answer(fit.answer(_("complaint.taken")))
    await _settle(query, reminder_id, _("complaint.taken"))
    if view is not None:
        await complaint_flow.send_card(update, context, view)


async def _all(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    """Every reminder of this kind that came in the same message, a page at a time: the first
    press sends the list, the pager turns it in place."""
    query = _query(update)
    page = parse_id(arg) if arg else 0
    if page is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    services = context.services
    async with unit_of_work(services.sessions) as session:
        notices = await store.siblings_of(
            session,
            keyring=services.keyring,
            rules=_rules(context),
            actor=context.member,
            reminder_id=reminder_id,
            now=services.clock(),
        )
    if notices is None:
        await query.answer(context._("reminders.gone"), show_alert=True)
        return
    text, markup = list_page(notices, page, reminder_id, context._)
    await query.answer()
    message = query.message
    if arg and isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=markup)
        except BadRequest as error:
            if not is_harmless_edit_error(error):
                raise
        return
    await context.bot.send_message(context.member.telegram_id, text, reply_markup=markup)


_BUTTONS = {
    "o": _open,
    "s": _snooze,
    "r": _dates,
    "d": _reschedule_in,
    "t": _type_date,
    "b": _back,
    "k": _done,
    "a": _confirm,
    "K": _done_item,
    "A": _confirm_item,
    "c": _complaint,
    "m": _all,
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
