"""Telegram's limits hold for the bot as a whole, however many instances run it (issue 15).

Two bot processes on one database and one Telegram that counts per token (30 messages a second
over all chats, as the fake's flood control does): at each heartbeat each process reads how many
instances live and takes its share of the budget, both for the handlers' answers (the rate
limiter) and for background sends (the Pacer); when one stops, the other takes the whole back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot import scheduler
from bot.app import _post_init, build_application
from bot.context import Services
from bot.rate_limits import SharedRateLimiter, SlidingWindow, share_of
from bot.sender import Pacer
from tests.auxil.fake_telegram import FakeTelegram
from tests.auxil.telegram_rules import FloodControl

CHATS = 40  # each process sends to this many people at once: more than a second's budget


async def bot_process(services: Services, telegram: FakeTelegram) -> Any:
    """A process as `python -m bot run` builds it: with the rate limiter."""
    app = build_application(services, request=telegram, rate_limit=True)
    await app.initialize()
    await _post_init(app)
    return app


def limiter_of(app: Any) -> SharedRateLimiter:
    limiter = app.bot.rate_limiter
    assert isinstance(limiter, SharedRateLimiter)
    return limiter


async def send_to_many(app: Any, first_chat: int) -> None:
    await asyncio.gather(
        *(app.bot.send_message(first_chat + n, f"message {n}") for n in range(CHATS))
    )


def counting_telegram() -> FakeTelegram:
    telegram = FakeTelegram()
    # per token, as Telegram counts: 30 a second over all chats; no limit per chat here
    telegram.flood = FloodControl(enabled=True, per_chat=CHATS, overall=30, retry_after=1)
    return telegram


async def test_two_instances_share_the_budget_and_telegram_refuses_nothing(
    services: Services,
) -> None:
    telegram = counting_telegram()
    first, second = await bot_process(services, telegram), await bot_process(services, telegram)
    try:
        await scheduler.beat(first)
        assert limiter_of(first).overall.limit == 30  # alone so far
        await scheduler.beat(second)  # the second starts: it counts two at its first beat
        assert limiter_of(second).overall.limit == 15
        # the first makes room within SHARE_SECONDS (a count), not at its next heartbeat
        assert first.job_queue.get_jobs_by_name(scheduler.SHARE_JOB)
        assert await scheduler.share_limits(first) == 2
        for app in (first, second):
            assert scheduler.sender_of(app).instances == 2
            assert limiter_of(app).overall.limit == 15
            pacer = scheduler.sender_of(app).pacer
            assert (pacer.per_window, pacer.reserve, pacer.per_group) == (12, 2, 10)
        started = time.monotonic()
        await asyncio.gather(send_to_many(first, 10_000), send_to_many(second, 20_000))
        assert telegram.flood.refused == 0  # 80 messages, never more than 30 in a second
        assert len([c for c in telegram.calls if c[0] == "sendMessage"]) == 2 * CHATS
        assert time.monotonic() - started >= 2.0  # 80 at 30 a second, not all at once

        await scheduler.stop(second)  # a clean stop removes its heartbeat row
        await scheduler.beat(first)
        assert scheduler.sender_of(first).instances == 1
        assert limiter_of(first).overall.limit == 30
        pacer = scheduler.sender_of(first).pacer
        assert (pacer.per_window, pacer.reserve, pacer.per_group) == (25, 5, 20)
    finally:
        await second.shutdown()
        await first.shutdown()


async def test_without_sharing_two_instances_would_exceed_telegrams_limit(
    services: Services,
) -> None:
    """The same burst with each process on the whole budget: Telegram answers 429 (so the test
    above can fail), and the rate limiter still gets every message through by retrying."""
    telegram = counting_telegram()
    first, second = await bot_process(services, telegram), await bot_process(services, telegram)
    try:
        await asyncio.gather(send_to_many(first, 10_000), send_to_many(second, 20_000))
        assert telegram.flood.refused > 0
        sent = {c[1]["chat_id"] for c in telegram.calls if c[0] == "sendMessage"}
        assert len({int(s) for s in sent}) == 2 * CHATS
    finally:
        await second.shutdown()
        await first.shutdown()


async def test_a_group_chat_shares_its_twenty_a_minute(services: Services) -> None:
    """A review group's 20 messages a minute are the bot's too: two instances, 10 each."""
    clock = FakeClock()
    limiter = SharedRateLimiter(clock=clock)
    limiter.share(2)
    window = limiter._chat_window(-100)
    assert window.limit == 10
    limiter.share(1)
    assert window.limit == 20 and limiter._chat_window(-200).limit == 20


async def test_quick_taps_in_one_chat_wait_their_turn_instead_of_meeting_a_429(
    services: Services,
) -> None:
    """Each wizard step sends two messages to the person; three quick taps would be six in a
    second, more than Telegram lets through in one chat (the fake: 3 a second). The fourth
    waits for the chat's window; other chats are not held up; nothing is refused."""
    telegram = FakeTelegram()
    telegram.flood = FloodControl(enabled=True, per_chat=3, overall=30, retry_after=1)
    app = await bot_process(services, telegram)
    try:
        started = time.monotonic()
        busy = asyncio.gather(*(app.bot.send_message(777, f"step {n}") for n in range(6)))
        await app.bot.send_message(778, "someone else")
        other_done = time.monotonic() - started
        await busy
        elapsed = time.monotonic() - started
        assert telegram.flood.refused == 0
        texts = [c[1]["text"] for c in telegram.calls if c[0] == "sendMessage"]
        assert sorted(t for t in texts if t.startswith("step")) == [f"step {n}" for n in range(6)]
        assert other_done < 0.5  # the other person's chat had its own window
        assert 1.0 <= elapsed < 2.9  # the second three a window later, not after a retry
        limiter_of(app).share(2)
        assert limiter_of(app)._chat_window(777).limit == 3  # a person's burst is not divided
    finally:
        await app.shutdown()


async def test_a_sliding_window_lets_no_more_than_its_limit_through_in_any_window() -> None:
    clock = FakeClock()
    window = SlidingWindow(3, 1.0, clock=clock, sleep=clock.sleep)
    for _ in range(7):
        await window.acquire()
        clock.taken.append(clock.now)
    # 3 at once, the next 3 a window later, the 7th two windows later
    assert clock.taken == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]
    window.limit = 1  # shared with two more instances: one a window from now on
    await window.acquire()
    await window.acquire()
    assert clock.now == 4.0


def test_each_instance_keeps_at_least_one() -> None:
    assert [share_of(30, n) for n in (0, 1, 2, 3, 31)] == [30, 30, 15, 10, 1]
    pacer = Pacer()
    pacer.share(30)
    assert pacer.per_window == 1 and pacer.reserve == 0  # background sends still get one
    unpaced = Pacer(per_window=0)
    unpaced.share(2)
    assert unpaced.per_window == 0  # no limit stays no limit


class FakeClock:
    """Time that passes only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.taken: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
