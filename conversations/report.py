"""/report (managers for the teams they lead, admins for any team or the company) and /stats.

/report asks whose numbers (when there is a choice) and which period, then sends the chart
image and a short summary with a button for the same figures as XLSX. A period of one's own is
`/report 2026-11-01 2026-11-30`: no half-typed state to keep across a restart. Buttons, all
`rp:` (the team as its id, `c` for the whole company):

    rp:s:<team>                     the periods for that team (in the same message)
    rp:o:<team>                     the periods again, in a new message (under a summary)
    rp:p:<team>:<w|W|m|M|c>         this week, last week, this month, last month, own dates
    rp:v:<team>:<first>:<last>      the report of those dates (YYYYMMDD), after /report A B
    rp:x:<team>:<first>:<last>      the same as XLSX

Every press is a claim: storage.reports re-checks that the presser may see that team (a
manager forging another team's id is refused), and dates are read back and checked again.

/stats: anyone's own last seven days in one message; its button (`st:r`) counts again.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from telegram import CallbackQuery, InlineKeyboardMarkup, InputFile, Update
from telegram.constants import ChatAction

from bot.context import BotContext
from bot.i18n import Translator, pick_language
from conversations import fit
from conversations.callback_data import REPORT, STATS, Press
from conversations.keyboards import button, rows_of
from conversations.messages import edit_quietly
from storage import audit, permissions
from storage import reports as store
from storage.dates import NotADate, parse_period
from storage.db import reading
from storage.errors import Refused
from storage.models import Staff
from storage.reports import Period, Report, Scope

if TYPE_CHECKING:
    from bot.context import Services

PREFIX = "rp"
COMPANY = "c"
PERIODS = {
    "w": store.week_of,
    "W": store.last_week,
    "m": store.month_of,
    "M": store.last_month,
}
PERIOD_KEYS = {"w": "week", "W": "last_week", "m": "month", "M": "last_month"}
DAY_FORMAT = "%Y%m%d"


def _view() -> ModuleType:
    """The report's drawing (matplotlib, openpyxl: 50 MB and most of a second) loads at the
    first report, not at the bot's start."""
    from conversations import report_view

    return report_view


def _data(*fields: object) -> str:
    return REPORT.data(PREFIX, *fields)


def _team_field(team_id: int | None) -> str:
    return COMPANY if team_id is None else str(team_id)


def _team_of(press: Press, index: int) -> tuple[bool, int | None]:
    """(readable, team id or None for the company) of a press's team field."""
    if press.text(index) == COMPANY:
        return True, None
    team_id = press.id(index)
    return team_id is not None, team_id


def _day(text: str | None) -> date | None:
    if text is None or len(text) != 8 or not text.isascii() or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, DAY_FORMAT).date()
    except ValueError:
        return None


def parse_dates(args: list[str], today: date) -> tuple[date, date] | None:
    """`/report 2026-11-01 2026-11-30`, `/report 上个月`, `/report last monday to yesterday`:
    the period (storage.dates), or None when it does not read."""
    try:
        return parse_period(" ".join(args), today=today)
    except NotADate:
        return None


def _scope_label(_: Translator, scope: Scope) -> str:
    return fit.label(scope.name or _("report.scope.company"))


def scopes_view(
    _: Translator, scopes: list[Scope], dates: tuple[date, date] | None
) -> tuple[str, InlineKeyboardMarkup]:
    buttons = []
    for scope in scopes:
        team = _team_field(scope.team_id)
        data = (
            _data("s", team)
            if dates is None
            else _data("v", team, f"{dates[0]:%Y%m%d}", f"{dates[1]:%Y%m%d}")
        )
        buttons.append(button(_scope_label(_, scope), data))
    return _("report.choose_scope"), InlineKeyboardMarkup(rows_of(buttons, 1))


def periods_view(_: Translator, scope: Scope) -> tuple[str, InlineKeyboardMarkup]:
    team = _team_field(scope.team_id)
    buttons = [
        button(_(f"report.period.{key}"), _data("p", team, code))
        for code, key in PERIOD_KEYS.items()
    ]
    rows = [*rows_of(buttons, 2), [button(_("report.period.custom"), _data("p", team, "c"))]]
    text = fit.message(_("report.choose_period", scope=_scope_label(_, scope)))
    return text, InlineKeyboardMarkup(rows)


def summary_markup(_: Translator, report: Report) -> InlineKeyboardMarkup:
    team = _team_field(report.scope.team_id)
    first, last = f"{report.period.first:%Y%m%d}", f"{report.period.last:%Y%m%d}"
    return InlineKeyboardMarkup(
        [
            [button(_("report.button.xlsx"), _data("x", team, first, last))],
            [button(_("report.button.other_period"), _data("o", team))],
        ]
    )


