"""Benchmark: handing over 5,000 customers from one person to another (离职交接) with
`storage.handover.finish`, against the bare SQL UPDATE of their 5,000 owner_ids.

Each run builds a fresh database (a SQLite file in a temp folder; PostgreSQL too when
TEST_DATABASE_URL or --pg-url is set, in a database of its own, dropped afterwards): a team with
the leaver, the successor and a manager, `--customers` customers of the leaver with their data
keys (so every history line is sealed, as in production), open complaints on a tenth of them
plus some on a colleague's customers, a pending follow-up reminder for every customer and one
for every complaint, and a pending review for a fifth. The leaver is deactivated and the
hand-over opened; then, timed, the reference (UPDATE customers SET owner_id = successor WHERE
owner_id = leaver, committed, then put back untimed) and the hand-over itself: one unit of work
calling finish() with one successor for all, committed, summaries queued.

    .venv/bin/python -m tests.bench.handover [--customers 5000] [--runs 3] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlmodel import col, func, select

from conversations.handover_summary import notifier
from storage import audit
from storage import handover as handovers
from storage import staff as staff_store
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import (
    Complaint,
    Customer,
    DataKey,
    Reminder,
    Review,
    Role,
    Staff,
    Team,
)

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
COMPLAINT_SHARE = 10  # one customer in ten has an open complaint
REVIEW_SHARE = 5  # one in five a pending review
OTHERS_COMPLAINTS = 50  # complaints the leaver handles on a colleague's customers


async def _fill(sessions: SessionFactory, keyring: Keyring, count: int) -> tuple[int, int, int]:
    """The company; returns (leaver, successor, colleague) ids."""
    async with unit_of_work(sessions) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        people = [
            Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=team.id),
            Staff(telegram_id=2, display_name="Zhao", role=Role.salesperson, team_id=team.id),
            Staff(telegram_id=3, display_name="Boss", role=Role.manager, team_id=team.id),
            Staff(telegram_id=4, display_name="Admin", role=Role.admin),
        ]
        session.add_all(people)
        await session.flush()
        li, zhao, boss = (p.id or 0 for p in people[:3])
        customers = [
            {
                "id": n,
                "customer_no": f"KH-{n:06d}",
                "kind": "company",
                "name": f"客户 {n}",
                "customer_class": "C",
                "deal_status": "none",
                "consent_given": False,
                "owner_id": li if n <= count else zhao,
                "team_id": team.id,
                "status": "approved",
                "next_followup_on": date(2026, 12, 1) + timedelta(days=n % 60),
                "version": 1,
                "sealed_seq": 0,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for n in range(1, count + OTHERS_COMPLAINTS + 1)
        ]
        await session.exec(Customer.__table__.insert(), params=customers)  # type: ignore
        keys = []
        for n in range(1, count + OTHERS_COMPLAINTS + 1):
            kid, wrapped = keyring.wrap(keyring.new_data_key(), customer_id=n)
            keys.append(
                {
                    "customer_id": n,
                    "kek_id": kid,
                    "wrapped": wrapped,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        await session.exec(DataKey.__table__.insert(), params=keys)  # type: ignore
        complaint_customers = [
            *range(1, count + 1, COMPLAINT_SHARE),
            *range(count + 1, count + OTHERS_COMPLAINTS + 1),
        ]
        complaints = [
            {
                "id": i,
                "complaint_no": f"TS-{i:06d}",
                "customer_id": cid,
                "received_by": li,
                "received_at": NOW,
                "type": "delivery",
                "severity": "high",
                "description": "late",
                "handler_id": li,
                "status": "open",
                "due_at": NOW + timedelta(days=3),
                "version": 1,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i, cid in enumerate(complaint_customers, start=1)
        ]
        await session.exec(Complaint.__table__.insert(), params=complaints)  # type: ignore
        reminders = [
            {
                "dedup_key": f"followup:customer:{n}:{li}:p",
                "kind": "followup",
                "subject_type": "customer",
                "subject_id": n,
                "recipient_id": li,
                "due_at": NOW + timedelta(days=1),
                "status": "pending",
                "attempts": 0,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for n in range(1, count + 1)
        ] + [
            {
                "dedup_key": f"complaint_soon:complaint:{c['id']}:{li}:p",
                "kind": "complaint_soon",
                "subject_type": "complaint",
                "subject_id": c["id"],
                "recipient_id": li,
                "due_at": NOW + timedelta(days=1),
                "status": "pending",
                "attempts": 0,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for c in complaints
        ]
        await session.exec(Reminder.__table__.insert(), params=reminders)  # type: ignore
        reviews = [
            {
                "kind": "customer_change",
                "status": "pending",
                "customer_id": n,
                "team_id": team.id,
                "submitted_by": li,
                "submitted_at": NOW,
                "version": 1,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for n in range(1, count + 1, REVIEW_SHARE)
        ]
        await session.exec(Review.__table__.insert(), params=reviews)  # type: ignore
    if sessions.kw["bind"].dialect.name == "postgresql":
        async with sessions() as session:
            await session.exec(text("ANALYZE"))  # type: ignore[call-overload]
            await session.commit()
    return li, zhao, boss


async def _reference(sessions: SessionFactory, li: int, zhao: int) -> float:
    """Seconds for the bare UPDATE of the owner_ids, committed; then put back (untimed)."""
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:
        await session.exec(
            update(Customer).where(col(Customer.owner_id) == li).values(owner_id=zhao)
        )
    elapsed = time.perf_counter() - started
    async with unit_of_work(sessions) as session:
        await session.exec(update(Customer).where(col(Customer.id) <= COUNT[0]).values(owner_id=li))
    return elapsed


COUNT = [5000]


async def _run(url: str, keyring: Keyring, count: int) -> tuple[float, float]:
    await upgrade_database(url)
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        audit.use_keyring(sessions, keyring)
        li, zhao, _boss = await _fill(sessions, keyring, count)
        async with unit_of_work(sessions) as session:
            # deactivating opens the hand-over in the same transaction
            opened = (await staff_store.deactivate(session, actor=None, staff_id=li)).handover
            assert opened is not None and opened.id is not None
            hid = opened.id
            await handovers.choose_successor(
                session, actor=None, handover_id=hid, successor_id=zhao
            )
        reference = await _reference(sessions, li, zhao)
        started = time.perf_counter()
        async with unit_of_work(sessions) as session:
            done = await handovers.finish(
                session, keyring, actor=None, handover_id=hid, version=None, notify=notifier("zh")
            )
        elapsed = time.perf_counter() - started
        assert done.customers == count, done.customers
        async with unit_of_work(sessions) as session:
            left = await handovers.orphans(session)
            moved = (
                await session.exec(
                    select(func.count()).select_from(Customer).where(Customer.owner_id == zhao)
                )
            ).one()
        assert left.empty and moved == count + OTHERS_COMPLAINTS
        print(
            f"    moved {done.customers} customers, {done.complaints} complaints, "
            f"{done.reviews} reviews, {done.reminders} reminders"
        )
        return elapsed, reference
    finally:
        await engine.dispose()


async def _postgres_database(base: str) -> tuple[str, str]:
    url = make_url(base).set(drivername="postgresql")
    name = f"bench_handover_{secrets.token_hex(4)}"
    maintenance = url.render_as_string(hide_password=False)
    connection = await asyncpg.connect(maintenance)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False), maintenance


async def _drop(maintenance: str, url: str) -> None:
    connection = await asyncpg.connect(maintenance)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await connection.close()


def _report(name: str, results: list[tuple[float, float]]) -> None:
    print(f"{name}: hand-over of {COUNT[0]:,} customers via finish(), three runs")
    for n, (elapsed, reference) in enumerate(results, start=1):
        print(
            f"  run {n}: finish {elapsed:.2f} s, bare UPDATE {reference * 1000:.1f} ms, "
            f"ratio {elapsed / reference:.0f}"
        )
    finish = statistics.median(r[0] for r in results)
    bare = statistics.median(r[1] for r in results)
    print(
        f"  medians: finish {finish:.2f} s, bare UPDATE {bare * 1000:.1f} ms "
        f"(ratio of the medians {finish / bare:.0f})"
    )


async def main(count: int, runs: int, pg_url: str | None) -> None:
    COUNT[0] = count
    keyring = Keyring([decode_master_key(new_master_key())])
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            results.append(await _run(f"sqlite:///{Path(scratch) / 'bench.db'}", keyring, count))
    _report("SQLite", results)
    if pg_url:
        results = []
        for _ in range(runs):
            url, maintenance = await _postgres_database(pg_url)
            try:
                results.append(await _run(url, keyring, count))
            finally:
                await _drop(maintenance, url)
        _report("PostgreSQL", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL") or None)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.runs, args.pg_url))
