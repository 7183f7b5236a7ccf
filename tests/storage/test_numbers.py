"""Customer numbers (KH-2026-000123): unique under concurrency, only ever going up."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlmodel import col, select

from storage import audit, customers, numbers
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Customer, DataKey, NumberSequence, Role, Staff, Team
from storage.types import utcnow

KEYRING = Keyring([bytes(range(32))])
NUMBER = re.compile(r"^KH-(\d{4})-(\d{6})$")


async def _sellers(session_factory: SessionFactory) -> list[Staff]:
    async with unit_of_work(session_factory) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        sellers = [
            Staff(
                telegram_id=1000 + i,
                display_name=f"seller {i}",
                role=Role.salesperson,
                team_id=team.id,
            )
            for i in range(2)
        ]
        session.add_all(sellers)
        await session.flush()
    return sellers


async def _create(session_factory: SessionFactory, actor: Staff, name: str) -> Customer:
    async with unit_of_work(session_factory) as session:
        return await customers.create_customer(
            session,
            keyring=KEYRING,
            actor=actor,
            values={"kind": "company", "name": name, "phones": ["+8613812345678"]},
        )


def _sequence(number: str) -> tuple[int, int]:
    match = NUMBER.match(number)
    assert match, number
    return int(match[1]), int(match[2])


async def _stored_numbers(session_factory: SessionFactory) -> list[str]:
    async with session_factory() as session:
        return list(
            (await session.exec(select(Customer.customer_no).order_by(col(Customer.id)))).all()
        )


async def test_concurrent_creations_get_distinct_consecutive_numbers(
    session_factory: SessionFactory,
) -> None:
    sellers = await _sellers(session_factory)
    year = utcnow().year
    made = await asyncio.gather(
        *(_create(session_factory, sellers[i % 2], f"Customer {i}") for i in range(30))
    )
    got = sorted(c.customer_no for c in made)
    assert got == [f"KH-{year}-{n:06d}" for n in range(1, 31)]
    assert sorted(await _stored_numbers(session_factory)) == got
    async with session_factory() as session:
        assert len((await session.exec(select(DataKey))).all()) == 30
        sequence = await session.get(NumberSequence, f"KH:{year}")
        assert sequence is not None and sequence.value == 30
        # every creation audited, and the audit chain did not fork under the load
        assert await audit.verify_chain(session) == audit.ChainReport(ok=True, checked=60)


async def test_numbers_only_go_up_after_a_rollback(session_factory: SessionFactory) -> None:
    sellers = await _sellers(session_factory)
    first = await _create(session_factory, sellers[0], "First")
    second = await _create(session_factory, sellers[1], "Second")

    with pytest.raises(RuntimeError):
        async with unit_of_work(session_factory) as session:
            doomed = await customers.create_customer(
                session,
                keyring=KEYRING,
                actor=sellers[0],
                values={"kind": "company", "name": "Doomed"},
            )
            assert _sequence(doomed.customer_no)[1] > _sequence(second.customer_no)[1]
            raise RuntimeError("the transaction fails after the number was taken")

    after = await _create(session_factory, sellers[1], "After")
    committed = await _stored_numbers(session_factory)
    assert committed == [first.customer_no, second.customer_no, after.customer_no]
    assert len(set(committed)) == len(committed)
    assert _sequence(after.customer_no)[1] > max(_sequence(n)[1] for n in committed[:-1])
    async with session_factory() as session:
        names = (await session.exec(select(Customer.name))).all()
    assert sorted(names) == ["After", "First", "Second"]
    later = await _create(session_factory, sellers[0], "Later")
    assert _sequence(later.customer_no)[1] == _sequence(after.customer_no)[1] + 1


async def test_counters_are_separate_per_name(session_factory: SessionFactory) -> None:
    async with unit_of_work(session_factory) as session:
        assert await numbers.next_number(session, "KH", 2025) == "KH-2025-000001"
        assert await numbers.next_number(session, "KH", 2025) == "KH-2025-000002"
        assert await numbers.next_number(session, "KH", 2026) == "KH-2026-000001"
        assert await numbers.next_number(session, "TS", 2026) == "TS-2026-000001"
    async with session_factory() as session:
        rows = (await session.exec(select(NumberSequence).order_by(NumberSequence.name))).all()
    assert [(r.name, r.value) for r in rows] == [("KH:2025", 2), ("KH:2026", 1), ("TS:2026", 1)]


async def test_concurrent_takers_of_a_brand_new_counter(session_factory: SessionFactory) -> None:
    """Several transactions creating the same counter at once each get their own value."""

    async def take() -> int:
        async with unit_of_work(session_factory) as session:
            value = await numbers.next_value(session, "fresh")
            await asyncio.sleep(0)
            return value

    values = await asyncio.gather(*(take() for _ in range(10)))
    assert sorted(values) == list(range(1, 11))
