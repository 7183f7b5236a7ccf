"""Restore (恢复): a backup into the configured database, brought to the current schema, checked.

The steps, in order; everything that can refuse does so before the target is touched:

1. read the archive: a backup of this bot, a manifest format this version reads, a schema
   revision our migrations know, every master key id of the manifest in ENCRYPTION_KEYS, and
   the data part's SHA-256;
2. the target must hold no records, unless `force`, which first backs up what it replaces;
3. load: SQLite → SQLite through the online backup API into the configured file (under its
   lock, WAL and all, never a file copy under a live connection); PostgreSQL → PostgreSQL with
   `pg_restore`; SQLite → PostgreSQL by creating the schema with the real migrations at the
   backup's revision, copying table by table in foreign-key order in batches (COPY), and
   setting the id sequences past the copied ids. PostgreSQL → SQLite is refused: a custom-format
   dump needs a PostgreSQL server to be read, and moving to a smaller installation is not a
   use we support;
4. the row counts must equal the manifest's (checked right after loading, before migrations and
   the after-restore step may legitimately change them);
5. migrate to the current schema (a backup of an older schema restores and upgrades);
6. AFTER_RESTORE: the one place for work that must happen to restored data before anyone uses
   it: the erasure ledger of this installation is re-applied (`reapply_erasures`), so a
   customer destroyed after the backup was taken comes back erased, and the ledger must reach
   the head the backup's manifest recorded (checked before loading too);
7. verify: the audit chain reaches the manifest's head with the same MAC, and every customer's
   data key opens with the configured keys; then the restore itself is audited.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, destruction
from storage.backup import (
    PG_DATA,
    SQLITE_DATA,
    VERSION_TABLE,
    BackupError,
    Manifest,
    count_rows,
    extract_data,
    find_tool,
    gunzip,
    libpq_target,
    open_archive,
    run_tool,
    scratch,
    sqlite_file,
    tool_major,
)
from storage.crypto import DecryptionError, Keyring
from storage.db import make_engine, make_session_factory, reading, unit_of_work
from storage.destruction import apply as apply_erasures
from storage.destruction import check_backup_head
from storage.erasure import record_missing
from storage.erasure_ledger import Ledger, LedgerError
from storage.migrate import alembic_config, upgrade_database
from storage.models import Customer, DataKey

COPY_BATCH = 5000


class RestoreRefused(BackupError):
    """The restore did not start (nothing in the target was changed); `line` says why."""


class VerificationFailed(Exception):
    """The data was loaded but does not check out; `problems` are lines for the operator."""

    def __init__(self, problems: list[str], customers: list[tuple[int, str]] | None = None):
        super().__init__("; ".join(problems))
        self.problems = problems
        self.customers = customers or []


@dataclass(frozen=True)
class Restored:
    """What an after-restore step is given: the backup's manifest, the keys, and what the
    restore replaced (the backup `--force` took), where older state may be read from."""

    manifest: Manifest
    source: Path
    keyring: Keyring
    now: datetime
    data_dir: Path | None = None
    replaced: Path | None = None
    ledger: Ledger | None = None  # the erasure ledger of this installation (ERASURE_LEDGER)

    def erasure_ledger(self) -> Ledger | None:
        """The ledger to re-apply: the one given, else `erasures.log` in the data folder."""
        if self.ledger is not None:
            return self.ledger
        if self.data_dir is not None:
            return Ledger(self.data_dir / "erasures.log", self.keyring)
        return None


AfterRestore = Callable[[AsyncSession, Restored], Awaitable[None]]

# Steps run on the restored, migrated database, each in a unit of work of its own, before it is
# verified and used. Issue 11 item 4 appends the re-application of destruction records here
# (customers destroyed after the backup was taken must not come back readable). A step that
# finds the restored data unusable raises VerificationFailed: the restore then exits with code 2.
AFTER_RESTORE: list[AfterRestore] = []


@dataclass
class RestoreReport:
    manifest: Manifest
    replaced: Path | None
    rows: dict[str, int]
    audit_checked: int
    data_keys: int
    schema: str
    seconds: dict[str, float] = field(default_factory=dict)


# --- checks before anything changes ----------------------------------------------------------


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {revision.revision for revision in script.walk_revisions()}


def check_manifest(manifest: Manifest, *, target_backend: str, keyring: Keyring) -> None:
    if manifest.schema_revision is None:
        raise RestoreRefused("the backed-up database had no schema: nothing to restore")
    if manifest.schema_revision not in known_revisions():
        raise RestoreRefused(
            f"the backup's schema {manifest.schema_revision} is unknown to this version of the "
            "bot (made by a newer one): upgrade the bot, then restore"
        )
    missing = manifest.all_key_ids - {key.kid for key in keyring.keys}
    if missing:
        raise RestoreRefused(
            f"ENCRYPTION_KEYS lacks master key id {', '.join(sorted(missing))}, which the "
            "backup's data is sealed under: configure the keys of the installation the backup "
            "was made on (ENCRYPTION_KEYS, or its key file in DATA_DIR)"
        )
    if manifest.database == "postgresql" and target_backend == "sqlite":
        raise RestoreRefused(
            "a PostgreSQL backup restores only into PostgreSQL: set DATABASE_URL to a "
            "postgresql:// database"
        )
    if manifest.database not in ("sqlite", "postgresql"):
        raise RestoreRefused(f"unknown database kind {manifest.database!r} in the manifest")


async def rows_held(url: str) -> int:
    """How many rows the target's tables hold (alembic's own aside); 0 for a fresh database."""
    engine = make_engine(url)
    try:
        async with reading(make_session_factory(engine)) as session:
            return sum((await count_rows(session)).values())
    finally:
        await engine.dispose()


# --- loading ---------------------------------------------------------------------------------


def copy_into_sqlite(snapshot: Path, target: Path) -> None:
    """Write the snapshot into the target file through SQLite itself (backup API)."""
    source = sqlite3.connect(snapshot)
    try:
        destination = sqlite3.connect(target, timeout=30)
        try:
            source.backup(destination)
        finally:
            destination.close()
    except sqlite3.OperationalError as error:
        raise RestoreRefused(
            f"the SQLite file {target} cannot be written ({error}): stop the bot first"
        ) from None
    finally:
        source.close()


# Functions the migrations create (the staff stamp's trigger, 0015): a dump restores them too.
MIGRATION_FUNCTIONS = ("renew_staff_stamp()",)


async def drop_tables(url: str, also: set[str]) -> None:
    """Drop the archive's tables and functions in a PostgreSQL target (empty, or backed up
    under --force)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
            ours = set(SQLModel.metadata.tables) | {VERSION_TABLE} | also
            doomed = [n for n in names if n in ours]
            if doomed:
                quoted = ", ".join(connection.dialect.identifier_preparer.quote(n) for n in doomed)
                await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quoted} CASCADE")
            for function in MIGRATION_FUNCTIONS:
                await connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function} CASCADE")
    finally:
        await engine.dispose()


