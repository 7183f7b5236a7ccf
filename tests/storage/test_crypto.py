"""Field encryption: envelope keys, context binding, key files, and no clear text at rest."""

from __future__ import annotations

import base64
import os
import stat
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from storage import customers, vault
from storage.crypto import (
    DecryptionError,
    Keyring,
    MasterKey,
    decode_master_key,
    load_or_create_keys,
    new_master_key,
    open_with,
    seal_with,
)
from storage.db import SessionFactory, unit_of_work
from storage.models import BlindIndex, Customer, DataKey, Role, Staff, Team
from tests.conftest import IS_POSTGRES

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K3 = bytes(range(200, 232))

PHONE = "+8613812345678"
PHONE_LOCAL = "13812345678"
ACCOUNT_NO = "6222020200112233445"
TAX_NO = "91350100M000100Y43"
EMAIL = "li.wei.private@example.cn"
ADDRESS = "福州市鼓楼区五四路158号环球广场A座2108室"
ADDRESS_ASCII = "Room 2108, Tower A, 158 Wusi Road, Gulou"


# --- helpers ---------------------------------------------------------------------------------


async def _team_and_seller(
    session_factory: SessionFactory, team_name: str, telegram_id: int
) -> Staff:
    async with unit_of_work(session_factory) as session:
        team = (await session.exec(select(Team).where(Team.name == team_name))).first()
        if team is None:
            team = Team(name=team_name)
            session.add(team)
            await session.flush()
        staff = Staff(
            telegram_id=telegram_id,
            display_name=f"seller {telegram_id}",
            role=Role.salesperson,
            team_id=team.id,
        )
        session.add(staff)
        await session.flush()
    return staff


async def _create(
    session_factory: SessionFactory, keyring: Keyring, actor: Staff, **values: Any
) -> Customer:
    values.setdefault("kind", "company")
    async with unit_of_work(session_factory) as session:
        return await customers.create_customer(session, keyring=keyring, actor=actor, values=values)


SENSITIVE = {
    "phones": [PHONE],
    "email": EMAIL,
    "address": ADDRESS,
    "billing_address": ADDRESS_ASCII,
    "account_no": ACCOUNT_NO,
    "tax_no": TAX_NO,
    "bank": "Bank of China Fuzhou Gulou Sub-branch",
}
CLEAR_VALUES = [PHONE, PHONE_LOCAL, ACCOUNT_NO, TAX_NO, EMAIL, ADDRESS, ADDRESS_ASCII]


def _needles() -> list[bytes]:
    """Every clear value in the encodings a leak could take on disk or in a text dump."""
    needles = []
    for value in CLEAR_VALUES:
        raw = value.encode()
        needles += [raw, raw.hex().encode(), value.encode("utf-16-le")]
        if not value.isascii():
            needles.append(value.encode("unicode_escape"))  # JSON with ensure_ascii
    return needles


def _leaks(blob: bytes) -> list[str]:
    low = blob.lower()
    return [n.decode(errors="replace") for n in _needles() if n.lower() in low]


# --- wrap / unwrap ---------------------------------------------------------------------------


def test_wrap_unwrap_round_trip_under_the_current_key() -> None:
    keyring = Keyring([K1, K2])
    data_key = keyring.new_data_key()
    assert len(data_key) == 32
    kid, wrapped = keyring.wrap(data_key, customer_id=7)
    assert kid == MasterKey.from_bytes(K1).kid == keyring.current.kid
    assert data_key not in wrapped
    assert keyring.unwrap(kid, wrapped, customer_id=7) == data_key
    # a fresh nonce each time: wrapping twice never gives the same bytes
    assert keyring.wrap(data_key, customer_id=7)[1] != wrapped


def test_wrapped_key_is_bound_to_its_customer() -> None:
    keyring = Keyring([K1])
    kid, wrapped = keyring.wrap(keyring.new_data_key(), customer_id=7)
    with pytest.raises(DecryptionError):
        keyring.unwrap(kid, wrapped, customer_id=8)


def test_tampered_wrapped_key_fails() -> None:
    keyring = Keyring([K1])
    kid, wrapped = keyring.wrap(keyring.new_data_key(), customer_id=1)
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(DecryptionError):
        keyring.unwrap(kid, tampered, customer_id=1)
    with pytest.raises(DecryptionError, match="format"):
        keyring.unwrap(kid, b"\x09" + wrapped[1:], customer_id=1)  # 0x02 is the current format


def test_keyring_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Keyring([])


# --- sealing bound to context ----------------------------------------------------------------


