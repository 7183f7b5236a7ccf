"""SQLite's quick lane: a wizard step's few keyed statements without the async machinery.

A step reads the staff stamp and the member's draft, saves the draft and marks its prompt
shown: four statements of microseconds each in SQLite, but some 2.5 ms each through an async
session (a greenlet, a hop to aiosqlite's worker thread and back, the ORM), which made them
nine tenths of a step's cost (issue 14). On SQLite they run here instead: one plain connection
to the same file, used from the event loop's thread, that never waits. If another connection
holds the write lock (an import, a planner's insert) a write here fails at once with
SQLITE_BUSY, and the caller takes the ordinary async path, which waits in its worker thread:
the loop never blocks behind a writer. Any other failure does the same, so the ordinary path
decides what happens (the gate still fails closed). WAL readers never wait for writers, and
this connection never checkpoints the WAL (the async connections do, off the loop), so no
statement here waits for the disk.

PostgreSQL has no lane (`of` returns None): there every statement is a round trip anyway.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

from storage.db import SessionFactory

log = logging.getLogger(__name__)


class Busy(Exception):
    """The lane cannot run this now (the write lock is held, or it failed): take the ordinary
    path."""


class QuickLane:
    """One connection to a SQLite file for short keyed reads and writes that never wait."""

    def __init__(self, path: Path) -> None:
        self.engine: Engine = create_engine(
            f"sqlite:///{path}",
            poolclass=StaticPool,  # one connection, used from one thread at a time
            isolation_level="AUTOCOMMIT",  # a read is its own snapshot; writes BEGIN themselves
            connect_args={"timeout": 0, "check_same_thread": False},  # never wait for a lock
            hide_parameters=True,  # an error's text never carries a value (personal data)
        )
        event.listen(self.engine, "connect", _pragmas)
        self._connection: Connection | None = None

    def _conn(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self.engine.connect()
        return self._connection

    def first(self, statement: Any, params: dict[str, Any] | None = None) -> Row[Any] | None:
        """The first row `statement` reads, from the newest committed state."""
        try:
            return self._conn().execute(statement, params).first()
        except DBAPIError as error:
            raise self._busy(error) from error

    def scalar(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        row = self.first(statement, params)
        return None if row is None else row[0]

    def write(self, statement: Any, params: dict[str, Any] | None = None) -> int:
        """Run `statement` in a transaction of its own (the rows it changed), or raise Busy at
        once if another connection is writing."""
        connection = self._conn()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except DBAPIError as error:
            raise self._busy(error) from error
        try:
            changed = connection.execute(statement, params).rowcount
            connection.exec_driver_sql("COMMIT")
        except DBAPIError as error:
            self._roll_back(connection)
            raise self._busy(error) from error
        return int(changed or 0)

    def _roll_back(self, connection: Connection) -> None:
        try:
            connection.exec_driver_sql("ROLLBACK")
        except DBAPIError:
            self.close()  # a fresh connection next time

    def _busy(self, error: DBAPIError) -> Busy:
        log.debug("quick lane: %s, taking the ordinary path", type(error.orig).__name__)
        return Busy()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.engine.dispose()


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # the async connections checkpoint
    cursor.close()


_LANES: weakref.WeakKeyDictionary[Engine, QuickLane | None] = weakref.WeakKeyDictionary()


def of(sessions: SessionFactory) -> QuickLane | None:
    """The quick lane to the sessions' SQLite file, or None (PostgreSQL, memory, no file)."""
    bind = sessions.kw.get("bind")
    return of_engine(bind) if isinstance(bind, AsyncEngine) else None


def of_engine(bind: AsyncEngine) -> QuickLane | None:
    """The quick lane beside `bind` (`of`; tests listen to `lane.engine`'s statements)."""
    engine = bind.sync_engine
    if engine in _LANES:
        return _LANES[engine]
    path = _sqlite_file(engine)
    if path is None:
        _LANES[engine] = None
        return None
    if not path.is_file():  # not made yet (db.make_engine makes it private first): ask later
        return None
    lane = _LANES[engine] = QuickLane(path)
    if not event.contains(engine, "engine_disposed", _forget):
        event.listen(engine, "engine_disposed", _forget)  # a test's end, a restore: let go
    return lane


def _sqlite_file(engine: Engine) -> Path | None:
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:") or url.query:
        return None
    return Path(database)


def _forget(engine: Engine) -> None:
    lane = _LANES.pop(engine, None)
    if lane is not None:
        lane.close()
