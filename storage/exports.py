"""/export: customers, visits, complaints or key persons as XLSX or CSV (SPEC sections 4, 11).

What a file holds is what the person may see (`permissions.customers_visible_to`, which
`can_export` mirrors row by row), never a destroyed customer, narrowed by /find's filters
(`storage.search.Filters`), an owner and a period. Columns come from the field catalogue
(`fields_at(record, Place.export)`) after a few columns of context (numbers, names, owners);
sealed values are masked with `fields.mask` unless a manager or admin asked for them in clear
(`can_export_in_clear`), which the audit entry records with the columns shown.

Large exports stream: rows are read in keyset pages (`id > last`, a new short session per
page, never one held across the progress edits), each page's data keys come with it in the
same query, and a page is opened, masked and written in a worker thread, so neither the
event loop nor the memory grows with the archive. XLSX is written by XlsxWriter in
constant-memory mode (a row goes to disk as soon as the next one starts) in a child process
(`storage.spreadsheet`: XlsxWriter's per-cell work then runs on a second core beside the
reading and opening of the next rows), CSV by `csv` as
UTF-8 with a BOM so that Excel reads Chinese. Any text cell that a spreadsheet would take for
a formula (`=`, `+`, `-`, `@`, tab, CR first) is written with an apostrophe in front, in both
formats.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, vault
from storage import fields as catalogue
from storage.crypto import DecryptionError, Keyring
from storage.db import SessionFactory, reading, unit_of_work
from storage.errors import Refused
from storage.fields import Place, Record
from storage.models import (
    Complaint,
    Customer,
    DataKey,
    KeyPerson,
    RecordStatus,
    Staff,
    Team,
    Visit,
)
from storage.permissions import can_export_any, can_export_in_clear, customers_visible_to
from storage.search import NO_FILTERS, Filters
from storage.spreadsheet import (  # noqa: F401  (FORMULA_STARTS, XLSX_*: part of this API)
    FORMULA_STARTS,
    SHEET_NAME_LIMIT,
    XLSX_DATE,
    XLSX_DATETIME,
    XlsxInChild,
    neutralised,
)

PAGE = 2_000  # rows read, opened and written at a time
OWNERS_SHOWN = 20  # owners offered as a filter (the commonest among the visible customers)
OWNERS_LOOKUP = 500  # owners a pressed owner button is checked against
XLSX_ROW_LIMIT = 1_048_576 - 1  # Excel's rows, less the header (XlsxWriter drops more silently)
LIST_SEPARATOR = "; "
# the statuses an export lists unless the status filter asks for another (as /find's lists)
LISTED_STATUSES = (
    RecordStatus.draft,
    RecordStatus.pending,
    RecordStatus.approved,
    RecordStatus.rejected,
)
STATUSES = (*LISTED_STATUSES, RecordStatus.archived)  # never destroyed


class ExportKind(StrEnum):
    customers = "customers"
    visits = "visits"
    complaints = "complaints"
    key_persons = "key_persons"


class ExportFormat(StrEnum):
    xlsx = "xlsx"
    csv = "csv"


class Cell(StrEnum):
    """How a column's values are written."""

    text = "text"
    number = "number"
    day = "day"  # a calendar day: a real date in XLSX, ISO in CSV
    moment = "moment"  # a UTC instant, shown in the reader's time zone
    choice = "choice"  # one of fixed values, labelled `choice.<field>.<value>`
    status = "status"  # a customer's status, labelled `card.status.<value>`
    complaint_status = "complaint_status"  # labelled `complaint.status.<value>`
    yes_no = "yes_no"


@dataclass(frozen=True)
class Column:
    """One column: what it holds, its header's message key, how to write it, and whether it is
    a sealed value (masked unless asked for in clear)."""

    name: str
    label: str
    cell: Cell = Cell.text
    sensitive: bool = False
    record: Record | None = None  # the catalogue's record of a field column (for the mask)


def _context(name: str, cell: Cell = Cell.text) -> Column:
    """A column of context that is no field of the record (its number, owner, dates)."""
    return Column(name, f"export.column.{name}", cell)