def refusal_text(_: Translator, refusal: Refused) -> str:
    return _(f"report.refused.{refusal.code}", **refusal.details)


# ---------------------------------------------------------------------------------------------
# the command


async def _scopes(context: BotContext) -> list[Scope]:
    async with context.reading() as session:
        return await store.scopes_for(session, context.member)


async def report_command(update: Update, context: BotContext) -> None:
    """Offer whose report and which period; with two dates, that period straight away."""
    _ = context._
    if not permissions.receives_reports(context.member):
        await context.bot.send_message(context.chat_id, _("report.refused"))
        return
    dates = None
    if context.args:
        dates = parse_dates(list(context.args), context.today)
        if dates is None:
            await context.bot.send_message(context.chat_id, _("report.bad_dates"))
            return
        try:
            Period.of(*dates, context.zone)
        except Refused as refusal:
            await context.bot.send_message(context.chat_id, refusal_text(_, refusal))
            return
    scopes = await _scopes(context)
    if not scopes:
        await context.bot.send_message(context.chat_id, _("report.no_team"))
        return
    if len(scopes) > 1:
        text, markup = scopes_view(_, scopes, dates)
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)
        return
    if dates is None:
        text, markup = periods_view(_, scopes[0])
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)
        return
    await send_report(context, scopes[0].team_id, *dates)


async def _report(context: BotContext, team_id: int | None, first: date, last: date) -> Report:
    """The figures, counted now and checked for the member (Refused otherwise)."""
    period = Period.of(first, last, context.zone)
    async with context.reading() as session:
        return await store.build(
            session, actor=context.member, team_id=team_id, period=period, today=context.today
        )


async def send_report(context: BotContext, team_id: int | None, first: date, last: date) -> bool:
    """Count, draw (on a worker thread) and send the chart and the summary; False if refused."""
    _ = context._
    try:
        report = await _report(context, team_id, first, last)
    except Refused as refusal:
        await context.bot.send_message(context.chat_id, refusal_text(_, refusal))
        return False
    await context.bot.send_chat_action(context.chat_id, ChatAction.UPLOAD_PHOTO)
    png = await asyncio.to_thread(_view().render_chart, report, _)
    await context.bot.send_photo(
        context.chat_id,
        InputFile(png, filename="report.png"),
        caption=fit.caption(_view().title(report, _)),
    )
    await context.bot.send_message(
        context.chat_id, _view().summary(report, _), reply_markup=summary_markup(_, report)
    )
    return True


async def send_xlsx(context: BotContext, team_id: int | None, first: date, last: date) -> bool:
    """The same figures as a workbook, audited as an export (counts only, no names)."""
    _ = context._
    try:
        report = await _report(context, team_id, first, last)
    except Refused as refusal:
        await context.bot.send_message(context.chat_id, refusal_text(_, refusal))
        return False
    data = await asyncio.to_thread(_view().render_xlsx, report, _)
    async with context.unit_of_work() as session:
        await audit.record(
            session,
            action="report.xlsx",
            actor_telegram_id=context.member.telegram_id,
            actor_staff_id=context.member.id,
            entity="team" if team_id is not None else None,
            entity_id=team_id,
            detail={
                "first": first.isoformat(),
                "last": last.isoformat(),
                "salespeople": len(report.salespeople),
            },
        )
    await context.bot.send_document(
        context.chat_id,
        InputFile(data, filename=_view().xlsx_name(report)),
        caption=fit.caption(_view().title(report, _)),
        protect_content=True,
    )
    return True


# ---------------------------------------------------------------------------------------------
# buttons


async def _expired(query: CallbackQuery, context: BotContext) -> None:
    await query.answer(context._("button.expired"), show_alert=True)


async def _checked_scope(query: CallbackQuery, context: BotContext, team_id: int | None) -> bool:
    """The member may (still) see that team's report; else the press is answered."""
    try:
        async with context.reading() as session:
            if not permissions.receives_reports(context.member):
                raise Refused("not_allowed")
            await store.scope_of(session, context.member, team_id)
    except Refused as refusal:
        await query.answer(fit.answer(refusal_text(context._, refusal)), show_alert=True)
        return False
    return True


async def _on_scope(query: CallbackQuery, context: BotContext, press: Press) -> None:
    readable, team_id = _team_of(press, 1)
    if len(press) != 2 or not readable:
        await _expired(query, context)
        return
    if not await _checked_scope(query, context, team_id):
        return
    async with context.reading() as session:
        scope = await store.scope_of(session, context.member, team_id)
    await query.answer()
    text, markup = periods_view(context._, scope)
    if press.fields[0] == "o":  # under a summary, which stays as it is
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)
        return
    await edit_quietly(query.message, text, markup)


