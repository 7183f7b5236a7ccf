"""A pooled PostgreSQL connection is pinged only after sitting idle (storage.db._ping_when_idle).

The server dropping connections (a restart, a failover, an idle timeout) must not turn into an
error for the next person: a connection that sat idle is pinged and replaced. One in use a
moment ago is not pinged (that ping was three round trips before every transaction); should it
be broken after all, its one failure invalidates the pool and the next unit reconnects.
"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import db
from storage.db import make_engine, make_session_factory, unit_of_work
from tests.conftest import postgres_only

pytestmark = postgres_only


async def _backend(engine: AsyncEngine) -> int:
    async with unit_of_work(make_session_factory(engine)) as session:
        return int((await session.exec(text("SELECT pg_backend_pid()"))).scalar_one())  # type: ignore[call-overload]


async def _terminate(database_url: str, pid: int) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


async def _pings(engine: AsyncEngine) -> list[int]:
    """Count the dialect's pings (the checkout listener calls `do_ping`)."""
    pinged: list[int] = []
    dialect = engine.sync_engine.dialect
    real = dialect.do_ping

    def counting(connection: object) -> bool:
        pinged.append(1)
        return real(connection)

    dialect.do_ping = counting  # type: ignore[method-assign]
    return pinged


async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url)
    try:
        first = await _backend(engine)
        await _terminate(database_url, first)
        monkeypatch.setattr(db, "IDLE_BEFORE_PING", 0.0)  # it has sat idle long enough
        pinged = await _pings(engine)
        second = await _backend(engine)  # no error: the ping found it gone
        assert second != first
        assert pinged == [1]
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged_and_a_broken_one_fails_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "IDLE_BEFORE_PING", 3600.0)
    engine = make_engine(database_url)
    try:
        pinged = await _pings(engine)
        first = await _backend(engine)
        assert await _backend(engine) == first  # the same connection, reused
        assert pinged == []  # no round trips before the transactions
        await _terminate(database_url, first)
        with pytest.raises(DBAPIError) as failure:
            await _backend(engine)
        assert failure.value.connection_invalidated
        assert await _backend(engine) != first  # the pool reconnected
    finally:
        await engine.dispose()
