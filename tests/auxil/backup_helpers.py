"""What the backup and restore tests share: a second fresh database, an archive filled with
customers, and a view of the archive that must survive a backup and a restore unchanged."""

from __future__ import annotations

import secrets
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from storage import audit, customers, key_persons, visits
from storage import staff as staff_store
from storage.backup import MANIFEST, Manifest
from storage.crypto import Keyring
from storage.db import SessionFactory, make_engine, make_session_factory, reading, unit_of_work
from storage.migrate import upgrade_database
from storage.models import Customer, KeyPerson, Staff, Visit
from storage.types import utcnow
from tests.auxil.customer_factory import add_customer

ADMIN_ID = 900_001
SALES_ID = 700_201
COMPANY = "杭州明远机械有限公司"


@asynccontextmanager
async def fresh_database(like: str, tmp_path: Path, name: str) -> AsyncIterator[str]:
    """Another empty database of the same kind as `like` (a file beside, or a new PostgreSQL
    database on the same server, dropped afterwards)."""
    parsed = make_url(like)
    if parsed.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / name}.db"
        return
    database = f"t_{secrets.token_hex(8)}"
    server = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
    try:
        yield parsed.set(database=database).render_as_string(hide_password=False)
    finally:
        connection = await asyncpg.connect(server)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await connection.close()


async def staff_and_team(sessions: SessionFactory) -> None:
    async with unit_of_work(sessions) as session:
        team = await staff_store.get_or_create_team(session, "East", actor=None)
        if await staff_store.staff_by_telegram_id(session, ADMIN_ID) is None:
            session.add(Staff(telegram_id=ADMIN_ID, display_name="Boss", role="admin"))
        if await staff_store.staff_by_telegram_id(session, SALES_ID) is None:
            session.add(
                Staff(
                    telegram_id=SALES_ID, display_name="Li Lei", role="salesperson", team_id=team.id
                )
            )


async def fill(sessions: SessionFactory, keyring: Keyring, count: int = 3) -> list[Customer]:
    """Customers with sealed phones and tax numbers, a key person and a visit each."""
    await staff_and_team(sessions)
    made = []
    for n in range(count):
        customer = await add_customer(
            sessions,
            keyring,
            SALES_ID,
            f"{COMPANY} {n}",
            phones=[f"1380013{n:04d}"],
            email=f"buyer{n}@example.com",
            address=f"杭州市西湖区文三路 {n} 号",
        )
        made.append(customer)
        async with unit_of_work(sessions) as session:
            actor = await staff_store.staff_by_telegram_id(session, SALES_ID)
            assert actor is not None and customer.id is not None
            current = await session.get(Customer, customer.id)
            assert current is not None
            await key_persons.add_key_person(
                session,
                keyring=keyring,
                actor=actor,
                customer=current,
                values={"kp_name": f"王经理 {n}", "kp_phones": [f"1390013{n:04d}"]},
            )
            await visits.log_visit(
                session,
                keyring=keyring,
                actor=actor,
                customer_id=customer.id,
                values={"kind": "phone", "purpose": f"报价 {n}", "attachments": []},
                now=utcnow() - timedelta(minutes=5),
                timezone="Asia/Shanghai",
                followup_cycles={"A": 7, "B": 14, "C": 30, "D": 60},
            )
    return made


async def archive_view(url: str, keyring: Keyring) -> dict[str, Any]:
    """What people see of the archive: every customer's clear and sealed values, key persons,
    visits, and the audit log's head (before the restore's own entries)."""
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        async with reading(factory) as session:
            view: dict[str, Any] = {}
            for customer in (await session.exec(select(Customer).order_by(col(Customer.id)))).all():
                sealed = await customers.sealed_fields(session, keyring, customer)
                view[customer.customer_no] = (customer.name, customer.status, sealed)
            people = (await session.exec(select(KeyPerson.name).order_by(col(KeyPerson.id)))).all()
            trips = (await session.exec(select(Visit.purpose).order_by(col(Visit.id)))).all()
            return {"customers": view, "key_persons": list(people), "visits": list(trips)}
    finally:
        await engine.dispose()


async def migrated(url: str) -> None:
    await upgrade_database(url)


def manifest_of(path: Path) -> Manifest:
    with tarfile.open(path) as tar:
        member = tar.extractfile(MANIFEST)
        assert member is not None
        return Manifest.from_json(member.read())


def flip_a_byte_of_the_data(path: Path) -> None:
    """Damage the archive in the middle of its data part (not its manifest)."""
    with tarfile.open(path) as tar:
        member = tar.getmember(manifest_of(path).data["file"])
        offset = member.offset_data + member.size // 2
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))
