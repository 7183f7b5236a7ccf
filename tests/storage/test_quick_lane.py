"""SQLite's quick lane (storage.quick_lane): a draft's keyed statements never wait. With another
connection holding the write lock a save goes the ordinary way, waiting off the event loop, and
lands once the writer commits; reads go on beside the writer; what either path wrote the other
reads. PostgreSQL and in-memory databases have no lane."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage import drafts, quick_lane
from storage.crypto import Keyring
from storage.db import SessionFactory, make_engine, reading, unit_of_work
from storage.drafts import DraftMode, DraftState
from storage.models import Staff, Team
from tests.conftest import IS_POSTGRES

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
LONG = "宝" * 200  # a customer name at its longest, in a draft's answers
EVENT_LOOP_BLOCKED = 0.5  # seconds: a lane statement that waited for a lock would take 10


async def _member(sessions: SessionFactory) -> int:
    async with unit_of_work(sessions) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        staff = Staff(telegram_id=7, display_name="Li", role="salesperson", team_id=team.id)
        session.add(staff)
        await session.flush()
        return staff.id or 0


def _state(token: int) -> DraftState:
    return DraftState(
        flow="new", step="phones", mode=DraftMode.ask, token=token, data={"name": LONG}
    )


@pytest.mark.skipif(IS_POSTGRES, reason="the lane is SQLite's")
async def test_a_save_beside_a_writer_waits_off_the_loop_and_lands_after_it(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    staff_id = await _member(session_factory)
    lane = quick_lane.of(session_factory)
    assert lane is not None
    await drafts.save_alone(session_factory, keyring, staff_id, _state(1), now=NOW)
    url = session_factory.kw["bind"].url
    writer = sqlite3.connect(url.database or "", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(quick_lane.Busy):
            lane.write(drafts._MARK, {"staff": staff_id, "shown": 1})
        assert time.monotonic() - started < EVENT_LOOP_BLOCKED  # refused at once
        # reads go on beside the writer, from the lane
        state, expired = await drafts.peek_alone(
            session_factory, keyring, staff_id, not_before=NOW - timedelta(days=1)
        )
        assert state is not None and state.data == {"name": LONG} and not expired
        # a save queues (the ordinary path) while the loop goes on
        saving = asyncio.create_task(
            drafts.save_alone(session_factory, keyring, staff_id, _state(2), now=NOW)
        )
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 10 and not saving.done()
    finally:
        writer.execute("COMMIT")
        writer.close()
    await asyncio.wait_for(saving, 5)
    assert await drafts.mark_shown_alone(session_factory, staff_id, 2)
    assert not await drafts.mark_shown_alone(session_factory, staff_id, 1)  # moved on
    async with reading(session_factory) as session:  # the ordinary path reads the same
        loaded = await drafts.load(session, keyring, staff_id, not_before=None)
    assert loaded is not None and (loaded.token, loaded.shown) == (2, 2)
    assert loaded.data == {"name": LONG}


async def test_what_one_path_writes_the_other_reads(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    staff_id = await _member(session_factory)
    async with unit_of_work(session_factory) as session:  # the ordinary path writes
        await drafts.save(session, keyring, staff_id, _state(5), now=NOW)
    state, _ = await drafts.peek_alone(session_factory, keyring, staff_id, not_before=NOW)
    assert state is not None and state.token == 5 and state.unseen
    assert await drafts.mark_shown_alone(session_factory, staff_id, 5)
    async with reading(session_factory) as session:
        loaded = await drafts.load(session, keyring, staff_id, not_before=None)
    assert loaded is not None and not loaded.unseen
    # expired: last saved before the cut-off, whichever path reads it
    state, expired = await drafts.peek_alone(
        session_factory, keyring, staff_id, not_before=NOW + timedelta(seconds=1)
    )
    assert state is None and expired


async def test_postgresql_and_memory_databases_have_no_lane(
    session_factory: SessionFactory,
) -> None:
    lane = quick_lane.of(session_factory)
    assert (lane is None) == IS_POSTGRES
    memory = make_engine("sqlite:///:memory:")
    try:
        assert quick_lane.of(async_sessionmaker(memory)) is None
    finally:
        await memory.dispose()


@pytest.mark.skipif(IS_POSTGRES, reason="the lane is SQLite's")
async def test_a_disposed_engine_lets_go_of_its_lane(session_factory: SessionFactory) -> None:
    engine = session_factory.kw["bind"]
    first = quick_lane.of(session_factory)
    assert first is not None and quick_lane.of(session_factory) is first
    await engine.dispose()
    second = quick_lane.of(session_factory)
    assert second is not None and second is not first
