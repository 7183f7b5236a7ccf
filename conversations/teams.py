"""The teams a manager leads (SPEC section 10: a sales director over several teams).

Two things live here: the "Teams led" view of one person, for admins (reached from /staff's
person view with `tl:<staff id>`), and the choice of team when a manager of several teams
says /setgroup in a group.

Button data (`TEAMS_LED`, prefix `tl`):
- `tl:<staff id>` opens the view (sent to the presser's private chat), `tl:<staff id>:p<n>`
  turns its pages;
- `tl:<staff id>:<team id>` asks to confirm adding or removing that team, and
  `tl:<staff id>:<team id>:a` (add) or `:r` (remove) does it;
- `tl:g:<team id>:1` (send here) or `:0` (stop), pressed in the group itself.

Every press re-checks the presser, the person and the team server-side (storage.team_leads,
storage.staff): forged data answers as an expired button or "not allowed", never acts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import Forbidden

from bot.context import BotContext
from bot.i18n import Translator, has_message
from conversations import fit
from conversations.callback_data import TEAMS_LED, Press
from conversations.keyboards import Row, button, pager, rows_of, with_pager
from conversations.messages import edit_quietly
from storage import audit, outbox, team_leads
from storage import reviews as review_store
from storage import staff as staff_store
from storage.errors import NotFound, Refused
from storage.models import Team
from storage.team_leads import LeadChange, LeadView

log = logging.getLogger(__name__)
PREFIX = TEAMS_LED.prefixes[0]
GROUP = "g"  # tl:g:<team id>:<1|0>
PAGE_SIZE = 8
NAME_LIMIT = 60  # a team's or person's name inside a line of text
GROUP_CHOICES = 90  # Telegram allows 100 buttons under a message
ACTIONS = {"a": True, "r": False}  # add, remove


def view_data(staff_id: int, *fields: object) -> str:
    """`tl:<staff id>...`: the data of the view's buttons (and /staff's "Teams led")."""
    return TEAMS_LED.data(PREFIX, staff_id, *fields)


def group_data(team_id: int, on: bool) -> str:
    return TEAMS_LED.data(PREFIX, GROUP, team_id, 1 if on else 0)


# ---------------------------------------------------------------------------------------------
# how things are shown


def view_text(_: Translator, view: LeadView, note: str | None = None) -> str:
    """Whose teams these are, their own team, and the teams they lead besides."""
    role = _(f"choice.role.{view.role}")
    lines: list[fit.Line] = []
    if note:
        lines += [fit.Slot(note), ""]
    lines += [
        fit.Slot(view.name, lambda v: _("teams.view.title", name=v, role=role)),
        fit.Slot(view.own_team or _("teams.view.no_team"), lambda v: _("teams.view.own", team=v)),
    ]
    if not view.active:
        lines.append(_("teams.view.inactive"))
    elif not view.may_lead_more:
        lines.append(_("teams.view.not_a_manager"))
    if view.led:
        names = ", ".join(view.led)
        lines.append(fit.Slot(names, lambda v: _("teams.view.leads", count=len(view.led), teams=v)))
    elif view.may_lead_more:
        lines.append(_("teams.view.leads_none"))
    if view.may_lead_more and view.choices:
        lines += ["", _("teams.view.hint")]
    return fit.compose(lines)


def view_markup(_: Translator, view: LeadView) -> InlineKeyboardMarkup | None:
    """A toggle per team of this page (managers only), and the pager."""
    if not view.may_lead_more:
        return None
    rows: list[Row] = []
    for choice in view.choices:
        mark = "✅" if choice.leads else "➕"
        rows.append(
            [button(fit.label(f"{mark} {choice.name}"), view_data(view.staff_id, choice.team_id))]
        )
    rows = with_pager(
        rows, pager(view.page, view.pages, lambda p: view_data(view.staff_id, f"p{p}"))
    )
    return InlineKeyboardMarkup(rows) if rows else None


def _name(text: str) -> str:
    return fit.clip(text, NAME_LIMIT)


def confirm_text(_: Translator, view: LeadView, team: str, add: bool) -> str:
    key = "teams.confirm.add" if add else "teams.confirm.remove"
    return fit.message(_(key, name=_name(view.name), team=_name(team)))


def confirm_markup(_: Translator, staff_id: int, team_id: int, add: bool) -> InlineKeyboardMarkup:
    action = "a" if add else "r"
    return InlineKeyboardMarkup(
        [
            [
                button(_("teams.button.confirm"), view_data(staff_id, team_id, action)),
                button(_("button.cancel"), view_data(staff_id)),
            ]
        ]
    )


def refusal_key(code: str) -> str:
    """A refusal's sentence: ours, else the shared one, else "expired"."""
    for key in (f"teams.refused.{code}", f"refused.{code}"):
        if has_message(key):
            return key
    return "button.expired"


