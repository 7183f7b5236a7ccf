"""`python -m bot backup` and `python -m bot restore FILE` (issue 11, items 1 and 2), run the way
an operator runs them, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

An operator backs up while the bot keeps writing, restores into a fresh database and finds the
same customers; the restore refuses what it must (a database with records, a damaged file, the
wrong keys, a newer format) before changing anything, and --force backs up what it replaces.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cli import main
from storage import audit
from storage.backup import MANIFEST, backups_in
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import SessionFactory, make_engine, make_session_factory, reading, unit_of_work
from storage.migrate import alembic_config, upgrade_database
from storage.models import AuditEntry, Customer, DataKey, Staff
from tests.auxil.backup_helpers import (
    archive_view,
    fill,
    flip_a_byte_of_the_data,
    fresh_database,
    manifest_of,
)
from tests.auxil.customer_factory import add_customer
from tests.auxil.settings_env import clean_settings_env
from tests.conftest import IS_POSTGRES, postgres_only

REPO_ROOT = Path(__file__).resolve().parents[2]
# the schema revision a fresh database is migrated to (the newest migration shipped)
HEAD_REVISION = ScriptDirectory.from_config(
    alembic_config("sqlite:///unused.db")
).get_current_head()


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, master_key_text: str
) -> Path:
    """The environment `python -m bot` reads: the test's database and master key."""
    clean_settings_env(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        ENCRYPTION_KEYS=master_key_text,
    )
    return tmp_path


async def cli(*argv: str) -> int:
    """Run main() in a worker thread: it calls asyncio.run, which needs a loop of its own."""
    return await asyncio.to_thread(main, list(argv))


def the_backup(folder: Path) -> Path:
    [path] = backups_in(folder)
    return path


