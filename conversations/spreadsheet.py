"""XLSX files in and out of /import: the template, reading a filled file safely, rejected rows.

openpyxl does all three: it is the one well-kept library that both reads and writes XLSX (with
data validation for the template's drop-down lists), so /import needs a single dependency; with
defusedxml installed it parses every XML part through it (no entity-expansion bombs). A file
from a chat is hostile until shown otherwise, so before openpyxl opens it the zip's central
directory is checked (members, total and per-member uncompressed size, compression ratio), then
only the first sheet's first `MAX_COLUMNS` columns and `MAX_ROWS` rows are read, as values
(a formula gives its cached result, never its text). Cells written back are plain strings, and
one that a spreadsheet would take for a formula is neutralised with a leading apostrophe.
openpyxl (with numpy and Pillow behind it, ~30 MB and a quarter of a second) is imported at
the first file, not when the bot starts.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openpyxl.cell import WriteOnlyCell

MAX_FILE_BYTES = 10 * 1024 * 1024  # refused before downloading (Telegram's own limit is 20 MB)
MAX_UNCOMPRESSED = 200 * 1024 * 1024  # the zip's members together, once inflated
MAX_RATIO = 200  # a member inflating more than this is a zip bomb, not a spreadsheet
MAX_MEMBERS = 1_000
MAX_ROWS = 10_000  # data rows of one import
MAX_COLUMNS = 64
MAX_CELL = 5_000  # characters of one cell kept (any field's limit is far lower)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class BadFile(Exception):
    """A file that is no import: `code` names why (`import.bad.<code>`), `limit` a bound."""

    def __init__(self, code: str, limit: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.limit = limit


@dataclass(frozen=True)
class Sheet:
    """A read file: its header cells and its data rows (row number in the file, cell texts)."""

    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]


def neutralised(value: str) -> str:
    """A text a spreadsheet would run as a formula, made plain (OWASP: a leading apostrophe)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _as_text(value: Any) -> str:
    """A cell's value as the text a person would have typed into /new."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)[:MAX_CELL].strip()


def check_zip(data: bytes) -> None:
    """Refuse what is no XLSX, or inflates beyond reason, before anything parses it."""
    if not data:
        raise BadFile("empty")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as error:
        raise BadFile("not_xlsx") from error
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise BadFile("too_big")
        names = {m.filename for m in members}
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise BadFile("not_xlsx")
        total = 0
        for member in members:
            total += member.file_size
            if member.file_size > MAX_RATIO * max(member.compress_size, 1) + 4096:
                raise BadFile("too_big")
        if total > MAX_UNCOMPRESSED:
            raise BadFile("too_big")


def load_workbook(*args: Any, **kwargs: Any) -> Any:
    """openpyxl's `load_workbook`, imported at the first file read (not at the bot's start)."""
    from openpyxl import load_workbook as load

    return load(*args, **kwargs)


def read(data: bytes) -> Sheet:
    """The first sheet's header row and data rows (blank rows skipped), values only."""
    if len(data) > MAX_FILE_BYTES:
        raise BadFile("too_big")
    check_zip(data)
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError) as error:
        raise BadFile("not_xlsx") from error
    try:
        if not book.worksheets:
            raise BadFile("empty")
        sheet = book.worksheets[0]
        headers: tuple[str, ...] | None = None
        rows: list[tuple[int, tuple[str, ...]]] = []
        try:
            header_row = 0
            for number, values in enumerate(
                sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True), start=1
            ):
                texts = tuple(_as_text(v) for v in values)
                if any(texts):
                    header_row, headers = number, texts
                    break
            # the data rows only as wide as the headers: nothing right of them is read
            width = max((i + 1 for i, t in enumerate(headers or ()) if t), default=1)
            cells = sheet.iter_rows(min_row=header_row + 1, max_col=width, values_only=True)
            for number, values in enumerate(cells, start=header_row + 1):
                texts = tuple(_as_text(v) for v in values)
                if not any(texts):
                    continue
                if len(rows) >= MAX_ROWS:
                    raise BadFile("too_many_rows", MAX_ROWS)
                rows.append((number, texts))
        except (KeyError, ValueError, TypeError) as error:
            raise BadFile("not_xlsx") from error
    finally:
        book.close()
    if headers is None:
        raise BadFile("empty")
    return Sheet(headers, tuple(rows))


def _strings(cells: Sequence[str], sheet: Any) -> list[WriteOnlyCell]:
    """Cells that stay text, whatever they start with."""
    from openpyxl.cell import WriteOnlyCell

    written = []
    for value in cells:
        cell = WriteOnlyCell(sheet, value=neutralised(value) if value else None)
        if value:
            cell.data_type = "s"
        written.append(cell)
    return written


def template(
    headers: Sequence[str],
    example: Sequence[str],
    choices: dict[int, Sequence[str]],
    *,
    sheet_title: str,
    lists_title: str,
) -> bytes:
    """The import template: headers, one example row, and for each column in `choices` a
    drop-down list of its labels (kept on a hidden sheet: Excel's inline lists stop at 255
    characters)."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter, quote_sheetname
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    sheet.title = sheet_title[:31]
    lists = book.create_sheet(lists_title[:31])
    lists.sheet_state = "hidden"
    sheet.append(list(headers))
    sheet.append([neutralised(v) if v else None for v in example])
    for row in sheet.iter_rows(min_row=2, max_row=2):
        for cell in row:
            if cell.value is not None:
                cell.data_type = "s"
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(12, min(40, len(header) * 2))
    for list_column, (index, labels) in enumerate(sorted(choices.items()), start=1):
        letter = get_column_letter(list_column)
        for row, label in enumerate(labels, start=1):
            lists.cell(row=row, column=list_column, value=label)
        source = f"{quote_sheetname(lists.title)}!${letter}$1:${letter}${len(labels)}"
        validation = DataValidation(type="list", formula1=source, allow_blank=True)
        validation.error = ""
        column = get_column_letter(index)
        validation.add(f"{column}2:{column}{MAX_ROWS + 1}")
        sheet.add_data_validation(validation)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rows_file(headers: Sequence[str], rows: Iterator[Sequence[str]], *, sheet_title: str) -> bytes:
    """A plain sheet of text rows (the rejected rows and their reasons), written streaming."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_title[:31])
    sheet.append(_strings(list(headers), sheet))
    for row in rows:
        sheet.append(_strings(list(row), sheet))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
