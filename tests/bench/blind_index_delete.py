"""Benchmark: deleting a key person's blind-index rows among a million, without and with the
index on `blind_index.key_person_id` (migration 0003_blind_index_key_person).

The table is filled directly (bulk rows; customers and key persons are bare rows, just enough
for the foreign keys): two rows for a customer's phones and two for its key person's. Then the
bot's own statement (`storage.key_persons.reindex` and `remove` run it) deletes the rows of
`--deletes` different key persons, each in its own unit of work, in `--runs` runs; the
database is then upgraded to head (timed: that is what the migration costs on such a table)
and the same is measured again.

    .venv/bin/python -m tests.bench.blind_index_delete [--rows 1000000] [--runs 3] [--deletes 20]
    .venv/bin/python -m tests.bench.blind_index_delete --database-url postgresql://.../x
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlmodel import col

from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import BlindIndex

BEFORE = "0001_initial"
COLUMNS = ("kind", "digest", "kek_id", "customer_id", "key_person_id")


def _rows(count: int) -> Iterator[tuple[str, str, str, int, int | None]]:
    """Four rows per customer: two of its phones, two of its key person's."""
    for n in range(count):
        digest = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
        owner = n // 4 + 1  # customer n // 4 + 1, and its key person of the same id
        yield ("phone", digest, "k1", owner, owner if n % 4 >= 2 else None)


def _parents(series: str, now: str) -> list[str]:
    """Just enough of a staff member, customers and key persons for the foreign keys."""
    return [
        "INSERT INTO staff (id, created_at, updated_at, telegram_id, display_name, role, active,"
        f" version) VALUES (1, {now}, {now}, 1, 'b', 'salesperson', true, 1)",
        "INSERT INTO customers (id, created_at, updated_at, customer_no, kind, name,"
        " customer_class, deal_status, consent_given, owner_id, status, version)"
        f" SELECT i, {now}, {now}, 'KH-' || i, 'company', 'c' || i, 'C', 'none', false, 1,"
        f" 'approved', 1 FROM {series}",
        "INSERT INTO key_persons (id, created_at, updated_at, customer_id, name, version)"
        f" SELECT i, {now}, {now}, i, 'k' || i, 1 FROM {series}",
    ]


def _fill_sqlite(path: str, count: int) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    series = (
        "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"
        f" WHERE i < {count // 4}) SELECT i FROM s)"
    )
    try:
        connection.execute("BEGIN")
        for statement in _parents(series, "'2026-01-01 00:00:00.000000'"):
            connection.execute(statement)
        connection.executemany(
            f"INSERT INTO blind_index ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
            _rows(count),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


async def _fill_postgres(url: str, count: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            for statement in _parents(f"generate_series(1, {count // 4}) AS s(i)", "now()"):
                await connection.execute(statement)
            await connection.copy_records_to_table(
                "blind_index", records=_rows(count), columns=COLUMNS
            )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def _delete_runs(
    sessions: SessionFactory, key_persons: list[int], runs: int, deletes: int
) -> list[float]:
    """Milliseconds per delete, one median per run, each run on other key persons."""
    medians = []
    for run in range(runs):
        times = []
        for key_person_id in key_persons[run * deletes : (run + 1) * deletes]:
            started = time.perf_counter()
            async with unit_of_work(sessions) as session:
                await session.exec(
                    delete(BlindIndex).where(col(BlindIndex.key_person_id) == key_person_id)
                )
            times.append((time.perf_counter() - started) * 1000)
        medians.append(statistics.median(times))
    return medians


async def main(database_url: str | None, rows: int, runs: int, deletes: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        await upgrade_database(url, BEFORE)
        started = time.perf_counter()
        if make_url(url).get_backend_name() == "sqlite":
            _fill_sqlite(make_url(url).database or "", rows)
        else:
            await _fill_postgres(url, rows)
        print(f"filled {rows:,} blind-index rows in {time.perf_counter() - started:.1f} s")
        key_persons = random.Random(8).sample(range(1, rows // 4 + 1), 2 * runs * deletes)
        engine = make_engine(url)
        try:
            sessions = make_session_factory(engine)
            before = await _delete_runs(sessions, key_persons[: runs * deletes], runs, deletes)
            await engine.dispose()
            started = time.perf_counter()
            await upgrade_database(url)
            print(f"migration to head (creates the index): {time.perf_counter() - started:.1f} s")
            after = await _delete_runs(sessions, key_persons[runs * deletes :], runs, deletes)
        finally:
            await engine.dispose()
    print("ms per delete by key_person_id, median of each run:")
    print("  without index: " + ", ".join(f"{m:.2f}" for m in before))
    print("  with index:    " + ", ".join(f"{m:.2f}" for m in after))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="an EMPTY database (default: SQLite)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deletes", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.rows, args.runs, args.deletes))
