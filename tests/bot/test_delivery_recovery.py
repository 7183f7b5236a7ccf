"""A bot process killed in mid-delivery, and the one that starts after it.

Each claim carries its sender instance's token; a restarted process takes back the claims of an
instance that stopped beating (or stopped cleanly) and sends them at once, never those of a
live one. Every message is marked sent right after Telegram answered it, so a kill repeats only
what Telegram had not answered. Time is the test's clock; the pacer's sleeping is faked.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import scheduler
from bot.context import Services
from bot.sender import HEARTBEAT, Pacer, Sender
from bot.settings import Settings
from storage import reminders as store
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import SenderInstance
from tests.auxil.fake_telegram import TOKEN, FakeTelegram
from tests.auxil.world import ADMIN_ID, World, start_app
from tests.conversations.test_reminders import (
    SHANGHAI,
    Clock,
    FakeTime,
    Member,
    add_customer,
    member,
    rows,
    utc,
)

PEOPLE = 12
ANSWERED = 5  # Telegram answers this many, then the process is killed


@dataclass
class StallingTelegram(FakeTelegram):
    """Answers the first `answer` sendMessage calls; the next ones hang (the process is killed
    while they are on the way, so Telegram never takes them) until `resume`."""

    answer: int | None = None
    answered: int = 0
    _go: asyncio.Event = field(default_factory=asyncio.Event)
    _enough: asyncio.Event = field(default_factory=asyncio.Event)

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if url.endswith("/sendMessage") and self.answer is not None:
            if self.answered >= self.answer:
                await self._go.wait()
            else:
                self.answered += 1
                if self.answered == self.answer:
                    self._enough.set()
        return await super().do_request(url, method, *args, **kwargs)

    async def enough(self) -> None:
        await self._enough.wait()

    def resume(self) -> None:
        self.answer = None
        self._go.set()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        WEEKLY_SUMMARY_WEEKDAY=3,
        AUDIT_HEAD_DAYS=0,
        POOL_AFTER_DAYS="off",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 11, 20, 2, 0))  # 10:00 in Shanghai


@pytest.fixture
def services(
    settings: Settings, session_factory: SessionFactory, keyring: Keyring, clock: Clock
) -> Services:
    return Services(settings=settings, sessions=session_factory, keyring=keyring, clock=clock)


async def bot_process(services: Services, telegram: FakeTelegram) -> Any:
    """A bot process on the shared database: its own application, sender and instance."""
    app = await start_app(services, telegram)
    pacing = FakeTime()
    app.bot_data[scheduler.SENDER_KEY] = Sender(Pacer(sleep=pacing.sleep, clock=pacing))
    return app


async def salespeople_due(world: World) -> list[Member]:
    """PEOPLE salespeople, each with a follow-up due today (one message each)."""
    people = []
    for n in range(PEOPLE):
        person = await member(world, timezone=SHANGHAI, name=f"Li{n}")
        await add_customer(world, person, f"公司{n}", next_followup_on=date(2026, 11, 20))
        people.append(person)
    return people


def received(telegram: FakeTelegram, people: list[Member]) -> dict[int, int]:
    return {p.person.id: len(telegram.sent_to(p.person.id)) for p in people}


async def kill_after_answers(app: Any, telegram: StallingTelegram) -> None:
    """Deliver until Telegram answered ANSWERED messages, then kill the process a moment later
    (well under the 0.5 s by which answered messages used to be repeated)."""
    delivery = asyncio.create_task(scheduler.run_once(app))
    await asyncio.wait_for(telegram.enough(), timeout=30)
    await asyncio.sleep(0.2)
    delivery.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await delivery


async def test_after_a_kill_the_restart_sends_the_rest_once_and_the_answered_never_again(
    world: World, services: Services, clock: Clock
) -> None:
    people = await salespeople_due(world)
    telegram = StallingTelegram(answer=ANSWERED)
    first = await bot_process(services, telegram)
    await kill_after_answers(first, telegram)
    assert sum(received(telegram, people).values()) == ANSWERED
    sent = await rows(world, status="sent")
    assert len(sent) == ANSWERED  # each answered message was recorded right after its answer
    in_flight = await rows(world, status="sending")
    assert len(in_flight) == PEOPLE - ANSWERED

    # the process is restarted 5 seconds later: a new instance on the same database
    killed_at = clock()
    clock.advance(seconds=5)
    telegram.resume()
    second = await bot_process(services, telegram)
    try:
        restarted_at = clock()
        await scheduler.run_once(second)  # its first tick
        # the dead instance's last heartbeat is too recent to call it gone
        assert sum(received(telegram, people).values()) == ANSWERED
        delivered_at = None
        while delivered_at is None and clock() < restarted_at + timedelta(minutes=2):
            clock.advance(seconds=10)  # the heartbeat job's interval
            if await scheduler.beat(second):
                await scheduler.settle(second)
                delivered_at = clock()
        assert delivered_at is not None
        assert delivered_at - restarted_at <= timedelta(minutes=1)  # not the 10-minute lease
        assert delivered_at - killed_at <= store.INSTANCE_STALE + timedelta(seconds=10)
        assert set(received(telegram, people).values()) == {1}  # each exactly once
        assert [r.status for r in await rows(world)] == ["sent"] * PEOPLE
        clock.advance(minutes=30)  # and nothing more comes later (the old lease, say)
        await scheduler.run_once(second)
        assert set(received(telegram, people).values()) == {1}
    finally:
        await second.shutdown()
        await first.shutdown()


async def test_a_live_process_sends_a_killed_ones_claims_when_it_counts_it_gone(
    world: World, services: Services, clock: Clock
) -> None:
    """Another process already running counts the instances every SHARE_SECONDS: the moment
    the killed one is INSTANCE_STALE silent it sends its claims, not at its own next beat."""
    people = await salespeople_due(world)
    telegram = StallingTelegram(answer=ANSWERED)
    first = await bot_process(services, telegram)
    survivor = await bot_process(services, telegram)
    try:
        await kill_after_answers(first, telegram)  # its last beat: when its delivery began
        killed_at = clock()
        telegram.resume()
        assert await scheduler.beat(survivor) == 0  # the killed one beat just now: alive
        assert scheduler.sender_of(survivor).instances == 2
        beat, count = int(HEARTBEAT.total_seconds()), int(scheduler.SHARE_SECONDS)
        sent_by = None
        for second in range(1, 40):
            clock.advance(seconds=1)
            if second % beat == 0 and await scheduler.beat(survivor):  # its own beats go on
                sent_by = sent_by or "beat"
            if second % count == 0 and await scheduler.share_limits(survivor) == 1:
                sent_by = sent_by or "count"
            await scheduler.settle(survivor)
            if sum(received(telegram, people).values()) == PEOPLE:
                break
        assert sent_by == "count", sent_by  # at the count, before the survivor's next beat
        assert clock() - killed_at <= store.INSTANCE_STALE + timedelta(seconds=count)
        assert set(received(telegram, people).values()) == {1}  # each exactly once
        assert scheduler.sender_of(survivor).instances == 1  # and it has the whole budget
    finally:
        await survivor.shutdown()
        await first.shutdown()


async def test_a_clean_stop_hands_its_unsent_claims_to_the_next_process_at_once(
    world: World, services: Services, clock: Clock
) -> None:
    people = await salespeople_due(world)
    telegram = StallingTelegram(answer=ANSWERED)
    first = await bot_process(services, telegram)
    delivery = asyncio.create_task(scheduler.run_once(first))
    await asyncio.wait_for(telegram.enough(), timeout=30)
    await asyncio.sleep(0.2)
    delivery.cancel()  # what stopping the application does to a running job
    with contextlib.suppress(asyncio.CancelledError):
        await delivery
    await scheduler.stop(first)  # post_stop
    async with unit_of_work(services.sessions) as session:
        assert await session.get(SenderInstance, scheduler.sender_of(first).instance) is None
    telegram.resume()
    clock.advance(seconds=3)
    second = await bot_process(services, telegram)
    try:
        await scheduler.run_once(second)  # its first tick, right after start
        assert set(received(telegram, people).values()) == {1}
    finally:
        await second.shutdown()
        await first.shutdown()


async def test_two_live_processes_never_take_each_others_claims(
    world: World, services: Services, clock: Clock
) -> None:
    people = await salespeople_due(world)
    slow = StallingTelegram(answer=ANSWERED)  # the first process's sends are slow to answer
    first = await bot_process(services, slow)
    other = FakeTelegram()
    second = await bot_process(services, other)
    try:
        delivery = asyncio.create_task(scheduler.run_once(first))
        await asyncio.wait_for(slow.enough(), timeout=30)
        await asyncio.sleep(0.2)
        for _ in range(9):  # 90 seconds: the first one keeps beating, the second keeps polling
            clock.advance(seconds=10)
            await scheduler.beat(first)
            assert await scheduler.beat(second) == 0
            await scheduler.run_once(second)
        assert received(other, people) == {p.person.id: 0 for p in people}
        slow.resume()  # Telegram answers the first process at last
        await delivery
        assert set(received(slow, people).values()) == {1}
        assert [r.status for r in await rows(world)] == ["sent"] * PEOPLE
    finally:
        await second.shutdown()
        await first.shutdown()


async def test_claims_from_before_instance_tokens_are_taken_back_at_start_up(
    world: World, services: Services, clock: Clock
) -> None:
    """A row claimed by the bot before this upgrade (no instance): nobody beats for it."""
    people = await salespeople_due(world)
    await store.plan(
        services.sessions,
        keyring=services.keyring,
        rules=store.Rules.from_settings(services.settings),
        now=clock(),
    )
    ids = [r.id or 0 for r in await rows(world)]
    async with unit_of_work(services.sessions) as session:
        claimed = await store.claim(
            session, ids=ids, now=clock(), lease=timedelta(minutes=10), max_attempts=12
        )
    assert len(claimed) == PEOPLE
    clock.advance(seconds=2)
    await scheduler.run_once(world.app)  # the upgraded bot's first tick
    assert set(received(world.telegram, people).values()) == {1}


async def test_review_cards_a_killed_process_was_sending_reach_the_managers_once(
    world: World, services: Services, clock: Clock
) -> None:
    """The outbox's messages (review cards) recover the same way, not after their lease."""
    from storage import customers as customer_store
    from storage import outbox
    from tests.auxil.customer_factory import staff_of
    from tests.conversations.test_review import cards

    managers = [await world.member("manager", "East", f"经理{n}") for n in range(3)]
    sales = await world.member("salesperson", "East", "Li")
    owner = await staff_of(services.sessions, sales)
    async with unit_of_work(services.sessions) as session:
        customer = await customer_store.create_customer(
            session,
            keyring=services.keyring,
            actor=owner,
            values={"kind": "company", "name": "崩溃测试有限公司", "phones": ["+8613812345678"]},
        )
        review = await store_review(session, customer.id or 0)
        ids = await outbox.queue_review_cards(session, review_id=review, now=clock())
        await store.beat(session, token="killed", now=clock())
        taken = await store.claim(
            session,
            ids=ids,
            now=clock(),
            lease=timedelta(seconds=services.settings.OUTBOX_LEASE_SECONDS),
            max_attempts=12,
            instance="killed",
        )
    assert len(taken) == 3
    clock.advance(seconds=5)  # the restart
    await scheduler.run_once(world.app)
    assert [len(cards(world, m.id)) for m in managers] == [0, 0, 0]
    clock.advance(seconds=30)  # the killed process stopped beating 35 seconds ago
    assert await scheduler.beat(world.app) == 3
    await scheduler.settle(world.app)
    assert [len(cards(world, m.id)) for m in managers] == [1, 1, 1]
    clock.advance(minutes=5)  # past the old lease: nothing again
    await scheduler.run_once(world.app)
    assert [len(cards(world, m.id)) for m in managers] == [1, 1, 1]


async def store_review(session: Any, customer_id: int) -> int:
    from storage import reviews

    review = await reviews.pending_review_of(session, customer_id=customer_id)
    assert review is not None and review.id is not None
    return review.id
