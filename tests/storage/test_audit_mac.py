"""The audit log under attack: every way to cut or rewrite it that was tried is detected.

Someone with write access to the database (but not the master keys) deletes, alters, reorders
and re-chains entries; `verify-audit` (with the head an admin was sent, `--expect ID:MAC`)
must fail every time. The chain also survives a master-key rotation with the old key dropped,
and a log written before the keyed MAC (plain SHA-256 links) still verifies.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import col, select

from bot.cli import main
from storage import audit
from storage.crypto import Keyring, MasterKey, decode_master_key, new_master_key
from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.migrate import alembic_config, upgrade_database
from storage.models import AuditEntry, AuditKey
from storage.types import utcnow
from tests.auxil.settings_env import clean_settings_env

ENTRIES = 8


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, master_key_text: str
) -> Path:
    """`python -m bot` with the master key the test's sessions use."""
    clean_settings_env(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        ENCRYPTION_KEYS=master_key_text,
    )
    return tmp_path


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _record(session_factory: SessionFactory, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        async with unit_of_work(session_factory) as session:
            await audit.record(
                session,
                action="customer.view",
                actor_telegram_id=1000 + i,
                actor_staff_id=i,
                entity="customer",
                entity_id=i * 10,
                detail={"n": i} if i % 2 else None,
            )


async def _head(session_factory: SessionFactory) -> audit.AuditHead:
    async with session_factory() as session:
        found = await audit.head(session)
    assert found is not None
    return found


async def _verify(
    session_factory: SessionFactory, expect: audit.AuditHead | None = None
) -> audit.ChainReport:
    async with session_factory() as session:
        return await audit.verify_chain(session, expect=expect)


async def _entries(session_factory: SessionFactory) -> list[AuditEntry]:
    async with session_factory() as session:
        return list((await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all())


async def _sql(session_factory: SessionFactory, sql: str, **params: object) -> None:
    async with unit_of_work(session_factory) as session:
        await session.exec(text(sql).bindparams(**params))


async def _rewrite(
    session_factory: SessionFactory, entries: list[AuditEntry], link: Callable[[AuditEntry], str]
) -> None:
    """Write `entries` back as the whole log, re-chained with `link` (the forger's function)."""
    prev = audit.GENESIS
    for entry in entries:
        entry.prev_hash = prev
        entry.hash = link(entry)
        prev = entry.hash
    async with unit_of_work(session_factory) as session:
        await session.exec(text("DELETE FROM audit_log"))
        for entry in entries:
            session.add(
                AuditEntry(**entry.model_dump())  # fresh rows, not the loaded instances
            )


# --- the tamper cases ------------------------------------------------------------------------


async def _delete_newest(factory: SessionFactory) -> None:
    await _sql(factory, "DELETE FROM audit_log WHERE id > :n", n=ENTRIES - 3)


async def _empty_table(factory: SessionFactory) -> None:
    await _sql(factory, "DELETE FROM audit_log")


async def _alter_and_rechain_with_plain_hashes(factory: SessionFactory) -> None:
    entries = await _entries(factory)
    entries[3].detail = '{"forged": true}'
    await _rewrite(factory, entries, audit._entry_hash)


async def _alter_and_rechain_with_a_wrong_key(factory: SessionFactory) -> None:
    guessed = os.urandom(32)
    entries = await _entries(factory)
    entries[3].action = "customer.nothing"
    await _rewrite(factory, entries, lambda e: audit._entry_mac(guessed, e))


async def _drop_the_key_and_rechain_everything_as_plain(factory: SessionFactory) -> None:
    """The strongest rewrite without the master key: a log that looks pre-MAC throughout."""
    entries = await _entries(factory)
    entries[5].actor_staff_id = 99
    await _rewrite(factory, entries, audit._entry_hash)
    await _sql(factory, "DELETE FROM audit_keys")


async def _move_the_legacy_boundary(factory: SessionFactory) -> None:
    """Declare every entry a plain one (so plain hashes would do) by editing the key row."""
    entries = await _entries(factory)
    entries[4].detail = None
    await _rewrite(factory, entries, audit._entry_hash)
    await _sql(factory, "UPDATE audit_keys SET legacy_upto = :n", n=ENTRIES)


async def _delete_a_middle_entry(factory: SessionFactory) -> None:
    await _sql(factory, "DELETE FROM audit_log WHERE id = 4")


async def _delete_and_renumber(factory: SessionFactory) -> None:
    await _sql(factory, "DELETE FROM audit_log WHERE id = 4")
    for old_id in range(5, ENTRIES + 1):
        await _sql(
            factory, "UPDATE audit_log SET id = :new WHERE id = :old", new=old_id - 1, old=old_id
        )


async def _reorder(factory: SessionFactory) -> None:
    """Give entries 3..5 each other's ids (rows keep their fields and MACs)."""
    await _sql(factory, "UPDATE audit_log SET id = 100 WHERE id = 3")
    await _sql(factory, "UPDATE audit_log SET id = 3 WHERE id = 5")
    await _sql(factory, "UPDATE audit_log SET id = 5 WHERE id = 100")


async def _swap_two_rows(factory: SessionFactory) -> None:
    """Swap everything but the id (and the chain columns' order) between entries 2 and 6."""
    entries = {e.id: e for e in await _entries(factory)}
    columns = ("at", "actor_telegram_id", "actor_staff_id", "action", "entity", "entity_id")
    for target, source in ((2, 6), (6, 2)):
        values = {c: getattr(entries[source], c) for c in columns}
        async with unit_of_work(factory) as session:
            row = await session.get(AuditEntry, target)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)
            row.detail = entries[source].detail
            session.add(row)


async def _append_a_plain_entry(factory: SessionFactory) -> None:
    last = (await _entries(factory))[-1]
    forged = AuditEntry(
        id=(last.id or 0) + 1,
        at=utcnow(),
        action="customer.view",
        prev_hash=last.hash,
        hash="",
    )
    forged.hash = audit._entry_hash(forged)
    async with unit_of_work(factory) as session:
        session.add(forged)


async def _alter_newest_and_recompute(factory: SessionFactory) -> None:
    """The newest entry has no successor whose link would break."""
    newest = (await _entries(factory))[-1]
    newest.detail = '{"n": 0}'
    await _sql(
        factory,
        "UPDATE audit_log SET detail = :d, hash = :h WHERE id = :i",
        d=newest.detail,
        h=audit._entry_hash(newest),
        i=newest.id,
    )


TAMPER_CASES: dict[str, Callable[[SessionFactory], Awaitable[None]]] = {
    "delete the newest entries": _delete_newest,
    "empty the table": _empty_table,
    "alter a row, re-chain with plain SHA-256": _alter_and_rechain_with_plain_hashes,
    "alter a row, re-chain with a wrong key": _alter_and_rechain_with_a_wrong_key,
    "drop the MAC key, re-chain all as plain": _drop_the_key_and_rechain_everything_as_plain,
    "move the legacy boundary": _move_the_legacy_boundary,
    "delete a middle entry": _delete_a_middle_entry,
    "delete and renumber": _delete_and_renumber,
    "reorder entries": _reorder,
    "swap two rows": _swap_two_rows,
    "append a plain entry after keyed ones": _append_a_plain_entry,
    "alter the newest entry, recompute": _alter_newest_and_recompute,
}


@pytest.mark.parametrize("case", list(TAMPER_CASES))
async def test_tampering_is_detected_with_the_anchored_head(
    case: str,
    session_factory: SessionFactory,
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _record(session_factory, ENTRIES)
    assert await cli("verify-audit") == 0
    out = capsys.readouterr().out
    anchored = await _head(session_factory)
    assert f"head: {anchored.id}:{anchored.mac}" in out and anchored.id == ENTRIES

    await TAMPER_CASES[case](session_factory)

    assert await cli("verify-audit", "--expect", str(anchored)) == 1, case
    out = capsys.readouterr().out
    assert "intact" not in out
    assert "BROKEN" in out or "cannot be verified" in out


@pytest.mark.parametrize(
    "case",
    [
        name
        for name in TAMPER_CASES
        if name
        not in (
            "delete the newest entries",  # a shorter log is a valid log: only the anchor knows
            "empty the table",
            "drop the MAC key, re-chain all as plain",
        )
    ],
)
async def test_tampering_inside_the_log_is_detected_without_an_anchor(
    case: str, session_factory: SessionFactory
) -> None:
    await _record(session_factory, ENTRIES)
    await TAMPER_CASES[case](session_factory)
    try:
        report = await _verify(session_factory)
    except audit.AuditKeyError:
        return  # the key row was altered: nothing verifies, which is a failure too
    assert not report.ok, case
    assert report.first_broken_id is not None and report.reason


def test_every_tamper_case_is_counted() -> None:
    """For the report: audit tamper cases detected, N of N tried."""
    assert len(TAMPER_CASES) == 12


async def test_the_messages_say_what_was_found(
    session_factory: SessionFactory, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _record(session_factory, ENTRIES)
    anchored = await _head(session_factory)
    await _delete_newest(session_factory)
    assert await cli("verify-audit", "--expect", str(anchored)) == 1
    out = capsys.readouterr().out
    assert f"BROKEN at entry {ENTRIES - 2}" in out
    assert f"log ends at entry {ENTRIES - 3}, before the expected head {ENTRIES}" in out

    await _record(session_factory, 3, start=50)  # the log grows back to the same length
    assert await cli("verify-audit") == 0  # a valid log on its own ...
    capsys.readouterr()
    assert await cli("verify-audit", "--expect", str(anchored)) == 1  # ... but not that one
    out = capsys.readouterr().out
    assert f"BROKEN at entry {ENTRIES}: MAC differs from the expected head" in out


async def test_expect_passes_on_an_intact_and_longer_log(
    session_factory: SessionFactory, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _record(session_factory, 3)
    anchored = await _head(session_factory)
    await _record(session_factory, 4, start=3)
    assert await cli("verify-audit", "--expect", f"{anchored.id}:{anchored.mac.upper()}") == 0
    out = capsys.readouterr().out
    assert "audit log intact: 7 entries verified" in out
    assert f"expected head {anchored.id} found" in out
    assert f"head: {await _head(session_factory)}" in out


@pytest.mark.parametrize(
    "value",
    ["", "12", "abc:" + "0" * 64, "0:" + "0" * 64, "5:xyz", "5:" + "0" * 63, "²:" + "0" * 64],
)
async def test_a_malformed_expected_head_is_a_usage_error(
    value: str, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("verify-audit", "--expect", value) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("--expect: ")
    assert captured.out == ""


async def test_an_empty_log_prints_no_head(
    session_factory: SessionFactory, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("verify-audit") == 0
    assert "head: none" in capsys.readouterr().out
    async with session_factory() as session:
        assert await audit.head(session) is None


# --- the key ---------------------------------------------------------------------------------


async def test_entries_are_keyed_macs_under_a_wrapped_random_key(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    await _record(session_factory, 3)
    async with session_factory() as session:
        row = (await session.exec(select(AuditKey))).one()
    assert (row.id, row.kek_id, row.legacy_upto) == (1, keyring.current.kid, 0)
    secret = keyring.unwrap_key(row.kek_id, row.wrapped, context=b"audit-mac:0")
    assert secret not in row.wrapped and len(secret) == 32
    for entry in await _entries(session_factory):
        body = audit._body(entry)
        assert entry.hash == hmac.new(secret, body, hashlib.sha256).hexdigest()
        assert entry.hash != hashlib.sha256(body).hexdigest()
    assert "audit MAC key holder" in repr(session_factory)  # the key itself is not shown


async def test_without_a_keyring_nothing_is_written(engine: object) -> None:
    bare = make_session_factory(engine)  # type: ignore[arg-type]
    with pytest.raises(audit.AuditKeyError, match="keyring"):
        async with unit_of_work(bare) as session:
            await audit.record(session, action="x")
    async with bare() as session:
        assert (await session.exec(select(AuditEntry))).all() == []


async def test_a_rolled_back_first_entry_leaves_no_key_behind(
    session_factory: SessionFactory,
) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(session_factory) as session:
            await audit.record(session, action="doomed")
            await audit.record(session, action="doomed too")  # sees the pending key row
            raise RuntimeError("the action failed")
    await _record(session_factory, 2)
    assert await _verify(session_factory) == audit.ChainReport(ok=True, checked=2)


async def test_a_missing_key_stops_writing_rather_than_forking(
    session_factory: SessionFactory,
) -> None:
    await _record(session_factory, 3)
    await _sql(session_factory, "DELETE FROM audit_keys")
    with pytest.raises(audit.AuditKeyError, match="missing"):
        await _record(session_factory, 1)
    assert len(await _entries(session_factory)) == 3


async def test_wrong_master_keys_cannot_open_the_key(
    session_factory: SessionFactory,
    cli_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _record(session_factory, 2)
    monkeypatch.setenv("ENCRYPTION_KEYS", new_master_key())
    assert await cli("verify-audit") == 1
    out = capsys.readouterr().out
    assert "cannot be verified" in out and "ENCRYPTION_KEYS" in out


# --- rotation --------------------------------------------------------------------------------


async def test_the_chain_survives_a_rotation_with_the_old_key_dropped(
    session_factory: SessionFactory,
    cli_env: Path,
    master_key_text: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _record(session_factory, 5)
    anchored = await _head(session_factory)
    new_text = new_master_key()
    new_kid = MasterKey.from_bytes(decode_master_key(new_text)).kid

    monkeypatch.setenv("ENCRYPTION_KEYS", f"{new_text},{master_key_text}")
    assert await cli("rotate-keys") == 0
    monkeypatch.setenv("ENCRYPTION_KEYS", new_text)  # the old key is gone
    assert await cli("verify-audit", "--expect", str(anchored)) == 0
    out = capsys.readouterr().out
    assert "audit log intact: 6 entries verified" in out  # with rotate-keys' own entry
    async with session_factory() as session:
        row = (await session.exec(select(AuditKey))).one()
    assert row.kek_id == new_kid

    # the bot restarted with only the new key keeps the same chain going
    after = make_session_factory(make_engine(os.environ["DATABASE_URL"]))
    audit.use_keyring(after, Keyring([decode_master_key(new_text)]))
    try:
        await _record(after, 2, start=10)
        report = await _verify(after, expect=anchored)
        assert (report.ok, report.checked) == (True, 8)
    finally:
        await after.kw["bind"].dispose()
    assert await cli("verify-audit", "--expect", str(anchored)) == 0


# --- a log written before the keyed MAC ------------------------------------------------------


async def _legacy_log(database_url: str, count: int) -> None:
    """Entries as the code before the keyed MAC wrote them, in a schema before its migration."""
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "0001_initial")
    engine = make_engine(database_url)
    try:
        prev = audit.GENESIS
        async with unit_of_work(make_session_factory(engine)) as session:
            for i in range(1, count + 1):
                entry = AuditEntry(
                    id=i, at=utcnow(), action="legacy", entity_id=i, prev_hash=prev, hash=""
                )
                entry.hash = audit._entry_hash(entry)
                session.add(entry)
                prev = entry.hash
    finally:
        await engine.dispose()
    await upgrade_database(database_url)


@pytest.fixture
async def legacy_factory(database_url: str, keyring: Keyring) -> AsyncIterator[SessionFactory]:
    await _legacy_log(database_url, 4)
    factory = make_session_factory(make_engine(database_url))
    audit.use_keyring(factory, keyring)
    yield factory
    await factory.kw["bind"].dispose()


async def test_a_legacy_log_still_verifies_and_continues_with_macs(
    legacy_factory: SessionFactory,
) -> None:
    report = await _verify(legacy_factory)
    assert (report.ok, report.checked, report.legacy) == (True, 4, 4)

    await _record(legacy_factory, 3)
    entries = await _entries(legacy_factory)
    assert entries[4].prev_hash == entries[3].hash  # the first keyed entry chains on the old head
    async with legacy_factory() as session:
        assert (await session.exec(select(AuditKey))).one().legacy_upto == 4
    report = await _verify(legacy_factory)
    assert (report.ok, report.checked, report.legacy) == (True, 7, 4)


async def test_legacy_entries_are_protected_by_the_first_keyed_one(
    legacy_factory: SessionFactory,
) -> None:
    await _record(legacy_factory, 2)
    entries = await _entries(legacy_factory)
    entries[1].action = "legacy.forged"
    legacy_part = entries[:4]
    prev = audit.GENESIS
    for entry in legacy_part:  # re-chain the plain part as the old code would
        entry.prev_hash, entry.hash = prev, ""
        entry.hash = audit._entry_hash(entry)
        prev = entry.hash
    async with unit_of_work(legacy_factory) as session:
        for entry in legacy_part:
            await session.exec(
                text(
                    "UPDATE audit_log SET action = :a, prev_hash = :p, hash = :h WHERE id = :i"
                ).bindparams(a=entry.action, p=f"tmp{entry.id}", h=f"tmp-h{entry.id}", i=entry.id)
            )
        for entry in legacy_part:
            await session.exec(
                text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :i").bindparams(
                    p=entry.prev_hash, h=entry.hash, i=entry.id
                )
            )
    report = await _verify(legacy_factory)
    assert (report.ok, report.first_broken_id) == (False, 5)
    assert report.reason is not None and "link" in report.reason


async def test_cutting_into_the_legacy_part_is_detected_without_an_anchor(
    legacy_factory: SessionFactory,
) -> None:
    await _record(legacy_factory, 2)
    await _sql(legacy_factory, "DELETE FROM audit_log WHERE id > 2")
    report = await _verify(legacy_factory)
    assert not report.ok and report.reason is not None and "before entry 4" in report.reason
