"""Delivery of due reminders: grouped per person, paced within Telegram's limits, retried.

One pass: ask the database what is due, hold back what falls in a person's quiet hours, claim
the rest (pending → sending, with a lease), read what each reminder is about *now* (cancelling
those whose reason went away), render one message per person (more only when it would be too
long), send, and record what happened to every row:

- sent: marked sent with the message, in its own short transaction right after Telegram's answer;
- RetryAfter (flood control): everyone pauses for the time Telegram asks, the message is tried
  again once, then left pending until then (flood control never counts as a failure);
- a network error or timeout: pending again with exponential back-off; failed after
  `max_attempts`, with the error kept on the row and logged;
- Forbidden (the person blocked the bot) or "chat not found": failed at once, not retried;
- any other refusal of that message (BadRequest): failed with Telegram's description.

Nothing is dropped silently: every row ends sent, cancelled (and why) or failed (and why).

Pacing: PTB's AIORateLimiter (used when the application is built with rate_limit=True) lets 30
requests a second through as a leaky bucket (a full bucket after a pause, then a steady drip,
which together exceed 30 in one second), retries RetryAfter a few times while holding everyone
back, and has no limit per private chat. The `Pacer` adds what it lacks for a burst of
reminders: at most 30 messages in any 1.05-second window (counting each until its answer came),
one message per second per chat, and a shared pause while flood control is in force, so
Telegram has no reason to answer 429.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from telegram import Message
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.i18n import Translator, pick_language
from conversations.reminders import Outgoing, render
from storage import reminders as store
from storage.db import unit_of_work
from storage.models import Staff

if TYPE_CHECKING:
    from telegram import Bot

    from bot.context import Services

log = logging.getLogger(__name__)
_CHAT_GONE = ("chat not found", "user is deactivated", "bot was blocked", "peer_id_invalid")


class Pacer:
    """Lets a message go when Telegram would take it.

    - at most `per_window` messages in any `window` seconds: a sliding window, counted as
      Telegram counts; the window is a little longer than a second because a message may reach
      Telegram a few milliseconds later than the one before it left;
    - a message counts from when it left until its answer came, so messages held up on the way
      (say, inside PTB's rate limiter) cannot be followed by a burst;
    - one message per `chat_interval` seconds in a chat, and a small gap between any two;
    - none while flood control (RetryAfter) is in force.
    """

    def __init__(
        self,
        per_window: int = 30,
        window: float = 1.05,
        chat_interval: float = 1.0,
        *,
        gap: float = 0.01,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_window, self.window = per_window, window
        self.chat_interval, self.gap = chat_interval, gap
        self._sleep, self._clock = sleep, clock
        self._lock = asyncio.Lock()
        self._recent: list[list[float]] = []  # [left, or answered, at]
        self._held_until = 0.0
        self._chats: dict[int, float] = {}

    def _ready_at(self, chat_id: int, now: float) -> float:
        self._recent = [t for t in self._recent if t[0] > now - self.window]
        ready = max(now, self._held_until, self._chats.get(chat_id, 0.0))
        if self._recent:
            ready = max(ready, max(t[0] for t in self._recent) + self.gap)
        if self.per_window > 0 and len(self._recent) >= self.per_window:
            times = sorted(t[0] for t in self._recent)
            ready = max(ready, times[len(times) - self.per_window] + self.window)
        return ready

    async def _take(self, chat_id: int) -> list[float]:
        while True:
            async with self._lock:
                now = self._clock()
                ready = self._ready_at(chat_id, now)
                if ready <= now:
                    entry = [now]
                    self._recent.append(entry)
                    self._chats[chat_id] = now + self.chat_interval
                    if len(self._chats) > 10_000:  # forget chats whose turn is long past
                        self._chats = {c: t for c, t in self._chats.items() if t > now}
                    return entry
            await self._sleep(ready - now)

    @asynccontextmanager
    async def turn(self, chat_id: int) -> AsyncIterator[None]:
        """Wait for a turn to send to `chat_id`; the message counts until its answer came."""
        entry = await self._take(chat_id)
        try:
            yield
        finally:
            entry[0] = max(entry[0], self._clock())

    def hold(self, seconds: float) -> None:
        """Flood control: nobody sends for `seconds`."""
        self._held_until = max(self._held_until, self._clock() + seconds)


@dataclass
class Report:
    """What a delivery pass did, for logs and the benchmark."""

    messages: int = 0
    sent: int = 0
    cancelled: int = 0
    postponed: int = 0
    deferred: int = 0
    failed: int = 0
    retry_after: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Report) -> None:
        for name in ("messages", "sent", "cancelled", "postponed", "deferred", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retry_after += other.retry_after
        self.errors += other.errors


class Sender:
    """Delivers due reminders for one process; holds no state but the pacing."""

    def __init__(
        self,
        pacer: Pacer | None = None,
        *,
        concurrency: int = 16,
        batch: int = 200,
        lease: timedelta = timedelta(minutes=10),
        max_attempts: int = 12,
        max_batches: int = 50,
    ) -> None:
        self.pacer = pacer or Pacer()
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        self.max_attempts = max_attempts
        self.max_batches = max_batches

    async def deliver(
        self, services: Services, bot: Bot, *, recipient_id: int | None = None
    ) -> Report:
        """Send everything due now (or only one person's), batch by batch."""
        report = Report()
        for _ in range(self.max_batches):
            now = services.clock()
            async with unit_of_work(services.sessions) as session:
                due = await store.due_now(
                    session, now=now, limit=self.batch, recipient_id=recipient_id
                )
                people = await store.recipients(session, (d.recipient_id for d in due))
            if not due:
                break
            report.add(await self._batch(services, bot, due, people, now))
        return report

    async def _batch(
        self,
        services: Services,
        bot: Bot,
        due: Sequence[store.Due],
        people: dict[int, Staff],
        now: datetime,
    ) -> Report:
        report = Report()
        rules = store.Rules.from_settings(services.settings)
        by_person: dict[int, list[store.Due]] = defaultdict(list)
        for item in due:
            by_person[item.recipient_id].append(item)
        ready: list[int] = []
        async with unit_of_work(services.sessions) as session:
            for person_id, items in by_person.items():
                person = people.get(person_id)
                regular = [d.id for d in items if not d.sample]
                until = (
                    store.quiet_until(now, rules.zone_of(person), rules.quiet_of(person))
                    if regular
                    else None
                )
                if until is not None:
                    await store.postpone(session, ids=regular, until=until)
                    report.postponed += len(regular)
                    ready += [d.id for d in items if d.sample]
                else:
                    ready += [d.id for d in items]
            claimed = await store.claim(
                session, ids=ready, now=now, lease=self.lease, max_attempts=self.max_attempts
            )
        async with unit_of_work(services.sessions) as session:
            notices, gone = await store.describe(
                session, keyring=services.keyring, rules=rules, ids=claimed, now=now
            )
            await store.cancel(session, ids=gone, now=now)
        report.cancelled += len(gone)
        notices_of: dict[int, list[store.Notice]] = defaultdict(list)
        recipient_of = {d.id: d.recipient_id for d in due}
        for notice in notices:
            notices_of[recipient_of[notice.reminder_id]].append(notice)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(person_id: int, mine: list[store.Notice]) -> Report:
            async with gate:
                return await self._send_to(services, bot, people[person_id], mine)

        results = await asyncio.gather(
            *(one(p, n) for p, n in notices_of.items() if p in people), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                # the rows stay claimed; their lease runs out and they are tried again
                log.error("delivering reminders failed", exc_info=result)
                report.errors.append(type(result).__name__)
            else:
                report.add(result)
        return report

    async def _send_to(
        self, services: Services, bot: Bot, person: Staff, notices: list[store.Notice]
    ) -> Report:
        """Send one person's reminders (usually one message) and record each outcome."""
        report = Report()
        settings = services.settings
        language = pick_language(person.language, None, settings.DEFAULT_LANGUAGE)
        messages = render(notices, Translator(language))
        chat_id = person.telegram_id
        for index, outgoing in enumerate(messages):
            rest = [i for m in messages[index:] for i in m.reminder_ids]
            try:
                sent = await self._send(bot, chat_id, outgoing, report)
            except RetryAfter as error:
                wait = max(1.0, retry_seconds(error))
                async with unit_of_work(services.sessions) as session:
                    now = services.clock()
                    await store.defer(
                        session,
                        ids=rest,
                        until=now + timedelta(seconds=wait),
                        error="flood control (RetryAfter)",
                        now=now,
                        counted=False,
                    )
                report.deferred += len(rest)
                return report
            except Forbidden as error:
                await self._fail(services, rest, f"forbidden: {error.message}", person, report)
                return report
            except BadRequest as error:
                if any(gone in error.message.lower() for gone in _CHAT_GONE):
                    await self._fail(services, rest, f"chat gone: {error.message}", person, report)
                    return report
                await self._fail(
                    services, outgoing.reminder_ids, f"refused: {error.message}", person, report
                )
                continue
            except TelegramError as error:  # network errors, timeouts, Telegram having trouble
                async with unit_of_work(services.sessions) as session:
                    deferred, failed = await store.retry_later(
                        session,
                        ids=rest,
                        error=f"{type(error).__name__}: {error.message}",
                        now=services.clock(),
                        max_attempts=self.max_attempts,
                    )
                report.deferred += deferred
                report.failed += failed
                log.warning(
                    "reminders for staff %s deferred after %s", person.id, type(error).__name__
                )
                return report
            async with unit_of_work(services.sessions) as session:
                await store.mark_sent(
                    session,
                    ids=outgoing.reminder_ids,
                    chat_id=chat_id,
                    message_id=sent.message_id,
                    now=services.clock(),
                )
            report.messages += 1
            report.sent += len(outgoing.reminder_ids)
        return report

    async def _send(self, bot: Bot, chat_id: int, outgoing: Outgoing, report: Report) -> Message:
        """Send once; on flood control pause everyone and try once more."""
        for attempt in range(2):
            try:
                async with self.pacer.turn(chat_id):
                    return await bot.send_message(
                        chat_id, outgoing.text, reply_markup=outgoing.markup
                    )
            except RetryAfter as error:
                report.retry_after += 1
                self.pacer.hold(retry_seconds(error))
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def _fail(
        self, services: Services, ids: list[int], error: str, person: Staff, report: Report
    ) -> None:
        async with unit_of_work(services.sessions) as session:
            await store.fail(session, ids=ids, error=error, now=services.clock())
        report.failed += len(ids)
        log.warning("reminders %s for staff %s failed: %s", ids, person.id, error.split(":")[0])


def retry_seconds(error: RetryAfter) -> float:
    """How long Telegram asks us to wait. Read from the exception's timedelta: its public
    `retry_after` warns that its type will change (PTBDeprecationWarning)."""
    value = getattr(error, "_retry_after", None)
    if isinstance(value, timedelta):
        return value.total_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = error.retry_after
    return raw.total_seconds() if isinstance(raw, timedelta) else float(raw)
