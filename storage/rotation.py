"""Re-encrypt everything under the newest master key, in small transactions beside the bot."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, customers, drafts, key_persons, vault
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import BlindIndex, ChangeRecord, Customer, DataKey, KeyPerson


@dataclass(frozen=True)
class RotationReport:
    data_keys: int
    drafts: int
    indexed_customers: int
    left_on_old_keys: int
    indexed_key_persons: int = 0
    resealed_bound: int = 0  # change records and customer blobs now bound to their own row


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
    bound = await _bind_legacy_seals(sessions, keyring, batch=batch)
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
                "bound_seals": bound,
            },
        )
    return RotationReport(rewrapped, resealed, reindexed, left, reindexed_people, bound)


async def _bind_legacy_seals(sessions: SessionFactory, keyring: Keyring, *, batch: int) -> int:
    """Re-seal change records and customers' blobs sealed before they were bound to their own
    row (storage.vault), so swapping them within a customer stops opening. Erased customers'
    are skipped (they cannot be opened, nor need to be). A customer's blob is written only if
    nobody changed it meanwhile (its version), and without bumping the version, so an edit in
    progress is not disturbed."""
    bound = 0
    for model, column in ((ChangeRecord, ChangeRecord.diff_sealed), (Customer, Customer.sealed)):
        after = 0
        while True:
            async with unit_of_work(sessions) as session:
                rows = (
                    await session.exec(
                        select(model)
                        .where(col(model.id) > after, _old_format(col(column)))
                        .order_by(col(model.id))
                        .limit(batch)
                    )
                ).all()
                keys: dict[int, bytes | None] = {}
                for row in rows:
                    after = row.id or after
                    customer_id = row.customer_id if model is ChangeRecord else row.id
                    if customer_id not in keys:
                        try:
                            keys[customer_id] = await vault.data_key(session, keyring, customer_id)
                        except vault.DataErased:
                            keys[customer_id] = None
                    key = keys[customer_id]
                    if key is None:
                        continue
                    bound += await _bind_one(session, key, row)
            if len(rows) < batch:
                break
    return bound


async def _bind_one(session: AsyncSession, key: bytes, row: ChangeRecord | Customer) -> int:
    if isinstance(row, ChangeRecord):
        row.diff_sealed = vault.seal_change(key, vault.open_change(key, row), row)
        session.add(row)
        return 1
    assert row.id is not None
    seq = row.sealed_seq + 1
    sealed = vault.seal_customer(
        key, vault.open_customer(key, row), customer_id=row.id, sealed_seq=seq
    )
    result = await session.exec(
        update(Customer)
        .where(col(Customer.id) == row.id, col(Customer.version) == row.version)
        .values(sealed=sealed, sealed_seq=seq)
    )
    return 1 if result.rowcount == 1 else 0  # type: ignore[attr-defined]


def _old_format(wrapped: object) -> object:
    """Wrapped before wrapping keys were derived, or sealed before change records and customer
    blobs were bound to their own row: crypto's plain format byte 0x01 (see storage.crypto and
    storage.vault)."""
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
