"""/new's duplicate-name check with 20,000 customers in the team, beside a bare indexed look-up.

Run: `python -m tests.bench.duplicate_names [--team 20000] [--customers 100000] [--checks 200]
[--pg-url URL]`. It fills a fresh database with bulk SQL inserts (one team of `--team`
customers, the rest spread over other teams; Chinese and English company names as
tests/bench/search.py and similar_names.py make them), then runs `--checks` duplicate checks
exactly as /new does (`customers.duplicates`, name and phone, each in its own unit of work):
new names, near-duplicates without their legal form or city, homophones and exact names. It
prints the first check apart (it cores the team's names), then p50/p95/max of the others; the
reference is the bare SQL of one indexed look-up (the blind-index phone query `matches` also
runs) in the same kind of unit of work, and the ratio. Beside the whole /new check (counted,
described, every match audited) it times the look-up alone (`customers.matches`, name and phone,
in its own unit of work): the figure issue 14 asks under 10 ms. It also prints what the kept
names cost
in memory per 20,000 names (tracemalloc). On SQLite, then on PostgreSQL (`--pg-url`, default
TEST_DATABASE_URL; a database of its own is created and dropped there).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, select

from storage import audit, customers, names
from storage.crypto import Keyring
from storage.db import SessionFactory, async_url, make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import BlindIndex, Customer, Staff, Team
from tests.bench.search import BRAND, CITIES, FORMS, TRADE

EN_WORDS = [
    "Acme",
    "Bright",
    "Pacific",
    "Golden",
    "Star",
    "Ocean",
    "Summit",
    "Prime",
    "Unity",
    "Vertex",
    "Nova",
    "Orient",
]
EN_TRADE = [
    "Trading",
    "Electronics",
    "Machinery",
    "Logistics",
    "Textiles",
    "Software",
    "Foods",
    "Chemicals",
]
EN_FORMS = ("Co., Ltd.", "Ltd.", "Inc.", "Limited", "Group")
EN_PLACES = ("Shanghai", "Shenzhen", "Ningbo", "Hangzhou", "")
BATCH = 5000
HOMOPHONE = {"信": "新", "华": "化", "达": "大", "明": "名", "远": "元", "泰": "太", "通": "同"}


def company_name(rng: random.Random) -> str:
    if rng.random() < 0.75:
        brand = "".join(rng.sample(BRAND, rng.choice((2, 3, 4))))
        return f"{rng.choice(CITIES)}{brand}{rng.choice(TRADE)}{rng.choice(FORMS)}"
    words = " ".join(rng.sample(EN_WORDS, 2))
    return f"{rng.choice(EN_PLACES)} {words} {rng.choice(EN_TRADE)} {rng.choice(EN_FORMS)}".strip()


async def populate(
    sessions: SessionFactory, keyring: Keyring, team_size: int, total: int, rng: random.Random
) -> tuple[Staff, list[str]]:
    """The big team's salesperson, and the big team's names; other teams get the rest."""
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:
        teams = [Team(name=f"Team {t}") for t in range(6)]
        session.add_all(teams)
        await session.flush()
        sellers = [
            Staff(telegram_id=1000 + t, display_name=f"S{t}", role="salesperson", team_id=t_.id)
            for t, t_ in enumerate(teams)
        ]
        session.add_all(sellers)
        await session.flush()
    now = datetime.now(UTC)
    team_names: list[str] = []
    for first in range(0, total, BATCH):
        rows: list[dict[str, Any]] = []
        indexes: list[dict[str, Any]] = []
        for i in range(first + 1, min(first + BATCH, total) + 1):
            seller = sellers[0] if i <= team_size else sellers[1 + i % (len(sellers) - 1)]
            name = company_name(rng)
            if i <= team_size:
                team_names.append(name)
            rows.append(
                {
                    "id": i,
                    "customer_no": f"KH-2026-{i:07d}",
                    "kind": "company",
                    "name": name,
                    "short_name": None,
                    "customer_class": "C",
                    "deal_status": "none",
                    "consent_given": False,
                    "owner_id": seller.id,
                    "team_id": seller.team_id,
                    "status": "approved",
                    "created_at": now - timedelta(days=30),
                    "updated_at": now - timedelta(days=30, seconds=total - i),
                    "version": 1,
                }
            )
            if i % 5 == 0:
                phone = f"+86138{i:08d}"
                indexes.append(
                    {
                        "kind": "phone",
                        "digest": keyring.blind_index("phone", phone),
                        "kek_id": keyring.current.kid,
                        "customer_id": i,
                    }
                )
        async with unit_of_work(sessions) as session:
            await session.exec(insert(Customer), params=rows)  # type: ignore[call-overload]
            await session.exec(insert(BlindIndex), params=indexes)  # type: ignore[call-overload]
    async with unit_of_work(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.exec(text("SELECT setval('customers_id_seq', :n)").bindparams(n=total))
            await session.exec(text("ANALYZE"))
    print(
        f"inserted {total} customers ({team_size} in the team) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return sellers[0], team_names


def asked_names(team_names: list[str], checks: int, rng: random.Random) -> list[str]:
    """New names, near-duplicates (legal form or city dropped), homophones and exact names."""
    asked = []
    for n in range(checks):
        kind = n % 4
        existing = rng.choice(team_names)
        if kind == 0:
            asked.append(company_name(rng))
        elif kind == 1:
            stripped = existing
            for form in (*FORMS, *EN_FORMS):
                stripped = stripped.removesuffix(form).strip()
            for city in (*CITIES, *EN_PLACES):
                if city:
                    stripped = stripped.removeprefix(city).strip()
            asked.append(stripped)
        elif kind == 2:
            asked.append("".join(HOMOPHONE.get(c, c) for c in existing))
        else:
            asked.append(existing)
    return asked


def figures(label: str, timings: list[float]) -> tuple[float, float, float]:
    timings = sorted(timings)
    p50 = statistics.median(timings) * 1000
    p95 = timings[int(len(timings) * 0.95) - 1] * 1000
    top = timings[-1] * 1000
    print(f"  {label:<34} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  max {top:7.2f} ms")
    return p50, p95, top


async def measure(sessions: SessionFactory, keyring: Keyring, actor: Staff, asked: list[str]):
    today = datetime.now(UTC).date()

    async def check(name: str, phone: str) -> int:
        async with unit_of_work(sessions) as session:
            found = await customers.duplicates(
                session,
                keyring=keyring,
                actor=actor,
                today=today,
                daily_limit=10**9,
                purpose="create",
                name=name,
                phones=[phone],
            )
        return len(found.duplicates)

    async def name_check(name: str, phone: str) -> None:
        async with unit_of_work(sessions) as session:
            await customers.matches(
                session, keyring=keyring, team_id=actor.team_id, name=name, phones=[phone]
            )

    async def reference(phone: str) -> None:
        async with unit_of_work(sessions) as session:
            digests = keyring.blind_indexes("phone", phone)
            rows = await session.exec(
                select(BlindIndex.customer_id).where(
                    BlindIndex.kind == "phone", col(BlindIndex.digest).in_(digests)
                )
            )
            rows.all()

    started = time.perf_counter()
    await check(asked[0], "+8613900000000")
    first = time.perf_counter() - started
    timings, matching, bare, warned = [], [], [], 0
    for n, name in enumerate(asked[1:], start=1):
        phone = f"+86139{n:08d}"
        started = time.perf_counter()
        warned += bool(await check(name, phone))
        timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        await name_check(name, phone)
        matching.append(time.perf_counter() - started)
        started = time.perf_counter()
        await reference(phone)
        bare.append(time.perf_counter() - started)
    print(f"  first check (cores the team)       {first * 1000:7.1f} ms")
    p50, p95, _ = figures(f"/new check, audited ({len(timings)}, {warned} warned)", timings)
    m50, m95, _ = figures("name + phone look-up (matches)", matching)
    r50, r95, _ = figures("reference: bare blind-index SQL", bare)
    print(f"  ratio /new check / reference       p50 {p50 / r50:5.1f}x  p95 {p95 / r95:5.1f}x")
    print(f"  ratio matches / reference          p50 {m50 / r50:5.1f}x  p95 {m95 / r95:5.1f}x")


def memory_per_20k(team_names: list[str]) -> None:
    """What the names kept for one team cost, scaled to 20,000 names."""
    kept = getattr(names, "TeamNames", None)
    sample = team_names[:20_000]
    tracemalloc.start()
    if kept is None:  # before: nothing is kept between checks; a NameIndex lives per check
        structure: Any = names.NameIndex.of(enumerate(sample))
    else:
        structure = kept()
        for cid, name in enumerate(sample, start=1):
            structure.put(cid, (name, None))
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    label = "kept names" if kept is not None else "per-check NameIndex (not kept)"
    print(f"  memory, {label}: {size / len(sample) * 20_000 / 2**20:.1f} MB per 20,000 names")
    del structure


async def run(url: str, team: int, total: int, checks: int) -> None:
    rng = random.Random(20261202)
    await upgrade_database(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    keyring = Keyring([os.urandom(32)])
    audit.use_keyring(sessions, keyring)
    try:
        actor, team_names = await populate(sessions, keyring, team, total, rng)
        print(f"database: {engine.dialect.name}")
        await measure(sessions, keyring, actor, asked_names(team_names, checks, rng))
        memory_per_20k(team_names)
    finally:
        await engine.dispose()


async def main(team: int, total: int, checks: int, pg_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        await run(f"sqlite:///{Path(workdir) / 'bench.db'}", team, total, checks)
    if not pg_url:
        print("PostgreSQL skipped (no --pg-url, no TEST_DATABASE_URL)")
        return
    server = create_async_engine(async_url(pg_url), isolation_level="AUTOCOMMIT")
    database = f"bench_dupes_{uuid.uuid4().hex[:8]}"
    async with server.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        await run(
            make_url(pg_url).set(database=database).render_as_string(False), team, total, checks
        )
    finally:
        async with server.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        await server.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--team", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"))
    arguments: Any = parser.parse_args()
    asyncio.run(main(arguments.team, arguments.customers, arguments.checks, arguments.pg_url))
