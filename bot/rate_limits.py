"""Telegram's limits for the bot as a whole, however many instances run it (issue 15).

Telegram counts per bot token: about 30 messages a second over all chats and 20 a minute in a
group, whichever process sends them, and refuses more than a short burst in one chat (about one
message a second, a few at once). Each instance therefore takes its share of those budgets,
1/n with n the live instances (the `sender_instances` rows beating within INSTANCE_STALE),
counted again every 2 s (bot.scheduler SHARE_JOB): two instances send at most 15 a second each;
when one stops cleanly the other takes the whole budget back at its next count, when one is
killed once its heartbeat is INSTANCE_STALE old.

PTB's AIORateLimiter counts with a leaky bucket (a full bucket after a pause, then a steady
drip, which together exceed the rate within one second), and its rates are fixed when it is
built. `SharedRateLimiter` keeps PTB's handling of RetryAfter (retries, everyone paused) and
counts itself with sliding windows whose limit can change: at most `limit` requests that have
a chat in any `window` seconds, as Telegram counts them.

A private chat's window is this instance's alone and is not divided: a wizard step costs two
messages in the person's chat (the answered question edited, the next one sent), so a share of
a chat's burst would hold back every quick second tap. Two instances answering one person in the
same second may still meet Telegram's 429; PTB's retry after it delivers the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from bot.metrics import CountingRateLimiter, JSONDict

T = TypeVar("T")
OVERALL_PER_SECOND = 30  # Telegram's messages a second for one bot, over all chats
GROUP_PER_MINUTE = 20  # and in one group chat
PER_CHAT_BURST = 3  # and in one private chat in a second (Telegram asks for one, lets a few pass)
# a little over a second: a request may reach Telegram a few milliseconds after the one before
OVERALL_WINDOW = 1.05
GROUP_WINDOW = 61.0
CHAT_WINDOW = 1.05
MAX_CHATS = 512  # windows of chats kept; idle ones are forgotten beyond this


def share_of(budget: int, instances: int) -> int:
    """This instance's part of a budget for the whole bot (at least one)."""
    return max(1, budget // max(1, instances))


class SlidingWindow:
    """At most `limit` acquisitions in any `window` seconds; the limit may change at any time."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limit, self.window = limit, window
        self._clock, self._sleep = clock, sleep
        self._times: deque[list[float]] = deque()  # [left, or answered, at]
        self._lock = asyncio.Lock()

    def _wait(self, now: float) -> float:
        self._times = deque(t for t in self._times if t[0] > now - self.window)
        if len(self._times) < self.limit:
            return 0.0
        times = sorted(t[0] for t in self._times)
        return times[len(times) - self.limit] + self.window - now

    async def acquire(self) -> list[float]:
        """Wait for a turn; the turn counts from now until `done` with it (the request may
        reach Telegram later than it left: counted until its answer, nothing bunches up)."""
        async with self._lock:  # first come, first served: a waiter keeps its place
            while (wait := self._wait(self._clock())) > 0:
                await self._sleep(wait)
            turn = [self._clock()]
            self._times.append(turn)
            return turn

    def done(self, turn: list[float]) -> None:
        turn[0] = max(turn[0], self._clock())

    def idle(self) -> bool:
        """Nothing counted within the window (it may be forgotten)."""
        self._wait(self._clock())
        return not self._times


class SharedRateLimiter(CountingRateLimiter):
    """PTB's rate limiter (retries after RetryAfter, 429s counted) with bot-wide budgets shared
    among the live instances (`share`) and a burst limit in each private chat; requests without
    a chat are not counted, as in PTB."""

    def __init__(
        self,
        *,
        max_retries: int = 3,
        overall: int = OVERALL_PER_SECOND,
        per_group: int = GROUP_PER_MINUTE,
        per_chat: int = PER_CHAT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # PTB's own buckets off: the windows below count instead
        super().__init__(overall_max_rate=0, group_max_rate=0, max_retries=max_retries)
        self.overall_budget, self.group_budget, self.per_chat = overall, per_group, per_chat
        self.instances = 1
        self._clock = clock
        self.overall = SlidingWindow(overall, OVERALL_WINDOW, clock=clock)
        self._groups: dict[int | str, SlidingWindow] = {}
        self._chats: dict[int, SlidingWindow] = {}

    def share(self, instances: int) -> None:
        """n instances run the bot: this one keeps within 1/n of each budget from now on."""
        self.instances = max(1, instances)
        self.overall.limit = share_of(self.overall_budget, self.instances)
        for window in self._groups.values():
            window.limit = share_of(self.group_budget, self.instances)

    def _window(
        self, windows: dict[Any, SlidingWindow], chat: int | str, limit: int, seconds: float
    ) -> SlidingWindow:
        window = windows.get(chat)
        if window is None:
            if len(windows) > MAX_CHATS:
                for key in [k for k, w in windows.items() if w.idle()]:
                    del windows[key]
            window = windows[chat] = SlidingWindow(limit, seconds, clock=self._clock)
        return window

    def _chat_window(self, chat: int | str) -> SlidingWindow:
        if isinstance(chat, str) or chat < 0:  # a group or a channel (@name): the shared minute
            limit = share_of(self.group_budget, self.instances)
            return self._window(self._groups, chat, limit, GROUP_WINDOW)
        return self._window(self._chats, chat, self.per_chat, CHAT_WINDOW)

    def _counted(
        self, callback: Callable[..., Coroutine[Any, Any, T]], chat: Any
    ) -> Callable[..., Coroutine[Any, Any, T]]:
        """`callback`, each attempt waiting for its turn in the chat's and the bot's window."""
        with contextlib.suppress(TypeError, ValueError):
            chat = int(chat)
        if not isinstance(chat, int | str) or isinstance(chat, bool):
            return callback

        async def request(*args: Any, **kwargs: Any) -> T:
            turns = []
            window = self._chat_window(chat)
            turns.append((window, await window.acquire()))
            turns.append((self.overall, await self.overall.acquire()))
            try:
                return await callback(*args, **kwargs)
            finally:
                for window, turn in turns:
                    window.done(turn)

        return request

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        counted = self._counted(callback, data.get("chat_id"))
        return await super().process_request(counted, args, kwargs, endpoint, data, rate_limit_args)
