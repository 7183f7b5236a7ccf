"""GET /healthz of a running bot (bot.health.LiveHealth): a load balancer asks every second or
two, so the database and schema are read through the bot's own pool every time, and the keys
check, which counts the key ids of every stored record, runs at most once a minute while it
holds; a failed check is looked at again at the next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import health
from bot.context import Services
from storage.db import make_engine, unit_of_work


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_counts(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement that counts the data keys' master key ids, wherever it connects from."""
    seen: list[str] = []

    def watch(*args: Any) -> None:
        statement = args[2]
        if "data_keys" in statement and "count" in statement.lower():
            seen.append(statement)

    event.listen(engine.sync_engine.__class__, "before_cursor_execute", watch)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine.__class__, "before_cursor_execute", watch)


async def test_the_keys_are_counted_once_a_minute_and_the_database_every_time(
    services: Services,
    engine: AsyncEngine,
    key_counts: list[str],
    master_key_text: str,
    database_url: str,
) -> None:
    clock = Clock()
    keys = SecretStr(master_key_text)  # the running bot's settings: its database, its keys
    settings = services.settings.model_copy(
        update={"ENCRYPTION_KEYS": keys, "DATABASE_URL": database_url}
    )
    live = health.LiveHealth(settings, engine, clock=clock)
    checked = [await live.check() for _ in range(5)]
    assert all(result.ok for result in checked), checked[0].line()
    assert [c.name for c in checked[-1].checks] == ["database", "schema", "keys"]
    assert len(key_counts) == 1  # five requests, one count of the keys
    clock.now += health.KEYS_RECHECK_SECONDS
    assert (await live.check()).ok
    assert len(key_counts) == 2

    # the schema is read at every request: stamped older now, unhealthy at once
    async with unit_of_work(services.sessions) as session:
        await session.exec(text("UPDATE alembic_version SET version_num = '0015_staff_changes'"))
    result = await live.check()
    assert not result.ok and result.failed is not None and result.failed.name == "schema"
    assert "not at head" in result.failed.detail


async def test_a_database_that_does_not_answer_is_named_at_once(services: Services) -> None:
    gone = services.settings.model_copy(update={"DATABASE_URL": "postgresql://x@127.0.0.1:9/x"})
    unreachable = make_engine(gone.database_url)
    try:
        result = await health.LiveHealth(gone, unreachable).check()
    finally:
        await unreachable.dispose()
    assert not result.ok and result.failed is not None and result.failed.name == "database"
    assert [c.name for c in result.checks] == ["database"]  # nothing further asked
