"""Benchmark: finding a customer among 100,000, as a salesperson, a manager and an admin.

Customers are bulk-inserted as rows (no flows, no encryption of their sealed values: searching
never opens them), with blind indexes for the phones of one customer in ten. Then each kind of
search (part of a name, a name with a typo, the customer number, a phone) runs many times with
different targets, each in its own unit of work as the bot does it, and the median and p95 times
are printed. The first search of each kind is timed apart: it includes building the in-process
name index (or, in the bot, waiting for its background build). The reference of the same run
is the bare SQL a search ends with: one unit of work reading the found customer by id; the
ratio is each p95 over the reference's p95.

    .venv/bin/python -m tests.bench.search [--customers 100000] [--runs 40]
    .venv/bin/python -m tests.bench.search --database-url postgresql://postgres@127.0.0.1:55432/x
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import select

from storage import search
from storage.crypto import Keyring
from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import BlindIndex, Customer, Staff, Team

CITIES = [
    "杭州",
    "宁波",
    "温州",
    "绍兴",
    "嘉兴",
    "湖州",
    "上海",
    "苏州",
    "无锡",
    "南京",
    "合肥",
    "福州",
    "厦门",
    "青岛",
    "济南",
    "武汉",
]
BRAND = (  # characters Chinese company names are commonly made of
    "明远华泰恒通达信鑫源丰盛宏安瑞德兴隆天启星辰海阔金诚新创永佳中联博雅润泽汇聚"
    "光大正和美万嘉富凯宇顺利康健乐福祥瑞鸿运昌荣华茂林森建国东南西北开元方圆"
    "红日月山川江河湖海云峰岭松柏竹梅兰菊春夏秋冬伟志刚强文武亮明晨晓光辉煌"
    "长城黄河泰山昆仑长江珠江浦江钱塘西湖太湖天目雁荡普陀九华庐山衡山嵩山"
    "智慧科创微芯云数网联讯达通易捷迅速精工巧匠铭鼎立诚信义仁德礼智慧聪颖"
)
TRADE = [
    "机械",
    "电子",
    "化工",
    "建材",
    "食品",
    "医药",
    "纺织",
    "物流",
    "汽车配件",
    "五金",
    "塑料",
    "包装",
    "印刷",
    "家具",
    "软件",
    "贸易",
]
FORMS = ("有限公司", "股份有限公司", "贸易商行", "科技有限公司")
CLASSES, STAGES = "ABCD", ("red", "yellow", "green", "rotten")
STATUSES = ("approved",) * 7 + ("pending", "draft", "rejected")
TEAMS, SALES_PER_TEAM, BATCH = 10, 20, 5000
TYPO_CHARS = "甲乙丙丁戊己庚辛壬癸"


@dataclass
class Target:
    """A customer a search should find: its id, owner, team, brand, number and phone."""

    id: int
    owner_id: int
    team_id: int
    brand: str
    number: str
    phone: str | None


def company_name(rng: random.Random) -> tuple[str, str]:
    brand = "".join(rng.sample(BRAND, rng.choice((2, 3, 4))))
    return f"{rng.choice(CITIES)}{brand}{rng.choice(TRADE)}{rng.choice(FORMS)}", brand


def phone_of(index: int) -> str:
    return f"+86138{index:08d}"


async def populate(
    sessions: SessionFactory, keyring: Keyring, customers: int, rng: random.Random
) -> tuple[dict[str, Staff], list[Target]]:
    """Teams, staff and `customers` rows, inserted in batches; returns one of each role."""
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:
        teams = [Team(name=f"Team {t}") for t in range(TEAMS)]
        session.add_all(teams)
        await session.flush()
        staff: list[Staff] = [Staff(telegram_id=1, display_name="Admin", role="admin")]
        for t, team in enumerate(teams):
            staff.append(
                Staff(telegram_id=100 + t, display_name=f"M{t}", role="manager", team_id=team.id)
            )
            for s in range(SALES_PER_TEAM):
                staff.append(
                    Staff(
                        telegram_id=10_000 + t * 100 + s,
                        display_name=f"S{t}-{s}",
                        role="salesperson",
                        team_id=team.id,
                    )
                )
        session.add_all(staff)
        await session.flush()
    sellers = [s for s in staff if s.role == "salesperson"]
    now = datetime.now(UTC)
    today = now.date()
    targets: list[Target] = []
    for first in range(0, customers, BATCH):
        rows: list[dict[str, Any]] = []
        indexes: list[dict[str, Any]] = []
        for i in range(first + 1, min(first + BATCH, customers) + 1):
            seller = sellers[i % len(sellers)]
            name, brand = company_name(rng)
            number = f"KH-2026-{i:06d}"
            rows.append(
                {
                    "id": i,
                    "customer_no": number,
                    "kind": "company",
                    "name": name,
                    "short_name": brand + rng.choice(TRADE),
                    "industry": rng.choice(TRADE),
                    "region": rng.choice(CITIES),
                    "customer_class": rng.choice(CLASSES),
                    "stage": rng.choice(STAGES),
                    "deal_status": "none",
                    "consent_given": False,
                    "owner_id": seller.id,
                    "team_id": seller.team_id,
                    "status": rng.choice(STATUSES),
                    "next_followup_on": today + timedelta(days=rng.randint(-20, 60)),
                    "created_at": now,
                    "updated_at": now - timedelta(seconds=customers - i),
                    "version": 1,
                }
            )
            phone = phone_of(i) if i % 10 == 0 else None
            if phone:
                indexes.append(
                    {
                        "kind": "phone",
                        "digest": keyring.blind_index("phone", phone),
                        "kek_id": keyring.current.kid,
                        "customer_id": i,
                    }
                )
            assert seller.id is not None and seller.team_id is not None
            targets.append(Target(i, seller.id, seller.team_id, brand, number, phone))
        async with unit_of_work(sessions) as session:
            await session.exec(insert(Customer), params=rows)  # type: ignore[call-overload]
            if indexes:
                await session.exec(insert(BlindIndex), params=indexes)  # type: ignore[call-overload]
    async with unit_of_work(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.exec(
                text("SELECT setval('customers_id_seq', :n)").bindparams(n=customers)
            )
            await session.exec(text("ANALYZE"))
    print(f"inserted {customers} customers in {time.perf_counter() - started:.1f} s")
    admin = staff[0]
    manager = next(s for s in staff if s.role == "manager")
    seller = next(s for s in sellers if s.team_id == manager.team_id)
    return {"salesperson": seller, "manager": manager, "admin": admin}, targets


def typo(brand: str, rng: random.Random) -> str:
    """The brand with one character replaced, as a hurried thumb would type it."""
    position = rng.randrange(len(brand))
    return brand[:position] + rng.choice(TYPO_CHARS) + brand[position + 1 :]


def queries(
    kind: str, actor: Staff, targets: list[Target], runs: int, rng: random.Random
) -> Iterator[tuple[str, int]]:
    """`runs` (query, expected id) pairs of one kind, for customers the actor may see."""
    if actor.role == "admin":
        mine = targets
    elif actor.role == "manager":
        mine = [t for t in targets if t.team_id == actor.team_id]
    else:
        mine = [t for t in targets if t.owner_id == actor.id]
    if kind == "phone":
        mine = [t for t in mine if t.phone]
    for _ in range(runs):
        target = rng.choice(mine)
        if kind == "name":
            yield target.brand, target.id
        elif kind == "fuzzy":
            yield typo(target.brand, rng) if len(target.brand) > 2 else target.brand, target.id
        elif kind == "number":
            yield target.number, target.id
        else:
            assert target.phone is not None
            yield target.phone.removeprefix("+86"), target.id


async def timed(call: Callable[[], Awaitable[list[Customer]]]) -> tuple[float, list[Customer]]:
    started = time.perf_counter()
    found = await call()
    return (time.perf_counter() - started) * 1000, found


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def measure(
    sessions: SessionFactory,
    keyring: Keyring,
    people: dict[str, Staff],
    targets: list[Target],
    runs: int,
    rng: random.Random,
) -> None:
    reference: list[float] = []
    for target in (rng.choice(targets) for _ in range(runs * 4)):
        started = time.perf_counter()
        async with unit_of_work(sessions) as session:
            await session.get(Customer, target.id)
        reference.append((time.perf_counter() - started) * 1000)
    bare = p95(reference)
    print(f"reference (bare SQL: one unit of work reading a customer by id): p95 {bare:.2f} ms")
    print(
        f"{'who':<12} {'search':<8} {'first ms':>9} {'median ms':>10} {'p95 ms':>8} "
        f"{'found':>7} {'ratio':>6}"
    )
    for role, actor in people.items():
        for kind in ("name", "fuzzy", "number", "phone"):
            times: list[float] = []
            hits = 0
            first = 0.0
            for n, (query, expected) in enumerate(queries(kind, actor, targets, runs + 1, rng)):

                async def one(query: str = query, actor: Staff = actor) -> list[Customer]:
                    async with unit_of_work(sessions) as session:
                        return await search.search_customers(
                            session, keyring=keyring, actor=actor, text=query
                        )

                elapsed, found = await timed(one)
                if n == 0:
                    first = elapsed
                    continue
                times.append(elapsed)
                hits += any(c.id == expected for c in found)
            print(
                f"{role:<12} {kind:<8} {first:9.1f} {statistics.median(times):10.1f} "
                f"{p95(times):8.1f} {hits:>3}/{len(times)} {p95(times) / bare:6.1f}"
            )
    for role, actor in people.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            async with unit_of_work(sessions) as session:
                await search.recent_customers(session, actor=actor)
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"{role:<12} {'recent':<8} {'':>9} {statistics.median(times):10.1f} {p95(times):8.1f}"
        )


async def main(customers: int, runs: int, database_url: str | None) -> None:
    rng = random.Random(20261122)
    with tempfile.TemporaryDirectory() as workdir:
        url = database_url or f"sqlite:///{Path(workdir) / 'bench.db'}"
        await upgrade_database(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        keyring = Keyring([os.urandom(32)])
        try:
            async with unit_of_work(sessions) as session:
                if (await session.exec(select(Customer.id).limit(1))).first() is not None:
                    raise SystemExit("the benchmark needs an empty database")
            people, targets = await populate(sessions, keyring, customers, rng)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"database: {engine.dialect.name}; {runs} searches per row, after a first one")
            await measure(sessions, keyring, people, targets, runs, rng)
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
            print(f"peak memory grew by {grown / 1024:.0f} MB while searching")
        finally:
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40, help="searches per role and kind")
    parser.add_argument("--database-url", default=None, help="an EMPTY database; default SQLite")
    arguments: Any = parser.parse_args()
    asyncio.run(main(arguments.customers, arguments.runs, arguments.database_url))