def test_sealed_value_opens_only_in_its_context_and_with_its_key() -> None:
    key_a, key_b = Keyring([K1]).new_data_key(), Keyring([K1]).new_data_key()
    token = seal_with(key_a, {"phones": [PHONE]}, context="customers:1")
    assert PHONE.encode() not in token
    assert open_with(key_a, token, context="customers:1") == {"phones": [PHONE]}
    with pytest.raises(DecryptionError):
        open_with(key_a, token, context="customers:2")  # moved to another record
    with pytest.raises(DecryptionError):
        open_with(key_a, token, context="key_persons:1")  # moved to another table
    with pytest.raises(DecryptionError):
        open_with(key_b, token, context="customers:1")  # another customer's data key


def test_vault_seal_is_bound_to_table_and_row() -> None:
    key = Keyring([K1]).new_data_key()
    token = vault.seal(key, {"email": EMAIL}, table="customers", row_id=5)
    assert vault.unseal(key, token, table="customers", row_id=5) == {"email": EMAIL}
    assert vault.unseal(key, None, table="customers", row_id=5) is None
    with pytest.raises(DecryptionError):
        vault.unseal(key, token, table="customers", row_id=6)
    with pytest.raises(DecryptionError):
        vault.unseal(key, token, table="change_records", row_id=5)


def test_seal_json_is_bound_to_context() -> None:
    keyring = Keyring([K1])
    token = keyring.seal_json({"name": "x", "phones": [PHONE]}, context="draft:1")
    assert PHONE.encode() not in token
    assert keyring.sealed_kid(token) == keyring.current.kid
    assert keyring.open_json(token, context="draft:1") == {"name": "x", "phones": [PHONE]}
    with pytest.raises(DecryptionError):
        keyring.open_json(token, context="draft:2")
    with pytest.raises(DecryptionError):
        Keyring([K2]).open_json(token, context="draft:1")


# --- several master keys ---------------------------------------------------------------------


def test_old_master_key_still_opens_after_a_new_key_is_put_first() -> None:
    old = Keyring([K1])
    data_key = old.new_data_key()
    kid, wrapped = old.wrap(data_key, customer_id=3)
    draft = old.seal_json({"step": "phones"}, context="draft:9")

    rotated = Keyring([K2, K1])
    assert rotated.current.kid == MasterKey.from_bytes(K2).kid != kid
    assert rotated.unwrap(kid, wrapped, customer_id=3) == data_key
    assert rotated.open_json(draft, context="draft:9") == {"step": "phones"}
    # new values use the new key
    new_kid, new_wrapped = rotated.wrap(data_key, customer_id=3)
    assert new_kid == rotated.current.kid
    assert Keyring([K2]).unwrap(new_kid, new_wrapped, customer_id=3) == data_key


def test_unknown_key_id_fails_clearly() -> None:
    old = Keyring([K1])
    kid, wrapped = old.wrap(old.new_data_key(), customer_id=1)
    other = Keyring([K2, K3])
    with pytest.raises(DecryptionError, match=f"master key {kid} is not configured"):
        other.unwrap(kid, wrapped, customer_id=1)
    draft = old.seal_json({"a": 1}, context="draft:1")
    with pytest.raises(DecryptionError, match="not configured"):
        other.open_json(draft, context="draft:1")
    with pytest.raises(DecryptionError):
        other.open_json(b"garbage-without-separator", context="draft:1")


def test_blind_indexes_one_digest_per_key() -> None:
    keyring = Keyring([K2, K1])
    digests = keyring.blind_indexes("phone", PHONE)
    assert len(digests) == 2
    assert len(set(digests)) == 2
    assert digests[0] == keyring.blind_index("phone", PHONE)  # the current key first
    assert digests[1] == Keyring([K1]).blind_index("phone", PHONE)
    assert all(len(d) == 64 and PHONE_LOCAL not in d for d in digests)
    # deterministic, but separated by kind and value
    assert Keyring([K2, K1]).blind_indexes("phone", PHONE) == digests
    assert keyring.blind_index("tax_no", PHONE) != digests[0]
    assert keyring.blind_index("phone", "+8613812345679") != digests[0]
    assert len(Keyring([K1, K2, K3]).blind_indexes("tax_no", TAX_NO)) == 3


# --- key material ----------------------------------------------------------------------------


