"""Hand-over in chat (离职/调岗交接): choosing successors for a leaver's or mover's records.

Everything lives in the database (storage.handover): the buttons carry only the hand-over's id
and what was pressed, and every press re-loads the hand-over, re-checks that the presser may
run it (admins) and shows what is there now, so after a restart, or days later through
/handover, an admin presses an old button and carries on. A finished or cancelled hand-over's
buttons answer "expired".

    ho:o:<id>             open it (a new message: the /staff confirmation's button)
    ho:v:<id>             its view again, in place
    ho:a:<id>:<page>      candidates for one successor for all      ho:s:<id>:<staff>  choose
    ho:c:<id>:<page>      the held customers (narrowed by the search under way)
    ho:k:<id>:<cu>:<page> candidates for one customer               ho:p:<id>:<cu>:<staff> pick
                          (staff 0: back to the successor for all)
    ho:q:<id>             search: typed text narrows the list       ho:x:<id>  show all again
    ho:f:<id>             the finish's confirmation                 ho:y:<id>:<version> finish
    ho:n:<id>             the cancel's confirmation                 ho:z:<id>:<version> cancel
    ho:l:<page>           the open hand-overs (/handover)

The search is a one-question flow ("handover_search") so that typed text reaches it through the
runner and survives a restart; its draft remembers the text and the hand-over it narrows.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.i18n import Translator
from conversations import fit, runner
from conversations.callback_data import HANDOVER, Press
from conversations.handover_summary import NAME_LIMIT, notifier
from conversations.keyboards import Row, button, pager, with_pager
from conversations.messages import close_buttons, edit_quietly, replace_page
from conversations.steps import Flow, FlowEnv, Kind, Step, Submitted
from storage import drafts, outbox, permissions, validation
from storage import handover as handovers
from storage.drafts import DraftMode, DraftState
from storage.errors import Refused
from storage.handover import Candidates, Finished, HeldPage, Opened, Overview
from storage.models import Staff, Team

PREFIX = "ho"
FLOW_NAME = "handover_search"
FIELD = "handover_query"
QUERY_LIMIT = 100
PAGE_MAX = 999_999
LIST_PAGE_SIZE = 8
LABEL = 64
PLAN_LINES = 30  # successors named in the finish's confirmation; more are counted

Text = tuple[str, InlineKeyboardMarkup]


def _data(*fields: object) -> str:
    return HANDOVER.data(PREFIX, *fields)


def _name(person: Staff | None) -> str:
    return fit.clip(person.display_name, NAME_LIMIT) if person is not None else "?"


# ---------------------------------------------------------------------------------------------
# the views


def overview_text(_: Translator, view: Overview) -> str:
    held, opened = view.holdings, view.opened
    if opened.handover.reason == "move":
        team = view.new_team.name if view.new_team is not None else "?"
        why = _("handover.view.reason_move", team=fit.clip(team, NAME_LIMIT))
    else:
        why = _("handover.view.reason_leave")
    lines = [
        _("handover.view.title", name=_name(opened.leaver)),
        why,
        _(
            "handover.view.holds",
            customers=held.customers,
            followups=held.followups,
            complaints=held.complaints,
            reviews=held.reviews,
            reminders=held.reminders,
        ),
    ]
    if view.successor is not None:
        lines.append(_("handover.view.successor", name=_name(view.successor)))
    else:
        lines.append(_("handover.view.no_successor"))
    if view.picked:
        lines.append(_("handover.view.picked", picked=view.picked, customers=held.customers))
    if view.rest.total:
        lines.append(_("handover.view.rest", count=view.rest.total))
    if view.unassigned:
        lines.append(_("handover.view.unassigned", count=view.unassigned))
    else:
        lines.append(_("handover.view.all_assigned"))
    return fit.message("\n".join(lines))


def overview_markup(_: Translator, view: Overview) -> InlineKeyboardMarkup:
    hid = view.opened.id
    rows: list[Row] = [
        [button(_("handover.button.one_for_all"), _data("a", hid, 0))],
    ]
    if view.holdings.customers:
        rows.append([button(_("handover.button.split"), _data("c", hid, 0))])
    rows.append(
        [
            button(_("handover.button.finish"), _data("f", hid)),
            button(_("handover.button.cancel"), _data("n", hid)),
        ]
    )
    return InlineKeyboardMarkup(rows)


def _team_name(teams: dict[int, str], person: Staff) -> str:
    return fit.clip(teams.get(person.team_id or 0, ""), 16)


def candidate_label(_: Translator, person: Staff, teams: dict[int, str], chosen: int | None) -> str:
    mark = "✓ " if person.id == chosen else ""
    role = _(f"choice.role.{person.role}")
    return fit.label(f"{mark}{person.display_name} · {role} · {_team_name(teams, person)}", LABEL)


def candidates_text(_: Translator, opened: Opened, found: Candidates, subject: str) -> str:
    lines = [subject]
    if not found.total:
        lines.append(_("handover.candidates.none"))
    elif found.elsewhere:
        lines.append(_("handover.candidates.elsewhere"))
    if found.pages > 1:
        lines.append(_("handover.page", page=found.page + 1, pages=found.pages))
    return fit.message("\n".join(lines))


def candidates_markup(
    _: Translator,
    found: Candidates,
    teams: dict[int, str],
    *,
    chosen: int | None,
    choose: Callable[[int], str],
    page_data: Callable[[int], str],
    extra: Sequence[Row] = (),
    back: str,
) -> InlineKeyboardMarkup:
    rows: list[Row] = [
        [button(candidate_label(_, person, teams, chosen), choose(person.id or 0))]
        for person in found.people
    ]
    rows = with_pager(rows, pager(found.page, found.pages, page_data, counter=True))
    rows.extend(extra)
    rows.append([button(_("handover.button.back"), back)])
    return InlineKeyboardMarkup(rows)


def held_label(_: Translator, entry: handovers.HeldEntry) -> str:
    to = entry.successor_name or _("handover.held.default")
    name = fit.clip(entry.name, 24)
    return fit.label(f"{name} · {entry.customer_no} → {fit.clip(to, 14)}", LABEL)


def held_text(_: Translator, view: Overview, found: HeldPage, query: str | None) -> str:
    lines = [_("handover.held.title", name=_name(view.opened.leaver))]
    if query:
        key = "handover.held.found" if found.total else "handover.held.none"
        lines.append(_(key, query=fit.clip(query, NAME_LIMIT), count=found.total))
    else:
        lines.append(_("handover.held.count", count=found.total))
    if view.successor is not None:
        lines.append(_("handover.held.default_is", name=_name(view.successor)))
    if found.pages > 1:
        lines.append(_("handover.page", page=found.page + 1, pages=found.pages))
    lines.append(_("handover.held.hint"))
    return fit.message("\n".join(lines))


def held_markup(
    _: Translator, hid: int, found: HeldPage, query: str | None
) -> InlineKeyboardMarkup:
    rows: list[Row] = [
        [button(held_label(_, entry), _data("k", hid, entry.customer_id, 0))]
        for entry in found.entries
    ]
    rows = with_pager(
        rows, pager(found.page, found.pages, lambda p: _data("c", hid, p), counter=True)
    )
    search = [button(_("handover.button.search"), _data("q", hid))]
    if query:
        search.append(button(_("handover.button.show_all"), _data("x", hid)))
    rows.append(search)
    rows.append([button(_("handover.button.back"), _data("v", hid))])
    return InlineKeyboardMarkup(rows)


def plan_text(_: Translator, view: Overview) -> str:
    """The finish's confirmation: N to A, M to B, the rest, and what cannot be undone."""
    lines = [_("handover.confirm.title", name=_name(view.opened.leaver))]
    for name, count in view.by_successor[:PLAN_LINES]:
        lines.append(_("handover.confirm.customers", count=count, name=fit.clip(name, NAME_LIMIT)))
    more = len(view.by_successor) - PLAN_LINES
    if more > 0:
        lines.append(_("handover.summary.more_people", count=more))
    held = view.holdings
    if held.complaints or held.reviews or held.reminders:
        lines.append(
            _(
                "handover.confirm.follow",
                complaints=held.complaints,
                reviews=held.reviews,
                reminders=held.reminders,
            )
        )
    if view.rest.total and view.successor is not None:
        lines.append(_("handover.confirm.rest", count=view.rest.total, name=_name(view.successor)))
    lines.append(_("handover.confirm.final"))
    return fit.message("\n".join(lines))


