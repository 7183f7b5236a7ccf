"""Inline keyboards: buttons laid out in rows, and the one pager every list turns pages with."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from telegram import InlineKeyboardButton

Row = list[InlineKeyboardButton]


def button(label: str, data: str) -> InlineKeyboardButton:
    """A button that sends `data` (built by a feature's codec) when pressed."""
    return InlineKeyboardButton(label, callback_data=data)


def rows_of(buttons: Sequence[InlineKeyboardButton], width: int) -> list[Row]:
    """The buttons `width` to a row, the last row as full as what is left."""
    return [list(buttons[i : i + width]) for i in range(0, len(buttons), width)]


def pager(page: int, pages: int, data: Callable[[int], str], *, counter: bool = False) -> Row:
    """‹ and › to the pages either side of `page` (of `pages`), with `data(page)` on each.

    With `counter`, an `n/N` button between them shows the page again, and a list of one page
    gets no pager at all; without it, the row holds only the arrows that lead somewhere.
    """
    if counter and pages <= 1:
        return []
    row: Row = []
    if page > 0:
        row.append(button("‹", data(page - 1)))
    if counter:
        row.append(button(f"{page + 1}/{pages}", data(page)))
    if page + 1 < pages:
        row.append(button("›", data(page + 1)))
    return row


def with_pager(rows: list[Row], pager_row: Row) -> list[Row]:
    """`rows` with the pager under them, if it has any button."""
    return [*rows, pager_row] if pager_row else rows