async def back_up(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert await cli("backup", *argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


# --- a backup --------------------------------------------------------------------------------


async def test_a_backup_while_a_client_keeps_writing_is_consistent(
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Customers keep arriving during the backup; its snapshot's audit chain verifies up to the
    manifest's head and its rows are the manifest's, and it restores into a fresh database."""
    await fill(session_factory, keyring, count=3)
    written: list[int] = []
    backing_up = asyncio.Event()
    done = asyncio.Event()

    async def keep_writing() -> None:
        n = 0
        while not done.is_set():
            customer = await add_customer(session_factory, keyring, 700_201, f"写入中 {n}")
            if backing_up.is_set():
                written.append(customer.id or 0)
            n += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.3)
    backing_up.set()
    try:
        assert await cli("backup") == 0, capsys.readouterr().err
    finally:
        await asyncio.sleep(0.2)
        done.set()
        await writer
    assert written, "the writer wrote nothing while the backup ran"
    out = capsys.readouterr().out
    path = the_backup(cli_env / "data" / "backups")
    assert f"backup written: {path}" in out
    manifest = manifest_of(path)
    assert manifest.database == ("postgresql" if IS_POSTGRES else "sqlite")
    assert manifest.schema_revision == HEAD_REVISION
    assert manifest.audit_head is not None
    assert manifest.key_ids["data_keys"] == [keyring.current.kid]
    assert manifest.key_ids["audit_key"] == [keyring.current.kid]
    async with reading(session_factory) as session:
        total = len((await session.exec(select(Customer.id))).all())
    assert 3 < manifest.tables["customers"] < total  # some arrived before, some after

    async with fresh_database(database_url, tmp_path, "restored") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(path)) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "verified: audit log intact" in out
        assert f"head {manifest.audit_head}" in out
        engine = make_engine(target)
        try:
            factory = make_session_factory(engine)
            audit.use_keyring(factory, keyring)
            async with reading(factory) as session:
                restored = len((await session.exec(select(Customer.id))).all())
                chain = await audit.verify_chain(session, expect=manifest.audit_head)
                restore_entry = (
                    await session.exec(select(AuditEntry).where(AuditEntry.action == "restore"))
                ).one()
        finally:
            await engine.dispose()
    assert restored == manifest.tables["customers"]
    assert chain.ok
    assert json.loads(restore_entry.detail or "{}")["file"] == path.name


async def test_the_backup_is_private_and_holds_no_key(
    cli_env: Path,
    session_factory: SessionFactory,
    keyring: Keyring,
    master_key_text: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0600 in a 0700 folder; neither the master key nor the key file's content is in it,
    compressed or not; the manifest names the key id only."""
    await fill(session_factory, keyring, count=2)
    key_file = cli_env / "data" / "encryption.key"
    key_file.parent.mkdir(mode=0o700, exist_ok=True)
    key_file.write_text(master_key_text + "\n")
    out = await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p != path]  # no scratch left behind
    raw = path.read_bytes()
    with tarfile.open(path) as tar:
        names = tar.getnames()
        contents = [tar.extractfile(name).read() for name in names]  # type: ignore[union-attr]
    unpacked = [
        gzip.decompress(c) if n.endswith(".gz") else c for n, c in zip(names, contents, strict=True)
    ]
    secret = decode_master_key(master_key_text)
    for blob in (raw, *contents, *unpacked):
        for needle in (
            master_key_text.encode(),
            key_file.read_bytes().strip(),
            secret,
            base64.b64encode(secret),
        ):
            assert needle not in blob
    assert keyring.current.kid in out and master_key_text not in out
    assert names[0] == MANIFEST


async def test_backup_keeps_backup_keep_files_and_out_is_never_pruned(
    cli_env: Path,
    session_factory: SessionFactory,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(session_factory, keyring, count=1)
    folder = cli_env / "elsewhere" / "backups"
    monkeypatch.setenv("BACKUP_DIR", str(folder))
    monkeypatch.setenv("BACKUP_KEEP", "2")
    made = []
    for _ in range(4):
        await back_up(capsys)
        made.append(backups_in(folder)[-1])
    assert backups_in(folder) == made[-2:]
    assert "removed 1 older backups (BACKUP_KEEP=2)" in (await back_up(capsys))
    out = cli_env / "copies"
    for _ in range(3):
        await back_up(capsys, "--out", str(out))
    assert len(backups_in(out)) == 3
    assert len(backups_in(folder)) == 2


async def test_a_bad_backup_setting_is_named(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (("BACKUP_HOUR", "25"), ("BACKUP_KEEP", "0"), ("PG_BIN", "/nonexistent")):
        monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as stopped:
            main(["backup"])
        assert stopped.value.code == 2
        assert f"The bot cannot start: {name}: " in capsys.readouterr().err
        monkeypatch.delenv(name)


# --- restore ---------------------------------------------------------------------------------


async def test_restore_into_a_fresh_database_gives_the_same_archive(
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(session_factory, keyring, count=3)
    before = await archive_view(database_url, keyring)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    async with fresh_database(database_url, tmp_path, "restored") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(path)) == 0, capsys.readouterr().err
        assert "3 customer data keys open" in capsys.readouterr().out
        assert await archive_view(target, keyring) == before
        # and the restored database is a working one: ids go on where they stopped
        engine = make_engine(target)
        try:
            factory = make_session_factory(engine)
            audit.use_keyring(factory, keyring)
            added = await add_customer(factory, keyring, 700_201, "恢复后新客户")
        finally:
            await engine.dispose()
        assert added.id == 4 and added.customer_no.endswith("000004")


async def test_restore_refuses_a_database_with_records_and_force_backs_it_up_first(
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(session_factory, keyring, count=2)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    await add_customer(session_factory, keyring, 700_201, "备份之后的客户")
    after = await archive_view(database_url, keyring)

    assert await cli("restore", str(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("restore refused: the database holds ") and "--force" in err
    assert await archive_view(database_url, keyring) == after  # nothing changed

    assert await cli("restore", str(path), "--force") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    [replaced] = backups_in(cli_env / "data" / "backups", prefix="pre-restore")
    assert f"the database being replaced was backed up first: {replaced}" in out
    assert "备份之后的客户" not in str(await archive_view(database_url, keyring))
    # what --force replaced comes back from its backup
    async with fresh_database(database_url, tmp_path, "replaced") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(replaced)) == 0, capsys.readouterr().err
        assert await archive_view(target, keyring) == after


@pytest.mark.parametrize(
    "damage",
    ["missing", "flipped byte", "not a tar", "tar without manifest", "newer format"],
)
async def test_restore_refuses_what_is_not_a_sound_backup(
    damage: str,
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(session_factory, keyring, count=1)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    expected = {
        "missing": "no such file",
        "flipped byte": "wrong checksum",
        "not a tar": "not a backup of this bot",
        "tar without manifest": "not a backup of this bot (no manifest)",
        "newer format": "made by a newer version of the bot (backup format 2",
    }[damage]
    if damage == "missing":
        path = path.with_name("gone.tar")
    elif damage == "flipped byte":
        flip_a_byte_of_the_data(path)
    elif damage == "not a tar":
        path.write_bytes(os.urandom(5000))
    elif damage == "tar without manifest":
        path.unlink()
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo("notes.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
    else:
        manifest = json.loads(manifest_of(path).to_json())
        manifest["format_version"] = 2
        body = json.dumps(manifest).encode()
        with tarfile.open(path) as old:
            data = old.getmember(manifest["data"]["file"])
            payload = old.extractfile(data).read()  # type: ignore[union-attr]
        path.unlink()
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
            tar.addfile(data, io.BytesIO(payload))
    async with fresh_database(database_url, tmp_path, "restored") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(path)) == 2
        err = capsys.readouterr().err
        assert err.startswith("restore refused: ") and expected in err, err
        assert len(err.strip().splitlines()) == 1
        engine = make_engine(target)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(
                    lambda c: c.dialect.get_table_names(c)  # nothing was created
                )
        finally:
            await engine.dispose()
        assert tables == []


async def test_restore_with_other_keys_names_the_missing_key_id(
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(session_factory, keyring, count=1)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    other = new_master_key()
    monkeypatch.setenv("ENCRYPTION_KEYS", other)
    async with fresh_database(database_url, tmp_path, "restored") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(path)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"restore refused: ENCRYPTION_KEYS lacks master key id {keyring.current.kid}, which the "
        "backup's data is sealed under: configure the keys of the installation the backup was "
        "made on (ENCRYPTION_KEYS, or its key file in DATA_DIR)\n"
    )
    assert other not in err


async def test_a_data_key_that_does_not_open_fails_the_restore_with_its_customer(
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The key id is configured, but one customer's wrapped key was altered: exit code 2, and
    the customer is named."""
    customers = await fill(session_factory, keyring, count=2)
    victim = customers[1]
    async with unit_of_work(session_factory) as session:
        row = (await session.exec(select(DataKey).where(DataKey.customer_id == victim.id))).one()
        wrapped = bytearray(row.wrapped or b"")
        wrapped[-1] ^= 0x01
        await session.exec(
            update(DataKey).where(DataKey.id == row.id).values(wrapped=bytes(wrapped))  # type: ignore[arg-type]
        )
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    async with fresh_database(database_url, tmp_path, "restored") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(path)) == 2
    err = capsys.readouterr().err
    assert (
        f"restore verification FAILED: 1 customers' data keys do not open with the configured "
        f"keys: {victim.customer_no} (id {victim.id})" in err
    )
    assert "do not start the bot on it" in err


async def test_a_backup_of_an_older_schema_restores_and_is_upgraded(
    cli_env: Path,
    database_url: str,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A database still at 0006 (before staff over time) is backed up, restored and migrated."""
    async with fresh_database(database_url, tmp_path, "old") as old:
        await upgrade_database(old, "0006_outbox_chats")
        engine = make_engine(old)
        try:
            factory = make_session_factory(engine)
            audit.use_keyring(factory, keyring)
            async with unit_of_work(factory) as session:
                await session.exec(
                    text(
                        "INSERT INTO teams (name, created_at, updated_at) "
                        "VALUES ('East', '2026-01-02 03:04:05', '2026-01-02 03:04:05')"
                    )
                )
                await audit.record(session, action="team_created", entity="team", entity_id=1)
        finally:
            await engine.dispose()
        monkeypatch.setenv("DATABASE_URL", old)
        await back_up(capsys)
        path = the_backup(cli_env / "data" / "backups")
        assert manifest_of(path).schema_revision == "0006_outbox_chats"
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await cli("restore", str(path)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "schema 0006_outbox_chats" in out and f"schema now {HEAD_REVISION}" in out
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: {col["name"] for col in c.dialect.get_columns(c, "staff")}
            )
            teams = (await connection.exec_driver_sql("SELECT name FROM teams")).all()
    finally:
        await engine.dispose()
    assert "last_seen_at" in columns  # added by 0007
    assert [t[0] for t in teams] == ["East"]


# --- PostgreSQL ------------------------------------------------------------------------------


@postgres_only
async def test_a_sqlite_backup_restores_into_postgresql(
    cli_env: Path,
    database_url: str,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Moving to a bigger installation is a restore: the schema by the real migrations, the rows
    table by table, the sequences set past the copied ids."""
    small = f"sqlite:///{tmp_path / 'small.db'}"
    await upgrade_database(small)
    engine = make_engine(small)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        await fill(factory, keyring, count=3)
    finally:
        await engine.dispose()
    before = await archive_view(small, keyring)
    monkeypatch.setenv("DATABASE_URL", small)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await cli("restore", str(path)) == 0, capsys.readouterr().err
    assert "from sqlite" in capsys.readouterr().out
    assert await archive_view(database_url, keyring) == before
    # the staff stamp the gates' member caches compare with is the target's own, not the
    # backup's, and a staff change still renews it
    [restored] = await staff_stamps(database_url)
    assert [restored] != await staff_stamps(small)
    engine = make_engine(database_url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        added = await add_customer(factory, keyring, 700_201, "迁移后新客户")
    finally:
        await engine.dispose()
    assert added.id == 4
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(Staff).values(active=Staff.active))
    finally:
        await engine.dispose()
    [renewed] = await staff_stamps(database_url)
    assert renewed != restored


async def staff_stamps(url: str) -> list[float]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT stamp FROM staff_changes"))
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


@postgres_only
async def test_a_postgresql_backup_is_refused_by_sqlite(
    cli_env: Path,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(session_factory, keyring, count=1)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'small.db'}")
    assert await cli("restore", str(path)) == 2
    assert "a PostgreSQL backup restores only into PostgreSQL" in capsys.readouterr().err


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@postgres_only
async def test_backup_without_pg_dump_says_so_in_one_line(
    database_url: str,
    session_factory: SessionFactory,
    master_key_text: str,
    tmp_path: Path,
) -> None:
    env = {
        "PATH": str(tmp_path / "empty-bin"),
        "HOME": str(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "ENCRYPTION_KEYS": master_key_text,
    }
    (tmp_path / "empty-bin").mkdir()
    done = await asyncio.to_thread(_run, env, "backup")
    assert done.returncode == 2
    assert done.stderr == (
        "backup failed: pg_dump was not found on PATH: install the PostgreSQL client of the "
        "server's version (e.g. apt install postgresql-client-15) or set PG_BIN to its bin "
        "folder\n"
    )
    # an old client in PG_BIN is refused by its version
    old = tmp_path / "old-bin"
    old.mkdir()
    fake = old / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    fake.chmod(0o755)
    done = await asyncio.to_thread(_run, {**env, "PG_BIN": str(old)}, "backup")
    assert done.returncode == 2
    assert done.stderr.startswith(f"backup failed: {fake} is version 9, older than the server")
    assert not backups_in(tmp_path / "data" / "backups")


# --- the after-restore step (issue 11 item 4 hooks destruction records here) ------------------


async def test_after_restore_steps_run_on_the_migrated_database_before_it_is_verified(
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A step sees the current schema and the backup's manifest; what it writes (here: an
    audit entry, as re-applying a destruction would) is there once the restore has verified."""
    from storage import restore as restore_module

    await fill(session_factory, keyring, count=1)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")
    seen: list[tuple[str, str]] = []

    async def step(session: AsyncSession, restored: restore_module.Restored) -> None:
        revision = (await session.exec(text("SELECT version_num FROM alembic_version"))).one()
        seen.append((revision[0], restored.source.name))
        await audit.record(session, action="restore.step", detail={"backup": restored.source.name})

    monkeypatch.setattr(restore_module, "AFTER_RESTORE", [step])
    async with fresh_database(database_url, tmp_path, "restored") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(path)) == 0, capsys.readouterr().err
        engine = make_engine(target)
        try:
            factory = make_session_factory(engine)
            audit.use_keyring(factory, keyring)
            async with reading(factory) as session:
                actions = (
                    await session.exec(select(AuditEntry.action).order_by(AuditEntry.id))  # type: ignore[arg-type]
                ).all()
        finally:
            await engine.dispose()
    assert seen == [(HEAD_REVISION, path.name)]
    assert actions[-2:] == ["restore.step", "restore"]


async def test_a_failing_after_restore_step_stops_the_restore(
    cli_env: Path,
    database_url: str,
    session_factory: SessionFactory,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from storage import restore as restore_module

    await fill(session_factory, keyring, count=1)
    await back_up(capsys)
    path = the_backup(cli_env / "data" / "backups")

    async def step(session: AsyncSession, restored: restore_module.Restored) -> None:
        raise restore_module.VerificationFailed(["destruction records could not be re-applied"])

    monkeypatch.setattr(restore_module, "AFTER_RESTORE", [step])
    async with fresh_database(database_url, tmp_path, "restored") as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert await cli("restore", str(path)) == 2
    err = capsys.readouterr().err
    assert "restore verification FAILED: destruction records could not be re-applied" in err
