"""Benchmark: backing up and restoring 100,000 customers with their visits.

The archive is bulk-inserted as realistic rows (not through the bot): every customer with its
own wrapped data key, its sealed blob (phones, e-mail, address, tax number), a blind index for
its phone, a sealed change record and two visits; one audit entry per customer, MAC-chained.
Then, three times each: `backup` (our wrapper: snapshot, manifest facts, compression, checksum,
tar, audit entry) beside a reference (SQLite: the bare online backup API and a plain file copy;
PostgreSQL: a bare `pg_dump -Fc`), and `restore` into a fresh database (checks, load, counts,
migrations, audit chain and every data key verified) beside a reference (SQLite: a file copy;
PostgreSQL: a bare `pg_restore`). With a PostgreSQL server it also times moving the SQLite
archive into PostgreSQL (a SQLite → PostgreSQL restore).

    .venv/bin/python -m tests.bench.backup [--customers 100000] [--runs 3]
    .venv/bin/python -m tests.bench.backup --postgres postgresql://postgres@127.0.0.1:55432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from storage import audit, vault
from storage.backup import create_backup, find_tool, human_size, libpq_target
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import (
    AuditEntry,
    BlindIndex,
    ChangeRecord,
    Customer,
    DataKey,
    Staff,
    Team,
    Visit,
)
from storage.restore import restore
from tests.bench.search import company_name

BATCH = 5000


async def populate(url: str, keyring: Keyring, customers: int) -> None:
    """Teams, staff, and `customers` customers with what follows them, in bulk."""
    rng = random.Random(11)
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
                    display_name=f"S{i}",
                    role="salesperson",
                    team_id=teams[i % 10].id,
                )
                for i in range(200)
            ]
            session.add_all(staff)
            await session.flush()
            first = await audit.record(session, action="bench.start")
            key, _ = await audit._open_key(session, audit._keys(session))
        sellers = [s for s in staff if s.role == "salesperson"]
        now = datetime.now(UTC)
        prev, next_id = first.hash, (first.id or 0) + 1
        for start in range(0, customers, BATCH):
            ids = range(start + 1, min(customers, start + BATCH) + 1)
            rows: dict[type, list[dict[str, Any]]] = {
                Customer: [],
                DataKey: [],
                BlindIndex: [],
                ChangeRecord: [],
                Visit: [],
                AuditEntry: [],
            }
            for cid in ids:
                owner = sellers[cid % len(sellers)]
                name, _brand = company_name(rng)
                data_key = keyring.new_data_key()
                kid, wrapped = keyring.wrap(data_key, customer_id=cid)
                phone = f"+86138{cid:08d}"
                sealed = vault.seal_customer(
                    data_key,
                    {
                        "phones": [phone],
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
                        "customer_class": "ABCD"[cid % 4],
                        "stage": "green",
                        "deal_status": "none",
                        "consent_given": True,
                        "sealed": sealed,
                        "sealed_seq": 1,
                        "owner_id": owner.id,
                        "team_id": owner.team_id,
                        "status": "approved",
                        "created_at": now,
                        "updated_at": now,
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
                rows[BlindIndex].append(
                    {
                        "kind": "phone",
                        "digest": keyring.blind_index("phone", phone),
                        "kek_id": kid,
                        "customer_id": cid,
                    }
                )
                record = ChangeRecord(
                    id=cid,
                    entity="customer",
                    entity_id=cid,
                    customer_id=cid,
                    action="create",
                    changed_by=owner.id,
                    changed_at=now,
                )
                rows[ChangeRecord].append(
                    {
                        "id": cid,
                        "entity": "customer",
                        "entity_id": cid,
                        "customer_id": cid,
                        "action": "create",
                        "changed_by": owner.id,
                        "changed_at": now,
                        "diff_sealed": vault.seal_change(data_key, {"name": [None, name]}, record),
                    }
                )
                for v in range(2):
                    rows[Visit].append(
                        {
                            "customer_id": cid,
                            "salesperson_id": owner.id,
                            "visited_at": now - timedelta(days=v * 7),
                            "kind": "on_site",
                            "latitude": 30.27,
                            "longitude": 120.15,
                            "purpose": "介绍新产品线，了解采购计划",
                            "discussion": "客户关注交货期和售后服务，希望月底前收到报价。",
                            "created_at": now,
                            "updated_at": now,
                            "version": 1,
                        }
                    )
                entry = AuditEntry(
                    id=next_id,
                    at=now,
                    actor_staff_id=owner.id,
                    action="customer.create",
                    entity="customer",
                    entity_id=cid,
                    prev_hash=prev,
                    hash="",
                )
                entry.hash = audit._entry_mac(key, entry)
                prev, next_id = entry.hash, next_id + 1
                rows[AuditEntry].append(
                    {
                        name: getattr(entry, name)
                        for name in (
                            "id",
                            "at",
                            "actor_telegram_id",
                            "actor_staff_id",
                            "action",
                            "entity",
                            "entity_id",
                            "detail",
                            "prev_hash",
                            "hash",
                        )
                    }
                )
            async with unit_of_work(factory) as session:
                for model, batch in rows.items():
                    await session.exec(insert(model), params=batch)  # type: ignore[call-overload]
    finally:
        await engine.dispose()


def timed(runs: int, work: Callable[[int], Any]) -> list[float]:
    times = []
    for run in range(runs):
        started = time.perf_counter()
        work(run)
        times.append(time.perf_counter() - started)
    return times


def line(label: str, times: list[float], extra: str = "") -> None:
    shown = ", ".join(f"{t:.2f}" for t in times)
    print(f"  {label:<46} median {statistics.median(times):6.2f} s   runs: {shown} {extra}")


class Postgres:
    """Fresh databases on a PostgreSQL server, dropped at the end."""

    def __init__(self, server: str) -> None:
        self.server = make_url(server).set(drivername="postgresql")
        self.made: list[str] = []

    def fresh(self) -> str:
        name = f"bench_{secrets.token_hex(6)}"
        asyncio.run(self._sql(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    async def _sql(self, statement: str) -> None:
        connection = await asyncpg.connect(self.server.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    def drop_all(self) -> None:
        for name in self.made:
            asyncio.run(self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def bench(
    kind: str,
    source: str,
    fresh: Callable[[], str],
    keyring: Keyring,
    runs: int,
    work: Path,
    customers: int,
) -> Path:
    """Populate, then time backup and restore beside their references; returns one backup."""
    asyncio.run(upgrade_database(source))
    started = time.perf_counter()
    asyncio.run(populate(source, keyring, customers))
    print(
        f"{kind}: {customers} customers, {2 * customers} visits, {customers} audit entries "
        f"populated in {time.perf_counter() - started:.1f} s"
    )
    folder = work / f"{kind}-backups"
    made: list[Path] = []

    def our_backup(run: int) -> None:
        result = asyncio.run(
            create_backup(source, folder=folder, keyring=keyring, now=datetime.now(UTC))
        )
        made.append(result.path)

    times = timed(runs, our_backup)
    size = made[-1].stat().st_size
    line("backup (python -m bot backup's work)", times, f"archive {human_size(size)}")
    manifest = json.loads(
        subprocess.run(
            ["tar", "xOf", str(made[-1]), "manifest.json"], capture_output=True, check=True
        ).stdout
    )
    if kind == "sqlite":
        db = Path(make_url(source).database or "")
        print(f"  database file {human_size(db.stat().st_size)}")

        def api_copy(run: int) -> None:
            target = work / f"ref-{run}.db"
            live, copy = sqlite3.connect(db), sqlite3.connect(target)
            live.backup(copy)
            copy.close()
            live.close()
            target.unlink()

        def file_copy(run: int) -> None:
            shutil.copyfile(db, work / "copy.db")

        line("reference: bare sqlite3 backup API", timed(runs, api_copy))
        line("reference: plain file copy", timed(runs, file_copy))
    else:
        tool = find_tool("pg_dump", None)
        target, env = libpq_target(source)

        def raw_dump(run: int) -> None:
            subprocess.run(
                [str(tool), "-Fc", f"--file={work / 'raw.pgdump'}", f"--dbname={target}"],
                env=env,
                check=True,
            )

        line(
            "reference: bare pg_dump -Fc",
            timed(runs, raw_dump),
            f"dump {human_size((work / 'raw.pgdump').stat().st_size)}",
        )

    def our_restore(run: int) -> None:
        url = fresh()
        report = asyncio.run(
            restore(made[-1], url=url, keyring=keyring, work_dir=work, now=datetime.now(UTC))
        )
        assert report.rows["customers"] == manifest["tables"]["customers"]
        phases.append(report.seconds)

    phases: list[dict[str, float]] = []
    line("restore (python -m bot restore's work)", timed(runs, our_restore))
    print(
        "    of which (median): "
        + ", ".join(
            f"{name} {statistics.median(p[name] for p in phases):.2f} s" for name in phases[0]
        )
    )
    if kind == "sqlite":
        line(
            "reference: plain file copy",
            timed(
                runs,
                lambda run: shutil.copyfile(
                    Path(make_url(source).database or ""), work / f"restored-{run}.db"
                ),
            ),
        )
    else:
        tool = find_tool("pg_restore", None)

        def raw_restore(run: int) -> None:
            target, env = libpq_target(fresh())
            subprocess.run(
                [str(tool), "--no-owner", f"--dbname={target}", str(work / "raw.pgdump")],
                env=env,
                check=True,
            )

        line("reference: bare pg_restore", timed(runs, raw_restore))
    return made[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL server URL: also bench PostgreSQL")
    args = parser.parse_args()
    keyring = Keyring([decode_master_key(new_master_key())])
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as scratch:
        work = Path(scratch)
        counter = iter(range(1000))
        sqlite_backup = bench(
            "sqlite",
            f"sqlite:///{work / 'archive.db'}",
            lambda: f"sqlite:///{work / f'restored-{next(counter)}.db'}",
            keyring,
            args.runs,
            work,
            args.customers,
        )
        if args.postgres:
            server = Postgres(args.postgres)
            try:
                bench(
                    "postgresql",
                    server.fresh(),
                    server.fresh,
                    keyring,
                    args.runs,
                    work,
                    args.customers,
                )

                def move(run: int) -> None:
                    asyncio.run(
                        restore(
                            sqlite_backup,
                            url=server.fresh(),
                            keyring=keyring,
                            work_dir=work,
                            now=datetime.now(UTC),
                        )
                    )

                print("sqlite → postgresql:")
                line("restore of the SQLite backup into PostgreSQL", timed(args.runs, move))
            finally:
                server.drop_all()


if __name__ == "__main__":
    main()
