"""One page of a customer's records as a message: entries, a button per entry, the pager."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.context import BotContext
from conversations.keyboards import Row, pager, rows_of, with_pager
from conversations.messages import replace_page
from storage.models import Staff

Found = TypeVar("Found", covariant=True)


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


class CustomerRecords(Protocol[Found]):
    """A storage query for one page of a customer's records (`visits.visits_of` ...); None
    (audited) if the actor may not see the customer."""

    def __call__(
        self, session: AsyncSession, *, actor: Staff, customer_id: int, page: int, page_size: int
    ) -> Awaitable[Found | None]: ...


async def show_records_page(
    query: CallbackQuery,
    context: BotContext,
    records: CustomerRecords[Found],
    render: Callable[[BotContext, Found], ListPage],
    *,
    customer_id: int,
    page: int,
    page_size: int,
    edit: bool,
    writes: bool = False,
) -> None:
    """Show one page of a customer's records: in place of the pressed message when turning
    pages (`edit`), else as a new message; `writes` if the query writes (its audit entries)."""
    opened = context.unit_of_work if writes else context.reading
    async with opened() as session:
        found = await records(
            session, actor=context.member, customer_id=customer_id, page=page, page_size=page_size
        )
    if found is None:
        await query.answer(context._("refused.not_found"), show_alert=True)
        return
    await query.answer()
    shown = render(context, found)
    markup = shown.markup()
    if edit and await replace_page(query.message, shown.text, markup):
        return
    await context.bot.send_message(context.chat_id, shown.text, reply_markup=markup)