async def _on_period(query: CallbackQuery, context: BotContext, press: Press) -> None:
    readable, team_id = _team_of(press, 1)
    code = press.text(2)
    if len(press) != 3 or not readable or code not in (*PERIODS, "c"):
        await _expired(query, context)
        return
    if not await _checked_scope(query, context, team_id):
        return
    await query.answer()
    if code == "c":
        await context.bot.send_message(
            context.chat_id, context._("report.custom_hint", days=store.MAX_DAYS)
        )
        return
    first, last = PERIODS[code](context.today)
    await send_report(context, team_id, first, last)


async def _on_dates(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """`v` (the report) and `x` (its XLSX) of two dates carried by the button."""
    readable, team_id = _team_of(press, 1)
    first, last = _day(press.text(2)), _day(press.text(3))
    if len(press) != 4 or not readable or first is None or last is None:
        await _expired(query, context)
        return
    try:
        Period.of(first, last, context.zone)
    except Refused:
        await _expired(query, context)
        return
    if not await _checked_scope(query, context, team_id):
        return
    await query.answer(fit.answer(context._("report.working")))
    if press.fields[0] == "x":
        await send_xlsx(context, team_id, first, last)
    else:
        await send_report(context, team_id, first, last)


async def on_button(update: Update, context: BotContext) -> None:
    """Route an `rp:` press by its action."""
    query = update.callback_query
    assert query is not None
    press = REPORT.parse(query.data)
    if press is None or not press.fields:
        await _expired(query, context)
        return
    action = press.fields[0]
    if action in ("s", "o"):
        await _on_scope(query, context, press)
    elif action == "p":
        await _on_period(query, context, press)
    elif action in ("v", "x"):
        await _on_dates(query, context, press)
    else:
        await _expired(query, context)


# ---------------------------------------------------------------------------------------------
# /stats


async def _stats_text(context: BotContext) -> str | None:
    first, last = store.seven_days(context.today)
    try:
        async with context.reading() as session:
            week = await store.own_week(
                session,
                actor=context.member,
                period=Period.of(first, last, context.zone),
                today=context.today,
                now=context.services.clock(),
            )
    except Refused:
        return None
    return _view().stats_text(week, context._)


def _stats_markup(_: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button(_("stats.button.refresh"), STATS.data("st", "r"))]])


async def stats_command(update: Update, context: BotContext) -> None:
    """One's own last seven days in one message."""
    text = await _stats_text(context)
    if text is None:
        await context.bot.send_message(context.chat_id, context._("stats.refused"))
        return
    await context.bot.send_message(context.chat_id, text, reply_markup=_stats_markup(context._))


async def on_stats_button(update: Update, context: BotContext) -> None:
    """Count again, in the same message."""
    query = update.callback_query
    assert query is not None
    press = STATS.parse(query.data)
    if press is None or press.fields != ("r",):
        await _expired(query, context)
        return
    text = await _stats_text(context)
    if text is None:
        await query.answer(fit.answer(context._("stats.refused")), show_alert=True)
        return
    await query.answer()
    await edit_quietly(query.message, text, _stats_markup(context._))


# ---------------------------------------------------------------------------------------------
# the weekly chart (an outbox message, storage.reminders.weekly; sent by bot.sender)


async def chart_message(
    services: Services, recipient: Staff | None, content: dict[str, Any] | None
) -> tuple[bytes, str] | None:
    """The chart and its caption for a queued weekly chart, counted now; None when it is no
    longer wanted (the recipient left, or no longer leads that team) or cannot be read."""
    if recipient is None or not recipient.active or content is None:
        return None
    team_id = content.get("team")
    try:
        first = date.fromisoformat(str(content["first"]))
        last = date.fromisoformat(str(content["last"]))
    except (KeyError, ValueError):
        return None
    if team_id is not None and (not isinstance(team_id, int) or isinstance(team_id, bool)):
        return None
    settings = services.settings
    zone = ZoneInfo(recipient.timezone or settings.TIMEZONE)
    _ = Translator(pick_language(recipient.language, None, settings.DEFAULT_LANGUAGE))
    try:
        period = Period.of(first, last, zone)
        async with reading(services.sessions) as session:
            report = await store.build(
                session,
                actor=recipient,
                team_id=team_id,
                period=period,
                today=services.clock().astimezone(zone).date(),
            )
    except Refused:
        return None
    png = await asyncio.to_thread(_view().render_chart, report, _)
    caption = _view().summary(report, _, people=False)
    return png, caption
