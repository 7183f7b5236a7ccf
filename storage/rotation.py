"""Re-encrypt everything under the newest master key, in small transactions beside the bot."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_
from sqlmodel import col, select

from storage import audit, customers, drafts, key_persons, vault
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import BlindIndex, Customer, DataKey, KeyPerson


@dataclass(frozen=True)
class RotationReport:
    data_keys: int
    drafts: int
    indexed_customers: int
    left_on_old_keys: int
    indexed_key_persons: int = 0


async def rotate_keys(
    sessions: SessionFactory, keyring: Keyring, *, batch: int = 200
) -> RotationReport:
    """Re-wrap data keys and the audit MAC key, re-seal drafts and recompute blind indexes
    under the newest key (data keys wrapped in the old format, directly by a master key, are
    re-wrapped too).

    Each batch is its own short transaction, so the bot keeps answering meanwhile; values
    written by the bot during the run already use the newest key. Safe to run again.
    """
    current = keyring.current.kid
    rewrapped = 0
    while True:
        async with unit_of_work(sessions) as session:
            rows = (
                await session.exec(
                    select(DataKey)
                    .where(
                        or_(DataKey.kek_id != current, _old_format(col(DataKey.wrapped))),
                        col(DataKey.wrapped).is_not(None),
                    )
                    .limit(batch)
                    .with_for_update()
                )
            ).all()
            for row in rows:
                assert row.wrapped is not None
                key = keyring.unwrap(row.kek_id, row.wrapped, customer_id=row.customer_id)
                row.kek_id, row.wrapped = keyring.wrap(key, customer_id=row.customer_id)
                session.add(row)
            rewrapped += len(rows)
        if len(rows) < batch:
            break
    async with unit_of_work(sessions) as session:
        await audit.rewrap_key(session, keyring)
    async with unit_of_work(sessions) as session:
        resealed = await drafts.reseal_all(session, keyring)
    reindexed = 0
    while True:
        async with unit_of_work(sessions) as session:
            ids = (
                await session.exec(
                    select(BlindIndex.customer_id)
                    .where(BlindIndex.kek_id != current, col(BlindIndex.key_person_id).is_(None))
                    .distinct()
                    .limit(batch)
                )
            ).all()
            for customer_id in ids:
                customer = await session.get(Customer, customer_id)
                if customer is None:
                    continue
                try:
                    sealed = await customers.sealed_fields(session, keyring, customer)
                except vault.DataErased:
                    sealed = {}
                await customers.reindex(session, keyring, customer, sealed)
            reindexed += len(ids)
        if len(ids) < batch:
            break
    reindexed_people = await _reindex_key_persons(sessions, keyring, batch=batch)
    async with unit_of_work(sessions) as session:
        left = len(
            (
                await session.exec(
                    select(DataKey.id).where(
                        DataKey.kek_id != current, col(DataKey.wrapped).is_not(None)
                    )
                )
            ).all()
        )
        await audit.record(
            session,
            action="keys.rotate",
            detail={
                "kid": current,
                "data_keys": rewrapped,
                "drafts": resealed,
                "indexed_customers": reindexed,
                "indexed_key_persons": reindexed_people,
            },
        )
    return RotationReport(rewrapped, resealed, reindexed, left, reindexed_people)


def _old_format(wrapped: object) -> object:
    """Wrapped before wrapping keys were derived (format byte 0x01, see storage.crypto)."""
    return func.substr(wrapped, 1, 1) == b"\x01"


async def _reindex_key_persons(sessions: SessionFactory, keyring: Keyring, *, batch: int) -> int:
    """Recompute key persons' phone indexes still under an older key; erased ones are dropped."""
    current = keyring.current.kid
    reindexed = 0
    while True:
        async with unit_of_work(sessions) as session:
            ids = (
                await session.exec(
                    select(BlindIndex.key_person_id)
                    .where(BlindIndex.kek_id != current, col(BlindIndex.key_person_id).is_not(None))
                    .distinct()
                    .limit(batch)
                )
            ).all()
            for key_person_id in ids:
                assert key_person_id is not None
                person = await session.get(KeyPerson, key_person_id)
                if person is None:
                    continue
                try:
                    sealed = await key_persons.sealed_values(session, keyring, person)
                except vault.DataErased:
                    sealed = {}
                await key_persons.reindex(
                    session,
                    keyring,
                    key_person_id=key_person_id,
                    customer_id=person.customer_id,
                    phones=sealed.get("phones") or [],
                )
            reindexed += len(ids)
        if len(ids) < batch:
            break
    return reindexed
