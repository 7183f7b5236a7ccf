"""Reminders in chat: how they read, their buttons (`rm:`), the date question, /testreminder.

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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from bot.context import BotContext
from bot.i18n import Translator, has_message
from conversations import fit, runner
from conversations.callback_data import REMINDERS, parse_id
from conversations.messages import close_buttons, is_harmless_edit_error
from conversations.steps import Flow, FlowEnv, Step, Submitted
from storage import reminders as store
from storage import validation
from storage.db import unit_of_work
from storage.errors import Refused
from storage.models import Customer, Role
from storage.reminders import Kind, Notice, Outcome, Rules

log = logging.getLogger(__name__)
PREFIX = REMINDERS.prefixes[0]
MAX_TEXT = 3500  # UTF-16 units of items per message (Telegram allows 4,096 in all)
NAME_LIMIT = 60  # a name or reason inside a reminder; the card shows it whole
REASON_LIMIT = 300
MAX_OPEN_BUTTONS = 10
FOLD_AFTER = 10  # reminders of one kind listed in full; more are counted
LABEL_LIMIT = 24
# most urgent first
KIND_ORDER = {
    kind: index
    for index, kind in enumerate(
        (
            Kind.complaint_overdue,
            Kind.complaint_soon,
            Kind.review,
            Kind.review_digest,
            Kind.overdue,
            Kind.followup,
            Kind.rejected,
            Kind.birthday,
            Kind.stale,
            Kind.survey,
            Kind.weekly,
            Kind.audit_head,
        )
    )
}


@dataclass(frozen=True)
class Outgoing:
    """One message to send, and the reminders it carries."""

    text: str
    markup: InlineKeyboardMarkup | None
    reminder_ids: tuple[int, ...]


def _data(action: str, reminder_id: int, arg: object = None) -> str:
    return REMINDERS.data(PREFIX, action, reminder_id, *(() if arg is None else (arg,)))


# ---------------------------------------------------------------------------------------------
# how a reminder reads


def _sample_values(_: Translator) -> dict[str, Any]:
    return {
        "customer": _("reminders.sample.customer"),
        "person": _("reminders.sample.person"),
        "owner": _("reminders.sample.owner"),
        "submitter": _("reminders.sample.owner"),
        "team": _("reminders.sample.team"),
        "reason": _("reminders.sample.reason"),
        "subject": _("reminders.sample.customer"),
    }


def _review_line(_: Translator, values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "what": _(f"reminders.review_kind.{values['review_kind']}")}


_LONG_VALUES = {
    "customer": NAME_LIMIT,
    "person": NAME_LIMIT,
    "owner": NAME_LIMIT,
    "submitter": NAME_LIMIT,
    "team": NAME_LIMIT,
    "subject": NAME_LIMIT + 20,
    "reason": REASON_LIMIT,
}


def _fitted(values: dict[str, Any]) -> dict[str, Any]:
    """Names and reasons cut to a length a reminder can carry (the card shows them whole)."""
    return {
        k: fit.clip(v, _LONG_VALUES[k]) if k in _LONG_VALUES and isinstance(v, str) else v
        for k, v in values.items()
    }


def item_text(notice: Notice, _: Translator) -> str:
    """The text of one reminder (several lines for digests), within Telegram's limit."""
    return fit.message(_item_text(notice, _))


