"""`survey`: every SURVEY_INTERVAL_DAYS of cooperation the owner asks the customer how it goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, RecordStatus, Reminder
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row, Shape
from storage.reminders.reading import Notice, Reader, customers_of, per_row
from storage.reminders.stale import DAILY, prompts_per_owner

ACTIONS = ("done", "snooze")


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """A satisfaction-survey prompt per approved customer every SURVEY_INTERVAL_DAYS."""
    interval = timedelta(days=ctx.rules.survey_days)
    return await prompts_per_owner(session, ctx, pick(ctx.now, interval), Kind.survey, _cycle)


def pick(now: datetime, interval: timedelta) -> Shape:
    """Approved records out of the pool approved `interval` ago or more, not asked within it,
    oldest first (ix_customers_survey_due)."""

    def shape(customer: Any) -> tuple[list[Any], list[Any], Any]:
        approved = col(customer.approved_at)
        conditions = [
            col(customer.status) == RecordStatus.approved,
            col(customer.pooled_at).is_(None),  # in the team pool: nobody's to ask
            approved <= now - interval,
            ~exists().where(
                col(Reminder.subject_id) == col(customer.id),
                col(Reminder.kind) == Kind.survey,
                col(Reminder.created_at) > now - interval,
            ),
        ]
        return [customer.id, customer.owner_id, approved], conditions, approved

    return shape


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
