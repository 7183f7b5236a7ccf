"""No restored backup undoes a destruction (issue 11, item 4): the erasure ledger kept beside the
keys is re-applied by every restore and every start, a backup's manifest records the ledger's
head, and a forged ledger, or one older than the backup, is refused.

Run the way an operator runs them (`python -m bot backup`, `restore`, `erasures`), on SQLite and
(with TEST_DATABASE_URL) PostgreSQL; destructions are decided in chat, on the review card.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot import cli, preflight
from bot.settings import Settings
from storage import audit, erasure_ledger, reviews
from storage.backup import backups_in
from storage.crypto import Keyring
from storage.db import make_engine, make_session_factory, reading, unit_of_work
from storage.destruction import sync
from storage.erasure_ledger import Entry, Erased, Head, Ledger
from storage.migrate import upgrade_database
from storage.models import AuditEntry, RecordStatus, Role, Staff, Team
from storage.types import utcnow
from tests.auxil.backup_helpers import fresh_database, manifest_of
from tests.auxil.cli_helpers import run_cli
from tests.auxil.customer_factory import staff_of
from tests.auxil.destruction_helpers import (
    NAME,
    file_destroy_request,
    request_in_chat,
    review_cards,
    rich_archived_customer,
    what_is_readable,
)
from tests.auxil.world import World
from tests.conftest import IS_POSTGRES, postgres_only

OTHER = "宁波海曙贸易有限公司"


@pytest.fixture
def ledger_env(cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The command line on the same ledger as the bot's sessions (tmp_path/erasures.log)."""
    monkeypatch.setenv("ERASURE_LEDGER", str(tmp_path / "erasures.log"))
    return tmp_path / "erasures.log"


def put(path: Path, text: str | None) -> None:
    """Write (or with None, remove) a ledger file by hand, as an operator or an attacker."""
    if text is None:
        path.unlink()
    else:
        path.write_text(text)


def ledger_header(path: Path) -> str:
    """The ledger's first line: its MAC key, wrapped by the master key."""
    return path.read_text().splitlines()[0]


