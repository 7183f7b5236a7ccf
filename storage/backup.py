"""Backups (定期备份): a consistent snapshot of the database, compressed, with a manifest.

One backup is one tar file (uncompressed: its members are compressed already):

    manifest.json          what the backup holds (format below), written first
    database.sqlite.gz     SQLite: the snapshot, gzip-compressed
    database.pgdump        PostgreSQL: `pg_dump --format=custom` (compressed by pg_dump)

SQLite: the online backup API (`sqlite3.Connection.backup`, all pages in one step) rather than
`VACUUM INTO`: it copies pages as they are, which is quicker than rebuilding every table and
index, and in one step it reads inside one read transaction, so the copy is consistent while
the bot keeps writing (WAL: writers are not held up by a reader). The manifest's facts (row
counts, the audit log's head, key ids) are read from the snapshot itself, so they describe
exactly what is in the file. gzip (the standard library) rather than zstd: most of the data
is sealed, i.e. random bytes, so a stronger compressor would gain little for a new dependency;
and at level 1, which on a realistic archive is twice as fast as level 6 for a file 3% larger.

PostgreSQL: one REPEATABLE READ transaction exports its snapshot (`pg_export_snapshot`), the
manifest's facts are read in it, and `pg_dump --snapshot` dumps exactly that snapshot.

Keys are never written into a backup: the database holds data keys and the audit MAC key only
wrapped by the master keys, and the manifest names the master key ids needed (never a key).

Manifest (format version 1; `FORMAT_VERSION`, a reader refuses newer ones):
    format, format_version, created_at (UTC ISO), app_version, database ("sqlite" |
    "postgresql"), server_major and dump_tool_major (PostgreSQL), schema_revision (alembic's
    version in the database), tables {name: rows}, audit_head {id, mac} or null, key_ids
    {kind: [master key ids]}, data {file, format, bytes, sha256} (of the data member as stored),
    erasures {count, mac} or null: the erasure ledger's head (optional: older backups lack it;
    the ledger and the keys are never in a backup).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit
from storage.crypto import Keyring
from storage.db import make_engine, make_session_factory, reading, unit_of_work
from storage.erasure_ledger import Head, Ledger, LedgerError
from storage.key_usage import master_keys_in_use

FORMAT = "customer-archive-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_DATA = "database.sqlite.gz"
PG_DATA = "database.pgdump"
PREFIX = "backup"  # scheduled and `python -m bot backup`; only these are pruned
PRE_RESTORE = "pre-restore"  # what `restore --force` replaced; kept until removed by hand
_NAME = re.compile(r"^(?P<prefix>[a-z-]+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.tar$")
_CHUNK = 1 << 20
VERSION_TABLE = "alembic_version"


class BackupError(Exception):
    """A backup that cannot be made or read; `line` is what the operator is shown."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


# --- the manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the snapshot holds, read from the snapshot itself."""

    schema_revision: str | None
    tables: dict[str, int]
    audit_head: audit.AuditHead | None
    key_ids: dict[str, list[str]]


