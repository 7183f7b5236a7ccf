"""A submission's review cards to many managers, against a Telegram that enforces its limits.

The submitter is answered at once (their confirmation is sent before the handler returns); the
cards go out in the background through the sender's Pacer, so Telegram never answers 429, and
every manager gets exactly one card. The application is built as in production (PTB's
AIORateLimiter on), and the fake Telegram refuses with 429 what real Telegram would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot import scheduler
from bot.app import _post_init, build_application
from bot.context import Services
from bot.rate_limits import SharedRateLimiter
from bot.sender import Pacer
from storage.db import unit_of_work
from storage.models import Reminder
from tests.auxil import telegram_rules
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person
from tests.auxil.telegram_rules import FloodControl
from tests.auxil.world import World, start_app
from tests.conversations.test_review import cards, quick_customer, submit_customer

MANAGERS = 69
GROUP_ID = -100_777


@pytest.fixture
async def limited(services: Services) -> AsyncIterator[World]:
    """The bot as in production (rate limiter on) on a Telegram enforcing its limits."""
    telegram = FakeTelegram()
    telegram.flood = FloodControl(
        enabled=True
    )  # 30/s overall, bursts of 3/s a chat, 20/min a group
    app = build_application(services, request=telegram, rate_limit=True)
    await app.initialize()
    await _post_init(app)
    try:
        yield World(app, telegram, services, itertools.count(700_001))
    finally:
        await app.shutdown()


def timed(person: Person, world: World) -> list[float]:
    """How long each update of `person` took the bot to handle (without background sends).
    A person taps about once a second, not six times: Telegram's clock, and the rate limiter's
    that keeps to a chat's burst, move a second on at each of their updates (and with real time
    between them)."""
    person.settle = False
    durations: list[float] = []
    feed = person._feed
    taps = [0.0]
    flood = world.telegram.flood
    flood.clock = lambda: time.monotonic() + taps[0]
    limiter = world.app.bot.rate_limiter
    assert isinstance(limiter, SharedRateLimiter)
    limiter._clock = limiter.overall._clock = flood.clock  # chats' windows read it when made

    async def measured(payload: dict[str, Any]) -> list[dict[str, Any]]:
        taps[0] += 1.0
        started = time.monotonic()
        try:
            return await feed(payload)
        finally:
            durations.append(time.monotonic() - started)

    person._feed = measured  # type: ignore[method-assign]
    return durations


async def test_a_submission_to_69_managers_answers_at_once_and_draws_no_429(
    limited: World,
) -> None:
    world = limited
    managers = [await world.member("manager", "East", f"经理{n}") for n in range(MANAGERS)]
    sales = await world.member("salesperson", "East", "Li")
    durations = timed(sales, world)
    await submit_customer(sales)  # its last step asserts the submitter's confirmation arrived
    assert durations[-1] < 1.0, durations[-1]  # 69 paced sends take over 3 seconds
    assert sum(len(cards(world, m.id)) for m in managers) < MANAGERS  # still on their way
    report = await scheduler.settle(world.app)
    assert world.telegram.flood.refused == 0 and report.retry_after == 0
    assert [len(cards(world, m.id)) for m in managers] == [1] * MANAGERS
    async with unit_of_work(world.services.sessions) as session:
        statuses = {r.status for r in (await session.exec(Reminder.__table__.select())).all()}
    assert statuses == {"sent"}


async def test_managers_chatting_while_the_cards_go_out_draw_no_429_either(
    limited: World,
) -> None:
    """Handlers answering people directly share Telegram's 30 a second with the cards: the
    background sends leave room for five such answers every second."""
    world = limited
    managers = [await world.member("manager", "East", f"经理{n}") for n in range(MANAGERS)]
    sales = await world.member("salesperson", "East", "Li")
    timed(sales, world)
    await submit_customer(sales)
    chatting = managers[:5]  # five managers type /help in the same instant
    for manager in chatting:
        manager.settle = False
    await asyncio.gather(*(m.send("/help") for m in chatting))
    await scheduler.settle(world.app)
    assert world.telegram.flood.refused == 0
    assert [len(cards(world, m.id)) for m in managers] == [1] * MANAGERS


async def test_many_cards_to_one_group_keep_to_20_a_minute(world: World) -> None:
    """A team's review group gets 25 cards at once (a morning of imports): the Pacer keeps to
    Telegram's 20 a minute per group; the 21st waits for the minute, none is refused."""
    moments: list[float] = [1000.0]

    def now() -> float:
        return moments[0]

    async def sleep(seconds: float) -> None:
        moments[0] += seconds

    world.telegram.flood = FloodControl(enabled=True, clock=now)
    pacer = Pacer(sleep=sleep, clock=now)

    async def card(n: int) -> None:
        async with pacer.turn(GROUP_ID, per_chat=False):  # as outbox cards are sent
            await world.app.bot.send_message(GROUP_ID, f"card {n}")

    await asyncio.gather(*(card(n) for n in range(25)))
    assert world.telegram.flood.refused == 0
    assert len(world.telegram.sent_to(GROUP_ID)) == 25
    assert moments[0] - 1000.0 >= 60.0  # the last five waited for the minute


@dataclass
class OnceFlooded(FakeTelegram):
    """Answers the first sendMessage to `chat_id` with 429 retry after 1, then normally."""

    chat_id: int = 0
    flooded_at: float | None = None
    sent_again_at: float | None = None

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        data = args[0] if args else kwargs.get("request_data")
        params = data.parameters if data is not None else {}
        if url.endswith("/sendMessage") and int(params.get("chat_id", 0)) == self.chat_id:
            if self.flooded_at is None:
                self.flooded_at = time.monotonic()
                body = telegram_rules.error_body(
                    429, "Too Many Requests: retry after 1", retry_after=1
                )
                return 429, json.dumps(body).encode()
            self.sent_again_at = self.sent_again_at or time.monotonic()
        return await super().do_request(url, method, *args, **kwargs)


async def test_a_429_pauses_the_sender_for_retry_after_and_the_card_still_arrives_once(
    services: Services,
) -> None:
    """Telegram asks to wait anyway (another bot of the company on the same limits, say): the
    sender waits as asked, sends once more, and the manager gets the card exactly once."""
    telegram = OnceFlooded()
    app = await start_app(services, telegram)
    try:
        world = World(app, telegram, services, itertools.count(700_001))
        manager = await world.member("manager", "East", "Chen")
        telegram.chat_id = manager.id
        sales = await world.member("salesperson", "East", "Li")
        await quick_customer(world, await staff_of(services.sessions, sales), "限流客户有限公司")
        assert telegram.flooded_at is not None and telegram.sent_again_at is not None
        assert telegram.sent_again_at - telegram.flooded_at >= 1.0  # retry_after honoured
        assert len(cards(world, manager.id)) == 1
    finally:
        await app.shutdown()
