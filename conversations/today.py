"""/today: the day's plan in one message, each entry a button; nearby customers on a location.

The plan (storage.today) lists follow-ups due today, overdue ones, open complaints the member
handles and key persons' birthdays this week, at most `LIMIT` entries a section with "and N
more" pointing to where the rest are. Each entry's button is the one its own feature already
routes (the card `cu:`, the complaint `cx:<id>:v`, the key persons `ck:`), so the press is
checked there like any other. A second message offers a "Share location" reply-keyboard
button; a location shared outside any flow answers with the nearest visible customers that
have a location (storage.checkin.nearby), each a button too. `td:r` shows the plan again.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)

from bot.context import BotContext
from bot.i18n import Translator
from conversations import fit
from conversations.callback_data import CARD, COMPLAINT, KEY_PERSONS, TODAY
from conversations.checkin import distance_text
from conversations.keyboards import button, rows_of
from storage import checkin, drafts, today
from storage.today import Plan

LIMIT = today.LIMIT
NAME_LIMIT = 120  # units of a name in the text before the whole is fitted
BUTTON_NAME = 24  # units of a name on an entry's button


def _entry_button(n: int, name: str, data: str) -> InlineKeyboardButton:
    return button(fit.label(f"{n}. {fit.clip(name, BUTTON_NAME)}"), data)


def _weekday(_: Translator, day: date) -> str:
    return _(f"today.weekday.{day.isoweekday()}")


def plan_view(_: Translator, plan: Plan, zone_key: str) -> tuple[str, InlineKeyboardMarkup]:
    """The plan's text (names as slots, so the whole fits one message) and its buttons."""
    tz = ZoneInfo(zone_key)
    lines: list[fit.Line] = [
        _("today.title", date=plan.today.isoformat(), weekday=_weekday(_, plan.today))
    ]
    buttons: list[InlineKeyboardButton] = []
    n = 0

    def more(count: int, where: str | None = None) -> None:
        if count and where:
            lines.append(_("today.more", count=count, where=where))
        elif count:
            lines.append(_("today.more_plain", count=count))

    if plan.empty:
        lines += ["", _("today.nothing")]
    if plan.due.total:
        lines += ["", _("today.section.due", count=plan.due.total)]
        for entry in plan.due.entries:
            n += 1
            lines.append((f"{n}. ", fit.Slot(entry.name), f" · {entry.customer_no}"))
            buttons.append(_entry_button(n, entry.name, CARD.data("cu", entry.customer_id)))
        more(plan.due.more, "/my")
    if plan.overdue.total:
        lines += ["", _("today.section.overdue", count=plan.overdue.total)]
        for entry in plan.overdue.entries:
            n += 1
            days = (plan.today - entry.due_on).days
            late = _("today.overdue_by", days=days, date=entry.due_on.isoformat())
            lines.append((f"{n}. ", fit.Slot(entry.name), f" · {entry.customer_no} · {late}"))
            buttons.append(_entry_button(n, entry.name, CARD.data("cu", entry.customer_id)))
        more(plan.overdue.more, "/my")
    if plan.complaints.total:
        lines += ["", _("today.section.complaints", count=plan.complaints.total)]
        for c in plan.complaints.entries:
            n += 1
            due = c.due_at.astimezone(tz).strftime("%m-%d %H:%M")
            late = _("today.past_due") if c.due_at.astimezone(tz).date() < plan.today else ""
            lines.append(
                (
                    f"{n}. {c.complaint_no} · ",
                    fit.Slot(c.customer_name),
                    " · "
                    + _("today.complaint_due", severity=_(f"choice.severity.{c.severity}"))
                    + f" {due}{late}",
                )
            )
            buttons.append(
                _entry_button(n, c.complaint_no, COMPLAINT.data("cx", c.complaint_id, "v"))
            )
        more(plan.complaints.more)
    if plan.birthdays.total:
        lines += ["", _("today.section.birthdays", count=plan.birthdays.total)]
        for b in plan.birthdays.entries:
            n += 1
            when = (
                _("today.birthday_today")
                if b.on == plan.today
                else f"{b.on.strftime('%m-%d')} {_weekday(_, b.on)}"
            )
            lines.append((f"{n}. ", fit.Slot(b.name), " (", fit.Slot(b.customer_name), f") {when}"))
            buttons.append(_entry_button(n, b.name, KEY_PERSONS.data("ck", b.customer_id)))
        more(plan.birthdays.more)
    rows = rows_of(buttons, 2)
    rows.append([button(_("today.button.refresh"), TODAY.data("td", "r"))])
    return fit.compose(lines, ceiling=NAME_LIMIT), InlineKeyboardMarkup(rows)


