"""关键联系人: the only module that writes key persons and their blind-index rows.

A key person's phones and birthday are sealed with the customer's data key (so destroying the
customer erases them too); each phone also gets a blind-index row naming the key person, so an
exact phone search finds the customer. Values are keyed like the questions of the key-person
flow (`kp_name`, `kp_phones`, ...), which is also how history records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, erasure, fields, vault
from storage.changes import ChangedMeanwhile
from storage.crypto import Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    BlindIndex,
    ChangeRecord,
    Customer,
    KeyPerson,
    KeyPersonRole,
    RecordStatus,
    Staff,
)
from storage.permissions import can_view_customer
from storage.types import utcnow

# value key → column (clear) or name in the sealed blob, from the catalogue (storage.fields)
CLEAR = {f.name: f.stored_as for f in fields.KEY_PERSON if not f.sealed}
SEALED = {f.name: f.stored_as for f in fields.KEY_PERSON if f.sealed}
FIELDS = fields.names(fields.KEY_PERSON)
INFLUENCE_LEVELS = (90, 70, 50, 30)
TEXT_LIMITS = {"kp_name": 100, "kp_title": 100, "kp_notes": 1000}
# records whose key persons may change; archived ones are read-only, destroyed ones are gone
CHANGEABLE = (
    RecordStatus.draft,
    RecordStatus.pending,
    RecordStatus.rejected,
    RecordStatus.approved,
)


@dataclass(frozen=True)
class KeyPersonRecord:
    """A key person with the sealed values opened; callers mask or audit what they show."""

    id: int
    customer_id: int
    version: int
    values: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.values["kp_name"])


def may_change(actor: Staff, customer: Customer) -> bool:
    """Who may see the customer may manage its key persons, unless the record is read-only."""
    return can_view_customer(actor, customer) and customer.status in CHANGEABLE


def _check(actor: Staff, customer: Customer) -> None:
    if not can_view_customer(actor, customer):
        raise Refused("not_allowed")
    if customer.status not in CHANGEABLE:
        raise Refused("read_only")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def normalise(values: dict[str, Any]) -> dict[str, Any]:
    """Every field, in stored form; refuses values the flow could never have produced."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError(f"not key-person fields: {unknown}")
    result: dict[str, Any] = {f: None if _empty(values.get(f)) else values.get(f) for f in FIELDS}
    if result["kp_name"] is None:
        raise Refused("incomplete")
    for name, limit in TEXT_LIMITS.items():
        if result[name] is not None and len(str(result[name])) > limit:
            raise ValueError(f"{name} longer than {limit}")
    if result["kp_role"] is not None and result["kp_role"] not in set(KeyPersonRole):
        raise ValueError("unknown key-person role")
    if result["kp_influence"] is not None:
        result["kp_influence"] = int(result["kp_influence"])
        if result["kp_influence"] not in INFLUENCE_LEVELS:
            raise ValueError("unknown influence level")
    if result["kp_phones"] is not None:
        result["kp_phones"] = [str(p) for p in result["kp_phones"]]
    if result["kp_birthday"] is not None:
        result["kp_birthday"] = date.fromisoformat(str(result["kp_birthday"])).isoformat()
    return result


def _sealed_part(values: dict[str, Any]) -> dict[str, Any]:
    return {column: values[f] for f, column in SEALED.items() if values[f] is not None}


async def _open(
    session: AsyncSession, keyring: Keyring, person: KeyPerson, key: bytes | None = None
) -> KeyPersonRecord:
    assert person.id is not None
    if key is None:
        key = await vault.data_key(session, keyring, person.customer_id)
    sealed = vault.unseal(key, person.sealed, table="key_persons", row_id=person.id) or {}
    values = {f: getattr(person, column) for f, column in CLEAR.items()}
    values.update({f: sealed.get(column) for f, column in SEALED.items()})
    return KeyPersonRecord(person.id, person.customer_id, person.version, values)


