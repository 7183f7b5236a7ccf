"""Data keys (and the audit MAC key) are wrapped under a key derived for wrapping, never under
the master key itself; keys wrapped the old way still open, and rotate-keys re-wraps them."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import select

from storage import crypto, customers
from storage.crypto import DecryptionError, Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditKey, DataKey, Role, Staff, Team
from storage.rotation import rotate_keys

K1 = bytes(range(32))


def test_a_wrapped_key_does_not_open_with_the_master_key_itself() -> None:
    keyring = Keyring([K1])
    data_key = keyring.new_data_key()
    kid, wrapped = keyring.wrap(data_key, customer_id=7)
    assert wrapped[:1] == b"\x02"
    assert keyring.unwrap(kid, wrapped, customer_id=7) == data_key
    for token in (wrapped, b"\x01" + wrapped[1:]):
        with pytest.raises(InvalidTag):
            AESGCM(K1).decrypt(token[1:13], token[13:], b"dek:7")
    assert not keyring.needs_rewrap(kid, wrapped)


def test_a_key_wrapped_by_the_master_key_directly_still_opens() -> None:
    keyring = Keyring([K1])
    data_key = keyring.new_data_key()
    old = crypto._seal(K1, data_key, b"dek:7")  # how wrap() sealed before
    kid = keyring.current.kid
    assert keyring.unwrap(kid, old, customer_id=7) == data_key
    assert keyring.needs_rewrap(kid, old)
    with pytest.raises(DecryptionError):
        keyring.unwrap(kid, old, customer_id=8)
    with pytest.raises(DecryptionError):  # its format byte cannot be flipped to the new one
        keyring.unwrap(kid, b"\x02" + old[1:], customer_id=7)


async def test_rotate_keys_rewraps_old_format_keys_under_the_same_master_key(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    async with unit_of_work(session_factory) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        seller = Staff(telegram_id=1, display_name="s", role=Role.salesperson, team_id=team.id)
        session.add(seller)
        await session.flush()
        customer = await customers.create_customer(
            session,
            keyring=keyring,
            actor=seller,
            values={"kind": "company", "name": "One", "phones": ["+8613812345678"]},
        )
    master = keyring.current.secret
    async with unit_of_work(session_factory) as session:
        row = (await session.exec(select(DataKey))).one()
        data_key = keyring.unwrap(row.kek_id, row.wrapped or b"", customer_id=row.customer_id)
        row.wrapped = crypto._seal(master, data_key, b"dek:%d" % row.customer_id)
        session.add(row)

    report = await rotate_keys(session_factory, keyring)
    assert (report.data_keys, report.left_on_old_keys) == (1, 0)
    async with session_factory() as session:
        row = (await session.exec(select(DataKey))).one()
        assert row.wrapped is not None and not keyring.needs_rewrap(row.kek_id, row.wrapped)
        audit_key = (await session.exec(select(AuditKey))).one()
        assert not keyring.needs_rewrap(audit_key.kek_id, audit_key.wrapped)
        assert await customers.sealed_fields(session, keyring, customer) == {
            "phones": ["+8613812345678"]
        }
    assert (await rotate_keys(session_factory, keyring)).data_keys == 0
