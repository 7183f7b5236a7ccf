"""`birthday`: a key person's birthday, BIRTHDAY_NOTICE_DAYS before and on the day, to the
customer's owner.

The birthday is sealed, so the full planner decrypts every key person (every HEAVY_EVERY, in
chunks); on every poll a cheap one decrypts only the key persons added or changed since its last
run (a watermark on `updated_at`, with an overlap for writes that committed late), so a new key
person's birthday is noticed within one poll. A row is keyed by the year, never the date, so
both planners write the same rows; its text is rendered at delivery from the sealed value. Its
due time still hints at the day, so sent rows are purged soon after (RETENTION).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import vault
from storage.crypto import DecryptionError
from storage.models import Customer, DataKey, KeyPerson, Reminder
from storage.reminders.kinds import LIVE, Kind
from storage.reminders.planning import Plan, Row, ScanPlanner, dialect_of, unindexed
from storage.reminders.reading import Notice, Reader, per_row

log = logging.getLogger(__name__)
HEAVY_EVERY = timedelta(hours=6)  # every key person is decrypted
# the changed-key-person planner looks this far before its last run: a write stamped before
# that run may have committed after it (writers stamp `updated_at` when they write)
OVERLAP = timedelta(minutes=10)
SCAN_CHUNK = 2000


def parse_birthday(value: Any) -> tuple[int, int] | None:
    """(month, day) of a stored birthday (`YYYY-MM-DD`, or `MM-DD` without a year)."""
    text = str(value or "").strip().lstrip("-")
    parts = text.split("-")
    try:
        if len(parts) == 3:
            when = date.fromisoformat(text)
            return when.month, when.day
        if len(parts) == 2:
            month, day = int(parts[0]), int(parts[1])
            date(2000, month, day)  # a leap year, so 02-29 is valid
            return month, day
    except ValueError:
        return None
    return None


def birthday_in(year: int, month: int, day: int) -> date:
    """The birthday in `year`; 29 February falls on the 28th in other years."""
    if month == 2 and day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return date(year, month, day)


def birthday_notices(
    month: int, day: int, lo: date, hi: date, notice_days: int
) -> list[tuple[date, date, str]]:
    """(notice day, birthday, when) for the notices falling in [lo, hi]: `before` and `day`."""
    found = []
    for year in range(lo.year - 1, hi.year + 2):
        birthday = birthday_in(year, month, day)
        for when, notice in (
            ("before", birthday - timedelta(days=notice_days)),
            ("day", birthday),
        ):
            if lo <= notice <= hi:
                found.append((notice, birthday, when))
    return found


async def scan(session: AsyncSession, ctx: Plan, after: int) -> tuple[list[Row], int | None]:
    """One chunk of key persons after `after`, opening each customer's data key once; only
    customers with key persons are touched."""
    return await _scan(session, ctx, after)


async def scan_changed(
    session: AsyncSession, ctx: Plan, after: int
) -> tuple[list[Row], int | None]:
    """One chunk of the key persons added or changed since the last poll (and OVERLAP)."""
    return await _scan(session, ctx, after, changed_since=ctx.since - OVERLAP)


def window_query(after: int, changed_since: datetime | None) -> Any:
    """The ids of the next SCAN_CHUNK key persons after `after` (of those changed since
    `changed_since`): a range of their primary key, whatever the customers' table holds."""
    changed = () if changed_since is None else (col(KeyPerson.updated_at) >= changed_since,)
    return (
        select(KeyPerson.id)
        .where(col(KeyPerson.id) > after, col(KeyPerson.sealed).is_not(None), *changed)
        .order_by(col(KeyPerson.id))
        .limit(SCAN_CHUNK)
    )


def chunk_query(ids: list[int], dialect: str) -> Any:
    """Those key persons with their customers' owners and data keys, the customers looked up
    by id (public so a test can show its plan). Read from the customers' side, by SQLite
    (no statistics) or by PostgreSQL (the join's estimate off by forty), every customer out of
    the pool was read for each chunk: half a second a chunk over a million customers."""
    return (
        select(
            KeyPerson.id,
            KeyPerson.customer_id,
            KeyPerson.sealed,
            Customer.owner_id,
            DataKey.kek_id,
            DataKey.wrapped,
        )
        .join(Customer, col(Customer.id) == col(KeyPerson.customer_id))
        .join(DataKey, col(DataKey.customer_id) == col(KeyPerson.customer_id))
        .where(
            col(KeyPerson.id).in_(ids),
            unindexed(col(Customer.status), dialect).in_(LIVE),
            unindexed(col(Customer.pooled_at), dialect).is_(None),  # pooled: nobody's to greet
            col(DataKey.wrapped).is_not(None),
        )
        .order_by(col(KeyPerson.id))
    )


