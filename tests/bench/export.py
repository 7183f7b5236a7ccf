"""Benchmark: /export of 100,000 customers (XLSX and CSV) and 500,000 visits, time and peak RSS.

The archive is bulk-inserted as realistic rows (not through the bot): every customer with its
own wrapped data key and sealed blob (phones, e-mail, address, tax number), five visits each.
Each export runs in a fresh subprocess (so its peak RSS, `ru_maxrss`, is its own) as an admin
would get it: every row, sealed values opened and masked, labels translated, times in the
reader's zone, the file written by `storage.exports.write_export`. Beside it, in the same run,
the reference: the bare SQL SELECT of the same rows written by a bare `csv.writer` (no
decryption, no masking, no labels), and the ratio.

    .venv/bin/python -m tests.bench.export [--customers 100000] [--visits 5] [--runs 3]
    .venv/bin/python -m tests.bench.export --postgres postgresql://...

Goal (issue 12): the 100,000-customer XLSX in under 30 s with a peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from bot.i18n import Translator
from conversations.export import _Labels
from storage import audit, exports, vault
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import make_engine, make_session_factory, reading, unit_of_work
from storage.migrate import upgrade_database
from storage.models import Customer, DataKey, Staff, Team, Visit
from tests.bench.search import company_name

BATCH = 5000


async def populate(url: str, keyring: Keyring, customers: int, visits: int) -> None:
    """Teams, staff, and `customers` customers with `visits` visits each, in bulk."""
    rng = random.Random(12)
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        async with unit_of_work(factory) as session:
            teams = [Team(name=f"Team {t}") for t in range(10)]
            session.add_all(teams)
            await session.flush()
            staff = [Staff(telegram_id=1, display_name="Admin", role="admin")] + [
                Staff(
                    telegram_id=1000 + i,
                    display_name=f"业务员{i}",
                    role="salesperson",
                    team_id=teams[i % 10].id,
                )
                for i in range(200)
            ]
            session.add_all(staff)
            await session.flush()
        sellers = [s for s in staff if s.role == "salesperson"]
        now = datetime.now(UTC)
        for start in range(0, customers, BATCH):
            rows: dict[type, list[dict[str, Any]]] = {Customer: [], DataKey: [], Visit: []}
            for cid in range(start + 1, min(customers, start + BATCH) + 1):
                owner = sellers[cid % len(sellers)]
                name, _brand = company_name(rng)
                data_key = keyring.new_data_key()
                kid, wrapped = keyring.wrap(data_key, customer_id=cid)
                sealed = vault.seal_customer(
                    data_key,
                    {
                        "phones": [f"+86138{cid:08d}"],
                        "email": f"buyer{cid}@example.com",
                        "address": f"浙江省杭州市西湖区文三路 {cid} 号",
                        "tax_no": f"91330100MA{cid:08d}",
                    },
                    customer_id=cid,
                    sealed_seq=1,
                )
                rows[Customer].append(
                    {
                        "id": cid,
                        "customer_no": f"KH-2026-{cid:06d}",
                        "kind": "company",
                        "name": name,
                        "industry": "机械制造",
                        "region": "杭州",
                        "customer_class": "ABCD"[cid % 4],
                        "stage": "green",
                        "deal_status": "none",
                        "source": "visit",
                        "consent_given": True,
                        "sealed": sealed,
                        "sealed_seq": 1,
                        "owner_id": owner.id,
                        "team_id": owner.team_id,
                        "status": "approved",
                        "next_followup_on": (now + timedelta(days=cid % 30)).date(),
                        "created_at": now,
                        "updated_at": now,
                        "approved_at": now,
                        "version": 1,
                    }
                )
                rows[DataKey].append(
                    {
                        "id": cid,
                        "customer_id": cid,
                        "kek_id": kid,
                        "wrapped": wrapped,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                for v in range(visits):
                    rows[Visit].append(
                        {
                            "customer_id": cid,
                            "salesperson_id": owner.id,
                            "visited_at": now - timedelta(days=v * 7),
                            "kind": "on_site",
                            "purpose": "介绍新产品线，了解采购计划",
                            "discussion": "客户关注交货期和售后服务，希望月底前收到报价。",
                            "outcome": "=约定下周报价",
                            "created_at": now,
                            "updated_at": now,
                            "version": 1,
                        }
                    )
            async with unit_of_work(factory) as session:
                for table, values in rows.items():
                    if values:  # `--visits 0`: no visits at all
                        await session.exec(insert(table), params=values)  # type: ignore[call-overload]
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------
# one export, in a subprocess of its own


async def child_export(url: str, key: str, kind: str, fmt: str, out: Path) -> dict[str, Any]:
    keyring = Keyring([decode_master_key(key)])
    engine = make_engine(url)
    factory = make_session_factory(engine)
    audit.use_keyring(factory, keyring)
    async with reading(factory) as session:
        admin = (await session.exec(text("SELECT id FROM staff WHERE role = 'admin'"))).one()
        actor = await session.get(Staff, admin[0])
    assert actor is not None
    started = time.perf_counter()
    result = await exports.write_export(
        factory,
        keyring=keyring,
        actor=actor,
        request=exports.ExportRequest(
            kind=exports.ExportKind(kind), format=exports.ExportFormat(fmt)
        ),
        path=out,
        labels=_Labels(Translator("zh")),
        zone=ZoneInfo("Asia/Shanghai"),
        title="bench",
    )
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {"seconds": seconds, "rows": result.rows}


_REFERENCE_SQL = {
    "customers": "SELECT * FROM customers WHERE status != 'destroyed' ORDER BY id",
    "visits": "SELECT v.*, c.customer_no, c.name FROM visits v JOIN customers c "
    "ON c.id = v.customer_id WHERE c.status != 'destroyed' ORDER BY v.id",
}


async def child_reference(url: str, kind: str, out: Path) -> dict[str, Any]:
    """The bare SELECT of the same rows, streamed, written by a bare csv.writer."""
    engine = make_engine(url)
    started = time.perf_counter()
    rows = 0
    async with engine.connect() as connection:
        result = await connection.stream(text(_REFERENCE_SQL[kind]))
        with out.open("w", encoding="utf-8-sig", newline="") as file:
            writer = csv.writer(file)
            async for partition in result.partitions(exports.PAGE):
                writer.writerows(partition)
                rows += len(partition)
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {"seconds": seconds, "rows": rows}


def child(argv: list[str]) -> None:
    url, key, kind, fmt, out = argv
    path = Path(out)
    if fmt == "reference":
        found = asyncio.run(child_reference(url, kind, path))
    else:
        found = asyncio.run(child_export(url, key, kind, fmt, path))
    found["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the XLSX sheet's own writer process (storage.spreadsheet), if there was one
    found["writer_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    found["bytes"] = path.stat().st_size
    path.unlink(missing_ok=True)
    print(json.dumps(found))


def measure(url: str, key: str, kind: str, fmt: str, folder: Path) -> dict[str, Any]:
    out = folder / f"{kind}.{fmt}"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.export", "--child", url, key, kind, fmt, str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def calibration() -> float:
    """Seconds for a fixed piece of pure Python: how busy or slow this machine is right now
    (an idle modern core takes about 0.2 s)."""
    started = time.perf_counter()
    sum(range(10**7))
    return time.perf_counter() - started


def bench(url: str, key: str, runs: int, folder: Path, kinds: list[str]) -> None:
    for kind, fmt in (
        ("customers", "xlsx"),
        ("customers", "csv"),
        ("visits", "xlsx"),
        ("visits", "csv"),
    ):
        if kind not in kinds:
            continue
        for run in range(1, runs + 1):
            ours = measure(url, key, kind, fmt, folder)
            ref = measure(url, key, kind, "reference", folder)
            print(
                f"{kind:9} {fmt:4} run {run}: {ours['rows']:>7,} rows "
                f"[calibration {calibration():.2f} s] "
                f"{ours['seconds']:6.1f} s, peak RSS {ours['peak_rss_mb']:5.0f} MB"
                f" (+ writer {ours.get('writer_rss_mb', 0):3.0f} MB), "
                f"{ours['bytes'] / 1e6:6.1f} MB file | reference SELECT+csv.writer "
                f"{ref['seconds']:5.1f} s, {ref['peak_rss_mb']:4.0f} MB | "
                f"ratio {ours['seconds'] / max(ref['seconds'], 1e-9):4.1f}x",
                flush=True,
            )


async def _fresh_pg(server: str) -> str:
    name = f"bench_export_{int(time.time())}"
    connection = await asyncpg.connect(server.replace("+asyncpg", ""))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return str(make_url(server).set(database=name))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=5, help="visits per customer")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kinds", default="customers,visits")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a fresh database is made)")
    args = parser.parse_args()
    key = new_master_key()
    keyring = Keyring([decode_master_key(key)])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.postgres:
            url = asyncio.run(_fresh_pg(args.postgres))
        else:
            url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        started = time.perf_counter()
        asyncio.run(upgrade_database(url))
        asyncio.run(populate(url, keyring, args.customers, args.visits))
        print(
            f"{make_url(url).get_backend_name()}: {args.customers:,} customers, "
            f"{args.customers * args.visits:,} visits seeded in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        bench(url, key, args.runs, folder, args.kinds.split(","))


if __name__ == "__main__":
    main()
