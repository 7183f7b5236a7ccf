"""Benchmark: importing 10,000 customers from a spreadsheet through /import, against a bare
executemany INSERT of the same 10,000 rows' clear columns.

Each run builds a fresh database (a SQLite file in a temp folder; PostgreSQL too when
TEST_DATABASE_URL or --pg-url is set, in a database of its own, dropped afterwards) with a team,
its manager and a salesperson, and starts the real bot on the fake Telegram. A filled XLSX of
`--rows` rows (every row with a phone, a third with financial data and a tax number, all
distinct) is sent after /import; timed: the dry run (download, reading, /new's checks of every
row, the duplicate look-up, the rejected-rows file) and the confirmation (download again,
re-check, then every customer numbered, sealed, indexed, reviewed, with history and audit, in
one unit of work). The reference, in the same run: one INSERT ... executemany of the same rows'
clear columns (no sealing, no keys, no history), committed, then deleted untimed.

    .venv/bin/python -m tests.bench.import_rows [--rows 10000] [--runs 3] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import delete, insert
from sqlalchemy.engine import make_url
from sqlmodel import func, select

from bot.context import Services
from bot.settings import Settings
from storage import audit, validation
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import Customer, Staff
from tests.auxil.fake_telegram import TOKEN, FakeTelegram
from tests.auxil.import_helpers import row, workbook
from tests.auxil.world import ADMIN_ID, World, start_app

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
ROWS = [10_000]


def _tax_number(n: int) -> str:
    first = f"913301{n:011d}"
    return first + validation.uscc_check_char(first)


def _rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        extra: dict[str, Any] = {"industry": "机械制造", "region": "浙江杭州"}
        if n % 3 == 0:
            extra.update(invoice_title=f"客户{n}号有限公司", tax_no=_tax_number(n))
        rows.append(row(f"客户{n:05d}号贸易有限公司", f"139{n:08d}", **extra))
    return rows


async def _reference(services: Services, rows: list[dict[str, Any]], owner: Staff) -> float:
    """Seconds for a bare executemany INSERT of the rows' clear columns; deleted afterwards."""
    values = [
        {
            "customer_no": f"REF-{n:07d}",
            "kind": "company",
            "name": r["name"],
            "industry": r["industry"],
            "region": r["region"],
            "source": "exhibition",
            "customer_class": "B",
            "stage": "yellow",
            "deal_status": "none",
            "consent_given": False,
            "owner_id": owner.id,
            "team_id": owner.team_id,
            "status": "pending",
            "created_at": NOW,
            "updated_at": NOW,
            "version": 1,
            "sealed_seq": 0,
        }
        for n, r in enumerate(rows)
    ]
    started = time.perf_counter()
    async with unit_of_work(services.sessions) as session:
        await session.exec(insert(Customer.__table__), params=values)  # type: ignore[call-overload,attr-defined]
    elapsed = time.perf_counter() - started
    async with unit_of_work(services.sessions) as session:
        await session.exec(delete(Customer).where(Customer.customer_no.like("REF-%")))  # type: ignore[attr-defined]
    return elapsed


async def _run(url: str, keyring: Keyring, content: bytes, rows: list[dict[str, Any]]) -> tuple:
    await upgrade_database(url)
    engine = make_engine(url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=Path(tempfile.gettempdir()),
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        POOL_AFTER_DAYS="off",
    )
    try:
        sessions = make_session_factory(engine)
        audit.use_keyring(sessions, keyring)
        services = Services(
            settings=settings, sessions=sessions, keyring=keyring, clock=lambda: NOW
        )
        telegram = FakeTelegram()
        app = await start_app(services, telegram)
        world = World(app, telegram, services, itertools.count(700_001))
        try:
            manager = await world.member("manager", "East", "Wang")
            sales = await world.member("salesperson", "East", "Li")
            async with unit_of_work(sessions) as session:
                owner = (
                    await session.exec(select(Staff).where(Staff.telegram_id == sales.id))
                ).one()
            reference = await _reference(services, rows, owner)
            await manager.send("/import")
            started = time.perf_counter()
            await manager.send_file(content)
            dry_run = time.perf_counter() - started
            assert f"可以导入 {len(rows)} 行" in manager.last_text(), manager.last_text()
            await manager.press("Li")
            started = time.perf_counter()
            await manager.press("导入并提交审核")
            confirm = time.perf_counter() - started
            assert f"已导入 {len(rows)} 个客户" in manager.last_text(), manager.last_text()
            async with unit_of_work(sessions) as session:
                made = (await session.exec(select(func.count()).select_from(Customer))).one()
                assert made == len(rows)
                assert (await audit.verify_chain(session)).ok
        finally:
            await app.shutdown()
        return dry_run, confirm, reference
    finally:
        await engine.dispose()


async def _postgres_database(base: str) -> tuple[str, str]:
    url = make_url(base).set(drivername="postgresql")
    name = f"bench_import_{secrets.token_hex(4)}"
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


def _report(name: str, results: list[tuple[float, float, float]]) -> None:
    print(f"{name}: /import of {ROWS[0]:,} rows, dry run then confirmation")
    for n, (dry, confirm, reference) in enumerate(results, start=1):
        total = dry + confirm
        print(
            f"  run {n}: dry run {dry:.2f} s, confirmation {confirm:.2f} s, total {total:.2f} s; "
            f"bare executemany INSERT {reference:.3f} s; ratio {total / reference:.0f}"
        )
    total = statistics.median(r[0] + r[1] for r in results)
    bare = statistics.median(r[2] for r in results)
    print(f"  medians: total {total:.2f} s, bare INSERT {bare:.3f} s (ratio {total / bare:.0f})")


async def main(count: int, runs: int, pg_url: str | None) -> None:
    ROWS[0] = count
    keyring = Keyring([decode_master_key(new_master_key())])
    rows = _rows(count)
    content = workbook(rows)
    print(f"the file: {count:,} rows, {len(content) / 1024:.0f} kB")
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            url = f"sqlite:///{Path(scratch) / 'bench.db'}"
            results.append(await _run(url, keyring, content, rows))
    _report("SQLite", results)
    if pg_url:
        results = []
        for _ in range(runs):
            url, maintenance = await _postgres_database(pg_url)
            try:
                results.append(await _run(url, keyring, content, rows))
            finally:
                await _drop(maintenance, url)
        _report("PostgreSQL", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL") or None)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.runs, args.pg_url))
