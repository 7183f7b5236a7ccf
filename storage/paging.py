"""One page of a customer's records (visits, complaints): who may see it, how many, which page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import customers
from storage.models import Customer, Staff


@dataclass(frozen=True)
class Window:
    """Where one page of a customer's records starts, the page clamped to those that exist."""

    customer: Customer
    total: int
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return self.page * self.page_size


async def customer_window(
    session: AsyncSession,
    *,
    actor: Staff,
    customer_id: int,
    record: type[SQLModel],
    purpose: str,
    page: int,
    page_size: int,
) -> Window | None:
    """The page of `record` rows (of `customer_id`) to show; None (audited under `purpose`) if
    the actor may not see the customer."""
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose=purpose
    )
    if customer is None:
        return None
    of_customer: Any = col(record.customer_id) == customer_id
    total = (await session.exec(select(func.count()).select_from(record).where(of_customer))).one()
    last_page = max(0, (total - 1) // page_size)
    return Window(customer, total, min(max(page, 0), last_page), page_size)
