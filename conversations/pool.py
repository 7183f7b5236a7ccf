"""/pool: the team pool (公海): customers nobody followed up, for the team to take.

Salespeople see their team's pool and claim from it; managers (and admins) see their teams'
pools and assign from them to a salesperson of the team. The list shows no sensitive column
and opens no card: a claimant sees the card once the customer is theirs. Buttons, all `pl:`:

    pl:T                      the teams to choose from (an admin, a manager of several teams)
    pl:t:<team>:<page>        a page of the team's pool
    pl:c:<customer>           claim: asks to confirm (one tap more against a mis-tap)
    pl:C:<customer>           claim, confirmed; the card opens
    pl:a:<customer>:<page>    assign: a page of the team's salespeople
    pl:p:<customer>:<staff>   assign to them: asks to confirm
    pl:A:<customer>:<staff>   assign, confirmed; the assignee is told

Every press reads the pool again and storage.pool re-checks who may do what; a customer someone
else took meanwhile is answered as taken, and the list is shown anew.
"""

from __future__ import annotations

from datetime import datetime

from telegram import CallbackQuery, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.i18n import Translator
from conversations import card, fit
from conversations.callback_data import POOL, Press
from conversations.keyboards import Row, button, pager, rows_of
from conversations.lists import ListPage
from conversations.messages import edit_quietly, replace_page
from storage import permissions
from storage import pool as store
from storage.errors import NotFound, Refused
from storage.models import Staff
from storage.pool import PoolEntry, PoolPage, PoolTeam

PAGE_SIZE = 8
PAGE_MAX = 999_999
PREFIX = "pl"
LABEL_NAME = 28  # a name inside a button


def _data(*fields: object) -> str:
    return POOL.data(PREFIX, *fields)


# ---------------------------------------------------------------------------------------------
# how the pool reads


def _name(entry: PoolEntry) -> str:
    return entry.short_name or entry.name


def entry_lines(_: Translator, index: int, entry: PoolEntry, now: datetime) -> list[fit.Line]:
    """An entry: number and name, then class, industry, region and days in the pool."""
    details = _(
        "pool.entry.details",
        cls=card.shown_value(_, "customer_class", entry.customer_class),
        industry=entry.industry or _("common.empty"),
        region=entry.region or _("common.empty"),
        days=entry.days_in_pool(now),
    )
    return [(f"{index}. {entry.customer_no} · ", fit.Slot(entry.name)), ("    ", fit.Slot(details))]


def pool_view(
    _: Translator, actor: Staff, shown: PoolPage, now: datetime, *, teams: bool, claims: str
) -> ListPage:
    """A page of the pool with a Claim (salespeople) or Assign (managers, admins) per entry."""
    lines: list[fit.Line] = [
        (fit.Slot(shown.team_name, lambda t: _("pool.title", team=t, total=shown.total)),)
    ]
    if shown.pages > 1:
        lines.append(_("pool.page", page=shown.page + 1, pages=shown.pages))
    if not shown.entries:
        lines += ["", _("pool.empty")]
    first = shown.page * PAGE_SIZE + 1
    for index, entry in enumerate(shown.entries, start=first):
        lines += ["", *entry_lines(_, index, entry, now)]
    claiming = permissions.can_claim_from_pool(actor, shown.team_id)
    if shown.entries:
        lines += ["", claims if claiming else _("pool.hint.assign")]
    entries = []
    for index, entry in enumerate(shown.entries, start=first):
        name = fit.clip(_name(entry), LABEL_NAME)
        if claiming:
            entries.append(
                button(
                    fit.label(_("pool.button.claim", n=index, name=name), 64), _data("c", entry.id)
                )
            )
        elif permissions.can_assign_from_pool(actor, shown.team_id):
            entries.append(
                button(
                    fit.label(_("pool.button.assign", n=index, name=name), 64),
                    _data("a", entry.id, 0),
                )
            )
    last: Row = [button(_("pool.button.teams"), _data("T"))] if teams else []
    return ListPage(
        text=fit.compose(lines),
        page=shown.page,
        pages=shown.pages,
        page_data=lambda p: _data("t", shown.team_id, p),
        entries=entries,
        width=1,
        last_row=last,
    )


def teams_view(_: Translator, teams: list[PoolTeam]) -> tuple[str, InlineKeyboardMarkup]:
    buttons = [
        button(
            fit.label(_("pool.team_button", team=t.name, count=t.count), 64), _data("t", t.id, 0)
        )
        for t in teams
    ]
    return _("pool.teams"), InlineKeyboardMarkup(rows_of(buttons, 1))


def _claims_hint(_: Translator, limit: int, used: int) -> str:
    if limit <= 0:
        return _("pool.hint.off")
    return _("pool.hint.claim", limit=limit, days=store.CLAIM_WINDOW.days, used=used)


# ---------------------------------------------------------------------------------------------
# reading