async def sealed_values(session: AsyncSession, keyring: Keyring, person: KeyPerson) -> dict:
    """The key person's phones and birthday in clear (key rotation re-indexes from these)."""
    assert person.id is not None
    key = await vault.data_key(session, keyring, person.customer_id)
    return vault.unseal(key, person.sealed, table="key_persons", row_id=person.id) or {}


async def reindex(
    session: AsyncSession,
    keyring: Keyring,
    *,
    key_person_id: int,
    customer_id: int,
    phones: list[str],
) -> None:
    """(Re)write the blind indexes of a key person's phones, under the newest key."""
    await session.exec(delete(BlindIndex).where(col(BlindIndex.key_person_id) == key_person_id))
    for phone in phones:
        session.add(
            BlindIndex(
                kind="phone",
                digest=keyring.blind_index("phone", phone),
                kek_id=keyring.current.kid,
                customer_id=customer_id,
                key_person_id=key_person_id,
            )
        )


async def key_persons_of(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, customer: Customer
) -> list[KeyPersonRecord]:
    """The customer's key persons, most influential first."""
    if not can_view_customer(actor, customer):
        raise NotFound()
    rows = (
        await session.exec(
            select(KeyPerson)
            .where(KeyPerson.customer_id == customer.id)
            .order_by(col(KeyPerson.influence).desc().nulls_last(), col(KeyPerson.id))
        )
    ).all()
    if not rows:
        return []
    key = await vault.data_key(session, keyring, customer.id or 0)
    return [await _open(session, keyring, row, key) for row in rows]