def _field_columns(record: Record) -> tuple[Column, ...]:
    """The catalogue's export columns of a record, in catalogue order."""
    columns = []
    for name in catalogue.fields_at(record, Place.export):
        spec = catalogue.spec(name, record)
        assert spec is not None
        if spec.choice:
            cell = Cell.choice
        elif spec.date:
            cell = Cell.day
        elif name in _MOMENTS:
            cell = Cell.moment
        elif name == "consent_given":
            cell = Cell.yes_no
        else:
            cell = Cell.text
        columns.append(Column(name, spec.label, cell, spec.sealed, record))
    return tuple(columns)


_MOMENTS = frozenset({"visited_at", "feedback_at"})

_CUSTOMER_NO = _context("customer_no")
_CUSTOMER_NAME = _context("customer_name")
COLUMNS: dict[ExportKind, tuple[Column, ...]] = {
    ExportKind.customers: (
        _CUSTOMER_NO,
        *_field_columns(Record.customer),
        _context("status", Cell.status),
        _context("owner"),
        _context("team"),
        _context("last_visit_on", Cell.day),
        _context("created_at", Cell.moment),
        _context("approved_at", Cell.moment),
    ),
    ExportKind.visits: (
        _CUSTOMER_NO,
        _CUSTOMER_NAME,
        _context("salesperson"),
        *_field_columns(Record.visit),
        # verified check-in (storage.checkin): metres from the customer, flagged, in and out
        _context("checkin_distance_m", Cell.number),
        _context("checkin_flagged", Cell.yes_no),
        _context("checked_in_at", Cell.moment),
        _context("checked_out_at", Cell.moment),
    ),
    ExportKind.complaints: (
        _context("complaint_no"),
        _CUSTOMER_NO,
        _CUSTOMER_NAME,
        _context("complaint_status", Cell.complaint_status),
        _context("received_at", Cell.moment),
        _context("received_by"),
        _context("handler"),
        _context("due_at", Cell.moment),
        _context("closed_at", Cell.moment),
        *_field_columns(Record.complaint),
    ),
    ExportKind.key_persons: (
        _CUSTOMER_NO,
        _CUSTOMER_NAME,
        *_field_columns(Record.key_person),
    ),
}


def sensitive_columns(kind: ExportKind) -> tuple[str, ...]:
    """The columns an export masks unless asked for in clear (none for visits, complaints)."""
    return tuple(c.name for c in COLUMNS[kind] if c.sensitive)


# ---------------------------------------------------------------------------------------------
# what is asked for


@dataclass(frozen=True)
class Period:
    """A half-open span [since, until) of UTC instants; None: unbounded."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of_days(cls, first: date | None, last: date | None, zone: ZoneInfo) -> Period:
        """The calendar days `first`..`last` (inclusive) in the reader's time zone."""

        def start(day: date) -> datetime:
            return datetime.combine(day, time(), zone).astimezone(UTC)

        return cls(
            start(first) if first else None, start(last + timedelta(days=1)) if last else None
        )

    def clauses(self, column: Any) -> list[Any]:
        found = []
        if self.since is not None:
            found.append(column >= self.since)
        if self.until is not None:
            found.append(column < self.until)
        return found

    def detail(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in (("since", self.since), ("until", self.until)) if v}


ALL_TIME = Period()


@dataclass(frozen=True)
class ExportRequest:
    """What to export: the kind, /find's filters, an owner, a period, and whether in clear.

    The period narrows visits and complaints by when they happened, customers and key
    persons by when the customer was entered.
    """

    kind: ExportKind
    format: ExportFormat = ExportFormat.xlsx
    filters: Filters = NO_FILTERS
    owner_id: int | None = None
    period: Period = ALL_TIME
    clear: bool = False

    def detail(self) -> dict[str, Any]:
        """The filters as the audit entry records them (no personal data)."""
        found: dict[str, Any] = dict(self.filters.active())
        if self.owner_id is not None:
            found["owner_id"] = self.owner_id
        found.update(self.period.detail())
        return found