async def _teams(context: BotContext) -> list[PoolTeam]:
    async with context.reading() as session:
        return await store.pool_teams(session, actor=context.member)


async def _page_view(
    context: BotContext, team_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup] | None:
    """The page, or None if the member may not see that team's pool."""
    actor, now = context.member, context.services.clock()
    async with context.reading() as session:
        shown = await store.pool_page(
            session, actor=actor, team_id=team_id, page=page, page_size=PAGE_SIZE
        )
        used = await store.claims_in_window(session, staff_id=actor.id or 0, now=now)
        teams = await store.pool_teams(session, actor=actor)
    if shown is None:
        return None
    limit = context.services.settings.POOL_CLAIM_LIMIT
    view = pool_view(
        context._,
        actor,
        shown,
        now,
        teams=len(teams) > 1,
        claims=_claims_hint(context._, limit, used),
    )
    return view.text, view.markup()


async def pool_command(update: Update, context: BotContext) -> None:
    """Show the team's pool (a choice of teams first for whoever sees several)."""
    teams = await _teams(context)
    if not teams:
        await context.bot.send_message(context.chat_id, context._("pool.no_team"))
        return
    if len(teams) > 1:
        text, markup = teams_view(context._, teams)
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)
        return
    shown = await _page_view(context, teams[0].id, 0)
    if shown is None:  # the team vanished in between
        await context.bot.send_message(context.chat_id, context._("pool.no_team"))
        return
    await context.bot.send_message(context.chat_id, shown[0], reply_markup=shown[1])


# ---------------------------------------------------------------------------------------------
# buttons


async def _expired(query: CallbackQuery, context: BotContext) -> None:
    await query.answer(context._("button.expired"), show_alert=True)


async def _gone(query: CallbackQuery, context: BotContext) -> None:
    """Not in a pool the member may see: taken meanwhile, or never theirs to see."""
    await query.answer(fit.answer(context._("pool.gone")), show_alert=True)


async def _show_page(query: CallbackQuery, context: BotContext, team_id: int, page: int) -> bool:
    shown = await _page_view(context, team_id, page)
    if shown is None:
        return False
    text, markup = shown
    if not await replace_page(query.message, text, markup):
        await context.bot.send_message(context.chat_id, text, reply_markup=markup)
    return True


async def _on_teams(query: CallbackQuery, context: BotContext, press: Press) -> None:
    teams = await _teams(context)
    if len(press) != 1 or not teams:
        await _expired(query, context)
        return
    await query.answer()
    await edit_quietly(query.message, *teams_view(context._, teams))


async def _on_page(query: CallbackQuery, context: BotContext, press: Press) -> None:
    team_id, page = press.id(1), press.id(2, maximum=PAGE_MAX)
    if len(press) != 3 or team_id is None or page is None:
        await _expired(query, context)
        return
    if not await _show_page(query, context, team_id, page):
        await query.answer(context._("refused.not_found"), show_alert=True)
        return
    await query.answer()


async def _entry(context: BotContext, customer_id: int) -> PoolEntry | None:
    async with context.reading() as session:
        return await store.pool_entry(session, actor=context.member, customer_id=customer_id)


async def _team_of(context: BotContext, customer_id: int) -> int | None:
    async with context.reading() as session:
        return await store.team_of(session, customer_id=customer_id)


def _back(_: Translator, team_id: int | None) -> list[Row]:
    return [[button(_("pool.button.back"), _data("t", team_id, 0))]] if team_id else []


