"""/find and /my: searching and listing the customers the user may see.

/find is a small flow ("find", one typed question) so that typed text reaches it through the
runner and survives a restart. Its draft also remembers the last search text, the filters and
a search number; the list's buttons carry that number, so a button of an older list is
recognised as stale: `fp:<n>:<page>` pages, `ff:<n>` opens the filters, `fk:<n>:<kind>` offers a
filter's values, `fv:<n>:<kind>:<value>` sets one (a value is only taken if it is one offered;
industries and regions travel as short hashes), `fx:<n>` clears them, `fr:<n>` goes back to
the list and `fq:<n>` ends the search. Results and /my entries open cards with `cu:<id>`, which
re-check the permission; lists come from queries limited to what the member may see. /my
(`fm:<page>`) keeps no state at all.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardMarkup, Update

from bot.context import BotContext, Services
from bot.i18n import Translator
from conversations import fit, runner
from conversations.callback_data import CARD, FIND, REASSIGN, Press, parse_id
from conversations.card import STATUS_MARKS
from conversations.keyboards import button, pager, rows_of, with_pager
from conversations.messages import close_buttons, edit_quietly
from conversations.steps import Flow, FlowEnv, Kind, Step, Submitted
from storage import cards, drafts, search, validation
from storage.cards import CustomerList, ListEntry
from storage.drafts import DraftMode, DraftState
from storage.models import CustomerClass, RecordStatus, Staff, Stage
from storage.permissions import Scope, teams_of, view_scope
from storage.reassign import may_reassign_any
from storage.search import NO_FILTERS, Filters

FLOW_NAME = "find"
FIELD = "find_query"
QUERY_LIMIT = 100
PAGE_SIZE = 8
PAGE_MAX = 999_999  # a page number in button data (an offset far beyond any list)
MAX_RESULTS = 80  # search results kept for paging; more means the text should be narrower
RECENT = 6
FREE_VALUES_SHOWN = 20
FREE_VALUES_LOOKUP = 500
LABEL_LIMIT = 28
# filter kinds as buttons name them, and the columns they filter
KINDS = {"c": "customer_class", "s": "stage", "i": "industry", "r": "region", "t": "status"}
CHOICES: dict[str, tuple[str, ...]] = {
    "customer_class": tuple(CustomerClass),
    "stage": tuple(Stage),
    "status": (*cards.LISTED_STATUSES, RecordStatus.archived),
}
ANY = "-"


# ---------------------------------------------------------------------------------------------
# the search under way, kept in the flow's draft


@dataclass(frozen=True)
class FindState:
    """What the newest list shows: its text (if any), its filters, and its number."""

    query: str | None = None
    filters: Filters = NO_FILTERS
    sid: int = 0

    def data(self) -> dict[str, Any]:
        return {"last_query": self.query, "filters": self.filters.active(), "sid": self.sid}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FindState:
        stored = data.get("filters") or {}
        active = {k: v for k, v in stored.items() if k in Filters.kinds() and isinstance(v, str)}
        sid = data.get("sid")
        return cls(
            query=data.get("last_query") or None,
            filters=Filters(**active),
            sid=sid if isinstance(sid, int) else 0,
        )

    def next(self, **changes: Any) -> FindState:
        """The state of a new list: changed as asked, with a new number."""
        return replace(self, sid=self.sid + 1, **changes)


async def _load(context: BotContext) -> tuple[FindState | None, bool]:
    """The search under way (None if none), and whether another flow is under way instead."""
    async with context.reading() as session:
        current = await drafts.load(
            session,
            context.services.keyring,
            context.member.id or 0,
            not_before=context.services.draft_cutoff(),
        )
    if current is None:
        return None, False
    if current.flow != FLOW_NAME:
        return None, True
    return FindState.from_data(current.data), False


async def _remember(context: BotContext, state: FindState) -> bool:
    """Keep the search in the find draft, so typed text refines it; never over another flow."""
    staff_id, keyring = context.member.id or 0, context.services.keyring
    async with context.unit_of_work() as session:
        current = await drafts.load(
            session, keyring, staff_id, not_before=context.services.draft_cutoff()
        )
        if current is not None and current.flow != FLOW_NAME:
            return False
        # a new token makes the prompt buttons of an older find draft stale
        token = current.token + 1 if current is not None else secrets.randbelow(1 << 30) + 2
        # typed text always searches (no field to misplace it in), so it counts as shown
        draft = DraftState(
            flow=FLOW_NAME,
            step=FIELD,
            mode=DraftMode.ask,
            token=token,
            data=state.data(),
            shown=token,
        )
        await drafts.save(session, keyring, staff_id, draft, now=context.services.clock())
    return True


async def _forget(context: BotContext) -> None:
    async with context.unit_of_work() as session:
        current = await drafts.load(
            session,
            context.services.keyring,
            context.member.id or 0,
            not_before=context.services.draft_cutoff(),
        )
        if current is not None and current.flow == FLOW_NAME:
            await drafts.discard(session, context.member.id or 0)


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Results:
    mode: str  # recent / search / filters
    entries: tuple[ListEntry, ...]
    total: int
    page: int
    pages: int
    capped: bool = False


async def results(
    session: AsyncSession,
    services: Services,
    staff: Staff,
    today: date,
    state: FindState,
    page: int,
) -> Results:
    """One page of what the state asks for: a search, a filtered list, or recent customers."""
    if state.query:
        found = await search.search_customers(
            session,
            keyring=services.keyring,
            actor=staff,
            text=state.query,
            limit=MAX_RESULTS + 1,
            filters=state.filters,
        )
        capped = len(found) > MAX_RESULTS
        found = found[:MAX_RESULTS]
        pages = max(1, math.ceil(len(found) / PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        shown = found[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        entries = tuple(cards.list_entry(c, today) for c in shown)
        return Results("search", entries, len(found), page, pages, capped)
    if state.filters.active():
        listed = await cards.filtered_customers(
            session, actor=staff, filters=state.filters, today=today, page=page, page_size=PAGE_SIZE
        )
        return Results("filters", listed.entries, listed.total, listed.page, listed.pages)
    recent = await search.recent_customers(session, actor=staff, limit=RECENT)
    entries = tuple(cards.list_entry(c, today) for c in recent)
    return Results("recent", entries, len(entries), 0, 1)


def _short(text: str, limit: int = LABEL_LIMIT) -> str:
    return fit.clip(text, limit)


def value_label(_: Translator, column: str, value: str) -> str:
    if column == "status":
        return _(f"card.status.{value}")
    if column in CHOICES:
        return _(f"choice.{column}.{value}")
    return _short(value, 24)


def kind_label(_: Translator, column: str) -> str:
    return _("card.label.status") if column == "status" else _(f"field.{column}")


def filters_summary(_: Translator, filters: Filters) -> str:
    return " · ".join(value_label(_, k, v) for k, v in filters.active().items())


def _status_mark(status: str) -> str:
    """Approved records go unmarked; the others say at a glance what they are waiting for."""
    mark = STATUS_MARKS.get(status) if status != RecordStatus.approved else None
    return f"{mark} " if mark else ""


def entry_label(entry: ListEntry) -> str:
    """A result button: how urgent, its state if not approved, its name and number."""
    due = {"overdue": "⚠️ ", "today": "📌 "}.get(entry.due or "", "")
    return f"{due}{_status_mark(entry.status)}{_short(entry.name)} · {entry.customer_no}"


def results_text(_: Translator, state: FindState, found: Results) -> str:
    lines: list[str] = []
    if found.mode == "recent":
        lines += [_("find.home"), _("find.recent") if found.entries else _("find.recent_none")]
    elif found.mode == "search" and found.total:
        lines.append(_("find.found", query=state.query, count=found.total))
        if found.capped:
            lines.append(_("find.capped", count=MAX_RESULTS))
    elif found.mode == "search":
        lines += [_("find.none", query=state.query), _("find.none_hint")]
    elif found.total:
        lines.append(_("find.listed", count=found.total))
    else:
        lines.append(_("find.listed_none"))
    if state.filters.active():
        lines.append(_("find.filters_now", filters=filters_summary(_, state.filters)))
        if found.mode == "search" and not found.total:
            lines.append(_("find.none_filters_hint"))
    if found.pages > 1:
        lines.append(_("find.page", page=found.page + 1, pages=found.pages))
    if found.mode != "recent":
        lines.append(_("find.type_again"))
    return fit.message("\n".join(lines))


def results_markup(_: Translator, state: FindState, found: Results) -> InlineKeyboardMarkup:
    rows = [[button(fit.label(entry_label(e), 64), CARD.data("cu", e.id))] for e in found.entries]
    rows = with_pager(
        rows, pager(found.page, found.pages, lambda p: FIND.data("fp", state.sid, p), counter=True)
    )
    active = len(state.filters.active())
    filter_button = _("find.button.filters_active", count=active) if active else None
    rows.append(
        [
            button(filter_button or _("find.button.filters"), FIND.data("ff", state.sid)),
            button(_("find.button.close"), FIND.data("fq", state.sid)),
        ]
    )
    return InlineKeyboardMarkup(rows)


def menu_text(_: Translator, state: FindState) -> str:
    summary = filters_summary(_, state.filters) or _("find.filters_none")
    return fit.message(_("find.menu", filters=summary))


def menu_markup(_: Translator, state: FindState) -> InlineKeyboardMarkup:
    active = state.filters.active()
    buttons = []
    for code, column in KINDS.items():
        current = active.get(column)
        shown = value_label(_, column, current) if current else _("find.any")
        buttons.append(
            button(f"{kind_label(_, column)}: {shown}", FIND.data("fk", state.sid, code))
        )
    rows = rows_of(buttons, 2)
    rows.append(
        [
            button(_("find.button.clear"), FIND.data("fx", state.sid)),
            button(_("find.button.show"), FIND.data("fr", state.sid)),
        ]
    )
    return InlineKeyboardMarkup(rows)


def value_code(value: str) -> str:
    """A short stand-in for a free-text value (industry, region) in button data."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def values_markup(
    _: Translator, state: FindState, code: str, values: list[str]
) -> InlineKeyboardMarkup:
    column = KINDS[code]
    buttons = [
        button(
            value_label(_, column, v),
            FIND.data("fv", state.sid, code, v if column in CHOICES else value_code(v)),
        )
        for v in values
    ]
    width = 1 if column == "stage" else 2
    rows = rows_of(buttons, width)
    rows.append(
        [
            button(_("find.any"), FIND.data("fv", state.sid, code, ANY)),
            button(_("find.button.back"), FIND.data("ff", state.sid)),
        ]
    )
    return InlineKeyboardMarkup(rows)


