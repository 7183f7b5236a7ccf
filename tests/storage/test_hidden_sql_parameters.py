"""SQL parameters (personal data: names, phones) never reach an error's text or the log."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from storage.db import SessionFactory, unit_of_work
from storage.models import Staff

SECRET_NAME = "王秘密 13800138000"


async def test_a_failing_statement_does_not_show_its_values(
    session_factory: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with unit_of_work(session_factory) as session:
        session.add(Staff(telegram_id=4242, display_name="Li", role="salesperson"))
    with pytest.raises(DBAPIError) as failure:  # the same Telegram id twice
        async with unit_of_work(session_factory) as session:
            session.add(Staff(telegram_id=4242, display_name=SECRET_NAME, role="salesperson"))
    logging.getLogger("bot.errors").error("update failed", exc_info=failure.value)
    assert "staff" in str(failure.value)  # the statement is still there to debug with
    assert "parameters hidden" in str(failure.value)
    assert "13800138000" not in str(failure.value) and "王秘密" not in str(failure.value)
    assert "13800138000" not in caplog.text


async def test_a_statement_on_a_missing_table_does_not_show_its_values(
    session_factory: SessionFactory,
) -> None:
    with pytest.raises(DBAPIError) as failure:
        async with unit_of_work(session_factory) as session:
            await session.exec(
                text("SELECT * FROM nowhere WHERE phone = :phone").bindparams(phone="13800138000")
            )
    assert "nowhere" in str(failure.value)
    assert "13800138000" not in str(failure.value)


async def test_the_sql_log_does_not_show_values(
    session_factory: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    async with unit_of_work(session_factory) as session:
        session.add(Staff(telegram_id=4343, display_name=SECRET_NAME, role="salesperson"))
    assert "INSERT INTO staff" in caplog.text
    assert "13800138000" not in caplog.text