def finished_text(_: Translator, finished: Finished) -> str:
    lines = [
        _(
            "handover.done",
            name=_name(finished.leaver),
            customers=finished.customers,
            complaints=finished.complaints,
            reviews=finished.reviews,
            reminders=finished.reminders,
        )
    ]
    for received in finished.received[:PLAN_LINES]:
        lines.append(
            _(
                "handover.confirm.customers",
                count=received.customers,
                name=_name(received.successor),
            )
        )
    more = len(finished.received) - PLAN_LINES
    if more > 0:
        lines.append(_("handover.summary.more_people", count=more))
    if finished.draft_discarded:
        lines.append(_("handover.done.draft"))
    lines.append(_("handover.done.told", count=finished.messages))
    return fit.message("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# reading what a press needs


async def _team_names(session: AsyncSession, people: Sequence[Staff]) -> dict[int, str]:
    ids = {p.team_id for p in people if p.team_id is not None}
    if not ids:
        return {}
    rows = await session.exec(select(Team.id, Team.name).where(col(Team.id).in_(ids)))
    return {tid: name for tid, name in rows.all() if tid is not None}


async def _search_of(context: BotContext, hid: int) -> str | None:
    """The admin's search under way for this hand-over, from their draft."""
    async with context.reading() as session:
        current = await drafts.load(
            session,
            context.services.keyring,
            context.member.id or 0,
            not_before=context.services.draft_cutoff(),
        )
    if current is None or current.flow != FLOW_NAME or current.data.get("handover_id") != hid:
        return None
    query = current.data.get(FIELD)
    return query if isinstance(query, str) and query else None


async def _remember_search(context: BotContext, hid: int, query: str | None) -> None:
    """Keep the search (None: none, the whole list) in the admin's draft, so typing again
    narrows again; never over another flow's draft."""
    staff_id, keyring = context.member.id or 0, context.services.keyring
    async with context.unit_of_work() as session:
        current = await drafts.load(
            session, keyring, staff_id, not_before=context.services.draft_cutoff()
        )
        if current is not None and current.flow != FLOW_NAME:
            return
        # "show all" keeps the draft with no text, so typing afterwards searches again
        token = current.token + 1 if current is not None else secrets.randbelow(1 << 30) + 2
        state = DraftState(
            flow=FLOW_NAME,
            step=FIELD,
            mode=DraftMode.ask,
            token=token,
            data={"handover_id": hid, FIELD: query or ""},
            shown=token,
        )
        await drafts.save(session, keyring, staff_id, state, now=context.services.clock())


async def held_view(
    session: AsyncSession, _: Translator, opened: Opened, query: str | None, page: int
) -> Text:
    view = await handovers.overview(session, opened)
    found = await handovers.held_customers(session, opened, query=query, page=page)
    return held_text(_, view, found, query), held_markup(_, opened.id, found, query)


# ---------------------------------------------------------------------------------------------
# the search flow: typed text narrows the list of held customers


async def _prepare_search(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any]
) -> dict[str, Any] | None:
    hid = initial.get("handover_id")
    if not isinstance(hid, int):
        return None
    try:
        await handovers.load(session, actor=env.staff, handover_id=hid)
    except Refused:
        return None
    return {"handover_id": hid}