def _share_keyboard(_: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        [[KeyboardButton(_("today.button.share_location"), request_location=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


async def _plan(context: BotContext) -> Plan | None:
    async with context.reading() as session:
        return await today.plan_for(
            session, keyring=context.services.keyring, actor=context.member, today=context.today
        )


async def _in_flow(context: BotContext) -> bool:
    """Whether the member is halfway through a flow, which takes any location they share."""
    async with context.reading() as session:
        state = await drafts.load(
            session,
            context.services.keyring,
            context.member.id or 0,
            not_before=context.services.draft_cutoff(),
        )
    return state is not None


async def today_command(update: Update, context: BotContext) -> None:
    """Send the day's plan, and offer to share a location for the customers nearby."""
    _ = context._
    plan = await _plan(context)
    if plan is None:  # deactivated meanwhile (the gate refuses them first)
        await context.bot.send_message(context.chat_id, _("refused.not_allowed"))
        return
    text, markup = plan_view(_, plan, context.zone.key)
    await context.bot.send_message(context.chat_id, text, reply_markup=markup)
    if await _in_flow(context):
        await context.bot.send_message(context.chat_id, _("today.nearby_after_flow"))
        return
    await context.bot.send_message(
        context.chat_id, _("today.share_hint"), reply_markup=_share_keyboard(_)
    )


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `td:r`: the plan again, in place of the pressed one."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = TODAY.parse(query.data)
    if press is None or len(press) != 1 or press.text(0) != "r":
        await query.answer(context._("button.expired"), show_alert=True)
        return
    plan = await _plan(context)
    if plan is None:
        await query.answer(context._("refused.not_allowed"), show_alert=True)
        return
    await query.answer()
    text, markup = plan_view(context._, plan, context.zone.key)
    await context.bot.send_message(context.chat_id, text, reply_markup=markup)


async def on_location(update: Update, context: BotContext) -> bool:
    """A location shared outside any flow: the nearest customers the member may see."""
    message = update.effective_message
    if message is None or message.location is None:
        return False
    _ = context._
    shared = {"latitude": message.location.latitude, "longitude": message.location.longitude}
    async with context.reading() as session:
        found = await checkin.nearby(
            session, keyring=context.services.keyring, actor=context.member, location=shared
        )
    await context.bot.send_message(
        context.chat_id, _("today.location_received"), reply_markup=ReplyKeyboardRemove()
    )
    if not found:
        await context.bot.send_message(context.chat_id, _("today.nearby_none"))
        return True
    lines: list[fit.Line] = [_("today.nearby_title", count=len(found))]
    buttons = []
    for n, near in enumerate(found, start=1):
        away = distance_text(_, near.distance_m)
        lines.append((f"{n}. ", fit.Slot(near.name), f" · {near.customer_no} · {away}"))
        buttons.append(_entry_button(n, near.name, CARD.data("cu", near.customer_id)))
    await context.bot.send_message(
        context.chat_id,
        fit.compose(lines, ceiling=NAME_LIMIT),
        reply_markup=InlineKeyboardMarkup(rows_of(buttons, 1)),
    )
    return True