async def _on_claim(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """Ask before claiming: one tap more against a mis-tap in a long list."""
    customer_id = press.id(1)
    if len(press) != 2 or customer_id is None:
        await _expired(query, context)
        return
    entry = await _entry(context, customer_id)
    team_id = await _team_of(context, customer_id)
    if entry is None or not permissions.can_claim_from_pool(context.member, team_id):
        await _gone(query, context)
        return
    _ = context._
    text = fit.message(_("pool.confirm_claim", name=entry.name, number=entry.customer_no))
    markup = InlineKeyboardMarkup(
        [[button(_("pool.button.yes_claim"), _data("C", customer_id))], *_back(_, team_id)]
    )
    await query.answer()
    await edit_quietly(query.message, text, markup)


def refusal_text(_: Translator, refusal: Refused) -> str:
    if isinstance(refusal, NotFound):
        return _("pool.gone")
    return _(f"pool.refused.{refusal.code}", **refusal.details)


async def _on_claimed(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """Claim it; the winner's card opens, anyone later is told it is taken."""
    customer_id = press.id(1)
    if len(press) != 2 or customer_id is None:
        await _expired(query, context)
        return
    team_id = await _team_of(context, customer_id)
    services = context.services
    try:
        async with context.unit_of_work() as session:
            await store.claim(
                session,
                services.keyring,
                actor=context.member,
                customer_id=customer_id,
                now=services.clock(),
                timezone=services.settings.TIMEZONE,
                limit=services.settings.POOL_CLAIM_LIMIT,
            )
    except Refused as refusal:
        await query.answer(fit.answer(refusal_text(context._, refusal)), show_alert=True)
        if team_id is not None and refusal.code == "pool_taken":
            await _show_page(query, context, team_id, 0)
        return
    await query.answer(fit.answer(context._("pool.claimed")))
    await edit_quietly(query.message, context._("pool.claimed"))
    await card.send_card(context, context.chat_id, customer_id)


async def _on_assign(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """Whom to assign it to: a page of the team's salespeople."""
    customer_id, page = press.id(1), press.id(2, maximum=PAGE_MAX)
    if len(press) != 3 or customer_id is None or page is None:
        await _expired(query, context)
        return
    entry = await _entry(context, customer_id)
    team_id = await _team_of(context, customer_id)
    if entry is None or team_id is None:
        await _gone(query, context)
        return
    async with context.reading() as session:
        found = await store.assignees(
            session, actor=context.member, team_id=team_id, page=page, page_size=PAGE_SIZE
        )
    if found is None:
        await _gone(query, context)
        return
    people, page, pages = found
    _ = context._
    key = "pool.choose_assignee" if people else "pool.no_assignees"
    text = fit.message(_(key, name=entry.name, number=entry.customer_no))
    rows = [
        [button(fit.label(person.display_name), _data("p", customer_id, person.id))]
        for person in people
    ]
    turn = pager(page, pages, lambda p: _data("a", customer_id, p), counter=True)
    rows += [turn] if turn else []
    await query.answer()
    await edit_quietly(query.message, text, InlineKeyboardMarkup([*rows, *_back(_, team_id)]))


async def _assignee(context: BotContext, staff_id: int, team_id: int | None) -> Staff | None:
    async with context.reading() as session:
        person = await session.get(Staff, staff_id)
    if person is None or not permissions.can_be_assigned_from_pool(person, team_id):
        return None
    return person


async def _on_pick(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """Ask before assigning: the customer and the person, named."""
    customer_id, staff_id = press.id(1), press.id(2)
    if len(press) != 3 or customer_id is None or staff_id is None:
        await _expired(query, context)
        return
    entry = await _entry(context, customer_id)
    team_id = await _team_of(context, customer_id)
    if entry is None or not permissions.can_assign_from_pool(context.member, team_id):
        await _gone(query, context)
        return
    person = await _assignee(context, staff_id, team_id)
    if person is None:
        await query.answer(fit.answer(context._("pool.refused.pool_assignee")), show_alert=True)
        return
    _ = context._
    # names are at most 200 characters (storage.models): the sentence always fits
    text = fit.message(
        _(
            "pool.confirm_assign",
            name=entry.name,
            number=entry.customer_no,
            person=person.display_name,
        )
    )
    markup = InlineKeyboardMarkup(
        [
            [button(_("pool.button.yes_assign"), _data("A", customer_id, staff_id))],
            [button(_("pool.button.other_person"), _data("a", customer_id, 0))],
        ]
    )
    await query.answer()
    await edit_quietly(query.message, text, markup)


async def _on_assigned(query: CallbackQuery, context: BotContext, press: Press) -> None:
    """Assign it; the assignee is told at once (their reminder, quiet hours kept)."""
    customer_id, staff_id = press.id(1), press.id(2)
    if len(press) != 3 or customer_id is None or staff_id is None:
        await _expired(query, context)
        return
    team_id = await _team_of(context, customer_id)
    services = context.services
    try:
        async with context.unit_of_work() as session:
            assignee = await store.assign(
                session,
                services.keyring,
                actor=context.member,
                customer_id=customer_id,
                assignee_id=staff_id,
                now=services.clock(),
                timezone=services.settings.TIMEZONE,
            )
    except Refused as refusal:
        await query.answer(fit.answer(refusal_text(context._, refusal)), show_alert=True)
        if team_id is not None and refusal.code == "pool_taken":
            await _show_page(query, context, team_id, 0)
        return
    assert assignee.id is not None
    await context.deliver_due_to(assignee.id)
    done = fit.clip(context._("pool.assigned", person=assignee.display_name), 3000)
    await query.answer(fit.answer(done))
    await edit_quietly(query.message, done, InlineKeyboardMarkup(_back(context._, team_id)))


_ACTIONS = {
    "T": _on_teams,
    "t": _on_page,
    "c": _on_claim,
    "C": _on_claimed,
    "a": _on_assign,
    "p": _on_pick,
    "A": _on_assigned,
}


async def on_button(update: Update, context: BotContext) -> None:
    """Handles every `pl:` button (module docstring)."""
    query = update.callback_query
    assert query is not None
    press = POOL.parse(query.data)
    handler = _ACTIONS.get(press.text(0) or "") if press is not None else None
    if press is None or handler is None:
        await _expired(query, context)
        return
    await handler(query, context, press)
