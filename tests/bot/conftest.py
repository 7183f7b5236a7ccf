"""Fixtures for driving the real application through the fake Telegram."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application

from bot.app import _post_init, build_application
from bot.context import Services
from bot.settings import Settings
from storage import staff as staff_store
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Staff
from tests.fake_telegram import TOKEN, FakeTelegram, Person

ADMIN_ID = 900_001
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
    )


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([os.urandom(32)])


@pytest.fixture
def services(settings: Settings, session_factory: SessionFactory, keyring: Keyring) -> Services:
    return Services(settings=settings, sessions=session_factory, keyring=keyring, clock=lambda: NOW)


@dataclass
class World:
    """The running bot, its fake Telegram, and a way to add people to the company."""

    app: Application[Any, Any, Any, Any, Any, Any]
    telegram: FakeTelegram
    services: Services
    _ids: itertools.count[int]

    async def member(
        self,
        role: str = "salesperson",
        team: str | None = "East",
        name: str = "Li",
        language: str = "zh",
    ) -> Person:
        """Register a staff member directly in the database and return them as a chat user."""
        telegram_id = next(self._ids)
        async with unit_of_work(self.services.sessions) as session:
            team_id = None
            if team:
                team_id = (await staff_store.get_or_create_team(session, team, actor=None)).id
            session.add(
                Staff(telegram_id=telegram_id, display_name=name, role=role, team_id=team_id)
            )
        return self.person(telegram_id, name, language)

    def person(self, telegram_id: int, name: str = "Zhang", language: str = "zh") -> Person:
        return Person(self.app, self.telegram, telegram_id, name, language)

    def admin(self, language: str = "zh") -> Person:
        return self.person(ADMIN_ID, "Boss", language)


async def start_app(services: Services, telegram: FakeTelegram) -> Application:
    app = build_application(services, request=telegram, rate_limit=False)
    await app.initialize()
    await _post_init(app)
    return app


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    telegram = FakeTelegram()
    app = await start_app(services, telegram)
    world = World(app, telegram, services, itertools.count(700_001))
    try:
        yield world
    finally:
        await app.shutdown()
    # a message Telegram would refuse fails its test, even where the bot carried on after it
    refused = [(r.method, r.description) for r in world.telegram.refused]
    assert world.telegram.expect_refusals or not refused, refused
