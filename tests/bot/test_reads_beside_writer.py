"""Reads never queue behind a long writer: members keep seeing their lists, cards and drafts
while another connection holds a write transaction (an import, a rotation, a migration);
writes still queue and succeed once it commits. A write inside a reading unit fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import quick_lane
from storage.db import is_reading, reading, unit_of_work
from storage.models import Team
from tests.auxil.customer_factory import add_customer, staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import draft_of, question
from tests.auxil.world import World
from tests.conftest import IS_POSTGRES

T = TypeVar("T")
PATIENCE = 5.0  # seconds; SQLite's busy timeout is 10, so a read that queued would exceed it


def _engine(world: World) -> AsyncEngine:
    engine = world.services.sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    return engine


class LongWriter:
    """Another connection in the middle of a write transaction on the member's rows: on SQLite
    it holds the database's write lock, on PostgreSQL the locks of the rows it changed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.url = engine.url
        self._sqlite: sqlite3.Connection | None = None
        self._postgres: asyncpg.Connection | None = None

    async def begin(self, staff_id: int) -> None:
        touch = [
            "UPDATE drafts SET token = token WHERE staff_id = {id}",
            "UPDATE staff SET version = version WHERE id = {id}",
        ]
        if self.url.get_backend_name() == "sqlite":
            self._sqlite = sqlite3.connect(self.url.database or "", isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")
            for statement in touch:
                self._sqlite.execute(statement.format(id=staff_id))
            return
        plain = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._postgres = await asyncpg.connect(plain)
        await self._postgres.execute("BEGIN")
        for statement in touch:
            await self._postgres.execute(statement.format(id=staff_id))

    async def commit(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("COMMIT")
            self._sqlite.close()
            self._sqlite = None
        if self._postgres is not None:
            await self._postgres.execute("COMMIT")
            await self._postgres.close()
            self._postgres = None


class Statements:
    """The statements the bot's engines completed while the writer held its transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.lane = quick_lane.of_engine(engine)  # SQLite's quick lane beside it, if any
        self.while_held: list[str] = []
        self.held = False
        self._watching = contextlib.ExitStack()

    def __enter__(self) -> Statements:
        event.listen(self.engine, "after_cursor_execute", self._seen)
        if self.lane is not None:  # the lane tells of each statement as sqlite3 starts it
            self._watching.enter_context(self.lane.watching(self._seen_on_lane))
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "after_cursor_execute", self._seen)
        self._watching.close()

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self._seen_on_lane(statement)

    def _seen_on_lane(self, statement: str) -> None:
        if self.held:
            self.while_held.append(statement)


async def promptly(step: Awaitable[T]) -> T:
    """The step finishes while the writer still holds its transaction."""
    return await asyncio.wait_for(step, PATIENCE)


async def seller_with_customers(world: World, count: int) -> tuple[Person, list[int]]:
    seller = await world.member("salesperson", "East", "Li")
    ids = []
    for n in range(count):
        customer = await add_customer(
            world.services.sessions,
            world.services.keyring,
            seller.id,
            f"杭州明远机械{n:02d}有限公司",
            status="approved",
        )
        ids.append(customer.id or 0)
    await seller.send("/help")  # the first message stores the member's language (a write)
    return seller, ids


async def test_lists_cards_and_searches_do_not_wait_for_a_long_writer(world: World) -> None:
    seller, ids = await seller_with_customers(world, 9)
    staff = await staff_of(world.services.sessions, seller.id)
    await seller.send("/find 明远")  # a search of 9: two pages
    results = seller.last_message()
    writer = LongWriter(_engine(world))
    await writer.begin(staff.id or 0)
    try:
        # /my: the gate's look-up and the list, both reads
        listed = await promptly(seller.send("/my"))
        assert "杭州明远机械00有限公司" in str(buttons(listed[-1]))
        # a card view
        await promptly(seller.press_data(results, f"cu:{ids[3]}"))
        assert "杭州明远机械03有限公司" in seller.last_text()
        # the search's next page (edited in place) and its filter menu
        before = len(world.telegram.calls)
        await promptly(seller.press("›", results))
        edits = [p for n, p in world.telegram.calls[before:] if n.startswith("edit")]
        assert edits and "2/2" in str(edits[-1])
        # a new search stores itself (a write): it waits for the writer, then goes through
        searching = asyncio.create_task(seller.send("/find 机械"))
        await asyncio.sleep(0.5)
        if not IS_POSTGRES:  # PostgreSQL only queues writes to the same rows
            assert not searching.done()
    finally:
        await writer.commit()
    await promptly(searching)
    assert "杭州明远机械" in str(buttons(seller.last_message()))


async def test_a_draft_step_reads_beside_a_writer_and_saves_after_it(world: World) -> None:
    seller, _ = await seller_with_customers(world, 0)
    staff = await staff_of(world.services.sessions, seller.id)
    await seller.send("/new")
    await seller.press("企业")
    await seller.send("杭州明远机械有限公司")
    asked = question(seller)
    engine = _engine(world)
    writer = LongWriter(engine)
    with Statements(engine) as statements:
        await writer.begin(staff.id or 0)
        statements.held = True
        try:
            answering = asyncio.create_task(seller.send("13812345678"))  # the phones
            for _ in range(int(PATIENCE / 0.05)):
                if any("FROM drafts" in s for s in statements.while_held):
                    break
                await asyncio.sleep(0.05)
            # the member was recognised and their draft read while the writer held on ...
            assert any("FROM staff" in s for s in statements.while_held)
            assert any("FROM drafts" in s for s in statements.while_held)
            # ... and the answer's save waits for the writer instead of failing
            assert not answering.done()
            assert not any(s.startswith("UPDATE drafts") for s in statements.while_held)
        finally:
            statements.held = False
            await writer.commit()
        await promptly(answering)
    assert question(seller) != asked  # the next question
    draft = await draft_of(world.services.sessions, seller.id)
    assert draft is not None and draft.step != "phones"


async def test_a_write_in_a_reading_unit_fails_loudly(world: World) -> None:
    sessions = world.services.sessions
    with pytest.raises(DBAPIError, match=r"read-?only"):
        async with reading(sessions) as session:
            assert is_reading(session)
            session.add(Team(name="Sneaky"))
    for n in range(3):  # the connections it used write normally again
        async with unit_of_work(sessions) as session:
            assert not is_reading(session)
            session.add(Team(name=f"Team {n}"))
    async with reading(sessions) as session:
        names = (await session.exec(text("SELECT name FROM teams ORDER BY name"))).all()
    assert ("Sneaky",) not in names and ("Team 2",) in names