def _customer_clauses(actor: Staff, request: ExportRequest) -> list[Any]:
    """Which customers' rows the actor may export and the request admits."""
    status = request.filters.status
    statuses = [status] if status else list(LISTED_STATUSES)
    found = [
        customers_visible_to(actor),
        col(Customer.status).in_([s for s in statuses if s != RecordStatus.destroyed]),
        *request.filters.clauses(),
    ]
    if request.owner_id is not None:
        found.append(col(Customer.owner_id) == request.owner_id)
    if request.kind in (ExportKind.customers, ExportKind.key_persons):
        found += request.period.clauses(col(Customer.created_at))
    elif request.kind == ExportKind.visits:
        found += request.period.clauses(col(Visit.visited_at))
    else:
        found += request.period.clauses(col(Complaint.received_at))
    return found


def _check(actor: Staff, request: ExportRequest) -> None:
    """Refuse an export the actor may not make at all, or in clear."""
    if not can_export_any(actor):
        raise Refused("export.not_allowed")
    if request.clear and not can_export_in_clear(actor):
        raise Refused("export.clear_not_allowed")


async def owner_choices(
    session: AsyncSession, *, actor: Staff, limit: int = OWNERS_SHOWN
) -> list[tuple[int, str]]:
    """The owners of the customers the actor may see (id, name), the commonest first: what the
    owner filter offers, and the only owners it takes."""
    owner = col(Customer.owner_id)
    rows = await session.exec(
        select(owner, Staff.display_name, func.count())
        .join(Staff, col(Staff.id) == owner)
        .where(customers_visible_to(actor), col(Customer.status) != RecordStatus.destroyed)
        .group_by(owner, Staff.display_name)
        .order_by(func.count().desc(), owner)
        .limit(limit)
    )
    return [(staff_id, name) for staff_id, name, _count in rows.all()]


# ---------------------------------------------------------------------------------------------
# reading rows, a page at a time


_CUSTOMER_SEALED = catalogue.sealed_fields(Record.customer)
_CUSTOMER_COLUMNS = (
    "id",
    "customer_no",
    "sealed",
    "sealed_seq",
    "owner_id",
    "team_id",
    "status",
    "last_visit_on",
    "created_at",
    "approved_at",
    *catalogue.clear_fields(Record.customer),
)


def _query(kind: ExportKind, where: list[Any], after: int, limit: int) -> Any:
    """One keyset page of `kind`'s rows after id `after`, with what opens their sealed parts."""
    if kind == ExportKind.customers:
        columns = [getattr(Customer, c) for c in _CUSTOMER_COLUMNS]
        return (
            select(*columns, DataKey.kek_id, DataKey.wrapped)
            .outerjoin(DataKey, col(DataKey.customer_id) == col(Customer.id))
            .where(*where, col(Customer.id) > after)
            .order_by(col(Customer.id))
            .limit(limit)
        )
    record, key = {
        ExportKind.visits: (Visit, Visit.id),
        ExportKind.complaints: (Complaint, Complaint.id),
        ExportKind.key_persons: (KeyPerson, KeyPerson.id),
    }[kind]
    # plain columns, not ORM objects: a page of 2,000 rows loads several times faster
    own = [getattr(record, c.key) for c in record.__table__.columns]  # type: ignore[attr-defined]
    extra: list[Any] = [
        col(Customer.customer_no).label("x_customer_no"),
        col(Customer.name).label("x_customer_name"),
    ]
    if kind == ExportKind.key_persons:
        extra += [col(DataKey.kek_id).label("x_kek_id"), col(DataKey.wrapped).label("x_wrapped")]
    query = (
        select(*own, *extra)
        .select_from(record)
        .join(Customer, col(Customer.id) == record.customer_id)  # type: ignore[attr-defined]
    )
    if kind == ExportKind.key_persons:
        query = query.outerjoin(DataKey, col(DataKey.customer_id) == col(Customer.id))
    return query.where(*where, col(key) > after).order_by(col(key)).limit(limit)