async def _scan(
    session: AsyncSession, ctx: Plan, after: int, changed_since: datetime | None = None
) -> tuple[list[Row], int | None]:
    ids = [i for i in (await session.exec(window_query(after, changed_since))).all() if i]
    if not ids:
        return [], None
    chunk = (await session.exec(chunk_query(ids, dialect_of(session)))).all()
    after = ids[-1]
    rows = []
    keys: dict[int, bytes | None] = {}
    for person_id, customer_id, sealed, owner_id, kek_id, wrapped in chunk:
        assert person_id is not None
        owner = ctx.active(owner_id)
        if owner is None:
            continue
        if customer_id not in keys:
            try:
                keys[customer_id] = ctx.keyring.unwrap(kek_id, wrapped, customer_id=customer_id)
            except DecryptionError:
                keys[customer_id] = None
        key = keys[customer_id]
        if key is None:
            continue
        try:
            opened = vault.unseal(key, sealed, table="key_persons", row_id=person_id) or {}
        except DecryptionError:
            log.warning("key person %s: birthday could not be opened", person_id)
            continue
        parsed = parse_birthday(opened.get("birthday"))
        if parsed is None:
            continue
        for notice, birthday, when in birthday_notices(
            *parsed, ctx.lo, ctx.hi, ctx.rules.birthday_days
        ):
            due = ctx.at(owner, notice, ctx.rules.followup_hour)
            period = f"{birthday.year}-{when}"
            rows.append(
                ctx.row(
                    Kind.birthday,
                    "key_person",
                    person_id,
                    owner_id,
                    period,
                    due,
                    payload={"when": when},
                )
            )
    return rows, after


# the owner opens the customer's key persons (greeting them is theirs to do)
ACTIONS = ("key_persons",)
PLANNER = ScanPlanner("birthday", scan, every=HEAVY_EVERY)
CHANGED_PLANNER = ScanPlanner("birthday_changed", scan_changed)  # every poll


async def _load(
    reader: Reader, group: Sequence[Reminder]
) -> tuple[dict[int, KeyPerson], dict[int, Customer]]:
    """The key persons the rows are about, and their customers."""
    return await reader.with_customers(KeyPerson, group)


async def _read(
    reader: Reader, row: Reminder, loaded: tuple[dict[int, KeyPerson], dict[int, Customer]]
) -> Notice | None:
    """Read from the sealed value now: a birthday changed since planning is not announced."""
    persons, customers = loaded
    person = persons.get(row.subject_id or 0)
    customer = customers.get(person.customer_id) if person is not None else None
    if (
        person is None
        or customer is None
        or customer.status not in LIVE
        or customer.pooled_at is not None
        or customer.owner_id != row.recipient_id
        or not reader.recipient_ok(row)
    ):
        return None
    try:
        key = await vault.data_key(reader.session, reader.keyring, customer.id or 0)
        opened = vault.unseal(key, person.sealed, table="key_persons", row_id=person.id or 0)
    except DecryptionError:
        return None
    parsed = parse_birthday((opened or {}).get("birthday"))
    year, _, _when = row.dedup_key.rsplit(":", 1)[-1].partition("-")
    if parsed is None or not year.isdigit():
        return None
    birthday = birthday_in(int(year), *parsed)
    days = (birthday - reader.today(row.recipient_id)).days
    if days < -1 or days > reader.rules.birthday_days + 1:
        return None  # the birthday was changed since this was planned
    assert row.id is not None
    return Notice(
        row.id,
        row.kind,
        {
            "person": person.name,
            "customer": customer.name,
            "date": birthday.strftime("%m-%d"),
            "days": max(days, 0),
            "today": days <= 0,
        },
        ACTIONS,
        customer_id=customer.id,
        key_person_id=person.id,
    )


describe = per_row(_load, _read)
