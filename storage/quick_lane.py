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

The lane talks to sqlite3 itself. Each statement (the callers' module constants) is compiled
by SQLAlchemy once, with its columns' type processors, so a run is one sqlite3 call: through
SQLAlchemy's Core each cost 20-90 µs of per-execution setup, a fifth of a step.

PostgreSQL has no lane (`of` returns None): there every statement is a round trip anyway.
"""

from __future__ import annotations

import logging
import sqlite3
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement

from storage.db import SessionFactory

log = logging.getLogger(__name__)

Processor = Callable[[Any], Any] | None


class Busy(Exception):
    """The lane cannot run this now (the write lock is held, or it failed): take the ordinary
    path."""


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled once for SQLite, with its types' processors in SQL's order: a run
    then costs the sqlite3 call alone, not SQLAlchemy's per-execution setup (some 20-90 µs,
    a fifth of a wizard step)."""

    sql: str
    names: tuple[str, ...]  # bind parameters, in the order of the SQL's `?`
    binds: tuple[Processor, ...]  # each one's type processor (datetimes to SQLite's text)
    literals: dict[str, Any]  # the values the statement itself carries (`id == 1`)
    row: Any  # a namedtuple of the selected columns, or None for a write
    results: tuple[Processor, ...]  # each selected column's type processor (text to datetime)

    def parameters(self, params: dict[str, Any] | None) -> tuple[Any, ...]:
        given = {**self.literals, **(params or {})}
        missing = [name for name in self.names if name not in given]
        if missing:
            raise ValueError(f"quick lane: no value for {missing}")
        return tuple(
            given[name] if process is None else process(given[name])
            for name, process in zip(self.names, self.binds, strict=True)
        )

    def read(self, raw: tuple[Any, ...]) -> Any:
        return self.row._make(
            value if process is None else process(value)
            for value, process in zip(raw, self.results, strict=True)
        )


def _prepare(statement: ClauseElement, dialect: SQLiteDialect_pysqlite) -> _Prepared:
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    binds = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    columns = list(getattr(statement, "selected_columns", ()))
    row = namedtuple("Row", [column.key for column in columns]) if columns else None  # type: ignore[misc]
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    literals = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    return _Prepared(compiled.string, names, binds, literals, row, results)


class QuickLane:
    """One connection to a SQLite file for short keyed reads and writes that never wait."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dialect = SQLiteDialect_pysqlite()
        self._connection: sqlite3.Connection | None = None
        self._prepared: dict[ClauseElement, _Prepared] = {}  # the callers' module constants
        self._watchers: list[Callable[[str], None]] = []

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            # isolation_level None: a read is its own snapshot; writes BEGIN themselves.
            # timeout 0: never wait for a lock. One thread at a time: the event loop's.
            connection = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            for pragma in _PRAGMAS:
                connection.execute(pragma)
            if self._watchers:
                connection.set_trace_callback(self._traced)
            self._connection = connection
        return self._connection

    def _statement(self, statement: ClauseElement) -> _Prepared:
        prepared = self._prepared.get(statement)
        if prepared is None:
            prepared = self._prepared[statement] = _prepare(statement, self.dialect)
        return prepared

    def first(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """The first row `statement` reads (its columns by name), from the newest committed
        state."""
        prepared = self._statement(statement)
        try:
            raw = self._conn().execute(prepared.sql, prepared.parameters(params)).fetchone()
        except sqlite3.Error as error:
            raise self._busy(error) from error
        return None if raw is None else prepared.read(raw)

    def scalar(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        row = self.first(statement, params)
        return None if row is None else row[0]

    def write(self, statement: Any, params: dict[str, Any] | None = None) -> int:
        """Run `statement` in a transaction of its own (the rows it changed), or raise Busy at
        once if another connection is writing."""
        prepared = self._statement(statement)
        values = prepared.parameters(params)
        try:
            connection = self._conn()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise self._busy(error) from error
        try:
            changed = connection.execute(prepared.sql, values).rowcount
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._roll_back(connection)
            raise self._busy(error) from error
        return max(changed, 0)

    @contextmanager
    def watching(self, watcher: Callable[[str], None]) -> Iterator[None]:
        """Tell `watcher` every statement's SQL the lane runs inside the block (tests count
        them; with the values left out, as in SQLAlchemy's statement events)."""
        self._watchers.append(watcher)
        if self._connection is not None:
            self._connection.set_trace_callback(self._traced)
        try:
            yield
        finally:
            self._watchers.remove(watcher)
            if not self._watchers and self._connection is not None:
                self._connection.set_trace_callback(None)

    def _traced(self, sql: str) -> None:
        for watcher in list(self._watchers):
            watcher(sql)

    def _roll_back(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            self.close()  # a fresh connection next time

    def _busy(self, error: sqlite3.Error) -> Busy:
        log.debug("quick lane: %s, taking the ordinary path", type(error).__name__)
        return Busy()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_PRAGMAS = (
    "PRAGMA busy_timeout=0",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA wal_autocheckpoint=0",  # the async connections checkpoint
)


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