@dataclass(frozen=True)
class Manifest:
    created_at: str
    app_version: str
    database: str
    schema_revision: str | None
    tables: dict[str, int]
    audit_head: audit.AuditHead | None
    key_ids: dict[str, list[str]]
    data: dict[str, Any]
    server_major: int | None = None
    dump_tool_major: int | None = None
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # fields of a later version, kept
    # the erasure ledger's head when the backup was taken (None: a backup made before there
    # was one); a restore needs a ledger that reaches it (storage.destruction)
    erasures: Head | None = None

    @property
    def all_key_ids(self) -> set[str]:
        return {kid for kids in self.key_ids.values() for kid in kids}

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "format_version": self.format_version,
            "created_at": self.created_at,
            "app_version": self.app_version,
            "database": self.database,
            "server_major": self.server_major,
            "dump_tool_major": self.dump_tool_major,
            "schema_revision": self.schema_revision,
            "tables": self.tables,
            "audit_head": (
                {"id": self.audit_head.id, "mac": self.audit_head.mac} if self.audit_head else None
            ),
            "key_ids": self.key_ids,
            "data": self.data,
            "erasures": (
                {"count": self.erasures.count, "mac": self.erasures.mac} if self.erasures else None
            ),
            **self.extra,
        }
        return json.dumps(body, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BackupError("not a backup of this bot: its manifest is not JSON") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise BackupError("not a backup of this bot: its manifest names another format")
        version = body.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise BackupError("not a backup of this bot: its manifest has no format version")
        if version > FORMAT_VERSION:
            raise BackupError(
                f"the backup was made by a newer version of the bot (backup format {version}; "
                f"this one reads up to {FORMAT_VERSION}): upgrade the bot, then restore"
            )
        known = {
            "format",
            "format_version",
            "created_at",
            "app_version",
            "database",
            "server_major",
            "dump_tool_major",
            "schema_revision",
            "tables",
            "audit_head",
            "key_ids",
            "data",
            "erasures",
        }
        try:
            head = body["audit_head"]
            return cls(
                created_at=str(body["created_at"]),
                app_version=str(body["app_version"]),
                database=str(body["database"]),
                schema_revision=body["schema_revision"],
                tables={str(k): int(v) for k, v in body["tables"].items()},
                audit_head=audit.AuditHead(int(head["id"]), str(head["mac"])) if head else None,
                key_ids={str(k): [str(i) for i in v] for k, v in body["key_ids"].items()},
                data=dict(body["data"]),
                server_major=body.get("server_major"),
                dump_tool_major=body.get("dump_tool_major"),
                format_version=version,
                extra={k: v for k, v in body.items() if k not in known},
                erasures=_erasures_head(body.get("erasures")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BackupError("not a backup of this bot: its manifest is incomplete") from None


def _erasures_head(value: Any) -> Head | None:
    """The manifest's `erasures` {count, mac}; absent in backups made before the ledger."""
    if value is None:
        return None
    return Head(int(value["count"]), str(value["mac"]))


def app_version() -> str:
    try:
        return metadata.version("customer-archive-bot")
    except metadata.PackageNotFoundError:
        return "unknown"


_KEY_KINDS = {
    "data keys": "data_keys",
    "blind indexes": "blind_indexes",
    "audit log key": "audit_key",
    "drafts": "drafts",
}


def quote(session: AsyncSession, name: str) -> str:
    return session.get_bind().dialect.identifier_preparer.quote(name)


async def table_names(session: AsyncSession) -> list[str]:
    connection = await session.connection()
    return sorted(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def count_rows(session: AsyncSession, tables: list[str] | None = None) -> dict[str, int]:
    """Rows per table (every table but alembic's own, unless `tables` names them)."""
    names = tables if tables is not None else await table_names(session)
    counts = {}
    for name in names:
        if name == VERSION_TABLE:
            continue
        statement = text(f"SELECT count(*) FROM {quote(session, name)}")
        counts[name] = int((await session.exec(statement)).scalar_one())  # type: ignore[call-overload]
    return counts


async def schema_revision(session: AsyncSession, tables: list[str]) -> str | None:
    if VERSION_TABLE not in tables:
        return None
    statement = text(f"SELECT version_num FROM {VERSION_TABLE}")
    found = (await session.exec(statement)).scalars().all()  # type: ignore[call-overload]
    return str(found[0]) if found else None


async def read_facts(session: AsyncSession) -> Facts:
    """Schema revision, rows per table, the audit head and the key ids, in one transaction."""
    tables = await table_names(session)
    usage = await master_keys_in_use(session, tables=set(tables))
    key_ids = {
        _KEY_KINDS.get(kind, kind): sorted(kid for kid, n in counter.items() if n)
        for kind, counter in usage.by_kind.items()
    }
    head = await audit.head(session) if "audit_log" in tables else None
    return Facts(
        schema_revision=await schema_revision(session, tables),
        tables=await count_rows(session, tables),
        audit_head=head,
        key_ids=key_ids,
    )


# --- files -----------------------------------------------------------------------------------


def private_dir(folder: Path) -> Path:
    """The backup folder, made 0700 when missing (like the data folder)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(
            f"BACKUP_DIR: cannot create {folder} ({error.strerror or error}); set BACKUP_DIR "
            "to a folder the bot's user may write"
        ) from None
    if not folder.is_dir():
        raise BackupError(f"BACKUP_DIR: {folder} is not a folder")
    return folder


@contextmanager
def scratch(folder: Path) -> Iterator[Path]:
    """A private (0700) folder for the snapshot while it is made or read, always removed: it
    holds the archive's records uncompressed."""
    path = Path(tempfile.mkdtemp(prefix=".scratch-", dir=private_dir(folder)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _archive_name(folder: Path, prefix: str, now: datetime) -> Path:
    """A name after every backup of the same second: one past the highest number taken, never
    a lower one freed by pruning (which would sort as the oldest and be pruned next)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    taken = [
        int(match["n"] or 1)
        for path in (folder.iterdir() if folder.is_dir() else ())
        if (match := _NAME.match(path.name.removeprefix(".").removesuffix(".partial")))
        and match["prefix"] == prefix
        and match["stamp"] == stamp
    ]
    n = max(taken, default=0) + 1
    return folder / (f"{prefix}-{stamp}.tar" if n == 1 else f"{prefix}-{stamp}-{n}.tar")


def _write_archive(path: Path, manifest: Manifest, data: Path) -> None:
    """Write the tar under a hidden name, 0600, then rename it: a half-written archive never
    looks like a backup."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
            body = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(body))
            info = tarfile.TarInfo(str(manifest.data["file"]))
            info.size, info.mode, info.mtime = data.stat().st_size, 0o600, info.mtime
            with data.open("rb") as source:
                tar.addfile(info, source)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def backups_in(folder: Path, prefix: str = PREFIX) -> list[Path]:
    """The backups of `prefix` in `folder`, oldest first (by the time in their names)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and match["prefix"] == prefix and path.is_file():
            found.append((match["stamp"], int(match["n"] or 1), path))
    return [path for *_, path in sorted(found)]


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups; call only after a successful one."""
    old = backups_in(folder)[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
    return old


# --- PostgreSQL's tools ----------------------------------------------------------------------


def find_tool(name: str, pg_bin: Path | None) -> Path:
    """pg_dump / pg_restore from PG_BIN, else from PATH."""
    if pg_bin is not None:
        candidate = Path(pg_bin) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise BackupError(
            f"PG_BIN: there is no {name} in {pg_bin}; point PG_BIN at the "
            "PostgreSQL client's bin folder (e.g. /usr/lib/postgresql/15/bin)"
        )
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} was not found on PATH: install the PostgreSQL client of the server's "
            "version (e.g. apt install postgresql-client-15) or set PG_BIN to its bin folder"
        )
    return Path(found)


def tool_major(tool: Path) -> int:
    """The major version a PostgreSQL client tool reports (`pg_dump (PostgreSQL) 15.18`)."""
    try:
        done = subprocess.run(
            [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as error:
        raise BackupError(f"{tool} cannot be run ({error.strerror or error})") from None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", done.stdout)
    if done.returncode != 0 or match is None:
        raise BackupError(f"{tool} did not say its version; is it PostgreSQL's {tool.name}?")
    return int(match[1])  # 9.6 → 9: older than any server this bot supports anyway


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """The database as pg_dump / pg_restore take it, and their environment: the password goes
    in PGPASSWORD, never on a command line others may read in `ps`."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def run_tool(argv: list[str], env: dict[str, str], what: str) -> None:
    """Run a PostgreSQL tool; its first error line becomes the operator's line."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BackupError(f"{argv[0]} cannot be run ({error.strerror or error})") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()] or lines
        raise BackupError(f"{what} failed: {(errors or ['no message'])[0].strip()[:300]}")


# --- making a backup -------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    audit_problem: str | None = None  # the backup is whole, but its audit entry failed

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def sqlite_file(url: str) -> Path:
    database = make_url(url).database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("DATABASE_URL: only a SQLite file can be backed up")
    return Path(database)


def sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy the live database into `target` in one step of the online backup API: one read
    transaction, so a consistent snapshot while writers go on."""
    if not source.is_file():
        raise BackupError(f"DATABASE_URL: the SQLite file {source} does not exist")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    live = sqlite3.connect(source, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            live.backup(copy)  # pages=-1: everything in one step
        finally:
            copy.close()
    except sqlite3.Error as error:
        raise BackupError(f"the SQLite snapshot failed: {error}") from None
    finally:
        live.close()


async def _facts_of_sqlite_file(path: Path) -> Facts:
    engine = make_engine(f"sqlite:///{path}")
    try:
        async with reading(make_session_factory(engine)) as session:
            facts = await read_facts(session)
    finally:
        await engine.dispose()
    plain = sqlite3.connect(path)  # reading it took it into WAL: back to one plain file
    try:
        plain.execute("PRAGMA journal_mode=DELETE")
    finally:
        plain.close()
    return facts


def _gzip(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with (
        source.open("rb") as raw,
        os.fdopen(fd, "wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as packed,
    ):
        shutil.copyfileobj(raw, packed, _CHUNK)


async def _sqlite_backup(url: str, work: Path) -> tuple[Facts, Path, dict[str, Any]]:
    snapshot = work / "snapshot.sqlite"
    sqlite_snapshot(sqlite_file(url), snapshot)
    facts = await _facts_of_sqlite_file(snapshot)
    packed = work / SQLITE_DATA
    _gzip(snapshot, packed)
    snapshot.unlink()
    return facts, packed, {"file": SQLITE_DATA, "format": "sqlite3+gzip"}


async def _postgres_backup(
    url: str, work: Path, pg_bin: Path | None
) -> tuple[Facts, Path, dict[str, Any], int, int]:
    tool = find_tool("pg_dump", pg_bin)
    major = tool_major(tool)
    dump = work / PG_DATA
    target, env = libpq_target(url)
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with connection.begin():
                server = int(
                    (await connection.exec_driver_sql("SHOW server_version_num")).scalar_one()
                )
                server_major = server // 10000
                if major < server_major:
                    raise BackupError(
                        f"{tool} is version {major}, older than the server ({server_major}): "
                        f"install postgresql-client-{server_major} or set PG_BIN to its bin folder"
                    )
                exported = (
                    await connection.exec_driver_sql("SELECT pg_export_snapshot()")
                ).scalar_one()
                async with AsyncSession(bind=connection) as session:
                    facts = await read_facts(session)
                argv = [
                    str(tool),
                    "--format=custom",
                    f"--snapshot={exported}",
                    "--no-password",
                    f"--file={dump}",
                    f"--dbname={target}",
                ]
                await asyncio.to_thread(run_tool, argv, env, "pg_dump")
    finally:
        await engine.dispose()
    os.chmod(dump, 0o600)
    return facts, dump, {"file": PG_DATA, "format": "pg_dump-custom"}, server_major, major


async def create_backup(
    url: str,
    *,
    folder: Path,
    keyring: Keyring,
    now: datetime,
    pg_bin: Path | None = None,
    prefix: str = PREFIX,
    reason: str = "command",
    ledger: Ledger | None = None,
) -> BackupResult:
    """Take a backup of the database at `url` into `folder`, and audit it.

    Runs its own engines (so it may run in a worker thread with a loop of its own, as the
    scheduler does); never touches the bot's sessions. The manifest records `ledger`'s head
    (the erasure ledger), read after the snapshot; the ledger itself stays with the keys.
    """
    backend = make_url(url).get_backend_name()
    with scratch(folder) as work:
        try:
            if backend == "sqlite":
                facts, data, described = await _sqlite_backup(url, work)
                server_major = dump_major = None
            else:
                facts, data, described, server_major, dump_major = await _postgres_backup(
                    url, work, pg_bin
                )
        except SQLAlchemyError as error:
            raise BackupError(f"the database could not be read ({_first_line(error)})") from None
        except OSError as error:
            raise BackupError(f"writing the backup failed ({error.strerror or error})") from None
        described.update(bytes=data.stat().st_size, sha256=_sha256(data))
        erasures = None
        if ledger is not None:
            try:
                erasures = ledger.head()
            except LedgerError as error:
                raise BackupError(
                    f"the erasure ledger does not check out ({error}): put back the ledger "
                    "kept with the keys before backing up"
                ) from None
        manifest = Manifest(
            created_at=now.isoformat(),
            app_version=app_version(),
            database="sqlite" if backend == "sqlite" else "postgresql",
            schema_revision=facts.schema_revision,
            tables=facts.tables,
            audit_head=facts.audit_head,
            key_ids=facts.key_ids,
            data=described,
            server_major=server_major,
            dump_tool_major=dump_major,
            erasures=erasures,
        )
        path = _archive_name(folder, prefix, now)
        try:
            _write_archive(path, manifest, data)
        except OSError as error:
            raise BackupError(f"writing {path} failed ({error.strerror or error})") from None
    problem = await _audit_backup(url, keyring, path, manifest, reason)
    return BackupResult(path, manifest, problem)


async def _audit_backup(
    url: str, keyring: Keyring, path: Path, manifest: Manifest, reason: str
) -> str | None:
    """SPEC section 2: backups are audited (after the snapshot, naming what it reached).
    A database whose audit key the configured keys do not open (one `restore --force` is
    about to replace) is still backed up: the reason is returned instead."""
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        async with unit_of_work(factory) as session:
            await audit.record(
                session,
                action="backup",
                detail={
                    "file": path.name,
                    "sha256": manifest.data["sha256"],
                    "head": manifest.audit_head.id if manifest.audit_head else None,
                    "by": reason,
                },
            )
    except audit.AuditKeyError as error:
        return str(error)
    finally:
        await engine.dispose()
    return None


def human_size(size: int) -> str:
    """`12.3 MB`, for people."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]


# --- reading a backup ------------------------------------------------------------------------


def open_archive(path: Path) -> tuple[Manifest, tarfile.TarInfo]:
    """The manifest and the data member, or a one-line reason why this is not a backup."""
    if not path.exists():
        raise BackupError(f"{path}: no such file")
    if not path.is_file():
        raise BackupError(f"{path}: not a file")
    try:
        with tarfile.open(path, mode="r:") as tar:
            try:
                info = tar.getmember(MANIFEST)
            except KeyError:
                raise BackupError(f"{path}: not a backup of this bot (no manifest)") from None
            handle = tar.extractfile(info)
            assert handle is not None
            manifest = Manifest.from_json(handle.read())
            name = str(manifest.data.get("file"))
            if name not in (SQLITE_DATA, PG_DATA):
                raise BackupError(f"{path}: not a backup of this bot (unknown data {name!r})")
            try:
                member = tar.getmember(name)
            except KeyError:
                raise BackupError(f"{path}: the backup is incomplete ({name} missing)") from None
    except (tarfile.TarError, EOFError):
        raise BackupError(f"{path}: not a backup of this bot (not a readable tar file)") from None
    except OSError as error:
        raise BackupError(f"{path}: cannot be read ({error.strerror or error})") from None
    return manifest, member


def extract_data(path: Path, manifest: Manifest, target: Path) -> None:
    """Copy the data member out, 0600, checking it against the manifest's SHA-256."""
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with tarfile.open(path, mode="r:") as tar, os.fdopen(fd, "wb") as out:
            source = tar.extractfile(str(manifest.data["file"]))
            assert source is not None
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (tarfile.TarError, EOFError, OSError):
        raise BackupError(f"{path}: the data part cannot be read (damaged file)") from None
    if digest.hexdigest() != manifest.data.get("sha256"):
        raise BackupError(
            f"{path}: wrong checksum: the data part differs from the manifest's SHA-256 "
            "(damaged or altered); restore another backup"
        )


def gunzip(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with gzip.open(source, "rb") as packed, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(packed, out, _CHUNK)
    except (OSError, EOFError) as error:
        raise BackupError(f"the SQLite snapshot cannot be unpacked ({error})") from None
