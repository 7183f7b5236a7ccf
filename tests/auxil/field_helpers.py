"""Helpers for the field-work tests (visits, complaints): customers, files, refusals."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlmodel import SQLModel, col, select

from bot.context import Services
from storage.db import unit_of_work
from storage.models import AuditEntry, Customer
from tests.auxil.customer_factory import COMPANY, add_customer
from tests.auxil.fake_telegram import FakeTelegram, Person
from tests.auxil.world import World, start_app

CUSTOMER = COMPANY


@dataclass
class FieldTelegram(FakeTelegram):
    """The fake Telegram, also answering sendVoice (attachments are sent again by file id),
    and refusing messages to chats that blocked the bot, as Telegram does (403)."""

    blocked: set[int] = field(default_factory=set)

    def _answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "sendMessage" and int(params.get("chat_id", 0)) in self.blocked:
            body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"}
            return 403, json.dumps(body).encode()
        return super()._answer("sendDocument" if name == "sendVoice" else name, params)


@asynccontextmanager
async def field_world(services: Services) -> AsyncIterator[World]:
    """The bot on a FieldTelegram (tests/conftest.py `world`, with the extras above)."""
    telegram = FieldTelegram()
    app = await start_app(services, telegram)
    world = World(app, telegram, services, itertools.count(700_001))
    try:
        yield world
    finally:
        await world.app.shutdown()
    refused = [(r.method, r.description) for r in world.telegram.refused]
    assert not refused, refused  # a message Telegram would refuse fails its test


async def restart(world: World) -> None:
    """The bot restarts: a new application and Telegram connection, nothing kept in memory."""
    await world.app.shutdown()
    telegram = FieldTelegram()
    world.app = await start_app(world.services, telegram)
    world.telegram = telegram


async def send_document(person: Person, name: str = "quote.pdf") -> list[dict[str, Any]]:
    document = {"file_id": f"doc-{name}", "file_unique_id": f"d-{name}", "file_name": name}
    return await person._feed(person._message(document=document))


async def send_voice(person: Person) -> list[dict[str, Any]]:
    voice = {"file_id": "voice-1", "file_unique_id": "v1", "duration": 4}
    return await person._feed(person._message(voice=voice))


async def customer_of(
    world: World, person: Person, name: str = CUSTOMER, **values: Any
) -> Customer:
    """A customer entered by `person`, straight through storage (class B, yellow apple)."""
    return await add_customer(
        world.services.sessions,
        world.services.keyring,
        person,
        name,
        **{"customer_class": "B", "stage": "yellow", **values},
    )


async def reload(world: World, customer: Customer) -> Customer:
    async with unit_of_work(world.services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
    assert fresh is not None
    return fresh


Row = TypeVar("Row", bound=SQLModel)


async def all_rows(world: World, table: type[Row]) -> list[Row]:
    """Every row of `table`, oldest first."""
    async with unit_of_work(world.services.sessions) as session:
        by_id = col(table.id)  # type: ignore[attr-defined]
        return list((await session.exec(select(table).order_by(by_id))).all())


async def denied(world: World) -> list[AuditEntry]:
    """The `access.denied` audit entries, oldest first."""
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(AuditEntry)
            .where(AuditEntry.action == "access.denied")
            .order_by(col(AuditEntry.id))
        )
        return list(rows.all())