async def find_key_person(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    key_person_id: int,
    purpose: str,
    lock: bool = False,
) -> KeyPersonRecord | None:
    """A key person of this customer, or None. Naming another customer's key person (a
    hand-made button) is refused like an invisible customer, and audited. `lock` holds the
    row until the transaction ends, for a change that follows."""
    if not can_view_customer(actor, customer):
        return None
    query = select(KeyPerson).where(KeyPerson.id == key_person_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    person = (await session.exec(query)).first()
    if person is None:
        return None  # removed meanwhile: a stale button, not an attempt
    if person.customer_id != customer.id:
        await audit.record(
            session,
            action="access.denied",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="key_person",
            entity_id=key_person_id,
            detail={"purpose": purpose, "claimed_customer_id": customer.id},
        )
        return None
    return await _open(session, keyring, person)


async def record_sensitive_view(
    session: AsyncSession, *, actor: Staff, person: KeyPersonRecord, purpose: str
) -> None:
    """Audit that the actor is shown this key person's phones or birthday in clear."""
    shown = sorted(f for f in SEALED if person.values.get(f) is not None)
    if not shown:
        return
    await audit.record(
        session,
        action="key_person.view_sensitive",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="key_person",
        entity_id=person.id,
        detail={"customer_id": person.customer_id, "fields": shown, "purpose": purpose},
    )


async def _history(
    session: AsyncSession,
    key: bytes,
    *,
    person_id: int,
    customer_id: int,
    action: str,
    actor: Staff,
    diff: dict[str, list[Any]],
) -> None:
    await vault.add_change(
        session,
        key,
        ChangeRecord(
            entity="key_person",
            entity_id=person_id,
            customer_id=customer_id,
            action=action,
            changed_by=actor.id,
            changed_at=utcnow(),
        ),
        diff,
    )
    await audit.record(
        session,
        action=f"key_person.{action}",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="key_person",
        entity_id=person_id,
        detail={"customer_id": customer_id, "fields": sorted(diff)},
    )


async def add_key_person(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    values: dict[str, Any],
) -> KeyPersonRecord:
    """Add a key person to the customer, with its indexes, history and audit entry."""
    _check(actor, customer)
    assert customer.id is not None
    clean = normalise(values)
    person = KeyPerson(customer_id=customer.id, **{column: clean[f] for f, column in CLEAR.items()})
    session.add(person)
    await session.flush()
    assert person.id is not None
    key = await vault.data_key(session, keyring, customer.id)
    person.sealed = vault.seal(key, _sealed_part(clean), table="key_persons", row_id=person.id)
    session.add(person)
    await reindex(
        session,
        keyring,
        key_person_id=person.id,
        customer_id=customer.id,
        phones=clean["kp_phones"] or [],
    )
    diff = {f: [None, v] for f, v in clean.items() if v is not None}
    await _history(
        session,
        key,
        person_id=person.id,
        customer_id=customer.id,
        action="create",
        actor=actor,
        diff=diff,
    )
    return KeyPersonRecord(person.id, customer.id, person.version, clean)


async def _current(
    session: AsyncSession,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    key_person_id: int,
    version: int,
    purpose: str,
) -> KeyPersonRecord:
    _check(actor, customer)
    found = await find_key_person(
        session,
        keyring=keyring,
        actor=actor,
        customer=customer,
        key_person_id=key_person_id,
        purpose=purpose,
        lock=True,
    )
    if found is None:
        raise NotFound()
    if found.version != version:
        raise ChangedMeanwhile()
    return found


async def update_key_person(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    key_person_id: int,
    version: int,
    values: dict[str, Any],
) -> dict[str, list[Any]]:
    """Change a key person as of `version`; returns the difference (empty: nothing changed).

    Raises NotFound if it is gone or not this customer's, ChangedMeanwhile if someone else
    changed it since `version`; nothing is written then.
    """
    assert customer.id is not None
    current = await _current(session, keyring, actor, customer, key_person_id, version, "edit")
    clean = normalise(values)
    diff = {f: [current.values[f], clean[f]] for f in FIELDS if current.values[f] != clean[f]}
    if not diff:
        return {}
    key = await vault.data_key(session, keyring, customer.id)
    result = await session.exec(
        update(KeyPerson)
        .where(col(KeyPerson.id) == key_person_id, col(KeyPerson.version) == version)
        .values(
            **{column: clean[f] for f, column in CLEAR.items()},
            sealed=vault.seal(key, _sealed_part(clean), table="key_persons", row_id=key_person_id),
            version=version + 1,
            updated_at=utcnow(),
        )
    )
    if result.rowcount != 1:
        raise ChangedMeanwhile()
    if "kp_phones" in diff:
        await reindex(
            session,
            keyring,
            key_person_id=key_person_id,
            customer_id=customer.id,
            phones=clean["kp_phones"] or [],
        )
    await _history(
        session,
        key,
        person_id=key_person_id,
        customer_id=customer.id,
        action="update",
        actor=actor,
        diff=diff,
    )
    return diff


async def remove_key_person(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    key_person_id: int,
    version: int,
) -> KeyPersonRecord:
    """Remove a key person for good: its row, phone indexes, birthday reminders and the values
    of its earlier history lines are erased (storage.erasure, written to the erasure ledger on
    commit, so no restored backup brings them back). History keeps one line saying that it was
    removed, by whom and when, with no values; the audit entry names which fields it had.

    Raises NotFound if it is gone or not this customer's, ChangedMeanwhile if it was changed
    since `version` (the confirmation showed older values). Returns what it held, for the
    remover's own confirmation.
    """
    assert customer.id is not None
    current = await _current(session, keyring, actor, customer, key_person_id, version, "remove")
    now = utcnow()
    wiped = await erasure.erase_key_person(
        session, key_person_id=key_person_id, customer_id=customer.id, now=now
    )
    await vault.add_change(
        session,
        b"",
        ChangeRecord(
            entity="key_person",
            entity_id=key_person_id,
            customer_id=customer.id,
            action="remove",
            changed_by=actor.id,
            changed_at=now,
        ),
        None,
    )
    await audit.record(
        session,
        action="key_person.remove",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="key_person",
        entity_id=key_person_id,
        detail={
            "customer_id": customer.id,
            "fields": sorted(f for f, v in current.values.items() if not _empty(v)),
            **wiped.detail(),
        },
    )
    return current
