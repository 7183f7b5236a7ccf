"""Engines and sessions: one async engine per process, one session per unit of work.

Two kinds of unit: `unit_of_work` for anything that may write, `reading` for what only reads.
On SQLite a writer takes the write lock at BEGIN (so two writers queue instead of failing
mid-transaction) while a reader takes none (WAL lets it read beside a writer) and refuses any
write (`PRAGMA query_only`): a read that writes by mistake fails at once, in tests too, instead
of failing later with SQLITE_BUSY behind another writer. On PostgreSQL a reader's transaction
is READ ONLY, which changes nothing for real reads and refuses the same mistakes.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.sql.expression import Executable
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]
Work = Callable[[AsyncSession], Awaitable[Any]]

_READING = "archive_reading"  # connection execution option: this transaction only reads
_QUERY_ONLY = "archive_query_only"  # connection info: the PRAGMA query_only now in force
_AFTER_READING = "archive_after_reading"  # session info: writes a reading unit asked for
_RETURNED_AT = "archive_returned_at"  # connection record info: when it went back to the pool
IDLE_BEFORE_PING = 10.0  # seconds in the pool after which a connection is pinged before use


def async_url(url: str) -> str:
    """Accept the plain forms people write and pick the async driver for them."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(
            f"DATABASE_URL: unsupported database '{backend}' (use sqlite or postgresql)"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    """WAL for concurrent readers, a busy timeout instead of 'database is locked', FKs on."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    record.info[_QUERY_ONLY] = False


def _sqlite_begin(connection: Any) -> None:
    """A writer takes the write lock at BEGIN; a reader takes none and may not write."""
    reading = bool(connection.get_execution_options().get(_READING))
    if connection.info.get(_QUERY_ONLY) != reading:
        connection.exec_driver_sql(f"PRAGMA query_only={'ON' if reading else 'OFF'}")
        connection.info[_QUERY_ONLY] = reading
    connection.exec_driver_sql("BEGIN DEFERRED" if reading else "BEGIN IMMEDIATE")


def _sqlite_no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _private_sqlite_file(database: str) -> None:
    """Create the data folder 0700 and the database file 0600 before SQLite does (it would use
    the umask, often 0644); SQLite gives its -wal and -shm files the database file's mode."""
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine for a DATABASE_URL, creating the SQLite folder if needed.

    `hide_parameters`: an error's text and the SQL log never carry the values (personal data).
    """
    full = async_url(url)
    parsed = make_url(full)
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_sqlite_file(database)
        kwargs["connect_args"] = {"timeout": 10}
    else:
        kwargs.update(pool_size=10, max_overflow=10)
    engine = create_async_engine(full, **kwargs)
    if parsed.get_backend_name() != "sqlite":
        _ping_when_idle(engine)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_no_implicit_begin)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only if it sat idle: a server restart or a failover
    drops idle connections, and the pool then hands out a fresh one instead of an error.

    SQLAlchemy's `pool_pre_ping` pings at every checkout, which on asyncpg is three round trips
    (BEGIN, a ping, ROLLBACK) before each transaction: more than a wizard step's own work. A
    connection in steady use needs none; should one still break, the statement's error marks
    the whole pool invalid (SQLAlchemy's disconnect handling) and the next unit reconnects.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.pop(_RETURNED_AT, None)
        if returned is None or time.monotonic() - returned < IDLE_BEFORE_PING:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:  # gone: the pool retries with a new connection
            raise exc.DisconnectionError() from error

    event.listen(pool, "checkin", on_checkin)
    event.listen(pool, "checkout", on_checkout)


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One transaction that may write: commit when the block ends normally, roll back otherwise.

    On SQLite it holds the write lock from its start: keep it short, and use `reading` when the
    block only reads.
    """
    async with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def reading(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One transaction that only reads: it never waits for a writer, and any write in it fails.

    A rule that must write even on a read path (an audited refusal) hands that write to
    `write_soon`, which runs it in a unit of work of its own once the reading block has ended.
    """
    after: list[Work] = []
    async with factory() as session, session.begin():
        await session.connection(execution_options={_READING: True, "postgresql_readonly": True})
        session.info[_AFTER_READING] = after
        yield session
    for work in after:
        async with unit_of_work(factory) as session:
            await work(session)


@dataclass(frozen=True)
class Lone:
    """What a statement run `alone` gave: its rows (none for a write) and its row count."""

    rows: list[Any]
    rowcount: int

    @classmethod
    def of(cls, result: Any) -> Lone:
        """Taken while the connection is still held."""
        return cls(list(result.all()) if result.returns_rows else [], result.rowcount)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


def on_postgresql(factory: SessionFactory) -> bool:
    bind = factory.kw.get("bind")
    return isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql"


async def alone(
    factory: SessionFactory, statement: Executable, params: dict[str, Any], *, reads: bool
) -> Lone:
    """One fixed statement (a module constant: a keyed read, an upsert) as a unit of its own.

    On PostgreSQL it runs in autocommit: the server makes a lone statement atomic by itself,
    and BEGIN and COMMIT would be two more round trips of three, each a socket write, the most
    of what a wizard step costs there. Elsewhere it is an ordinary unit (`reading` when it
    `reads`). The statement is the caller's own constant, so a read cannot write by mistake.
    """
    if on_postgresql(factory):
        async with factory.kw["bind"].connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            return Lone.of(await connection.execute(statement, params))
    async with (reading if reads else unit_of_work)(factory) as session:
        # On the unit's connection, not SQLModel's `exec`: a select must come back as rows (a
        # Result, with its row count), the shape the autocommit branch gives, not as scalars.
        connection = await session.connection()
        return Lone.of(await connection.execute(statement, params))


def is_reading(session: AsyncSession) -> bool:
    """Whether the session is a `reading` unit (writes in it are refused)."""
    return _AFTER_READING in session.info


async def write_soon(session: AsyncSession, work: Work) -> None:
    """Do `work` (a write) in this unit of work; in a `reading` one, right after it ends.

    For writes that need not be atomic with what was read, such as auditing a refused look-up.
    """
    after = session.info.get(_AFTER_READING)
    if after is None:
        await work(session)
    else:
        after.append(work)