def _count_query(kind: ExportKind, where: list[Any]) -> Any:
    if kind == ExportKind.customers:
        return select(func.count()).select_from(Customer).where(*where)
    record = {
        ExportKind.visits: Visit,
        ExportKind.complaints: Complaint,
        ExportKind.key_persons: KeyPerson,
    }[kind]
    return (
        select(func.count())
        .select_from(record)
        .join(Customer, col(Customer.id) == record.customer_id)  # type: ignore[attr-defined]
        .where(*where)
    )


def _row_id(kind: ExportKind, row: Any) -> int:
    return int(row[0] if kind == ExportKind.customers else row.id)


# ---------------------------------------------------------------------------------------------
# opening, masking and shaping one page (in a worker thread)


@dataclass
class _Names:
    """Staff and team names, read once per export (small tables)."""

    staff: dict[int, str] = field(default_factory=dict)
    teams: dict[int, str] = field(default_factory=dict)


class _Opener:
    """Opens a page's sealed values with its customers' data keys, each key unwrapped once."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.keys: dict[int, bytes | None] = {}

    def key(self, customer_id: int, kek_id: str | None, wrapped: bytes | None) -> bytes | None:
        if customer_id not in self.keys:
            if kek_id is None or wrapped is None:  # erased: nothing sealed opens any more
                self.keys[customer_id] = None
            else:
                self.keys[customer_id] = self.keyring.unwrap(
                    kek_id, wrapped, customer_id=customer_id
                )
            if len(self.keys) > PAGE * 2:  # a page's worth is all a page ever needs
                self.keys = {customer_id: self.keys[customer_id]}
        return self.keys[customer_id]


def _shown(column: Column, value: Any, clear: bool) -> Any:
    """A sealed value masked (unless in clear); a list joined into one cell."""
    if column.sensitive and not clear:
        value = catalogue.mask(column.name, value, column.record or Record.customer)
    if isinstance(value, list):
        value = LIST_SEPARATOR.join(str(v) for v in value if v not in (None, ""))
    return None if value in (None, "") else value


def _values(kind: ExportKind, row: Any, opener: _Opener, names: _Names) -> dict[str, Any]:
    """A row's values by column name, sealed ones opened."""
    if kind == ExportKind.customers:
        values = dict(zip(_CUSTOMER_COLUMNS, row[: len(_CUSTOMER_COLUMNS)], strict=True))
        kek_id, wrapped = row[len(_CUSTOMER_COLUMNS) :]
        key = opener.key(values["id"], kek_id, wrapped)
        sealed: dict[str, Any] = {}
        if key is not None and values["sealed"] is not None:
            try:
                sealed = (
                    vault.open_customer_blob(
                        key,
                        values["sealed"],
                        customer_id=values["id"],
                        sealed_seq=values["sealed_seq"],
                    )
                    or {}
                )
            except DecryptionError:
                sealed = {}
        values.update({f: sealed.get(f) for f in _CUSTOMER_SEALED})
        values["owner"] = names.staff.get(values["owner_id"])
        values["team"] = names.teams.get(values["team_id"]) if values["team_id"] else None
        return values
    record = row  # a row of plain columns, read by name
    values = {"customer_no": row.x_customer_no, "customer_name": row.x_customer_name}
    if kind == ExportKind.visits:
        for spec in catalogue.of(Record.visit):
            values[spec.name] = getattr(record, spec.stored_as)
        values["salesperson"] = names.staff.get(record.salesperson_id)
        values.update(
            checkin_distance_m=(
                None
                if record.checkin_distance_m is None
                else round(float(record.checkin_distance_m))
            ),
            checkin_flagged=bool(record.checkin_flagged),
            checked_in_at=record.checked_in_at,
            checked_out_at=record.checked_out_at,
        )
    elif kind == ExportKind.complaints:
        for spec in catalogue.of(Record.complaint):
            values[spec.name] = getattr(record, spec.stored_as)
        values.update(
            complaint_no=record.complaint_no,
            complaint_status=record.status,
            received_at=record.received_at,
            received_by=names.staff.get(record.received_by),
            handler=names.staff.get(record.handler_id) if record.handler_id else None,
            due_at=record.due_at,
            closed_at=record.closed_at,
        )
    else:
        key = opener.key(record.customer_id, row.x_kek_id, row.x_wrapped)
        sealed = {}
        if key is not None and record.sealed is not None:
            try:
                sealed = (
                    vault.unseal(key, record.sealed, table="key_persons", row_id=record.id) or {}
                )
            except DecryptionError:
                sealed = {}
        for spec in catalogue.of(Record.key_person):
            source = sealed.get if spec.sealed else partial(getattr, record)
            values[spec.name] = source(spec.stored_as)
    return values


