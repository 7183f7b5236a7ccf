"""Several people's updates at once, each person's one after the other.

PTB processes one update at a time unless told otherwise, so every person waits behind
everyone else's Telegram round trips (a step awaits two: the answered question edited, the
next one sent). `PerPersonProcessor` runs up to `max_concurrent_updates` updates together but
never two of one person (or of one chat without a person), in the order they arrived: a
person's answers are taken as they gave them, as when they reach one instance of several.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

CONCURRENT_ON_POSTGRES = 32  # the default where several people's writes do not queue on a file


def default_concurrency(database_url: str) -> int:
    """One at a time on SQLite (one writer: concurrent steps would only wait for its lock, and
    the quick lane would step aside for them), several on PostgreSQL."""
    return 1 if database_url.startswith("sqlite") else CONCURRENT_ON_POSTGRES


def _whose(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_user is not None:
        return update.effective_user.id
    return update.effective_chat.id if update.effective_chat is not None else None


class PerPersonProcessor(BaseUpdateProcessor):
    """Concurrent across people, in order for each person."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}  # lock, updates holding or waiting

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        whose = _whose(update)
        if whose is None:
            await coroutine
            return
        lock, users = self._locks.get(whose, (asyncio.Lock(), 0))
        self._locks[whose] = (lock, users + 1)
        try:
            async with lock:  # FIFO: the person's updates in the order they came
                await coroutine
        finally:
            lock, users = self._locks[whose]
            if users <= 1:
                del self._locks[whose]
            else:
                self._locks[whose] = (lock, users - 1)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
