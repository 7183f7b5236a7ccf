"""Lookup from any chat (inline mode, `@bot name`): a member's visible customers as masked cards.

Typing `@bot 明远` in any chat asks the bot (an `inline_query`); the answer lists the customers
the member may see, exactly as /find searches them (storage.search: the same visibility, the
same ranking, archived records shown and destroyed ones never), and choosing one inserts its
card with every sensitive value masked. The inserted message carries one button only: a link
that opens the card in the bot's private chat (`/start card_<id>`), where whoever presses it is
recognised and checked again like any card button. Strangers and deactivated staff never reach
this module: the gate answers them with an empty list (bot/gate.py).

Answers are personal (`is_personal`) and cached only briefly, so one member's results are
never shown to another, and a change of role is felt within seconds. Telegram's limits: at most
50 results an answer (more come page by page through `next_offset`), result ids of at most 64
bytes, message texts of at most 4,096 characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import date

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Update,
)
from telegram.error import BadRequest

from bot.context import BotContext
from bot.i18n import Translator
from conversations import fit
from conversations.card import STATUS_MARKS, card_text, send_card, shown_value
from storage import cards, search
from storage.cards import CustomerCard
from storage.models import Customer
from storage.vault import DataErased

log = logging.getLogger(__name__)
PAGE_SIZE = 50  # Telegram takes at most 50 results in one answer
MAX_RESULTS = 200  # results offered page by page; beyond that the text should be narrower
RECENT = 10  # what an empty query offers: the member's recently touched customers
QUERY_LIMIT = 100  # as /find: a longer text is no customer name
CACHE_SECONDS = 5  # personal answers, cached this short so a changed role is felt at once
TITLE_LIMIT = 64  # what a result list shows of a title; the name is whole in the card
DESCRIPTION_LIMIT = 128
CARD_LINK = "card_"  # `/start card_<id>` opens a card in the private chat (commands.start)
_CARD_LINK = re.compile(rf"^{CARD_LINK}([1-9][0-9]{{0,11}})$")


def card_link_parameter(customer_id: int) -> str:
    """The deep link's start parameter for a customer (at most 17 characters, so never a
    24-character invite token: bot.gate tells them apart)."""
    return f"{CARD_LINK}{customer_id}"


def card_link_target(parameter: str) -> int | None:
    """The customer id a `/start` parameter asks to open, or None if it is no card link."""
    found = _CARD_LINK.match(parameter)
    return int(found[1]) if found else None


def parse_offset(offset: str) -> int | None:
    """Where the next page starts: "" is the first page; anything but one of our own offsets
    (a multiple of the page size within the results offered) is None, and gets nothing."""
    if offset == "":
        return 0
    if not offset.isdigit() or len(offset) > 4:
        return None
    start = int(offset)
    if start % PAGE_SIZE or not 0 < start < MAX_RESULTS:
        return None
    return start


def _title(card: CustomerCard) -> str:
    mark = STATUS_MARKS.get(card.status, "")
    return fit.label(f"{mark} {card.name}".strip(), TITLE_LIMIT)


def _description(_: Translator, card: CustomerCard) -> str:
    """Number, class, stage and owner; the masked phone if there is one (never in clear)."""
    parts = [
        card.customer_no,
        shown_value(_, "customer_class", card.customer_class),
        shown_value(_, "stage", card.stage),
        card.owner_name,
    ]
    phone = card.masked.get("phones")
    if phone:
        parts.append(phone if isinstance(phone, str) else ", ".join(phone))
    return fit.label(" · ".join(p for p in parts if p), DESCRIPTION_LIMIT)


def article(
    _: Translator, card: CustomerCard, today: date, bot_username: str
) -> InlineQueryResultArticle:
    """One result: its title and description in the list, and the masked card it inserts."""
    markup = None
    if bot_username:  # the link re-checks whoever presses it in the private chat
        link = f"https://t.me/{bot_username}?start={card_link_parameter(card.id)}"
        markup = InlineKeyboardMarkup([[InlineKeyboardButton(_("inline.button.open"), url=link)]])
    return InlineQueryResultArticle(
        id=f"c{card.id}",
        title=_title(card),
        description=_description(_, card),
        input_message_content=InputTextMessageContent(
            fit.message(card_text(_, card, today, shared=True))
        ),
        reply_markup=markup,
    )


async def _found(context: BotContext, text: str, start: int) -> tuple[list[CustomerCard], bool]:
    """The cards of one page, and whether another page follows."""
    member, keyring = context.member, context.services.keyring
    async with context.reading() as session:
        customers: Sequence[Customer]
        if text:
            customers = await search.search_customers(
                session,
                keyring=keyring,
                actor=member,
                text=text,
                limit=min(start + PAGE_SIZE + 1, MAX_RESULTS),
            )
        else:
            customers = await search.recent_customers(session, actor=member, limit=RECENT)
        page = customers[start : start + PAGE_SIZE]
        shown = []
        for customer in page:  # each card re-checks visibility, as a card button does
            try:
                card = await cards.customer_card(
                    session, keyring=keyring, actor=member, customer_id=customer.id or 0
                )
            except DataErased:  # its personal data is gone for good: nothing to insert
                continue
            if card is not None:
                shown.append(card)
    more = len(customers) > start + PAGE_SIZE and start + PAGE_SIZE < MAX_RESULTS
    return shown, more


async def on_inline_query(update: Update, context: BotContext) -> None:
    """Answers `@bot <text>` with the member's matching customers, page by page."""
    query = update.inline_query
    assert query is not None
    text = " ".join(query.query.split())
    start = parse_offset(query.offset)
    if start is None or len(text) > QUERY_LIMIT or (not text and start):
        await _answer(query, [], "")
        return
    found, more = await _found(context, text, start)
    username = context.services.bot_username or context.bot.username or ""
    results = [article(context._, card, context.today, username) for card in found]
    await _answer(query, results, str(start + PAGE_SIZE) if more else "")


async def _answer(
    query: InlineQuery, results: Sequence[InlineQueryResultArticle], next_offset: str
) -> None:
    """Answer once; an answer too late (the person typed on, Telegram waits ~10 s) is dropped,
    as Telegram drops it: the newer query gets its own answer."""
    try:
        await query.answer(
            results, cache_time=CACHE_SECONDS, is_personal=True, next_offset=next_offset
        )
    except BadRequest as error:
        if "query id is invalid" not in str(error).lower():
            raise
        log.info("inline query %s answered too late", query.id)


async def open_linked_card(context: BotContext, parameter: str) -> bool:
    """`/start card_<id>` from an inserted card: the card, if the member may see it (checked
    and audited like any card button); False when the parameter is no card link."""
    customer_id = card_link_target(parameter)
    if customer_id is None:
        return False
    await send_card(context, context.chat_id, customer_id)
    return True