# Rows a migration writes into the fresh target, not copied over: the staff stamp (0015) is
# random on purpose, so a member cache filled before the restore cannot match it.
MIGRATION_FILLED = frozenset({"staff_changes"})


def _copy_order(names: list[str]) -> list[str]:
    """Foreign-key order (referenced tables first); tables the models no longer know last.
    Tables the migrations fill themselves keep the target's rows."""
    copied = [n for n in names if n != VERSION_TABLE and n not in MIGRATION_FILLED]
    known = [t.name for t in SQLModel.metadata.sorted_tables if t.name in copied]
    return known + sorted(n for n in copied if n not in known)


def _typed_columns(source: sa.TableClause) -> list[sa.ColumnElement[object]]:
    """The snapshot's columns read as the models' types (SQLite keeps dates and flags as text
    and numbers; PostgreSQL's COPY wants datetimes, dates and booleans)."""
    model = SQLModel.metadata.tables.get(source.name)
    typed: list[sa.ColumnElement[object]] = []
    for column in source.columns:
        if model is not None and column.name in model.c:
            typed.append(sa.type_coerce(column, model.c[column.name].type).label(column.name))
        else:
            typed.append(column)
    return typed


async def copy_sqlite_into_postgres(snapshot: Path, url: str, batch: int = COPY_BATCH) -> None:
    """Copy every table of the snapshot into the (migrated, empty) PostgreSQL target, in one
    transaction, then set each id sequence past the copied ids."""
    source = sa.create_engine(f"sqlite:///{snapshot}")
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    target = await asyncpg.connect(dsn)
    try:
        inspector = inspect(source)
        names = inspector.get_table_names()
        async with target.transaction():
            for name in _copy_order(names):
                # columns only: reflecting a whole table warns on (and skips) expression indexes
                table = sa.table(
                    name, *(sa.column(c["name"], c["type"]) for c in inspector.get_columns(name))
                )
                columns = [c.name for c in table.columns]
                with source.connect() as reader:
                    result = reader.execution_options(stream_results=True).execute(
                        sa.select(*_typed_columns(table))
                    )
                    while rows := result.fetchmany(batch):
                        await target.copy_records_to_table(
                            name, records=[tuple(r) for r in rows], columns=columns
                        )
                if "id" in columns:
                    sequence = await target.fetchval(
                        "SELECT pg_get_serial_sequence($1, 'id')", name
                    )
                    if sequence:
                        quoted = '"' + name.replace('"', '""') + '"'
                        await target.execute(
                            f"SELECT setval($1, COALESCE((SELECT max(id) FROM {quoted}), 1), "
                            f"(SELECT max(id) FROM {quoted}) IS NOT NULL)",
                            sequence,
                        )
    finally:
        await target.close()
        source.dispose()