def group_choice_text(_: Translator) -> str:
    return _("teams.setgroup.choose")


def group_choice_markup(teams: Sequence[Team], chat_id: int) -> InlineKeyboardMarkup:
    """A button per team the manager leads: ✅ sends its cards here (press to stop), ➕ not."""
    buttons = []
    for team in teams[:GROUP_CHOICES]:
        here = team.manager_chat_id == chat_id
        label = fit.label(f"{'✅' if here else '➕'} {team.name}")
        buttons.append(button(label, group_data(team.id or 0, not here)))
    return InlineKeyboardMarkup(rows_of(buttons, 2))


async def send_group_choice(context: BotContext, chat_id: int) -> None:
    """/setgroup by a manager of several teams: which team's review cards come to this group."""
    async with context.reading() as session:
        teams = await team_leads.teams_led_by(session, context.member)
    await context.bot.send_message(
        chat_id, group_choice_text(context._), reply_markup=group_choice_markup(teams, chat_id)
    )


# ---------------------------------------------------------------------------------------------
# the buttons


async def on_button(update: Update, context: BotContext) -> None:
    """Handles every `tl:` button: the view, its pages, its toggles, the /setgroup choice."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = TEAMS_LED.parse(query.data)
    if press is not None and press.text(0) == GROUP:
        await _group_pressed(query, context, press)
        return
    staff_id = press.id(0) if press is not None else None
    if press is None or staff_id is None or len(press) > 3:
        await _expired(query, context)
        return
    if len(press) == 1:
        await _open(query, context, staff_id)
        return
    page = press.id(1, tag="p")
    team_id = press.id(1)
    if len(press) == 2 and page is not None:
        await _page(query, context, staff_id, page)
    elif len(press) == 2 and team_id is not None:
        await _ask(query, context, staff_id, team_id)
    elif len(press) == 3 and team_id is not None and press.text(2) in ACTIONS:
        await _change(query, context, staff_id, team_id, ACTIONS[press.text(2) or ""])
    else:
        await _expired(query, context)


async def _expired(query: CallbackQuery, context: BotContext) -> None:
    await query.answer(context._("button.expired"), show_alert=True)


async def _refuse(
    query: CallbackQuery, context: BotContext, refusal: Refused, staff_id: int | None
) -> None:
    """Answer a refusal; one of someone who may not manage staff at all is audited."""
    if refusal.code == "not_allowed":
        async with context.unit_of_work() as session:
            await audit.record(
                session,
                action="access.denied",
                actor_staff_id=context.member.id,
                actor_telegram_id=context.member.telegram_id,
                entity="staff",
                entity_id=staff_id,
                detail={"purpose": "teams_led"},
            )
    await query.answer(fit.answer(context._(refusal_key(refusal.code))), show_alert=True)


async def _view(context: BotContext, staff_id: int, page: int) -> LeadView:
    async with context.reading() as session:
        return await team_leads.lead_view(
            session, actor=context.member, staff_id=staff_id, page=page, page_size=PAGE_SIZE
        )


async def _open(query: CallbackQuery, context: BotContext, staff_id: int) -> None:
    """The view, sent to the presser's private chat (the pressed message stays as it is)."""
    try:
        view = await _view(context, staff_id, 0)
    except Refused as refusal:
        await _refuse(query, context, refusal, staff_id)
        return
    _ = context._
    try:
        await context.bot.send_message(
            query.from_user.id, view_text(_, view), reply_markup=view_markup(_, view)
        )
    except Forbidden:  # pressed in a group by an admin who never opened a chat with the bot
        await query.answer(_("card.open_private"), show_alert=True)
        return
    await query.answer()