def test_load_or_create_keys_creates_a_private_key_file_once(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "encryption.key"
    keys, created = load_or_create_keys(None, key_file)
    assert created is True
    assert len(keys) == 1 and len(keys[0]) == 32
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert key_file.read_text().strip() != ""

    again, created_again = load_or_create_keys("", key_file)
    assert created_again is False
    assert again == keys
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_load_or_create_keys_prefers_configured_keys(tmp_path: Path) -> None:
    key_file = tmp_path / "encryption.key"
    configured = f"{new_master_key()}, {new_master_key()}"
    keys, created = load_or_create_keys(configured, key_file)
    assert created is False
    assert [len(k) for k in keys] == [32, 32] and keys[0] != keys[1]
    assert not key_file.exists()


def test_load_or_create_keys_reads_every_line_of_an_existing_file(tmp_path: Path) -> None:
    key_file = tmp_path / "encryption.key"
    first, second = new_master_key(), new_master_key()
    key_file.write_text(f"{first}\n\n{second}\n")
    keys, created = load_or_create_keys(None, key_file)
    assert created is False
    assert keys == [decode_master_key(first), decode_master_key(second)]


def test_new_master_key_round_trips() -> None:
    key = new_master_key()
    assert "=" not in key
    raw = decode_master_key(key)
    assert len(raw) == 32
    assert decode_master_key(f"  {key}\n") == raw
    assert new_master_key() != key


@pytest.mark.parametrize("bad", ["abcde", "a", "%%%%%", "abc$de"])
def test_decode_master_key_rejects_bad_base64(bad: str) -> None:
    with pytest.raises(ValueError, match="url-safe base64"):
        decode_master_key(bad)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_decode_master_key_rejects_wrong_length(size: int) -> None:
    text_key = base64.urlsafe_b64encode(os.urandom(size)).decode().rstrip("=")
    with pytest.raises(ValueError, match="32 bytes"):
        decode_master_key(text_key)


# --- nothing sensitive in clear at rest ------------------------------------------------------


def _sqlite_files(db_file: Path) -> dict[str, bytes]:
    """The raw bytes of the database file and of its -wal and -shm files (b"" if absent)."""
    return {
        suffix: (
            Path(f"{db_file}{suffix}").read_bytes() if Path(f"{db_file}{suffix}").exists() else b""
        )
        for suffix in ("", "-wal", "-shm")
    }


async def _dump_all_rows(engine: AsyncEngine) -> tuple[bytes, dict[str, int]]:
    """Every column of every row of every table, as bytes (bytea raw) plus its text cast."""
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        chunks: list[bytes] = []
        counts: dict[str, int] = {}
        for table in tables:
            rows = (await connection.execute(text(f'SELECT * FROM "{table}"'))).all()
            counts[table] = len(rows)
            for row in rows:
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        chunks.append(bytes(value))
                    elif value is not None:
                        chunks.append(str(value).encode())
            if IS_POSTGRES:  # the server's own text rendering of each row (bytea as hex)
                rendered = (
                    await connection.execute(text(f'SELECT t::text FROM "{table}" AS t'))
                ).scalars()
                chunks += [r.encode() for r in rendered]
    return b"\n".join(chunks), counts


async def test_no_sensitive_value_is_stored_in_clear(
    engine: AsyncEngine, session_factory: SessionFactory, database_url: str
) -> None:
    keyring = Keyring([K1])
    seller = await _team_and_seller(session_factory, "East", 1001)
    customer = await _create(
        session_factory,
        keyring,
        seller,
        name="Fuzhou Minjiang Trading Co., Ltd.",
        region="Fuzhou",
        **SENSITIVE,
    )
    assert customer.customer_no.startswith("KH-")

    dump, counts = await _dump_all_rows(engine)
    # the dump really covers the stored rows: customer, data key, index, history, review, audit
    for table in ("customers", "data_keys", "change_records", "reviews"):
        assert counts[table] == 1, table
    assert counts["blind_index"] == 2  # phone and tax number
    assert counts["audit_log"] == 2
    assert b"Fuzhou Minjiang Trading" in dump  # a clear column is found by this search
    assert _leaks(b"x" + ADDRESS.encode() + PHONE_LOCAL.encode()) == [PHONE_LOCAL, ADDRESS]
    assert _leaks(dump) == []

    async with session_factory() as session:
        stored = await session.get(Customer, customer.id)
        assert stored is not None and stored.sealed is not None
        opened = await customers.sealed_fields(session, keyring, stored)
        key_row = (
            await session.exec(select(DataKey).where(DataKey.customer_id == customer.id))
        ).one()
        indexes = (await session.exec(select(BlindIndex))).all()
    assert opened == SENSITIVE
    assert key_row.kek_id == keyring.current.kid and key_row.wrapped
    assert sorted((i.kind, i.digest) for i in indexes) == sorted(
        [
            ("phone", keyring.blind_index("phone", PHONE)),
            ("tax_no", keyring.blind_index("tax_no", TAX_NO)),
        ]
    )

    if not IS_POSTGRES:
        db_file = Path(database_url.removeprefix("sqlite:///"))
        before = _sqlite_files(db_file)
        assert before["-wal"]  # WAL mode: the recent writes are in the -wal file so far
        everything = b"".join(before.values())
        assert b"Fuzhou Minjiang Trading" in everything
        assert _leaks(everything) == []
        await engine.dispose()  # the last connection checkpoints the WAL into the main file
        after = _sqlite_files(db_file)
        assert b"Fuzhou Minjiang Trading" in after[""]
        assert _leaks(b"".join(after.values())) == []


async def test_erasing_the_data_key_makes_sealed_fields_unreadable(
    session_factory: SessionFactory,
) -> None:
    keyring = Keyring([K1])
    seller = await _team_and_seller(session_factory, "East", 1001)
    customer = await _create(session_factory, keyring, seller, name="Erased Co", **SENSITIVE)
    async with unit_of_work(session_factory) as session:
        await vault.erase_data_key(session, customer.id or 0)
    async with session_factory() as session:
        stored = await session.get(Customer, customer.id)
        assert stored is not None
        with pytest.raises(vault.DataErased):
            await customers.sealed_fields(session, keyring, stored)


# --- duplicates ------------------------------------------------------------------------------


async def test_duplicates_by_phone_tax_number_and_team_name(
    session_factory: SessionFactory,
) -> None:
    keyring = Keyring([K1])
    east = await _team_and_seller(session_factory, "East", 1001)
    east_colleague = await _team_and_seller(session_factory, "East", 1002)
    west = await _team_and_seller(session_factory, "West", 2001)
    mine = await _create(
        session_factory, keyring, east, name="Fuzhou Minjiang Trading Co., Ltd.", **SENSITIVE
    )
    theirs = await _create(
        session_factory,
        keyring,
        west,
        name="Xiamen Harbour Logistics Group",
        phones=["+8613900001111"],
        tax_no="91350200MA2XYZ1234",
    )

    async with session_factory() as session:

        async def dupes(actor: Staff, **kwargs: Any) -> list[customers.Match]:
            return await customers.matches(
                session, keyring=keyring, team_id=actor.team_id, **kwargs
            )

        async def told(actor: Staff, **kwargs: Any) -> tuple[customers.Duplicate, ...]:
            check = await customers.duplicates(
                session,
                keyring=keyring,
                actor=actor,
                today=date(2026, 11, 22),
                daily_limit=100,
                purpose="new",
                **kwargs,
            )
            return check.duplicates

        by_phone = await dupes(east_colleague, phones=["+8613700000000", PHONE])
        assert [(d.customer_id, d.reason) for d in by_phone] == [(mine.id, "phone")]
        # the owner is told which customer it is; a colleague only whom to ask (SPEC section 4)
        assert await told(east, phones=[PHONE]) == (
            customers.Duplicate(
                "phone", True, mine.customer_no, "Fuzhou Minjiang Trading Co., Ltd.", "seller 1001"
            ),
        )
        assert await told(east_colleague, phones=[PHONE]) == (
            customers.Duplicate("phone", False, ask="manager"),
        )
        assert await told(west, phones=[PHONE]) == (
            customers.Duplicate("phone", False, ask="team", team_name="East"),
        )

        by_tax = await dupes(east_colleague, tax_no=TAX_NO)
        assert [(d.customer_id, d.reason) for d in by_tax] == [(mine.id, "tax_no")]

        by_name = await dupes(east_colleague, name="Fuzhou Minjiang Trading Co. Ltd")
        assert [(d.customer_id, d.reason) for d in by_name] == [(mine.id, "name")]

        # a name of another team's customer is not reported, even identical
        assert await dupes(east_colleague, name="Xiamen Harbour Logistics Group") == []
        other_team = await dupes(west, name="Xiamen Harbour Logistics Group")
        assert [(d.customer_id, d.reason) for d in other_team] == [(theirs.id, "name")]

        # unrelated values find nothing
        assert await dupes(east, phones=["+8613700000000"], tax_no="X", name="Zzz Bakery") == []
        assert await dupes(east) == []

        # the first reason wins when several match
        both = await dupes(east, phones=[PHONE], tax_no=TAX_NO, name="Fuzhou Minjiang Trading")
        assert [(d.customer_id, d.reason) for d in both] == [(mine.id, "phone")]