def _item_text(notice: Notice, _: Translator) -> str:
    values = _fitted(dict(notice.values))
    if notice.sample:
        values = {**_sample_values(_), **values}
    kind = notice.kind
    if kind == Kind.followup:
        key = "reminders.item.followup_late" if values.get("late") else "reminders.item.followup"
        return _(key, **values)
    if kind == Kind.birthday:
        key = "reminders.item.birthday_today" if values.get("today") else "reminders.item.birthday"
        return _(key, **values)
    if kind in (Kind.complaint_soon, Kind.complaint_overdue):
        severity = _(f"reminders.severity.{values['severity']}")
        return _(f"reminders.item.{kind}", **{**values, "severity": severity})
    if kind in (Kind.review, Kind.rejected):
        return _(f"reminders.item.{kind}", **_review_line(_, values))
    if kind == Kind.review_digest:
        lines = [_("reminders.item.review_digest", count=values["count"])]
        for line in notice.lines:
            line = {**_sample_values(_), **line} if notice.sample else _fitted(line)
            lines.append(_("reminders.digest.line", **_review_line(_, line)))
        if values.get("more"):
            lines.append(_("reminders.digest.more", count=values["more"]))
        return "\n".join(lines)
    if kind == Kind.weekly:
        team = values.get("team") or _("reminders.weekly.all_teams")
        return "\n".join(
            [
                _("reminders.item.weekly", team=team),
                _("reminders.weekly.customers", **values),
                _("reminders.weekly.new", count=values["new"]),
                _("reminders.weekly.visits", count=values["visits"]),
                _("reminders.weekly.overdue", count=values["overdue"]),
                _("reminders.weekly.complaints", **values),
                _("reminders.weekly.reviews", count=values["reviews"]),
            ]
        )
    return _(f"reminders.item.{kind}", **values)


def actions_markup(notice: Notice, _: Translator) -> InlineKeyboardMarkup | None:
    """The buttons of one reminder: the main action(s) first, then snooze and reschedule."""
    rid = notice.reminder_id
    main: list[InlineKeyboardButton] = []
    later: list[InlineKeyboardButton] = []
    acts = notice.actions
    if "visit" in acts and notice.customer_id:
        main.append(
            InlineKeyboardButton(
                _("reminders.button.visit"), callback_data=f"cv:{notice.customer_id}"
            )
        )
    if "approve" in acts and notice.review_id:
        main += [
            InlineKeyboardButton(
                _("reminders.button.approve"), callback_data=f"rv:a:{notice.review_id}"
            ),
            InlineKeyboardButton(
                _("reminders.button.reject"), callback_data=f"rv:r:{notice.review_id}"
            ),
        ]
        later.append(
            InlineKeyboardButton(
                _("reminders.button.open_review"), callback_data=f"rv:o:{notice.review_id}"
            )
        )
    if "resubmit" in acts and notice.customer_id:
        main.append(
            InlineKeyboardButton(
                _("reminders.button.resubmit"), callback_data=f"rv:rs:{notice.customer_id}"
            )
        )
    if "confirm" in acts:
        main.append(
            InlineKeyboardButton(_("reminders.button.confirm"), callback_data=_data("a", rid))
        )
    if "done" in acts:
        main.append(InlineKeyboardButton(_("reminders.button.done"), callback_data=_data("k", rid)))
    if "snooze" in acts:
        later += [
            InlineKeyboardButton(
                _(f"reminders.button.snooze{days}"), callback_data=_data("s", rid, days)
            )
            for days in store.SNOOZE_DAYS
        ]
    if "reschedule" in acts:
        later.append(
            InlineKeyboardButton(_("reminders.button.reschedule"), callback_data=_data("r", rid))
        )
    rows = [row for row in (main, later) if row]
    return InlineKeyboardMarkup(rows) if rows else None


def _short(label: str) -> str:
    return fit.clip(label, LABEL_LIMIT)


def _message(chunk: list[Notice], _: Translator) -> Outgoing:
    ids = tuple(n.reminder_id for n in chunk)
    sample = any(n.sample for n in chunk)
    if len(chunk) == 1:
        text = item_text(chunk[0], _)
        if sample:
            text = f"{_('reminders.sample_header')}\n\n{text}"
        return Outgoing(text, actions_markup(chunk[0], _), ids)
    lines = [_("reminders.sample_header")] if sample else []
    lines.append(_("reminders.header", count=len(chunk)))
    buttons = []
    for index, notice in enumerate(chunk, start=1):
        lines.append(f"\n{index}. {item_text(notice, _)}")
        if notice.actions:
            label = fit.label(
                _("reminders.button.open", n=index, label=_short(item_label(notice, _)))
            )
            buttons.append(
                [InlineKeyboardButton(label, callback_data=_data("o", notice.reminder_id))]
            )
    markup = InlineKeyboardMarkup(buttons) if buttons else None
    return Outgoing(fit.message("\n".join(lines)), markup, ids)


