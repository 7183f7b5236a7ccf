"""The shared "which customer?" question: recent customers as buttons, typing searches."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.steps import FlowEnv, Kind, Option, Step
from storage import customers, search
from storage.models import Customer


def customer_option(customer: Customer) -> Option:
    return Option(str(customer.id), f"{customer.name} · {customer.customer_no}", translate=False)


async def recent_options(env: FlowEnv, session: AsyncSession, data: dict[str, Any]) -> list[Option]:
    found = await search.recent_customers(session, actor=env.staff)
    return [customer_option(c) for c in found]


async def search_options(
    env: FlowEnv, session: AsyncSession, text: str, data: dict[str, Any]
) -> list[Option]:
    found = await search.search_customers(
        session, keyring=env.services.keyring, actor=env.staff, text=text
    )
    return [customer_option(c) for c in found]


def customer_step(field: str = "customer_id") -> Step:
    """A required question whose answer is the id of a customer the user may see."""
    return Step(
        field,
        Kind.CHOICE,
        required=True,
        options=recent_options,
        search=search_options,
        columns=1,
        page_size=6,
    )


async def prepare_customer(
    env: FlowEnv, session: AsyncSession, initial: dict[str, Any], field: str = "customer_id"
) -> dict[str, Any] | None:
    """Check a customer given at the start (from a card); None if the user may not see it."""
    if field not in initial:
        return {}
    try:
        customer_id = int(initial[field])
    except (TypeError, ValueError):
        return None
    customer = await customers.visible_customer(
        session, actor=env.staff, customer_id=customer_id, purpose="start_flow"
    )
    if customer is None:
        return None
    option = customer_option(customer)
    return {field: option.value, "_labels": {field: option.label}}