def restore_postgres_dump(dump: Path, url: str, manifest: Manifest, pg_bin: Path | None) -> None:
    tool = find_tool("pg_restore", pg_bin)
    major = tool_major(tool)
    if manifest.dump_tool_major is not None and major < manifest.dump_tool_major:
        raise RestoreRefused(
            f"{tool} is version {major}, older than the pg_dump {manifest.dump_tool_major} "
            f"that made the backup: install postgresql-client-{manifest.dump_tool_major} or set "
            "PG_BIN"
        )
    target, env = libpq_target(url)
    argv = [
        str(tool),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        "--no-password",
        f"--dbname={target}",
        str(dump),
    ]
    run_tool(argv, env, "pg_restore")


# --- verification ----------------------------------------------------------------------------


async def unopened_data_keys(session: AsyncSession, keyring: Keyring) -> tuple[int, list]:
    """How many data keys opened, and (customer id, number) of each that did not."""
    rows = (
        await session.exec(
            select(DataKey.customer_id, DataKey.kek_id, DataKey.wrapped, Customer.customer_no)
            .join(Customer, col(Customer.id) == col(DataKey.customer_id))
            .where(col(DataKey.wrapped).is_not(None))
            .order_by(col(DataKey.customer_id))
        )
    ).all()
    bad = []
    for customer_id, kid, wrapped, number in rows:
        try:
            keyring.unwrap(kid, wrapped, customer_id=customer_id)
        except DecryptionError:
            bad.append((customer_id, number))
    return len(rows) - len(bad), bad


def _count_problems(manifest: Manifest, loaded: dict[str, int]) -> list[str]:
    problems = []
    for name, expected in sorted(manifest.tables.items()):
        found = loaded.get(name)
        if found != expected:
            problems.append(f"table {name}: {found} rows restored, the manifest says {expected}")
    return problems


# --- the restore -----------------------------------------------------------------------------


