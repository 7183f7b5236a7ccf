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

Outbox messages (storage.outbox: review cards, confirmations, deletions of revealed values) are
sent one by one, not grouped, outside quiet hours and without waiting for the chat's turn:
someone is waiting for them. The handler whose commit queued them calls `deliver_messages`
right away; the poll sends whatever a crash left behind. Their lease is short
(OUTBOX_LEASE_SECONDS), so after a crash in mid-send they go out again soon.

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

from telegram import InlineKeyboardMarkup, InputFile, Message
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.i18n import Translator, pick_language
from bot.reminder_text import Outgoing, render
from conversations import report as report_chat
from conversations import review_card as review_chat
from storage import outbox
from storage import reminders as store
from storage import reviews as review_store
from storage.db import unit_of_work
from storage.models import Staff

if TYPE_CHECKING:
    from telegram import Bot

    from bot.context import Services

log = logging.getLogger(__name__)
_CHAT_GONE = ("chat not found", "user is deactivated", "bot was blocked", "peer_id_invalid")
_ALREADY_DELETED = ("message to delete not found", "message can't be deleted")


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

    def _ready_at(self, chat_id: int | None, now: float) -> float:
        self._recent = [t for t in self._recent if t[0] > now - self.window]
        chat_turn = self._chats.get(chat_id, 0.0) if chat_id is not None else 0.0
        ready = max(now, self._held_until, chat_turn)
        if self._recent:
            ready = max(ready, max(t[0] for t in self._recent) + self.gap)
        if self.per_window > 0 and len(self._recent) >= self.per_window:
            times = sorted(t[0] for t in self._recent)
            ready = max(ready, times[len(times) - self.per_window] + self.window)
        return ready

    async def _take(self, chat_id: int, per_chat: bool = True) -> list[float]:
        while True:
            async with self._lock:
                now = self._clock()
                ready = self._ready_at(chat_id if per_chat else None, now)
                if ready <= now:
                    entry = [now]
                    self._recent.append(entry)
                    self._chats[chat_id] = now + self.chat_interval
                    if len(self._chats) > 10_000:  # forget chats whose turn is long past
                        self._chats = {c: t for c, t in self._chats.items() if t > now}
                    return entry
            await self._sleep(ready - now)

    @asynccontextmanager
    async def turn(self, chat_id: int, *, per_chat: bool = True) -> AsyncIterator[None]:
        """Wait for a turn to send to `chat_id`; the message counts until its answer came.
        `per_chat=False`: a message someone is waiting for (no wait for the chat's turn)."""
        entry = await self._take(chat_id, per_chat)
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
        message_lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self.pacer = pacer or Pacer()
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        self.message_lease = message_lease  # one outbox message (storage.outbox) at a time
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
            messages = [d.id for d in due if d.kind in outbox.KINDS]
            if messages:
                report.add(await self.deliver_messages(services, bot, messages))
            due = [d for d in due if d.kind not in outbox.KINDS]
            if due:
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
            if item.recipient_id is not None:  # reminders are for people (chats: outbox)
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
        recipient_of = {d.id: d.recipient_id or 0 for d in due}
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
                await self._defer_for_flood(services, rest, error, report)
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

    # -----------------------------------------------------------------------------------------
    # outbox messages (storage.outbox): one message each, sent as soon as they are queued

    async def deliver_messages(
        self, services: Services, bot: Bot, ids: Sequence[int], *, rounds: int = 3
    ) -> Report:
        """Send these outbox messages now, each on its own: what a change queued (called right
        after its commit), or what the poll found due. A group card that cannot be delivered
        queues the managers' own cards, which are sent in the next round."""
        report = Report()
        wanted = list(ids)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: outbox.Message) -> tuple[Report, list[int]]:
            async with gate:
                return await self._deliver_message(services, bot, message)

        for _ in range(rounds):
            if not wanted:
                break
            now = services.clock()
            async with unit_of_work(services.sessions) as session:
                taken = await store.claim(
                    session,
                    ids=wanted,
                    now=now,
                    lease=self.message_lease,
                    max_attempts=self.max_attempts,
                )
                messages = await outbox.claimed(session, keyring=services.keyring, ids=taken)
            results = await asyncio.gather(*(one(m) for m in messages), return_exceptions=True)
            wanted = []
            for result in results:
                if isinstance(result, BaseException):
                    # the row stays claimed; its lease runs out and it is tried again
                    log.error("delivering an outbox message failed", exc_info=result)
                    report.errors.append(type(result).__name__)
                else:
                    report.add(result[0])
                    wanted += result[1]
        return report

    async def _message_content(
        self, services: Services, bot: Bot, message: outbox.Message
    ) -> tuple[int, Outgoing] | None:
        """Where the message goes and what it says now; None if it is no longer wanted."""
        settings = services.settings
        recipient = message.recipient
        if message.recipient is not None and not message.recipient.active:
            return None
        language = pick_language(
            recipient.language if recipient else None, None, settings.DEFAULT_LANGUAGE
        )
        chat_id = recipient.telegram_id if recipient is not None else message.chat_id
        if chat_id is None:
            return None
        if message.kind == outbox.Kind.report_chart:
            chart = await report_chat.chart_message(services, recipient, message.content)
            if chart is None:
                return None
            png, caption = chart
            return chat_id, Outgoing(caption, None, (message.id,), photo=png)
        if message.kind == outbox.Kind.confirmation:
            if message.content is None:
                return None
            raw = message.content.get("markup")
            markup = InlineKeyboardMarkup.de_json(raw, bot) if raw else None
            return chat_id, Outgoing(str(message.content["text"]), markup, (message.id,))
        async with unit_of_work(services.sessions) as session:
            view = await review_store.notice_view(
                session, keyring=services.keyring, review_id=message.review_id or 0
            )
        if view is None or not view.pending:
            return None
        timezone = (recipient.timezone if recipient else None) or settings.TIMEZONE
        text, markup = review_chat.notice_card(
            Translator(language), view, timezone, group=recipient is None
        )
        return chat_id, Outgoing(text, markup, (message.id,))

    async def _review_edit(self, services: Services, message: outbox.Message) -> Outgoing | None:
        """What a decided review's card says now, in its reader's language (a group: ours)."""
        settings, recipient, content = services.settings, message.recipient, message.content
        async with unit_of_work(services.sessions) as session:
            view = await review_store.notice_view(
                session,
                keyring=services.keyring,
                review_id=message.review_id or 0,
                full=bool(content and content.get("full")),
            )
        if view is None:
            return None
        language = pick_language(
            recipient.language if recipient else None, None, settings.DEFAULT_LANGUAGE
        )
        timezone = (recipient.timezone if recipient else None) or settings.TIMEZONE
        text, markup = review_chat.copy_card(
            Translator(language),
            view,
            timezone,
            private=recipient is not None,
            full=bool(content and content.get("full")),
        )
        return Outgoing(text, markup, (message.id,))

    async def _deliver_message(
        self, services: Services, bot: Bot, message: outbox.Message
    ) -> tuple[Report, list[int]]:
        """Send (or delete) one outbox message and record what became of it; returns the
        rows it queued instead (a group card that cannot be delivered: the managers')."""
        report = Report()
        ids = [message.id]
        content = None
        try:
            if message.kind == outbox.Kind.delete:
                chat_id = message.chat_id or 0
                if message.message_id is None:  # the bot stopped between sending and recording
                    await self._fail(services, ids, "message id unknown", message.recipient, report)
                    return report, []
                async with self.pacer.turn(chat_id, per_chat=False):
                    await bot.delete_message(chat_id, message.message_id)
                message_id: int | None = message.message_id
            elif message.kind == outbox.Kind.review_edit:  # a decided card, brought up to date
                chat_id, message_id = message.chat_id or 0, message.message_id
                edit = await self._review_edit(services, message)
                if edit is not None and message_id is not None:
                    async with self.pacer.turn(chat_id, per_chat=False):
                        await bot.edit_message_text(
                            edit.text, chat_id, message_id, reply_markup=edit.markup
                        )
            else:
                content = await self._message_content(services, bot, message)
                if content is None:
                    async with unit_of_work(services.sessions) as session:
                        await store.cancel(session, ids=ids, now=services.clock())
                    report.cancelled += 1
                    return report, []
                chat_id, outgoing = content
                message_id = (await self._send(bot, chat_id, outgoing, report, False)).message_id
        except RetryAfter as error:
            await self._defer_for_flood(services, ids, error, report)
            return report, []
        except BadRequest as error:
            gone = message.kind == outbox.Kind.delete and any(
                known in error.message.lower() for known in _ALREADY_DELETED
            )
            if message.kind == outbox.Kind.review_edit:  # deleted, too old, already so: done
                log.info("review card %s not edited: %s", message.id, error.message)
                gone = True
            if not gone:
                return report, await self._refused(services, message, error, report)
            chat_id, message_id = message.chat_id or 0, message.message_id
        except Forbidden as error:
            return report, await self._refused(services, message, error, report)
        except TelegramError as error:  # network errors, timeouts, Telegram having trouble
            async with unit_of_work(services.sessions) as session:
                deferred, failed = await store.retry_later(
                    session,
                    ids=ids,
                    error=f"{type(error).__name__}: {error.message}",
                    now=services.clock(),
                    max_attempts=self.max_attempts,
                )
            report.deferred += deferred
            report.failed += failed
            log.warning("outbox message %s deferred after %s", message.id, type(error).__name__)
            return report, []
        async with unit_of_work(services.sessions) as session:
            await outbox.sent(
                session,
                message=message,
                chat_id=chat_id,
                message_id=message_id,
                now=services.clock(),
            )
        report.messages += 1
        report.sent += 1
        return report, []

    async def _refused(
        self, services: Services, message: outbox.Message, error: TelegramError, report: Report
    ) -> list[int]:
        """Telegram will not take this message: failed, with why; a group card goes to the
        managers one by one instead (the bot was removed from the group, say)."""
        await self._fail(
            services, [message.id], f"refused: {error.message}", message.recipient, report
        )
        if not message.for_group or message.review_id is None:
            return []
        async with unit_of_work(services.sessions) as session:
            return await outbox.queue_review_cards(
                session, review_id=message.review_id, now=services.clock(), use_group=False
            )

    async def _send(
        self,
        bot: Bot,
        chat_id: int,
        outgoing: Outgoing,
        report: Report,
        per_chat: bool = True,
    ) -> Message:
        """Send once; on flood control pause everyone and try once more."""
        for attempt in range(2):
            try:
                async with self.pacer.turn(chat_id, per_chat=per_chat):
                    if outgoing.photo is not None:
                        return await bot.send_photo(
                            chat_id,
                            InputFile(outgoing.photo, filename="report.png"),
                            caption=outgoing.text,
                            reply_markup=outgoing.markup,
                        )
                    return await bot.send_message(
                        chat_id, outgoing.text, reply_markup=outgoing.markup
                    )
            except RetryAfter as error:
                report.retry_after += 1
                self.pacer.hold(retry_seconds(error))
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def _defer_for_flood(
        self, services: Services, ids: list[int], error: RetryAfter, report: Report
    ) -> None:
        """Telegram asked us to wait: these go out again after that, not counted as a try."""
        wait = max(1.0, retry_seconds(error))
        async with unit_of_work(services.sessions) as session:
            now = services.clock()
            await store.defer(
                session,
                ids=ids,
                until=now + timedelta(seconds=wait),
                error="flood control (RetryAfter)",
                now=now,
                counted=False,
            )
        report.deferred += len(ids)

    async def _fail(
        self, services: Services, ids: list[int], error: str, person: Staff | None, report: Report
    ) -> None:
        async with unit_of_work(services.sessions) as session:
            await store.fail(session, ids=ids, error=error, now=services.clock())
        report.failed += len(ids)
        whom = f"staff {person.id}" if person is not None else "a group chat"
        log.warning("reminders %s for %s failed: %s", ids, whom, error.split(":")[0])


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