def item_label(notice: Notice, _: Translator) -> str:
    """The kind's emoji and the subject's name, for the button that opens one reminder."""
    emoji = item_text(notice, _).split(" ", 1)[0]
    name = _("reminders.sample.customer") if notice.sample else notice.label
    return f"{emoji} {name}"


def render(notices: list[Notice], _: Translator) -> list[Outgoing]:
    """One person's due reminders as messages, the most urgent first: one message, unless it
    would be too long or carry too many buttons. Beyond FOLD_AFTER of one kind (a backlog after
    a long absence, say) the rest are counted in a line rather than listed; they are delivered
    all the same, as part of that message."""
    ordered = sorted(notices, key=lambda n: (KIND_ORDER.get(n.kind, 99), n.reminder_id))
    shown: list[Notice] = []
    folded: dict[str, list[Notice]] = {}
    for notice in ordered:
        same = sum(1 for n in shown if n.kind == notice.kind)
        if same >= FOLD_AFTER and not notice.sample:
            folded.setdefault(notice.kind, []).append(notice)
        else:
            shown.append(notice)
    chunks: list[list[Notice]] = []
    current: list[Notice] = []
    size = buttons = 0
    for notice in shown:
        length = fit.units(item_text(notice, _)) + 6
        wants = 1 if notice.actions else 0
        if current and (size + length > MAX_TEXT or buttons + wants > MAX_OPEN_BUTTONS):
            chunks.append(current)
            current, size, buttons = [], 0, 0
        current.append(notice)
        size += length
        buttons += wants
    if current:
        chunks.append(current)
    messages = [_message(chunk, _) for chunk in chunks]
    if folded and messages:
        lines = []
        for kind, rest in folded.items():
            key = f"reminders.more.{kind}"
            lines.append(_(key if has_message(key) else "reminders.more.other", count=len(rest)))
        last = messages[-1]
        ids = tuple(n.reminder_id for rest in folded.values() for n in rest)
        text = fit.compose([fit.Slot(last.text), *lines], sep="\n\n")
        messages[-1] = Outgoing(text, last.markup, last.reminder_ids + ids)
    return messages


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


async def _open(update: Update, context: BotContext, reminder_id: int, arg: str) -> None:
    """Send one reminder of a grouped message on its own, with its buttons."""
    query = _query(update)
    services = context.services
    async with unit_of_work(services.sessions) as session:
        notice = await store.notice_of(
            session,
            keyring=services.keyring,
            rules=_rules(context),
            actor=context.member,
            reminder_id=reminder_id,
            now=services.clock(),
        )
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
            _("reminders.button.days", days=d), callback_data=_data("d", reminder_id, d)
        )
        for d in store.RESCHEDULE_DAYS
    ]
    keyboard = InlineKeyboardMarkup(
        [
            days,
            [
                InlineKeyboardButton(
                    _("reminders.button.type_date"), callback_data=_data("t", reminder_id)
                ),
                InlineKeyboardButton(_("button.back"), callback_data=_data("b", reminder_id)),
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
    services = context.services
    async with unit_of_work(services.sessions) as session:
        notice = await store.notice_of(
            session,
            keyring=services.keyring,
            rules=_rules(context),
            actor=context.member,
            reminder_id=reminder_id,
            now=services.clock(),
        )
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
    from bot import scheduler  # the scheduler renders with this module: import when used

    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    _ = context._
    member = context.member
    if member.role != Role.admin:
        await context.bot.send_message(chat_id, _("refused.not_allowed"))
        return
    async with unit_of_work(context.services.sessions) as session:
        count = await store.queue_samples(session, actor=member, now=context.services.clock())
    await context.bot.send_message(chat_id, _("reminders.test_queued", count=count))
    report = await scheduler.deliver_now(context.application, recipient_id=member.id)
    if report.sent < count:
        await context.bot.send_message(
            chat_id, _("reminders.test_incomplete", sent=report.sent, count=count)
        )
