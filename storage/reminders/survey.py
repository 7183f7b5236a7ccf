"""`survey`: every SURVEY_INTERVAL_DAYS of cooperation the owner asks the customer how it goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, RecordStatus, Reminder, Staff
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, customers_of, per_row
from storage.reminders.stale import DAILY, prompts_per_owner

ACTIONS = ("done", "snooze")


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """A satisfaction-survey prompt per approved customer every SURVEY_INTERVAL_DAYS."""
    interval = timedelta(days=ctx.rules.survey_days)
    query = (
        select(Customer.id, Customer.owner_id, Customer.approved_at)
        .join(Staff, col(Staff.id) == col(Customer.owner_id))
        .where(
            col(Customer.status) == RecordStatus.approved,
            col(Customer.pooled_at).is_(None),  # in the team pool: nobody's to ask
            col(Staff.active).is_(True),
            col(Customer.approved_at) <= ctx.now - interval,
            ~exists().where(
                col(Reminder.subject_id) == col(Customer.id),
                col(Reminder.kind) == Kind.survey,
                col(Reminder.created_at) > ctx.now - interval,
            ),
        )
    )
    order = col(Customer.approved_at)
    return await prompts_per_owner(session, ctx, query, order, Kind.survey, _cycle)


def _cycle(approved_at: Any, ctx: Plan) -> str:
    """The period of a survey: how many SURVEY_INTERVAL_DAYS the cooperation has lasted."""
    if isinstance(approved_at, str):
        approved_at = datetime.fromisoformat(approved_at).replace(tzinfo=UTC)
    return str(max(1, (ctx.now - approved_at).days // ctx.rules.survey_days))


PLANNER = Planner("survey", find, every=DAILY, bulk=True)


async def _read(reader: Reader, row: Reminder, customers: dict[int, Customer]) -> Notice | None:
    """Still approved and still the owner's."""
    customer = reader.approved_owned(row, customers)
    if customer is None:
        return None
    if customer.approved_at is None:
        return None
    assert row.id is not None
    years = max(1, round((reader.now - customer.approved_at).days / 365))
    return Notice(
        row.id,
        row.kind,
        {"customer": customer.name, "number": customer.customer_no, "years": years},
        ACTIONS,
        customer_id=customer.id,
    )


describe = per_row(customers_of, _read)