def ledger_lines(path: Path) -> list[dict]:
    """The ledger's entries (its header line, the wrapped MAC key, left out)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if "ledger" not in line]


async def a_company(world: World) -> tuple:
    world.services.clock = utcnow  # decisions are stamped with the real time (reviews.decide)
    chen = await world.member("manager", "East", "Chen")
    wang = await world.member("manager", "East", "Wang")
    li = await world.member("salesperson", "East", "Li")
    sessions, keyring = world.services.sessions, world.services.keyring
    owner = await staff_of(sessions, li)
    doomed = await rich_archived_customer(sessions, keyring, owner, now=utcnow())
    kept = await rich_archived_customer(sessions, keyring, owner, now=utcnow(), name=OTHER)
    return chen, wang, li, doomed, kept


async def destroy_in_chat(world: World, chen, wang, customer_id: int) -> None:  # type: ignore[no-untyped-def]
    await request_in_chat(world, await staff_of(world.services.sessions, chen), customer_id)
    await wang.press("通过", review_cards(world, wang.id)[-1])


async def back_up(capsys: pytest.CaptureFixture[str], folder: Path) -> Path:
    assert await run_cli("backup", "--out", str(folder)) == 0, capsys.readouterr().err
    capsys.readouterr()
    [path] = backups_in(folder)
    return path


async def test_restoring_an_older_backup_with_force_erases_the_customer_again(
    world: World,
    ledger_env: Path,
    database_url: str,
    keyring: Keyring,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chen, wang, _, doomed, kept = await a_company(world)
    older = await back_up(capsys, tmp_path / "before")
    assert manifest_of(older).erasures == Head(0, "")

    await destroy_in_chat(world, chen, wang, doomed.customer_id)
    [line] = ledger_lines(ledger_env)
    assert (line["kind"], line["record_id"], line["number"]) == (
        "customer",
        doomed.customer_id,
        doomed.customer_no,
    )
    assert all(NAME not in json.dumps(e, ensure_ascii=False) for e in ledger_lines(ledger_env))
    await world.services.sessions.kw["bind"].dispose()  # the bot stopped for the restore

    assert await run_cli("restore", str(older), "--force") == 0, capsys.readouterr().err
    assert await what_is_readable(database_url, keyring, doomed.customer_id) == {
        "status": RecordStatus.destroyed
    }
    other = await what_is_readable(database_url, keyring, kept.customer_id)
    assert other["name"] == OTHER and other["key_persons"] == 1
    async with reading(world.services.sessions) as session:
        again = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "erasure.reapplied"))
        ).all()
        assert [e.entity_id for e in again] == [doomed.customer_id]
        assert (await audit.verify_chain(session)).ok
    assert len(ledger_lines(ledger_env)) == 1  # nothing appended twice

    # the bot on the restored database: an old button shows the tombstone
    await wang.press_data(review_cards(world, wang.id)[-1], f"cu:{doomed.customer_id}")
    text = wang.last_text()
    assert text.startswith(f"🪦 客户 {doomed.customer_no}") and NAME not in text, text

    # and into a fresh, empty database
    async with fresh_database(database_url, tmp_path, "fresh") as fresh:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", fresh)
            assert await run_cli("restore", str(older)) == 0, capsys.readouterr().err
        assert await what_is_readable(fresh, keyring, doomed.customer_id) == {
            "status": RecordStatus.destroyed
        }
        assert (await what_is_readable(fresh, keyring, kept.customer_id))["name"] == OTHER


async def test_a_backup_records_the_ledger_head_and_never_holds_the_ledger_or_keys(
    world: World,
    ledger_env: Path,
    tmp_path: Path,
    master_key_text: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chen, wang, _, doomed, _ = await a_company(world)
    await destroy_in_chat(world, chen, wang, doomed.customer_id)
    path = await back_up(capsys, tmp_path / "after")
    [line] = ledger_lines(ledger_env)
    assert manifest_of(path).erasures == Head(1, line["mac"])
    raw = path.read_bytes()
    assert line["mac"].encode() in raw  # in the manifest, as the head
    assert b'"prev"' not in raw and master_key_text.encode() not in raw
    assert await run_cli("erasures") == 0
    out = capsys.readouterr().out
    assert f"head: 1:{line['mac']}" in out and "1 entries, verified" in out


async def test_a_ledger_older_than_the_backup_refuses_the_restore(
    world: World,
    ledger_env: Path,
    database_url: str,
    keyring: Keyring,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chen, wang, _, doomed, _kept = await a_company(world)
    old_ledger = tmp_path / "old-erasures.log"
    put(old_ledger, "")
    await destroy_in_chat(world, chen, wang, doomed.customer_id)
    path = await back_up(capsys, tmp_path / "after")
    shutil.copy(old_ledger, ledger_env)  # an old copy of the data folder put back
    async with fresh_database(database_url, tmp_path, "fresh") as fresh:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", fresh)
            assert await run_cli("restore", str(path)) == 2
            err = capsys.readouterr().err
            assert "older than the backup" in err and "copy erasures.log" in err, err
            # nothing was loaded
            engine = make_engine(fresh)
            try:
                from storage.restore import rows_held

                assert await rows_held(fresh) == 0
            finally:
                await engine.dispose()


async def test_a_forged_ledger_line_refuses_restore_and_start(
    world: World,
    ledger_env: Path,
    database_url: str,
    keyring: Keyring,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chen, wang, _, doomed, kept = await a_company(world)
    older = await back_up(capsys, tmp_path / "before")
    await destroy_in_chat(world, chen, wang, doomed.customer_id)
    [line] = ledger_lines(ledger_env)
    line["record_id"] = kept.customer_id  # someone "destroys" another customer by hand
    line["number"] = kept.customer_no
    put(ledger_env, ledger_header(ledger_env) + "\n" + json.dumps(line) + "\n")
    await world.services.sessions.kw["bind"].dispose()

    assert await run_cli("restore", str(older), "--force") == 2
    err = capsys.readouterr().err
    assert "MAC does not match" in err, err
    assert (await what_is_readable(database_url, keyring, kept.customer_id))["name"] == OTHER

    assert await run_cli("erasures") == 1
    assert "FAILED verification" in capsys.readouterr().err
    settings = Settings()  # type: ignore[call-arg]
    with pytest.raises(preflight.StartupRefused) as refused:
        await preflight.sync_erasures(settings, keyring)
    assert refused.value.setting == "ERASURE_LEDGER"
    assert "put back the ledger kept with the keys" in refused.value.line
    assert "\n" not in refused.value.line
    # `run` stops there, with that one line and exit code 2
    with pytest.raises(SystemExit) as stopped:
        await asyncio.to_thread(cli.checked, lambda: asyncio.run(_prepare_run_offline(settings)))
    assert stopped.value.code == 2
    assert "ERASURE_LEDGER" in capsys.readouterr().err


async def _prepare_run_offline(settings: Settings) -> object:
    """`run`'s preparation without asking the Bot API who we are (no network in tests)."""
    original = preflight.check_bot_api

    async def offline(_settings: Settings) -> str:
        return "archive_bot"

    preflight.check_bot_api = offline  # type: ignore[assignment]
    try:
        return await cli._prepare_run(settings)
    finally:
        preflight.check_bot_api = original  # type: ignore[assignment]


