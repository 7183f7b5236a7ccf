"""Human-readable record numbers (KH-2026-000123) that are unique and never reused."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession


async def next_value(session: AsyncSession, name: str) -> int:
    """Atomically take the next value of a counter, in the caller's transaction.

    The increment is a single UPDATE ... RETURNING, so concurrent takers queue on the row lock
    and each gets its own value. A rolled-back taker's increment rolls back too, so its value
    goes to the next taker: it never reached the database, so nothing was ever known by it.
    """
    await session.exec(
        text(
            "INSERT INTO number_sequences (name, value) VALUES (:name, 0) "
            "ON CONFLICT (name) DO NOTHING"
        ).bindparams(name=name)
    )
    result = await session.exec(
        text(
            "UPDATE number_sequences SET value = value + 1 WHERE name = :name RETURNING value"
        ).bindparams(name=name)
    )
    return int(result.scalar_one())


async def next_number(session: AsyncSession, prefix: str, year: int) -> str:
    value = await next_value(session, f"{prefix}:{year}")
    return f"{prefix}-{year}-{value:06d}"


async def next_values(session: AsyncSession, name: str, count: int) -> range:
    """Take `count` consecutive values of a counter at once (an import numbers thousands of
    customers): one UPDATE, under the same row lock and rollback rules as `next_value`."""
    if count < 1:
        return range(0)
    await session.exec(
        text(
            "INSERT INTO number_sequences (name, value) VALUES (:name, 0) "
            "ON CONFLICT (name) DO NOTHING"
        ).bindparams(name=name)
    )
    result = await session.exec(
        text(
            "UPDATE number_sequences SET value = value + :count WHERE name = :name RETURNING value"
        ).bindparams(name=name, count=count)
    )
    last = int(result.scalar_one())
    return range(last - count + 1, last + 1)


def number_of(prefix: str, year: int, value: int) -> str:
    """A record number as `next_number` writes it."""
    return f"{prefix}-{year}-{value:06d}"
