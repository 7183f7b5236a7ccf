"""The gate fails closed: when recognising the user fails, the update stops with one answer.

And strangers are refused every time, but audited at most once an hour each.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from storage import audit, quick_lane
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import AuditEntry
from storage.types import utcnow
from tests.auxil.fake_telegram import Person
from tests.auxil.flow_helpers import draft_of
from tests.auxil.world import World

SORRY_EN = "Sorry, something went wrong. Please try again; your answers so far are kept."
SORRY_ZH = "抱歉,处理时出了问题,请稍后再试。您已填写的内容已保存。"


def _locked(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError(
        "SELECT staff.id FROM staff WHERE staff.telegram_id = ?",
        (123,),
        sqlite3.OperationalError("database is locked"),
    )


def _lane_locked(*args: Any, **kwargs: Any) -> Any:
    raise sqlite3.OperationalError("database is locked")


async def _alone_locked(*args: Any, **kwargs: Any) -> Any:
    _locked()


def _database_locked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way the gate reads the database fails: SQLite's quick lane (storage.quick_lane),
    PostgreSQL's lone autocommit read (storage.db.alone) and the reading unit behind them."""
    monkeypatch.setattr(quick_lane.QuickLane, "_conn", _lane_locked)
    monkeypatch.setattr(staff_store, "alone", _alone_locked)
    monkeypatch.setattr(staff_store, "staff_by_telegram_id", _locked)


@pytest.fixture
def errors(world: World) -> list[BaseException | None]:
    caught: list[BaseException | None] = []

    async def record(update: object, context: Any) -> None:
        caught.append(context.error)

    world.app.add_error_handler(record)
    return caught


async def _each_kind_of_update(world: World, person: Person, sorry: str) -> None:
    """/lang, /new, a text and a button: each gets one "try again" and nothing else."""
    await person.send("/help")  # while the database works: a message to press buttons on
    message = person.last_message()
    for send in (
        lambda: person.send("/lang"),
        lambda: person.send("/new"),
        lambda: person.send("hello"),
        lambda: person.send_photo(),
        lambda: person.press_data(message, "lang:en"),
        lambda: person.press_data(message, "w:5:s:"),
    ):
        before = len(world.telegram.calls)
        await send()
        calls = world.telegram.calls[before:]
        assert len(calls) == 1, calls
        name, params = calls[0]
        if name == "answerCallbackQuery":
            assert params["text"] == sorry and params["show_alert"] is True
        else:
            assert name == "sendMessage" and params["text"] == sorry
            assert "reply_markup" not in params  # no /lang menu, no question


@pytest.mark.parametrize(("language", "sorry"), [("en", SORRY_EN), ("zh", SORRY_ZH)])
async def test_a_stranger_gets_only_try_again_when_the_database_is_locked(
    world: World,
    errors: list[BaseException | None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    language: str,
    sorry: str,
) -> None:
    stranger = world.person(123_456, "Stranger", language)
    await stranger.send("/start")
    _database_locked(monkeypatch)
    with caplog.at_level(logging.INFO):
        await _each_kind_of_update(world, stranger, sorry)
    assert errors == []  # the gate answered itself; no handler, not even the error handler
    assert "gate failed" in caplog.text and "OperationalError" in caplog.text
    assert "123456" not in caplog.text and "telegram_id" not in caplog.text


async def test_a_member_gets_only_try_again_and_their_draft_is_untouched(
    world: World, errors: list[BaseException | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    await sales.press("Company")
    before = await draft_of(world.services.sessions, sales.id)
    _database_locked(monkeypatch)
    await _each_kind_of_update(world, sales, SORRY_EN)
    monkeypatch.undo()
    after = await draft_of(world.services.sessions, sales.id)
    assert before is not None and after is not None
    assert (after.step, after.token) == (before.step, before.token)
    assert errors == []


async def test_a_failure_while_refusing_a_stranger_still_stops_the_update(
    world: World, errors: list[BaseException | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def audit_down(*args: Any, **kwargs: Any) -> bool:
        raise _locked()

    monkeypatch.setattr(staff_store, "record_refusal", audit_down)
    stranger = world.person(123_457, "Stranger", "en")
    sent = await stranger.send("/lang")
    assert [m["text"] for m in sent] == [SORRY_EN]
    assert errors == []


async def test_a_refusal_that_cannot_be_sent_stops_the_update_quietly(
    world: World, errors: list[BaseException | None]
) -> None:
    stranger = world.person(123_458, "Stranger", "en")
    world.telegram.fail_next["sendMessage"] = 1
    before = len(world.telegram.calls)
    await stranger.send("/lang")
    assert [name for name, _ in world.telegram.calls[before:]] == ["sendMessage"]  # tried once
    assert errors == []


async def _refusals(world: World) -> list[AuditEntry]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(select(AuditEntry).where(AuditEntry.action == "access.refused"))
        return list(rows.all())


async def test_strangers_are_refused_every_time_but_audited_once_an_hour(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = world.person(123_459, "Stranger", "en")
    other = world.person(123_460, "Other", "en")
    for _ in range(5):
        assert len(await stranger.send("hello")) == 1
    await stranger.press_data(stranger.last_message(), "cu:1")
    assert "registered staff" in (stranger.last_answer() or "")
    await other.send("hello")
    assert [e.actor_telegram_id for e in await _refusals(world)] == [123_459, 123_460]

    later = utcnow() + timedelta(minutes=61)
    monkeypatch.setattr(staff_store, "utcnow", lambda: later)
    monkeypatch.setattr(audit, "utcnow", lambda: later)
    assert len(await stranger.send("hello again")) == 1
    await stranger.send("and again")
    assert [e.actor_telegram_id for e in await _refusals(world)] == [123_459, 123_460, 123_459]
