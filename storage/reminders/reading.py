"""What a reminder says, as data for rendering, and the tools every kind's description uses to
read the records it is about (in batches) as they are now."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.models import Customer, RecordStatus, Reminder, Staff
from storage.reminders.rules import Rules


@dataclass(frozen=True)
class Notice:
    """One reminder as its message shows it: display values, and what its buttons may do."""

    reminder_id: int
    kind: str
    values: dict[str, Any]
    actions: tuple[str, ...] = ()
    customer_id: int | None = None
    review_id: int | None = None
    complaint_id: int | None = None  # a complaint reminder's (its take / resolve buttons)
    key_person_id: int | None = None  # a birthday's key person
    lines: tuple[dict[str, Any], ...] = ()  # the entries of a digest
    sample: bool = False

    @property
    def label(self) -> str:
        """A few words naming the subject, for an "open" button."""
        return str(self.values.get("customer") or self.values.get("subject") or self.kind)


def effective_followup(customer: Customer, cycles: dict[str, int]) -> date | None:
    """The customer's follow-up date: the next one set, else the class cycle after the last
    visit; None if it has neither or was visited on or after that day."""
    on = customer.next_followup_on
    if on is None and customer.last_visit_on is not None:
        on = customer.last_visit_on + timedelta(days=cycles.get(customer.customer_class, 30))
    if on is None or (customer.last_visit_on is not None and customer.last_visit_on >= on):
        return None
    return on


class Reader:
    """One delivery's view of the records: the staff, and batch loads of what rows are about."""

    def __init__(
        self,
        session: AsyncSession,
        keyring: Keyring,
        rules: Rules,
        now: datetime,
        staff: dict[int, Staff],
    ) -> None:
        self.session, self.keyring, self.rules, self.now = session, keyring, rules, now
        self.staff = staff

    async def load(self, model: Any, ids: Iterable[int | None]) -> dict[int, Any]:
        wanted = sorted({i for i in ids if i is not None})
        if not wanted:
            return {}
        rows = await self.session.exec(select(model).where(col(model.id).in_(wanted)))
        return {r.id: r for r in rows.all()}

    def name(self, staff_id: int | None) -> str:
        person = self.staff.get(staff_id) if staff_id is not None else None
        return person.display_name if person is not None else "—"

    def today(self, staff_id: int) -> date:
        return self.rules.today_of(self.staff.get(staff_id), self.now)

    def local(self, moment: datetime, staff_id: int) -> str:
        return moment.astimezone(self.rules.zone_of(self.staff.get(staff_id))).strftime(
            "%Y-%m-%d %H:%M"
        )

    def recipient_ok(self, row: Reminder) -> bool:
        person = self.staff.get(row.recipient_id)
        return person is not None and person.active

    async def with_customers(
        self, model: Any, group: Sequence[Reminder]
    ) -> tuple[dict[int, Any], dict[int, Customer]]:
        """The records the rows are about (each of a customer), and their customers."""
        records = await self.load(model, (r.subject_id for r in group))
        customers = await self.load(Customer, (r.customer_id for r in records.values()))
        return records, customers

    def approved_owned(self, row: Reminder, customers: dict[int, Customer]) -> Customer | None:
        """The row's customer if it is approved and still belongs to the (active) recipient
        (not in the team pool)."""
        customer = customers.get(row.subject_id or 0)
        if (
            customer is not None
            and customer.status == RecordStatus.approved
            and customer.pooled_at is None  # in the team pool: nobody's own
            and customer.owner_id == row.recipient_id
            and self.recipient_ok(row)
        ):
            return customer
        return None


# how a kind reads its claimed rows: a notice per row still due, by row id
Describe = Callable[[Reader, Sequence[Reminder]], Awaitable[dict[int, Notice]]]
Loaded = TypeVar("Loaded")


def per_row(
    load: Callable[[Reader, Sequence[Reminder]], Awaitable[Loaded]],
    read: Callable[[Reader, Reminder, Loaded], Awaitable[Notice | None]],
) -> Describe:
    """The description skeleton: load what the rows are about in one batch, then read each
    row against it; a row read as None is no longer due (it is cancelled)."""

    async def describe(reader: Reader, group: Sequence[Reminder]) -> dict[int, Notice]:
        loaded = await load(reader, group)
        found = {}
        for row in group:
            assert row.id is not None
            notice = await read(reader, row, loaded)
            if notice is not None:
                found[row.id] = notice
        return found

    return describe


async def customers_of(reader: Reader, group: Sequence[Reminder]) -> dict[int, Customer]:
    """The customers the rows are about (a `load` for per_row)."""
    return await reader.load(Customer, (r.subject_id for r in group))
