"""访问日志: the hash chain detects altered, deleted and relinked entries and never forks."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlmodel import col, select

from bot.cli import main
from storage import audit
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry
from tests.auxil.settings_env import clean_settings_env


async def _record_some(session_factory: SessionFactory, count: int) -> None:
    for i in range(count):
        async with unit_of_work(session_factory) as session:
            await audit.record(
                session,
                action="customer.view",
                actor_telegram_id=1000 + i,
                actor_staff_id=i,
                entity="customer",
                entity_id=i * 10,
                detail={"n": i, "fields": ["phones"]} if i % 2 else None,
            )


async def _verify(session_factory: SessionFactory) -> audit.ChainReport:
    async with session_factory() as session:
        return await audit.verify_chain(session)


async def _entries(session_factory: SessionFactory) -> list[AuditEntry]:
    async with session_factory() as session:
        return list((await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all())


async def _execute(session_factory: SessionFactory, sql: str, **params: object) -> None:
    async with unit_of_work(session_factory) as session:
        await session.exec(text(sql).bindparams(**params))


async def test_empty_log_verifies(session_factory: SessionFactory) -> None:
    assert await _verify(session_factory) == audit.ChainReport(ok=True, checked=0)


async def test_records_form_a_chain_that_verifies(session_factory: SessionFactory) -> None:
    await _record_some(session_factory, 6)
    entries = await _entries(session_factory)
    assert [e.id for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert len({e.hash for e in entries}) == 6
    assert entries[1].detail == '{"fields": ["phones"], "n": 1}'
    assert entries[0].at.tzinfo is not None
    report = await _verify(session_factory)
    assert report == audit.ChainReport(ok=True, checked=6)


async def test_verify_walks_in_batches(session_factory: SessionFactory) -> None:
    await _record_some(session_factory, 7)
    async with session_factory() as session:
        assert await audit.verify_chain(session, batch=2) == audit.ChainReport(True, 7)
        assert await audit.verify_chain(session, batch=7) == audit.ChainReport(True, 7)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("detail", '{"n": 3, "fields": []}'),
        ("action", "customer.export"),
        ("actor_telegram_id", 999),
        ("entity_id", None),
    ],
)
async def test_altered_entry_is_reported(
    session_factory: SessionFactory, column: str, value: object
) -> None:
    await _record_some(session_factory, 6)
    await _execute(
        session_factory, f"UPDATE audit_log SET {column} = :value WHERE id = 4", value=value
    )
    report = await _verify(session_factory)
    assert not report.ok
    assert report.first_broken_id == 4
    assert report.reason is not None and "altered" in report.reason
    assert report.checked == 3


async def test_deleted_middle_entry_is_reported(session_factory: SessionFactory) -> None:
    await _record_some(session_factory, 6)
    await _execute(session_factory, "DELETE FROM audit_log WHERE id = 3")
    report = await _verify(session_factory)
    assert (report.ok, report.first_broken_id, report.checked) == (False, 3, 2)
    assert report.reason is not None and "missing" in report.reason


async def test_deleted_first_entry_is_reported(session_factory: SessionFactory) -> None:
    await _record_some(session_factory, 3)
    await _execute(session_factory, "DELETE FROM audit_log WHERE id = 1")
    report = await _verify(session_factory)
    assert (report.ok, report.first_broken_id, report.checked) == (False, 1, 0)


async def test_altered_prev_hash_is_a_broken_link(session_factory: SessionFactory) -> None:
    await _record_some(session_factory, 5)
    await _execute(session_factory, "UPDATE audit_log SET prev_hash = :h WHERE id = 2", h="f" * 64)
    report = await _verify(session_factory)
    assert (report.ok, report.first_broken_id, report.checked) == (False, 2, 1)
    assert report.reason is not None and "link" in report.reason and "broken" in report.reason


async def test_recomputed_hash_is_caught_at_the_altered_entry(
    session_factory: SessionFactory,
) -> None:
    """A forger who also rewrites the altered entry's plain hash is caught at that entry: its
    link is a keyed MAC now (it used to be caught only at the following entry)."""
    await _record_some(session_factory, 5)
    entries = await _entries(session_factory)
    forged = entries[2]
    forged.detail = '{"forged": true}'
    new_hash = audit._entry_hash(forged)
    await _execute(
        session_factory,
        "UPDATE audit_log SET detail = :d, hash = :h WHERE id = 3",
        d=forged.detail,
        h=new_hash,
    )
    report = await _verify(session_factory)
    assert (report.ok, report.first_broken_id) == (False, 3)
    assert report.reason is not None and "altered" in report.reason


async def test_concurrent_appends_never_fork_the_chain(session_factory: SessionFactory) -> None:
    async def append(n: int) -> None:
        async with unit_of_work(session_factory) as session:
            await session.exec(select(AuditEntry.id).limit(1))  # read first, as actions do
            await asyncio.sleep(0)  # let the other task reach the same point
            await audit.record(session, action="race", actor_telegram_id=n, detail={"n": n})

    rounds = 20
    for i in range(rounds):
        await asyncio.gather(append(2 * i), append(2 * i + 1))

    entries = await _entries(session_factory)
    assert len(entries) == 2 * rounds
    assert [e.id for e in entries] == list(range(1, 2 * rounds + 1))
    assert len({e.prev_hash for e in entries}) == 2 * rounds  # no entry has two successors
    assert sorted(e.actor_telegram_id for e in entries) == list(range(2 * rounds))
    assert await _verify(session_factory) == audit.ChainReport(ok=True, checked=2 * rounds)


async def test_many_concurrent_appenders(session_factory: SessionFactory) -> None:
    async def append(n: int) -> None:
        async with unit_of_work(session_factory) as session:
            await audit.record(session, action="race", actor_telegram_id=n)

    await asyncio.gather(*(append(n) for n in range(12)))
    assert await _verify(session_factory) == audit.ChainReport(ok=True, checked=12)


async def test_rolled_back_append_leaves_no_trace(session_factory: SessionFactory) -> None:
    await _record_some(session_factory, 2)
    with pytest.raises(RuntimeError):
        async with unit_of_work(session_factory) as session:
            await audit.record(session, action="doomed")
            raise RuntimeError("the action failed")
    await _record_some(session_factory, 1)
    entries = await _entries(session_factory)
    assert [e.action for e in entries].count("doomed") == 0
    assert await _verify(session_factory) == audit.ChainReport(ok=True, checked=3)


async def test_one_transaction_reads_the_log_end_once_and_chains_every_entry(
    session_factory: SessionFactory,
) -> None:
    """An action that audits several times reads the newest entry and the key once; its
    entries still chain on each other and on what other transactions appended meanwhile."""
    await _record_some(session_factory, 2)
    async with unit_of_work(session_factory) as session:
        statements: list[str] = []

        def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
            statements.append(statement)

        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            for n in range(3):
                await audit.record(session, action="visit.create", entity_id=n)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len([s for s in reads if "audit_log" in s]) == 1
    assert len([s for s in reads if "audit_keys" in s]) == 1
    await _record_some(session_factory, 1)  # a later transaction reads the end afresh
    entries = await _entries(session_factory)
    assert [e.id for e in entries] == [1, 2, 3, 4, 5, 6]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert await _verify(session_factory) == audit.ChainReport(ok=True, checked=6)


async def test_an_entry_of_a_rolled_back_savepoint_is_not_chained_on(
    session_factory: SessionFactory,
) -> None:
    async with unit_of_work(session_factory) as session:
        kept = await audit.record(session, action="kept")
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await audit.record(session, action="doomed")
                raise RuntimeError("two admins at once: this one lost")
        after = await audit.record(session, action="after")
        assert after.prev_hash == kept.hash
        assert after.id == (kept.id or 0) + 1
    entries = await _entries(session_factory)
    assert [e.action for e in entries] == ["kept", "after"]
    assert await _verify(session_factory) == audit.ChainReport(ok=True, checked=2)


# --- python -m bot verify-audit --------------------------------------------------------------


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, master_key_text: str
) -> Path:
    """The environment `python -m bot` reads (the tests' master key), and no stray .env."""
    clean_settings_env(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path),
        ENCRYPTION_KEYS=master_key_text,
    )
    return tmp_path


async def test_cli_verify_audit(
    session_factory: SessionFactory, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _record_some(session_factory, 4)
    code = await asyncio.to_thread(main, ["verify-audit"])
    out = capsys.readouterr().out
    assert code == 0
    assert "intact" in out and "4 entries" in out

    await _execute(session_factory, "UPDATE audit_log SET detail = 'x' WHERE id = 2")
    code = await asyncio.to_thread(main, ["verify-audit"])
    out = capsys.readouterr().out
    assert code == 1
    assert "intact" not in out
    assert "BROKEN at entry 2" in out and "altered" in out