async def restore(
    path: Path,
    *,
    url: str,
    keyring: Keyring,
    work_dir: Path,
    now: datetime,
    force: bool = False,
    backup_first: Callable[[], Awaitable[Path]] | None = None,
    pg_bin: Path | None = None,
    data_dir: Path | None = None,
    ledger: Ledger | None = None,
) -> RestoreReport:
    """Restore the backup at `path` into `url`; see the module's docstring for the steps."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()

    manifest, _ = open_archive(path)
    target_backend = make_url(url).get_backend_name()
    target_backend = "sqlite" if target_backend == "sqlite" else "postgresql"
    check_manifest(manifest, target_backend=target_backend, keyring=keyring)
    early = Restored(manifest, path, keyring, now, data_dir=data_dir, ledger=ledger)
    kept = early.erasure_ledger()
    if kept is not None:
        try:  # before anything changes: a forged or older ledger refuses the restore
            check_backup_head(kept, manifest.erasures)
        except LedgerError as error:
            raise RestoreRefused(str(error)) from None
    with scratch(work_dir) as work:
        data = work / str(manifest.data["file"])
        extract_data(path, manifest, data)
        if target_backend == "sqlite":
            sqlite_file(url).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        held = await rows_held(url)
        replaced = None
        if held and not force:
            raise RestoreRefused(
                f"the database holds {held} rows: restore into an empty database, or add "
                "--force to replace them (a backup of them is taken first)"
            )
        if held:
            if backup_first is None:
                raise RestoreRefused("--force needs a backup of the database it replaces")
            replaced = await backup_first()
        lap("checks")
        if manifest.data["file"] == SQLITE_DATA:
            snapshot = work / "snapshot.sqlite"
            gunzip(data, snapshot)
            data.unlink()
            if target_backend == "sqlite":
                copy_into_sqlite(snapshot, sqlite_file(url))
            else:
                await drop_tables(url, set(manifest.tables))
                await upgrade_database(url, manifest.schema_revision or "head")
                await copy_sqlite_into_postgres(snapshot, url)
        elif manifest.data["file"] == PG_DATA:
            await drop_tables(url, set(manifest.tables))
            restore_postgres_dump(data, url, manifest, pg_bin)
        lap("load")
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        async with reading(factory) as session:
            loaded = await count_rows(session)
        problems = _count_problems(manifest, loaded)
        if problems:
            raise VerificationFailed(problems)
        await upgrade_database(url)
        lap("migrate")
        context = Restored(
            manifest, path, keyring, now, data_dir=data_dir, replaced=replaced, ledger=ledger
        )
        for step in AFTER_RESTORE:
            async with unit_of_work(factory) as session:
                await step(session, context)
        lap("after_restore")
        problems = []
        async with reading(factory) as session:
            try:
                chain = await audit.verify_chain(session, expect=manifest.audit_head)
            except audit.AuditKeyError as error:
                raise VerificationFailed([f"audit log: {error}"]) from None
            opened, bad = await unopened_data_keys(session, keyring)
            revision = (
                await session.exec(sa.text("SELECT version_num FROM alembic_version"))
            ).one()  # type: ignore[call-overload]
        if not chain.ok:
            problems.append(
                f"audit log broken at entry {chain.first_broken_id}: {chain.reason} "
                f"(the manifest's head is {manifest.audit_head})"
            )
        if bad:
            problems.append(
                f"{len(bad)} customers' data keys do not open with the configured keys: "
                + ", ".join(f"{number} (id {cid})" for cid, number in bad[:50])
                + (" …" if len(bad) > 50 else "")
            )
        if problems:
            raise VerificationFailed(problems, customers=bad)
        lap("verify")
        async with unit_of_work(factory) as session:
            await audit.record(
                session,
                action="restore",
                detail={
                    "file": path.name,
                    "backup_created_at": manifest.created_at,
                    "schema_from": manifest.schema_revision,
                    "head": manifest.audit_head.id if manifest.audit_head else None,
                    "replaced": replaced.name if replaced else None,
                },
            )
    finally:
        await engine.dispose()
    return RestoreReport(
        manifest=manifest,
        replaced=replaced,
        rows=loaded,
        audit_checked=chain.checked,
        data_keys=opened,
        schema=str(revision[0]),
        seconds=seconds,
    )


# --- the erasure ledger ----------------------------------------------------------------------


async def reapply_erasures(session: AsyncSession, restored: Restored) -> None:
    """Erase again what this installation's ledger names and the restored data still holds
    (a backup from before a destruction); append the restored destroyed customers it lacks.

    Raises VerificationFailed if the ledger is forged, or older than the backup (it lacks the
    head the manifest recorded): the data could then hold erasures nobody would re-apply.
    """
    ledger = restored.erasure_ledger()
    if ledger is None:
        if restored.manifest.erasures is not None and restored.manifest.erasures.count:
            raise VerificationFailed(
                [f"no erasure ledger was given to re-apply: {destruction.COPY_LEDGER}"]
            )
        return
    try:
        entries, _ = check_backup_head(ledger, restored.manifest.erasures)
    except LedgerError as error:
        raise VerificationFailed([f"erasure ledger: {error}"]) from None
    await apply_erasures(session, ledger, restored.keyring, entries, now=restored.now)
    await record_missing(session, ledger, entries)


AFTER_RESTORE.append(reapply_erasures)