class Labels(Protocol):
    """The reader's words for headers and choice values (the translation layer above)."""

    def header(self, column: Column) -> str: ...

    def value(self, column: Column, value: Any) -> str: ...


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def cell_value(column: Column, value: Any, labels: Labels, zone: ZoneInfo) -> Any:
    """A value as it goes into a cell: a label, a number, a date, a local time, or text."""
    if value is None:
        return None
    if column.cell is Cell.text and type(value) is str:  # the commonest cell
        return value
    if column.cell in (Cell.choice, Cell.status, Cell.complaint_status, Cell.yes_no):
        if column.sensitive and value == catalogue.HIDDEN:
            return value
        return labels.value(column, value)
    if column.cell == Cell.day and value != catalogue.HIDDEN:
        return _day(value) or str(value)
    if column.cell == Cell.moment and isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(zone).replace(tzinfo=None, microsecond=0)
    if isinstance(value, bool):
        return labels.value(column, value)
    if isinstance(value, int | float):
        return value
    return str(value)


# ---------------------------------------------------------------------------------------------
# the two writers


_PLAIN, _MEMO, _EACH = 0, 1, 2  # how write_export shapes a column's values
_MEMO_CELLS = frozenset({Cell.choice, Cell.status, Cell.complaint_status, Cell.yes_no, Cell.day})
MEMO_LIMIT = 50_000  # shaped values remembered at most (then forgotten and remembered anew)


class _Writer(Protocol):
    def header(self, cells: list[str]) -> None: ...

    def row(self, cells: list[Any]) -> None: ...

    def close(self) -> None: ...


