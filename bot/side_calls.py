"""Telegram calls of an update that its answer need not wait for.

A button press costs three calls: the query answered (the spinner stops), the pressed message's
buttons closed (`→ the answer`), and the next question sent. Made one after another, the
person waits three round trips to Telegram for the next question, though the first two change
nothing the question depends on. `meanwhile` starts such a call beside the handler's own work;
`collected` (around every update, bot.metrics.MeasuredApplication) waits for them before the
update counts as handled, so the person's next update (bot.update_order) and a test looking at
the chat still find them done.

They are cosmetic by nature: one that fails is logged (its kind only: an HTTP error's text may
carry the bot's URL) and changes nothing else; a press on buttons left open is refused as stale.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

log = logging.getLogger(__name__)
_PENDING: ContextVar[list[asyncio.Future[Any]] | None] = ContextVar("side_calls", default=None)


async def meanwhile(call: Awaitable[Any]) -> None:
    """Run `call` beside what follows within this update; outside one, at once."""
    pending = _PENDING.get()
    if pending is None:
        await call
        return
    pending.append(asyncio.ensure_future(call))


@asynccontextmanager
async def collected() -> AsyncIterator[None]:
    """Within the block, `meanwhile` calls run beside it; they are done when it ends."""
    pending: list[asyncio.Future[Any]] = []
    token = _PENDING.set(pending)
    try:
        yield
    finally:
        _PENDING.reset(token)
        await settle(pending)


async def settled() -> None:
    """Wait for this update's side calls so far: the error handler's apology must come after
    the press's own answer, not be overtaken by it."""
    pending = _PENDING.get()
    if pending:
        started = list(pending)
        pending.clear()
        await settle(started)


async def settle(pending: list[asyncio.Future[Any]]) -> None:
    """Wait for every side call (cancelled with the update if it is); log those that failed."""
    if not pending:
        return
    try:
        results = await asyncio.gather(*pending, return_exceptions=True)
    except asyncio.CancelledError:
        for call in pending:
            call.cancel()
        raise
    for result in results:
        if isinstance(result, Exception):
            log.warning("a side call of an update failed: %s", type(result).__name__)
