"""One page of a customer's records as a message: entries, a button per entry, the pager."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.context import BotContext
from conversations.keyboards import Row, pager, rows_of, with_pager
from conversations.messages import replace_page

Found = TypeVar("Found")


@dataclass(frozen=True)
class ListPage:
    """What a list page shows: its text, its entries' buttons (`width` to a row), where its
    pager leads (`page_data(n)`) and the row under it all."""

    text: str
    page: int
    pages: int
    page_data: Callable[[int], str]
    entries: list[InlineKeyboardButton] = field(default_factory=list)
    width: int = 2
    last_row: Row = field(default_factory=list)

    def markup(self) -> InlineKeyboardMarkup:
        rows = with_pager(
            rows_of(self.entries, self.width), pager(self.page, self.pages, self.page_data)
        )
        return InlineKeyboardMarkup([*rows, self.last_row] if self.last_row else rows)


async def show_list_page(
    query: CallbackQuery,
    context: BotContext,
    load: Callable[[], Awaitable[Found | None]],
    render: Callable[[Found], ListPage],
    *,
    edit: bool,
) -> None:
    """Load a page (None: the member may not see it), then show it in place of the pressed
    message when turning pages (`edit`), else as a new message."""
    found = await load()
    if found is None:
        await query.answer(context._("refused.not_found"), show_alert=True)
        return
    await query.answer()
    page = render(found)
    markup = page.markup()
    if edit and await replace_page(query.message, page.text, markup):
        return
    await context.bot.send_message(context.chat_id, page.text, reply_markup=markup)
