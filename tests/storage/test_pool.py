"""The team pool's rules in storage (storage.pool): two claimants in two transactions at once,
two release jobs at once (a second instance), and the planners that leave a pooled customer
alone. The flows are tested through the bot in tests/conversations/test_pool.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from storage import customers, key_persons, pool
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import Refused
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Customer,
    Reminder,
    Role,
    Staff,
    Team,
    Transfer,
)
from storage.reminders import Rules, plan
from storage.reminders.kinds import Kind
from storage.reminders.pool import release_day

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
TODAY = NOW.date()
RULES = Rules(pool_after={"A": 30, "B": 45, "C": 60, "D": 90}, pool_warning_days=3)


async def _team(
    sessions: SessionFactory, keyring: Keyring, count: int
) -> tuple[dict[str, Staff], list[int]]:
    """East: Li owns `count` approved class-A customers due on their release day today."""
    async with unit_of_work(sessions) as session:
        east = Team(name="East")
        session.add(east)
        await session.flush()
        people = {
            name: Staff(telegram_id=n, display_name=name, role=role, team_id=east.id)
            for n, (name, role) in enumerate(
                (
                    ("Li", Role.salesperson),
                    ("Wang", Role.salesperson),
                    ("Zhou", Role.salesperson),
                    ("Chen", Role.manager),
                ),
                start=1,
            )
        }
        session.add_all(people.values())
        await session.flush()
        ids = []
        for n in range(count):
            made = await customers.create_customer(
                session,
                keyring=keyring,
                actor=people["Li"],
                values={"kind": "company", "name": f"Mingyuan {n}", "customer_class": "A"},
            )
            ids.append(made.id or 0)
        await session.exec(
            update(Customer)
            .where(col(Customer.id).in_(ids))
            .values(
                status="approved",
                approved_at=NOW - timedelta(days=300),
                next_followup_on=TODAY - timedelta(days=31),
            )
        )
    return people, ids


async def _warn_and_release(sessions: SessionFactory, keyring: Keyring) -> int:
    """Plan the warnings now, then run the release job three days later."""
    await plan(sessions, keyring=keyring, rules=RULES, now=NOW, only=["pool_warning"])
    return await pool.release_due(
        sessions, keyring=keyring, rules=RULES, now=NOW + timedelta(days=3)
    )


async def test_two_claims_in_two_transactions_at_once_one_wins(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    people, [customer_id] = await _team(session_factory, keyring, 1)
    assert await _warn_and_release(session_factory, keyring) == 1
    later = NOW + timedelta(days=3)

    async def claim(who: str) -> str:
        try:
            async with unit_of_work(session_factory) as session:
                await pool.claim(
                    session,
                    keyring,
                    actor=people[who],
                    customer_id=customer_id,
                    now=later,
                    timezone="Asia/Shanghai",
                    limit=10,
                )
        except Refused as refusal:
            return refusal.code
        return "won"

    results = await asyncio.gather(claim("Wang"), claim("Zhou"))
    assert sorted(results) == ["pool_taken", "won"]
    winner = people["Wang"] if results[0] == "won" else people["Zhou"]
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        assert (customer.owner_id, customer.pooled_at) == (winner.id, None)
        claims = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "customer.pool_claim"))
        ).all()
    assert len(claims) == 1


async def test_two_assignments_at_once_one_stands(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    """A manager and an admin (or two managers) assign the same customer at once."""
    people, [customer_id] = await _team(session_factory, keyring, 1)
    async with unit_of_work(session_factory) as session:
        admin = Staff(telegram_id=99, display_name="Boss", role=Role.admin)
        session.add(admin)
    await _warn_and_release(session_factory, keyring)

    async def assign(actor: Staff, to: str) -> str:
        try:
            async with unit_of_work(session_factory) as session:
                await pool.assign(
                    session,
                    keyring,
                    actor=actor,
                    customer_id=customer_id,
                    assignee_id=people[to].id or 0,
                    now=NOW + timedelta(days=3),
                    timezone="Asia/Shanghai",
                )
        except Refused as refusal:
            return refusal.code
        return "assigned"

    results = await asyncio.gather(assign(people["Chen"], "Wang"), assign(admin, "Zhou"))
    assert sorted(results) == ["assigned", "pool_taken"]
    async with unit_of_work(session_factory) as session:
        told = (
            await session.exec(select(Reminder).where(Reminder.kind == Kind.pool_assigned))
        ).all()
    assert len(told) == 1


async def test_two_release_jobs_at_once_release_each_customer_once(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    """Two instances (or a restart mid-way) run the job together: every customer is released
    once, with one history line, one audit entry and one notice; a later run adds nothing."""
    _people, ids = await _team(session_factory, keyring, 450)  # three batches
    await plan(session_factory, keyring=keyring, rules=RULES, now=NOW, only=["pool_warning"])
    later = NOW + timedelta(days=3)
    runs = await asyncio.gather(
        pool.release_due(session_factory, keyring=keyring, rules=RULES, now=later),
        pool.release_due(session_factory, keyring=keyring, rules=RULES, now=later),
    )
    assert sum(runs) == len(ids)
    assert await pool.release_due(session_factory, keyring=keyring, rules=RULES, now=later) == 0
    async with unit_of_work(session_factory) as session:
        lines = (
            await session.exec(
                select(ChangeRecord.customer_id).where(ChangeRecord.action == Transfer.pool_release)
            )
        ).all()
        entries = (
            await session.exec(
                select(AuditEntry.entity_id).where(AuditEntry.action == "customer.pool_release")
            )
        ).all()
        notices = (
            await session.exec(
                select(Reminder.subject_id).where(Reminder.kind == Kind.pool_released)
            )
        ).all()
        pooled = (
            await session.exec(select(Customer.id).where(col(Customer.pooled_at).is_not(None)))
        ).all()
    assert sorted(lines) == sorted(entries) == sorted(notices) == sorted(pooled) == sorted(ids)


async def test_no_release_without_a_warning_three_days_old(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    """Long overdue but never warned (the pool was just switched on): warned first, released
    three days after the warning, never on the spot."""
    _people, [customer_id] = await _team(session_factory, keyring, 1)
    assert await pool.release_due(session_factory, keyring=keyring, rules=RULES, now=NOW) == 0
    await plan(session_factory, keyring=keyring, rules=RULES, now=NOW, only=["pool_warning"])
    for hours in (0, 24, 71):
        later = NOW + timedelta(hours=hours)
        assert (
            await pool.release_due(session_factory, keyring=keyring, rules=RULES, now=later) == 0
        ), hours
    assert (
        await pool.release_due(
            session_factory, keyring=keyring, rules=RULES, now=NOW + timedelta(hours=72)
        )
        == 1
    )
    async with unit_of_work(session_factory) as session:
        [warning] = (
            await session.exec(select(Reminder).where(Reminder.kind == Kind.pool_warning))
        ).all()
    assert (warning.subject_id, warning.period_on) == (customer_id, TODAY)


@pytest.mark.parametrize(
    ("next_on", "last_visit", "expected"),
    [
        (date(2026, 10, 1), None, date(2026, 11, 1)),  # the date set, plus 30 days, plus one
        (None, date(2026, 9, 1), date(2026, 10, 9)),  # no date: the last visit plus 7 (A)
        (date(2026, 10, 1), date(2026, 10, 5), date(2026, 11, 12)),  # visited since: from it
        (None, None, date(2026, 6, 22) + timedelta(days=38)),  # never visited: from approval
    ],
)
def test_the_release_day(next_on: date | None, last_visit: date | None, expected: date) -> None:
    approved = datetime(2026, 6, 22, 3, 0, tzinfo=UTC)
    found = release_day(
        RULES,
        customer_class="A",
        next_followup_on=next_on,
        last_visit_on=last_visit,
        approved_at=approved,
    )
    assert found == expected
    assert (
        release_day(
            Rules(pool_after={"B": 45}),
            customer_class="A",
            next_followup_on=next_on,
            last_visit_on=last_visit,
            approved_at=approved,
        )
        is None
    )  # a class left out is never released


async def test_the_owners_planners_leave_a_pooled_customer_alone(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    """Follow-up, stale, survey and birthday reminders are the owner's: none for a customer in
    the pool, even with everything due today."""
    people, [pooled_id, kept_id] = await _team(session_factory, keyring, 2)
    async with unit_of_work(session_factory) as session:
        # the same dates for both; only the first is in the pool
        await session.exec(
            update(Customer)
            .where(col(Customer.id).in_([pooled_id, kept_id]))
            .values(
                next_followup_on=TODAY,
                last_checked_at=NOW - timedelta(days=400),
                approved_at=NOW - timedelta(days=800),
            )
        )
        await session.exec(
            update(Customer)
            .where(col(Customer.id) == pooled_id)
            .values(pooled_at=NOW - timedelta(days=1))
        )
        persons = {}
        for customer_id in (pooled_id, kept_id):
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            added = await key_persons.add_key_person(
                session,
                keyring=keyring,
                actor=people["Chen"],  # the manager: the last owner no longer sees a pooled one
                customer=customer,
                values={"kp_name": "Wang Wu", "kp_birthday": "1980-11-23"},
            )
            persons[customer_id] = added.id
    await plan(session_factory, keyring=keyring, rules=RULES, now=NOW)
    async with unit_of_work(session_factory) as session:
        rows = (await session.exec(select(Reminder))).all()
    about = {(r.kind, r.subject_type, r.subject_id) for r in rows}
    # the customer out of the pool gets every one of them: the check is not vacuous
    assert {
        (Kind.followup, "customer", kept_id),
        (Kind.stale, "customer", kept_id),
        (Kind.survey, "customer", kept_id),
        (Kind.birthday, "key_person", persons[kept_id]),
    } <= about
    pooled = {("customer", pooled_id), ("key_person", persons[pooled_id])}
    assert not [kind for kind, *subject in about if tuple(subject) in pooled]