async def _page(query: CallbackQuery, context: BotContext, staff_id: int, page: int) -> None:
    try:
        view = await _view(context, staff_id, page)
    except Refused as refusal:
        await _refuse(query, context, refusal, staff_id)
        return
    await query.answer()
    await edit_quietly(query.message, view_text(context._, view), view_markup(context._, view))


async def _ask(query: CallbackQuery, context: BotContext, staff_id: int, team_id: int) -> None:
    """The confirmation step: add the team if they do not lead it, else remove it."""
    try:
        view = await _view(context, staff_id, 0)
        async with context.reading() as session:
            team = await session.get(Team, team_id)
        if team is None:
            raise Refused("team_not_found")
        if team_id == view.own_team_id:
            raise Refused("own_team")
        leads = team_id in view.led_ids
        if not leads and not view.may_lead_more:
            raise Refused("not_a_manager" if view.active else "staff_inactive")
    except Refused as refusal:
        await _refuse(query, context, refusal, staff_id)
        return
    _ = context._
    await query.answer()
    await edit_quietly(
        query.message,
        confirm_text(_, view, team.name, not leads),
        confirm_markup(_, staff_id, team_id, not leads),
    )


def _notice(change: LeadChange, default_language: str) -> str:
    """What the manager concerned is told, in their own language."""
    _ = Translator(change.staff.language or default_language)
    key = "teams.notice.added" if change.leads else "teams.notice.removed"
    return fit.message(_(key, team=_name(change.team.name)))


async def _change(
    query: CallbackQuery, context: BotContext, staff_id: int, team_id: int, add: bool
) -> None:
    """Add or remove the team (re-checked in storage), tell the manager, show the view again."""
    services = context.services
    change = team_leads.lead_team if add else team_leads.unlead_team
    try:
        async with context.unit_of_work() as session:
            done = await change(session, actor=context.member, staff_id=staff_id, team_id=team_id)
            if done.changed:  # the manager learns it even if we die right after the commit
                await outbox.queue_confirmation(
                    session,
                    keyring=services.keyring,
                    recipient=done.staff,
                    text=_notice(done, services.settings.DEFAULT_LANGUAGE),
                    markup=None,
                    now=services.clock(),
                )
            queued = outbox.queued_in(session)
        view = await _view(context, staff_id, 0)
    except (Refused, NotFound) as refusal:
        await _refuse(query, context, refusal, staff_id)
        return
    await context.send_queued(queued)
    _ = context._
    name, team = _name(done.staff.display_name), _name(done.team.name)
    if done.changed:
        key = "teams.done.added" if add else "teams.done.removed"
    else:
        key = "teams.done.already_added" if add else "teams.done.already_removed"
    note = _(key, name=name, team=team)
    await query.answer(fit.answer(note))
    await edit_quietly(query.message, view_text(_, view, note), view_markup(_, view))


async def _group_pressed(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """`tl:g:<team id>:<1|0>` in a group: that team's review cards come here, or stop."""
    team_id = press.id(1)
    on = press.text(2)
    message = query.message
    in_group = isinstance(message, Message) and message.chat.type in ("group", "supergroup")
    if len(press) != 3 or team_id is None or on not in ("1", "0") or not in_group:
        await _expired(query, context)
        return
    assert isinstance(message, Message)
    chat_id = message.chat.id
    member = context.member
    try:
        async with context.unit_of_work() as session:
            team = await staff_store.set_manager_chat(
                session, actor=member, chat_id=chat_id, enabled=on == "1", team_id=team_id
            )
    except Refused as refusal:
        if refusal.code in review_store.AUDITED_REFUSALS:
            async with context.unit_of_work() as session:
                await review_store.record_refusal(
                    session,
                    actor=member,
                    code=refusal.code,
                    purpose="setgroup",
                    entity="team",
                    entity_id=team_id,
                )
        key = f"review.setgroup.{refusal.code}"
        text = context._(key if has_message(key) else "review.setgroup.not_allowed")
        await query.answer(fit.answer(text), show_alert=True)
        return
    key = "review.group_set" if on == "1" else "review.group_unset"
    note = context._(key, team=_name(team.name))
    await query.answer(fit.answer(note))
    async with context.reading() as session:
        teams = await team_leads.teams_led_by(session, member)
    text = fit.compose([fit.Slot(note), "", group_choice_text(context._)])
    await edit_quietly(message, text, group_choice_markup(teams, chat_id))