# ---------------------------------------------------------------------------------------------
# the flow: typed text searches


def _query(value: str, env: FlowEnv) -> str:
    return validation.text(value, max_len=QUERY_LIMIT)


async def _submit(env: FlowEnv, session: AsyncSession, answers: dict[str, Any]) -> Submitted:
    """Search for the typed text within the current filters, and keep the search going."""
    state = FindState.from_data(answers).next(query=answers[FIELD])
    found = await results(session, env.services, env.staff, env.today, state, 0)

    async def keep_searching(context: BotContext, chat_id: int) -> None:
        await _remember(context, state)

    return Submitted(
        results_text(env._, state, found),
        results_markup(env._, state, found),
        after=keep_searching,
    )


FLOW = runner.register(
    Flow(
        name=FLOW_NAME,
        steps=(Step(FIELD, Kind.TEXT, required=True, parse=_query, example="find.example"),),
        submit=_submit,
        confirm=False,
        disposable=True,  # a search in progress never stands in the way of real work
    )
)


# ---------------------------------------------------------------------------------------------
# commands and buttons


async def _results_view(
    context: BotContext, state: FindState, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    async with context.reading() as session:
        found = await results(session, context.services, context.member, context.today, state, page)
    return results_text(context._, state, found), results_markup(context._, state, found)


async def find_command(update: Update, context: BotContext) -> None:
    """Search at once for `/find <text>`, or offer recent customers, filters and typing."""
    _ = context._
    previous, other_flow = await _load(context)
    if other_flow:  # the runner offers to continue it, or to drop it and search instead
        await runner.start(update, context, FLOW)
        return
    text = " ".join(context.args or []).strip()
    if len(text) > QUERY_LIMIT:
        await context.bot.send_message(context.chat_id, _("invalid.too_long", limit=QUERY_LIMIT))
        text = ""
    state = (previous or FindState()).next(query=text or None, filters=NO_FILTERS)
    await _remember(context, state)
    message, markup = await _results_view(context, state, 0)
    await context.bot.send_message(context.chat_id, message, reply_markup=markup)


async def on_button(update: Update, context: BotContext) -> None:
    """Handles `f…:` buttons (filters, pages, results)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    press = FIND.parse(query.data)
    if press is not None and press.prefix == "fm":
        await _my_page(query, context, press)
        return
    handler = _ACTIONS.get(press.prefix) if press is not None else None
    sid = press.id(0) if press is not None else None
    if press is None or handler is None or sid is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    state, _other = await _load(context)
    if state is None or state.sid != sid:
        await query.answer(context._("find.expired"), show_alert=True)
        await close_buttons(query.message)
        return
    await handler(query, context, state, press.fields[1:])


def _number(args: Sequence[str], position: int) -> int | None:
    return parse_id(args[position], maximum=PAGE_MAX) if len(args) > position else None


async def _on_page(
    query: CallbackQuery, context: BotContext, state: FindState, args: Sequence[str]
) -> None:
    page = _number(args, 0)
    if page is None:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await query.answer()
    await edit_quietly(query.message, *await _results_view(context, state, page))


async def _on_menu(
    query: CallbackQuery, context: BotContext, state: FindState, args: Sequence[str]
) -> None:
    await query.answer()
    await edit_quietly(query.message, menu_text(context._, state), menu_markup(context._, state))


async def _free_values(context: BotContext, column: str, limit: int) -> list[str]:
    async with context.reading() as session:
        return await cards.filter_values(session, actor=context.member, kind=column, limit=limit)


async def _on_kind(
    query: CallbackQuery, context: BotContext, state: FindState, args: Sequence[str]
) -> None:
    _ = context._
    code = args[0] if args else ""
    column = KINDS.get(code)
    if column is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    if column in CHOICES:
        values = list(CHOICES[column])
    else:
        values = await _free_values(context, column, FREE_VALUES_SHOWN)
    await query.answer()
    text = _("find.choose_value", kind=kind_label(_, column))
    if not values:
        text = _("find.no_values", kind=kind_label(_, column))
    await edit_quietly(query.message, text, values_markup(_, state, code, values))


async def _on_value(
    query: CallbackQuery, context: BotContext, state: FindState, args: Sequence[str]
) -> None:
    _ = context._
    column = KINDS.get(args[0]) if len(args) == 2 else None
    if column is None:
        await query.answer(_("button.expired"), show_alert=True)
        return
    wanted: str | None = args[1]
    if wanted == ANY:
        wanted = None
    elif column in CHOICES:
        wanted = wanted if wanted in CHOICES[column] else ""
    else:
        values = await _free_values(context, column, FREE_VALUES_LOOKUP)
        wanted = next((v for v in values if value_code(v) == wanted), "")
    if wanted == "":  # not a value offered (any more): a stale or hand-made button
        await query.answer(_("button.expired"), show_alert=True)
        return
    await _show_new(query, context, state.next(filters=state.filters.with_value(column, wanted)))


async def _on_clear(
    query: CallbackQuery, context: BotContext, state: FindState, args: Sequence[str]
) -> None:
    await _show_new(query, context, state.next(filters=NO_FILTERS))


async def _on_back(
    query: CallbackQuery, context: BotContext, state: FindState, args: Sequence[str]
) -> None:
    await query.answer()
    await edit_quietly(query.message, *await _results_view(context, state, 0))


async def _show_new(query: CallbackQuery, context: BotContext, state: FindState) -> None:
    if not await _remember(context, state):
        await query.answer(context._("find.expired"), show_alert=True)
        return
    await query.answer()
    await edit_quietly(query.message, *await _results_view(context, state, 0))


async def _on_quit(
    query: CallbackQuery, context: BotContext, state: FindState, args: Sequence[str]
) -> None:
    await _forget(context)
    await query.answer(context._("find.closed"))
    await close_buttons(query.message)


_ACTIONS = {
    "fp": _on_page,
    "ff": _on_menu,
    "fk": _on_kind,
    "fv": _on_value,
    "fx": _on_clear,
    "fr": _on_back,
    "fq": _on_quit,
}


# ---------------------------------------------------------------------------------------------
# /my


def my_text(_: Translator, scope: str, listed: CustomerList, teams: int = 1) -> str:
    title = {Scope.team: "my.title_team", Scope.all: "my.title_all"}.get(scope, "my.title")
    heading = _("teams.my_title", count=teams) if scope == Scope.team and teams > 1 else _(title)
    if not listed.total:
        return f"{heading}\n{_('my.empty')}"
    lines = [
        heading,
        _("my.counts", total=listed.total, overdue=listed.overdue, today=listed.due_today),
    ]
    if listed.pages > 1:
        lines.append(_("find.page", page=listed.page + 1, pages=listed.pages))
    return "\n".join(lines)


def my_label(_: Translator, entry: ListEntry) -> str:
    name = _short(entry.short_name or entry.name)
    mark = _status_mark(entry.status)
    if entry.due == "overdue":
        return _("my.entry.overdue", name=mark + name, days=entry.overdue_days)
    if entry.due == "today":
        return _("my.entry.today", name=mark + name)
    if entry.next_followup_on is not None:
        return _("my.entry.later", name=mark + name, date=entry.next_followup_on.strftime("%m-%d"))
    return mark + name


def my_markup(
    _: Translator, listed: CustomerList, *, select: bool = False
) -> InlineKeyboardMarkup | None:
    """The list's cards and pages; `select` offers ticking customers to reassign them
    together (conversations.reassign takes it from there)."""
    rows = [[button(fit.label(my_label(_, e), 64), CARD.data("cu", e.id))] for e in listed.entries]
    rows = with_pager(
        rows, pager(listed.page, listed.pages, lambda p: FIND.data("fm", p), counter=True)
    )
    if select and listed.total:
        rows.append([button(_("reassign.button.select"), REASSIGN.data("ra", "m", listed.page))])
    return InlineKeyboardMarkup(rows) if rows else None


async def _my_view(context: BotContext, page: int) -> tuple[str, InlineKeyboardMarkup | None]:
    async with context.reading() as session:
        listed = await cards.my_customers(
            session, actor=context.member, today=context.today, page=page, page_size=PAGE_SIZE
        )
    member = context.member
    text = my_text(context._, view_scope(member), listed, teams=len(teams_of(member)))
    return text, my_markup(context._, listed, select=may_reassign_any(member))


async def my_command(update: Update, context: BotContext) -> None:
    """List the member's customers (a manager's: their teams'), follow-ups due first."""
    text, markup = await _my_view(context, 0)
    await context.bot.send_message(context.chat_id, text, reply_markup=markup)


async def _my_page(query: CallbackQuery, context: BotContext, press: Press) -> None:
    page = press.id(0, maximum=PAGE_MAX)
    if page is None or len(press) != 1:
        await query.answer(context._("button.expired"), show_alert=True)
        return
    await query.answer()
    await edit_quietly(query.message, *await _my_view(context, page))