class CsvSheet:
    """UTF-8 with a BOM (Excel reads Chinese then), ISO dates, neutralised text."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.file)

    def header(self, cells: list[str]) -> None:
        self.writer.writerow([neutralised(c) for c in cells])

    def row(self, cells: list[Any]) -> None:
        self.writer.writerow([_csv_cell(v) for v in cells])

    def close(self) -> None:
        self.file.close()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return neutralised(str(value))


# ---------------------------------------------------------------------------------------------
# the export


@dataclass(frozen=True)
class ExportResult:
    rows: int
    path: Path | None  # None: nothing to export (no file was made)
    columns: tuple[str, ...]
    clear_columns: tuple[str, ...]  # the sensitive columns shown in clear


Progress = Callable[[int, int], Awaitable[None]]


async def count_rows(session: AsyncSession, *, actor: Staff, request: ExportRequest) -> int:
    """How many rows the export would hold."""
    _check(actor, request)
    where = _customer_clauses(actor, request)
    return int((await session.exec(_count_query(request.kind, where))).one())


async def _names(session: AsyncSession) -> _Names:
    staff = dict((await session.exec(select(Staff.id, Staff.display_name))).all())
    teams = dict((await session.exec(select(Team.id, Team.name))).all())
    return _Names(staff=staff, teams=teams)  # type: ignore[arg-type]


async def write_export(
    sessions: SessionFactory,
    *,
    keyring: Keyring,
    actor: Staff,
    request: ExportRequest,
    path: Path,
    labels: Labels,
    zone: ZoneInfo,
    title: str,
    progress: Progress | None = None,
    page: int = PAGE,
) -> ExportResult:
    """Write the export to `path` page by page; nothing (and no file) when no row matches.

    The file is the caller's to send and remove; on an error it is removed here.
    """
    _check(actor, request)
    columns = COLUMNS[request.kind]
    async with reading(sessions) as session:
        total = await count_rows(session, actor=actor, request=request)
        names = await _names(session)
    clear_columns = sensitive_columns(request.kind) if request.clear else ()
    result_columns = tuple(c.name for c in columns)
    if total == 0:
        return ExportResult(0, None, result_columns, clear_columns)
    if request.format == ExportFormat.xlsx and total > XLSX_ROW_LIMIT:
        raise Refused("export.too_many_rows")
    headers = [labels.header(c) for c in columns]
    writer: _Writer
    if request.format == ExportFormat.xlsx:
        widths = [max(10, min(40, len(h) * 2 + 2)) for h in headers]
        writer = await asyncio.to_thread(XlsxInChild, path, title, widths)
    else:
        writer = CsvSheet(path)
    opener = _Opener(keyring)
    where = _customer_clauses(actor, request)
    written, after = 0, 0

    clear = request.clear

    # how each column is shaped: plain text as it is; labels and days from a memo (few
    # distinct values, each shaped once per export); the rest (masks, times) value by value
    plan = [
        (
            c,
            c.name,
            _PLAIN
            if not c.sensitive and c.cell is Cell.text
            else _MEMO
            if c.cell in _MEMO_CELLS
            else _EACH,
        )
        for c in columns
    ]
    memo: dict[tuple[str, type, Any], Any] = {}

    def shaped(c: Column, value: Any, how: int) -> Any:
        if how == _MEMO and not isinstance(value, list):
            key = (c.name, type(value), value)
            found = memo.get(key, memo)
            if found is memo:
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                found = memo[key] = cell_value(c, _shown(c, value, clear), labels, zone)
            return found
        return cell_value(c, _shown(c, value, clear), labels, zone)

    def write_page(rows: list[Any]) -> None:
        kind, row_out = request.kind, writer.row
        for row in rows:
            get = _values(kind, row, opener, names).get
            cells: list[Any] = []
            add = cells.append
            for c, name, how in plan:
                value = get(name)
                if value is None:  # most cells of a sparse archive: nothing to shape
                    add(None)
                elif how == _PLAIN and type(value) is str:
                    add(value or None)
                else:
                    add(shaped(c, value, how))
            row_out(cells)

    try:
        writer.header(headers)
        while True:
            async with reading(sessions) as session:
                rows = list((await session.exec(_query(request.kind, where, after, page))).all())
            if not rows:
                break
            after = _row_id(request.kind, rows[-1])
            await asyncio.to_thread(write_page, rows)
            written += len(rows)
            if progress is not None:
                await progress(written, max(total, written))
            if len(rows) < page:
                break
        await asyncio.to_thread(writer.close)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            if isinstance(writer, XlsxInChild):
                writer.abort()
            else:
                writer.close()
        discard(path)
        raise
    if written == 0:  # every row went away between the count and the reading
        discard(path)
        return ExportResult(0, None, result_columns, clear_columns)
    return ExportResult(written, path, result_columns, clear_columns)


def discard(path: Path | None) -> None:
    """Remove an export's file (sent, or failed): personal data is not left on disk."""
    if path is not None:
        path.unlink(missing_ok=True)


async def record_export(
    sessions: SessionFactory, *, actor: Staff, request: ExportRequest, result: ExportResult
) -> None:
    """The audit entry of an export about to be sent: what, how many rows, which filters, and
    masked or in clear (with the columns shown in clear)."""
    detail: dict[str, Any] = {
        "kind": request.kind.value,
        "format": request.format.value,
        "rows": result.rows,
        "filters": request.detail(),
        "clear": request.clear,
    }
    if request.clear:
        detail["clear_columns"] = list(result.clear_columns)
    async with unit_of_work(sessions) as session:
        await audit.record(
            session,
            action="export.clear" if request.clear else "export",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity=request.kind.value,
            detail=detail,
        )