@pytest.mark.skipif(IS_POSTGRES, reason="copies the SQLite file by hand")
async def test_start_up_erases_again_a_database_put_back_by_hand(
    world: World, ledger_env: Path, database_url: str, keyring: Keyring, tmp_path: Path
) -> None:
    chen, wang, _, doomed, _ = await a_company(world)
    engine = world.services.sessions.kw["bind"]
    await engine.dispose()
    database = Path(database_url.removeprefix("sqlite:///"))
    shutil.copy(database, tmp_path / "copy.db")
    await destroy_in_chat(world, chen, wang, doomed.customer_id)
    await engine.dispose()
    shutil.copy(tmp_path / "copy.db", database)  # an old copy put back, not through restore
    assert (await what_is_readable(database_url, keyring, doomed.customer_id))["name"] == NAME

    settings = Settings()  # type: ignore[call-arg]
    await preflight.sync_erasures(settings, keyring)
    assert await what_is_readable(database_url, keyring, doomed.customer_id) == {
        "status": RecordStatus.destroyed
    }


async def test_erasures_reapply_on_demand_and_record_what_the_ledger_lacks(
    world: World,
    ledger_env: Path,
    keyring: Keyring,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chen, wang, _, doomed, _ = await a_company(world)
    await destroy_in_chat(world, chen, wang, doomed.customer_id)
    put(ledger_env, None)  # the process died between the commit and the ledger line
    assert await run_cli("erasures", "--reapply") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "recorded 1 the ledger lacked" in out and "1 entries, verified" in out
    assert [e["record_id"] for e in ledger_lines(ledger_env)] == [doomed.customer_id]


@postgres_only
async def test_a_sqlite_backup_from_before_a_destruction_restores_erased_into_postgresql(
    ledger_env: Path,
    database_url: str,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    small = f"sqlite:///{tmp_path / 'small.db'}"
    await upgrade_database(small)
    engine = make_engine(small)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        erasure_ledger.use(factory, Ledger(ledger_env, keyring))
        async with unit_of_work(factory) as session:
            team = Team(name="East")
            session.add(team)
            await session.flush()
            people = [
                Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=team.id),
                Staff(telegram_id=2, display_name="Chen", role=Role.manager, team_id=team.id),
                Staff(telegram_id=3, display_name="Wang", role=Role.manager, team_id=team.id),
            ]
            session.add_all(people)
        doomed = await rich_archived_customer(factory, keyring, people[0], now=utcnow())
        monkeypatch.setenv("DATABASE_URL", small)
        older = await back_up(capsys, tmp_path / "before")
        review_id, _ = await file_destroy_request(
            factory, people[1], doomed.customer_id, now=utcnow()
        )
        async with unit_of_work(factory) as session:
            await reviews.decide(
                session, keyring=keyring, actor=people[2], review_id=review_id, approve=True
            )
    finally:
        await engine.dispose()
    assert len(ledger_lines(ledger_env)) == 1
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await run_cli("restore", str(older)) == 0, capsys.readouterr().err
    assert await what_is_readable(database_url, keyring, doomed.customer_id) == {
        "status": RecordStatus.destroyed
    }


async def test_start_up_is_quick_with_ten_thousand_ledger_lines(
    world: World, ledger_env: Path, keyring: Keyring
) -> None:
    """A ledger of 10,000 erasures over a database that holds none of them any more: read,
    checked and compared in a few IN queries."""
    await a_company(world)
    now = utcnow() - timedelta(days=1)
    ledger = Ledger(ledger_env, keyring)
    ledger.append(
        Entry.of(Erased.customer, 100_000 + n, 100_000 + n, f"KH-2020-{n:06d}", now)
        for n in range(10_000)
    )
    started = time.perf_counter()
    synced = await sync(world.services.sessions, ledger, keyring, now=utcnow())
    seconds = time.perf_counter() - started
    print(f"start-up with 10,000 ledger lines: {seconds:.2f} s")
    assert synced.head.count == 10_000 and synced.reapplied.total == 0
    assert synced.recorded == 0
    assert seconds < 10
