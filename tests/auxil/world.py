"""The real application on the fake Telegram: `World`, `start_app`, NOW and ADMIN_ID.

The fixtures (`settings`, `services`, `world`) live in tests/conftest.py."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from telegram.ext import Application

from bot.app import _post_init, build_application
from bot.context import Services
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import Staff
from tests.auxil.fake_telegram import FakeTelegram, Person

ADMIN_ID = 900_001
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


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