def _query(value: str, env: FlowEnv) -> str:
    return validation.text(value, max_len=QUERY_LIMIT)


async def _submit_search(env: FlowEnv, session: AsyncSession, answers: dict[str, Any]) -> Submitted:
    """Show the held customers matching the typed text, and keep the search going."""
    hid = answers.get("handover_id")
    if not isinstance(hid, int):
        raise Refused("not_found")
    opened = await handovers.load(session, actor=env.staff, handover_id=hid)
    query = str(answers[FIELD])
    text, markup = await held_view(session, env._, opened, query, 0)

    async def keep_searching(context: BotContext, chat_id: int) -> None:
        await _remember_search(context, hid, query)

    return Submitted(text, markup, after=keep_searching)


SEARCH_FLOW = runner.register(
    Flow(
        name=FLOW_NAME,
        steps=(Step(FIELD, Kind.TEXT, required=True, parse=_query, example="handover.example"),),
        submit=_submit_search,
        confirm=False,
        disposable=True,
        prepare=_prepare_search,
    )
)


# ---------------------------------------------------------------------------------------------
# /handover: the open hand-overs


async def _list_view(context: BotContext, page: int) -> Text:
    _ = context._
    async with context.reading() as session:
        found = await handovers.open_handovers(session, actor=context.member)
        counts = [await handovers.holdings(session, o.leaver.id or 0) for o in found]
    pages = max(1, -(-len(found) // LIST_PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    shown = list(zip(found, counts, strict=True))[
        page * LIST_PAGE_SIZE : (page + 1) * LIST_PAGE_SIZE
    ]
    lines = [_("handover.list.title", count=len(found)) if found else _("handover.list.none")]
    if pages > 1:
        lines.append(_("handover.page", page=page + 1, pages=pages))
    rows: list[Row] = [
        [
            button(
                fit.label(
                    _("handover.list.entry", name=opened.leaver.display_name, count=held.customers),
                    LABEL,
                ),
                _data("v", opened.id),
            )
        ]
        for opened, held in shown
    ]
    rows = with_pager(rows, pager(page, pages, lambda p: _data("l", p), counter=True))
    return fit.message("\n".join(lines)), InlineKeyboardMarkup(rows)


async def handover_command(update: Update, context: BotContext) -> None:
    """List the open hand-overs, so an admin can come back to one (admins only)."""
    if not permissions.can_manage_staff(context.member):
        await context.bot.send_message(context.chat_id, context._("refused.not_allowed"))
        return
    text, markup = await _list_view(context, 0)
    await context.bot.send_message(context.chat_id, text, reply_markup=markup)


# ---------------------------------------------------------------------------------------------
# buttons


Action = Callable[[CallbackQuery, BotContext, Press, int], Awaitable[None]]


async def _refused(query: CallbackQuery, context: BotContext, refusal: Refused) -> None:
    """Tell the presser why nothing happened; a closed hand-over's buttons have expired."""
    _ = context._
    if refusal.code == "handover_closed":
        await query.answer(_("handover.expired"), show_alert=True)
        await close_buttons(query.message)
        return
    if refusal.code == "not_allowed":
        await query.answer(_("refused.not_allowed"), show_alert=True)
        return
    if refusal.code in REFUSALS:
        text = fit.answer(_(REFUSALS[refusal.code], **refusal.details))
        await query.answer(text, show_alert=True)
        return
    await query.answer(_("button.expired"), show_alert=True)


REFUSALS = {
    "handover_changed": "refused.handover_changed",
    "handover_successor": "refused.handover_successor",
    "handover_unassigned": "refused.handover_unassigned",
    "handover_not_held": "refused.handover_not_held",
}


async def _put(
    query: CallbackQuery, context: BotContext, shown: Text, *, new: bool = False
) -> None:
    """Show a view in place of the pressed message (or anew, when asked or it cannot be)."""
    text, markup = shown
    if not new and await replace_page(query.message, text, markup):
        return
    await context.bot.send_message(context.chat_id, text, reply_markup=markup)


def _page(press: Press, index: int) -> int | None:
    return press.id(index, maximum=PAGE_MAX)


async def _on_view(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        view = await handovers.overview(session, opened)
    await query.answer()
    shown = overview_text(context._, view), overview_markup(context._, view)
    await _put(query, context, shown, new=press.text(0) == "o")


async def _on_all(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    page = _page(press, 2)
    if page is None:
        raise Refused("expired")
    _ = context._
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        found = await handovers.candidates(session, opened, page=page)
        teams = await _team_names(session, found.people)
    subject = _("handover.candidates.all", name=_name(opened.leaver))
    markup = candidates_markup(
        _,
        found,
        teams,
        chosen=opened.handover.successor_id,
        choose=lambda sid: _data("s", hid, sid),
        page_data=lambda p: _data("a", hid, p),
        back=_data("v", hid),
    )
    await query.answer()
    await _put(query, context, (candidates_text(_, opened, found, subject), markup))


async def _on_successor(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    successor_id = press.id(2)
    if successor_id is None:
        raise Refused("expired")
    async with context.unit_of_work() as session:
        successor = await handovers.choose_successor(
            session, actor=context.member, handover_id=hid, successor_id=successor_id
        )
        name = successor.display_name
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        view = await handovers.overview(session, opened)
    await query.answer(fit.answer(context._("handover.chosen", name=name)))
    await _put(query, context, (overview_text(context._, view), overview_markup(context._, view)))


async def _on_customers(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    page = _page(press, 2)
    if page is None:
        raise Refused("expired")
    search = await _search_of(context, hid)
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        shown = await held_view(session, context._, opened, search, page)
    await query.answer()
    await _put(query, context, shown)


async def _on_customer(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    customer_id, page = press.id(2), _page(press, 3)
    if customer_id is None or page is None:
        raise Refused("expired")
    _ = context._
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        customer = await handovers.held_customer(session, opened, customer_id)
        own = await session.get(handovers.HandoverPick, (hid, customer_id))
        teams_of = frozenset({customer.team_id}) if customer.team_id is not None else None
        found = await handovers.candidates(session, opened, teams=teams_of, page=page)
        teams = await _team_names(session, found.people)
        default = (
            await session.get(Staff, opened.handover.successor_id)
            if opened.handover.successor_id
            else None
        )
        picked = await session.get(Staff, own.successor_id) if own is not None else None
    lines = [
        _(
            "handover.customer.title",
            name=fit.clip(customer.name, NAME_LIMIT),
            number=customer.customer_no,
        )
    ]
    if picked is not None:
        lines.append(_("handover.customer.picked", name=_name(picked)))
    elif default is not None:
        lines.append(_("handover.customer.default", name=_name(default)))
    else:
        lines.append(_("handover.customer.nobody"))
    extra: list[Row] = []
    if own is not None:
        extra.append([button(_("handover.button.unpick"), _data("p", hid, customer_id, 0))])
    markup = candidates_markup(
        _,
        found,
        teams,
        chosen=own.successor_id if own is not None else None,
        choose=lambda sid: _data("p", hid, customer_id, sid),
        page_data=lambda p: _data("k", hid, customer_id, p),
        extra=extra,
        back=_data("c", hid, 0),
    )
    await query.answer()
    await _put(query, context, (candidates_text(_, opened, found, "\n".join(lines)), markup))


async def _on_pick(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    customer_id, successor_id = press.id(2), press.id(3)
    if customer_id is None or successor_id is None:
        raise Refused("expired")
    async with context.unit_of_work() as session:
        successor = await handovers.pick(
            session,
            actor=context.member,
            handover_id=hid,
            customer_id=customer_id,
            successor_id=successor_id or None,
        )
        note = (
            context._("handover.picked", name=successor.display_name)
            if successor is not None
            else context._("handover.unpicked")
        )
    search = await _search_of(context, hid)
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        shown = await held_view(session, context._, opened, search, 0)
    await query.answer(fit.answer(note))
    await _put(query, context, shown)


async def _on_search(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    async with context.reading() as session:
        await handovers.load(session, actor=context.member, handover_id=hid)
    await query.answer()
    await runner.start(update_of(query), context, SEARCH_FLOW, {"handover_id": hid})


def update_of(query: CallbackQuery) -> Update:
    """The update a flow started from a button runs on (the runner reads its chat)."""
    return Update(update_id=0, callback_query=query)


async def _on_show_all(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    await _remember_search(context, hid, None)
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        shown = await held_view(session, context._, opened, None, 0)
    await query.answer()
    await _put(query, context, shown)


async def _on_confirm_finish(
    query: CallbackQuery, context: BotContext, press: Press, hid: int
) -> None:
    _ = context._
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
        view = await handovers.overview(session, opened)
    back = [button(_("handover.button.back"), _data("v", hid))]
    if view.unassigned:
        await query.answer()
        text = _("refused.handover_unassigned", count=view.unassigned)
        rows = [[button(_("handover.button.one_for_all"), _data("a", hid, 0))], back]
        await _put(query, context, (fit.message(text), InlineKeyboardMarkup(rows)))
        return
    version = opened.handover.version
    rows = [[button(_("handover.button.finish_now"), _data("y", hid, version))], back]
    await query.answer()
    await _put(query, context, (plan_text(_, view), InlineKeyboardMarkup(rows)))


async def _on_finish(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    version = press.id(2)
    if version is None:
        raise Refused("expired")
    _ = context._
    try:
        async with context.unit_of_work() as session:
            finished = await handovers.finish(
                session,
                context.services.keyring,
                actor=context.member,
                handover_id=hid,
                version=version,
                notify=notifier(context.services.settings.DEFAULT_LANGUAGE),
                now=context.services.clock(),
            )
            queued = outbox.queued_in(session)
    except Refused as refusal:
        if refusal.code == "handover_changed":  # someone changed it: show the plan as it is now
            await query.answer(_("refused.handover_changed"), show_alert=True)
            await _on_confirm_finish(query, context, press, hid)
            return
        raise
    await query.answer()
    await edit_quietly(query.message, finished_text(_, finished))
    await context.send_queued(queued)


async def _on_confirm_cancel(
    query: CallbackQuery, context: BotContext, press: Press, hid: int
) -> None:
    _ = context._
    async with context.reading() as session:
        opened = await handovers.load(session, actor=context.member, handover_id=hid)
    rows = [
        [button(_("handover.button.cancel_now"), _data("z", hid, opened.handover.version))],
        [button(_("handover.button.back"), _data("v", hid))],
    ]
    text = _("handover.cancel.confirm", name=_name(opened.leaver))
    await query.answer()
    await _put(query, context, (fit.message(text), InlineKeyboardMarkup(rows)))


async def _on_cancel(query: CallbackQuery, context: BotContext, press: Press, hid: int) -> None:
    version = press.id(2)
    if version is None:
        raise Refused("expired")
    async with context.unit_of_work() as session:
        opened = await handovers.cancel(
            session, actor=context.member, handover_id=hid, version=version
        )
    await query.answer()
    await edit_quietly(query.message, context._("handover.cancelled", name=_name(opened.leaver)))


_ACTIONS: dict[str, Action] = {
    "o": _on_view,
    "v": _on_view,
    "a": _on_all,
    "s": _on_successor,
    "c": _on_customers,
    "k": _on_customer,
    "p": _on_pick,
    "q": _on_search,
    "x": _on_show_all,
    "f": _on_confirm_finish,
    "y": _on_finish,
    "n": _on_confirm_cancel,
    "z": _on_cancel,
}


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `ho:` buttons: every press re-loads the hand-over and re-checks the presser."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = HANDOVER.parse(query.data)
    action = press.text(0) if press is not None else None
    if press is not None and action == "l":
        page = _page(press, 1)
        if page is None or not permissions.can_manage_staff(context.member):
            await query.answer(context._("refused.not_allowed"), show_alert=True)
            return
        await query.answer()
        await _put(query, context, await _list_view(context, page))
        return
    handler = _ACTIONS.get(action or "")
    hid = press.id(1) if press is not None else None
    if press is None or handler is None or hid is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    try:
        await handler(query, context, press, hid)
    except Refused as refusal:
        await _refused(query, context, refusal)
