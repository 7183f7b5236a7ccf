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
someone is waiting for them. After the commit that queued them the handler calls `send_queued`:
what the person pressing waits for (their confirmation) is sent before the handler answers; the
rest (a submission's cards to 69 managers, say) is handed to a background delivery (`kick`)
through the same Pacer, so the submitter is answered at once and the burst stays within
Telegram's limits. The poll sends whatever a crash left behind.

Crash recovery (storage.reminders.delivery): every claim carries this Sender's instance token
and the instance beats every HEARTBEAT seconds; at start-up and at each beat it releases the
claims of instances that are gone, so a restart re-sends what was in flight within a minute.

Pacing: PTB's AIORateLimiter (used when the application is built with rate_limit=True) lets 30
requests a second through as a leaky bucket (a full bucket after a pause, then a steady drip,
which together exceed 30 in one second), retries RetryAfter a few times while holding everyone
back, and has no limit per private chat. The `Pacer` adds what it lacks for a burst: at most 25
messages in any 1.05-second window (counting each until its answer came; the other 5 of
Telegram's 30 a second are left to the handlers answering people directly), of which background
sends use 20 (the rest is for a message someone waits for), one message per second per private
chat, 20 a minute per group chat, and a shared pause while flood control is in force, so
Telegram has no reason to answer 429.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import warnings
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from telegram import InlineKeyboardMarkup, InputFile, Message
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot import metrics
from bot.i18n import Translator, pick_language
from bot.rate_limits import share_of
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
HEARTBEAT = timedelta(seconds=5)  # how often an instance says it lives (INSTANCE_STALE: 20 s)
# sent before the handler answers: the person pressing waits for these; the rest is kicked
WAITED_FOR = frozenset({outbox.Kind.confirmation, outbox.Kind.delete})
Card = tuple[str, InlineKeyboardMarkup | None] | None  # a review card's text and buttons
CardKey = tuple[int, str, str, bool]  # review, language, time zone, for a group
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
    - background sends (reminders, a burst of review cards) use at most `per_window - reserve`
      of those, so a message someone is waiting for (`urgent`) never queues behind a burst,
      and neither do the handlers' own answers in PTB's rate limiter;
    - at most `per_group` messages in any `group_window` seconds in a group chat (negative id),
      even for a message someone is waiting for: Telegram's limit per group is per minute;
    - none while flood control (RetryAfter) is in force.
    """

    def __init__(
        self,
        per_window: int = 25,
        window: float = 1.05,
        chat_interval: float = 1.0,
        *,
        reserve: int = 5,
        per_group: int = 20,
        group_window: float = 61.0,
        gap: float = 0.01,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_window, self.window = per_window, window
        self.chat_interval, self.gap = chat_interval, gap
        self.per_group, self.group_window = per_group, group_window
        self.reserve = reserve
        self._budgets = (per_window, reserve, per_group)  # for the whole bot (see `share`)
        self._groups: dict[int, deque[float]] = {}
        self._sleep, self._clock = sleep, clock
        self._lock = asyncio.Lock()
        self._recent: list[list[float]] = []  # [left, or answered, at]
        self._held_until = 0.0
        self._chats: dict[int, float] = {}

    def _ready_at(
        self, chat_id: int | None, now: float, group: int | None, urgent: bool = False
    ) -> float:
        self._recent = [t for t in self._recent if t[0] > now - self.window]
        chat_turn = self._chats.get(chat_id, 0.0) if chat_id is not None else 0.0
        ready = max(now, self._held_until, chat_turn)
        if group is not None and self.per_group > 0:
            sent = self._groups.setdefault(group, deque())
            while sent and sent[0] <= now - self.group_window:
                sent.popleft()
            if len(sent) >= self.per_group:
                ready = max(ready, sent[len(sent) - self.per_group] + self.group_window)
        if self._recent:
            ready = max(ready, max(t[0] for t in self._recent) + self.gap)
        limit = self.per_window if urgent else max(1, self.per_window - self.reserve)
        if self.per_window > 0 and len(self._recent) >= limit:
            times = sorted(t[0] for t in self._recent)
            ready = max(ready, times[len(times) - limit] + self.window)
        return ready

    async def _take(self, chat_id: int, per_chat: bool = True, urgent: bool = False) -> list[float]:
        while True:
            async with self._lock:
                now = self._clock()
                group = chat_id if chat_id < 0 else None
                # a group chat is always paced: nobody there waits for one message in person
                paced = per_chat or group is not None
                ready = self._ready_at(chat_id if paced else None, now, group, urgent)
                if ready <= now:
                    entry = [now]
                    self._recent.append(entry)
                    if group is not None:
                        self._groups[group].append(now)
                    self._chats[chat_id] = now + self.chat_interval
                    if len(self._chats) > 10_000:  # forget chats whose turn is long past
                        self._chats = {c: t for c, t in self._chats.items() if t > now}
                    return entry
            await self._sleep(ready - now)

    @asynccontextmanager
    async def turn(
        self, chat_id: int, *, per_chat: bool = True, urgent: bool = False
    ) -> AsyncIterator[None]:
        """Wait for a turn to send to `chat_id`; the message counts until its answer came.
        `per_chat=False`: an outbox message (no wait for the chat's turn); `urgent`: the person
        pressing waits for it (it may use the reserve)."""
        entry = await self._take(chat_id, per_chat, urgent)
        try:
            yield
        finally:
            entry[0] = max(entry[0], self._clock())

    def share(self, instances: int) -> None:
        """n instances send for the bot (Telegram counts per token): this one keeps within 1/n
        of the window and of each group's minute from now on (bot.rate_limits)."""
        per_window, reserve, per_group = self._budgets
        if per_window > 0:
            self.per_window = share_of(per_window, instances)
            self.reserve = min(reserve // max(1, instances), self.per_window - 1)
        if per_group > 0:
            self.per_group = share_of(per_group, instances)

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
        self.instance = secrets.token_hex(16)  # this process's claims carry it
        self.instances = 1  # live instances at the last heartbeat: they share the rate limits
        self._beaten_at: datetime | None = None
        self._kicked: set[asyncio.Task[Report]] = set()

    # -----------------------------------------------------------------------------------------
    # this instance: its heartbeat, the claims of instances that are gone, background sends

    async def heartbeat(self, services: Services) -> int:
        """Say this instance lives, and release the claims of instances that are gone (a crash
        before this restart, say); returns how many rows were released (due now)."""
        now = services.clock()
        async with unit_of_work(services.sessions) as session:
            await store.beat(session, token=self.instance, now=now)
            released = await store.release_orphans(session, now=now)
            instances = await store.live_instances(session, now=now)
        self._beaten_at = now
        self.share(instances)
        if released:
            log.warning("%d reminders claimed by a stopped bot process are due again", released)
        return released

    def share(self, instances: int) -> None:
        """`instances` send for the bot: background sends keep within 1/n of its budget."""
        self.instances = max(1, instances)
        self.pacer.share(self.instances)

    async def _alive(self, services: Services) -> None:
        """Beat before claiming, so no other instance takes this one's claims for orphans."""
        now = services.clock()
        if self._beaten_at is None or not (self._beaten_at <= now < self._beaten_at + HEARTBEAT):
            await self.heartbeat(services)

    async def retire(self, services: Services) -> int:
        """A clean stop: what this instance claimed but did not send is due again now."""
        async with unit_of_work(services.sessions) as session:
            return await store.retire(session, token=self.instance, now=services.clock())

    def kick(self, services: Services, bot: Bot, ids: Sequence[int] | None = None) -> None:
        """Deliver in the background, paced: these outbox messages, or (None) all that is due.
        Nothing waits for it; what it cannot send stays in the outbox for the next poll."""

        async def run() -> Report:
            try:
                if ids is None:
                    return await self.deliver(services, bot)
                return await self.deliver_messages(services, bot, ids)
            except SQLAlchemyError:
                log.exception("background delivery failed; the next poll retries")
                metrics.ERRORS.labels("delivery").inc()
                return Report(errors=["database"])

        task = asyncio.get_running_loop().create_task(run(), name="outbox-delivery")
        self._kicked.add(task)
        task.add_done_callback(self._kicked.discard)

    async def settle(self) -> Report:
        """Wait for the background deliveries (tests; a clean stop)."""
        report = Report()
        while self._kicked:
            for result in await asyncio.gather(*list(self._kicked), return_exceptions=True):
                if isinstance(result, Report):
                    report.add(result)
        return report

    async def abandon(self) -> None:
        """Stop the background deliveries now (a stop that cannot wait): their rows stay
        claimed until `retire` gives them back, so none is sent twice."""
        for task in list(self._kicked):
            task.cancel()
        await asyncio.gather(*list(self._kicked), return_exceptions=True)

    async def send_queued(self, services: Services, bot: Bot, ids: Sequence[int]) -> Report:
        """What a handler's commit queued: the messages the person pressing waits for are sent
        now; the rest (review cards to every manager, charts) is kicked to the background."""
        if not ids:
            return Report()
        async with unit_of_work(services.sessions) as session:
            kinds = await store.kinds_of(session, ids)
        now_ids = [i for i in ids if kinds.get(i) in WAITED_FOR]
        later = [i for i in ids if i in kinds and kinds[i] not in WAITED_FOR]
        if later:
            self.kick(services, bot, later)
        if not now_ids:
            return Report()
        return await self.deliver_messages(services, bot, now_ids, urgent=True)

    async def recheck_quiet(self, services: Services) -> int:
        """Held rows against the quiet hours in force now (settings and each person's own):
        no longer quiet, due now; quiet until another hour, held until then. How many were
        released."""
        now = services.clock()
        rules = store.Rules.from_settings(services.settings)
        released = 0
        async with unit_of_work(services.sessions) as session:
            held = await store.held_for_quiet(session, now=now)
            if not held:
                return 0
            people = await store.recipients(session, (h.recipient_id for h in held))
            free: list[int] = []
            moved: dict[datetime, list[int]] = defaultdict(list)
            for row in held:
                person = people.get(row.recipient_id)
                until = store.quiet_until(now, rules.zone_of(person), rules.quiet_of(person))
                if until is None:
                    free.append(row.id)
                elif until != row.until:
                    moved[until].append(row.id)
            await store.release_hold(session, ids=free, now=now)
            for until, chunk in moved.items():
                await store.postpone(session, ids=chunk, until=until)
            released = len(free)
        return released

    async def deliver(
        self, services: Services, bot: Bot, *, recipient_id: int | None = None
    ) -> Report:
        """Send everything due now (or only one person's), batch by batch."""
        report = Report()
        await self._alive(services)
        await self.recheck_quiet(services)
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
                session,
                ids=ready,
                now=now,
                lease=self.lease,
                max_attempts=self.max_attempts,
                instance=self.instance,
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
                metrics.ERRORS.labels("delivery").inc()
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
                metrics.REMINDERS_FAILED.inc(failed)
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
            metrics.REMINDERS_SENT.inc(len(outgoing.reminder_ids))
        return report

    # -----------------------------------------------------------------------------------------
    # outbox messages (storage.outbox): one message each, sent as soon as they are queued

    async def deliver_messages(
        self,
        services: Services,
        bot: Bot,
        ids: Sequence[int],
        *,
        rounds: int = 3,
        urgent: bool = False,
    ) -> Report:
        """Send these outbox messages now, each on its own: what a change queued (called right
        after its commit), or what the poll found due. A group card that cannot be delivered
        queues the managers' own cards, which are sent in the next round."""
        report = Report()
        wanted = list(ids)
        gate = asyncio.Semaphore(self.concurrency)
        # one review's card is read and drawn once per language, not once a manager
        cards: dict[CardKey, asyncio.Future[Card]] = {}

        async def one(message: outbox.Message) -> tuple[Report, list[int]]:
            async with gate:
                return await self._deliver_message(services, bot, message, urgent, cards)

        for _ in range(rounds):
            if not wanted:
                break
            await self._alive(services)
            now = services.clock()
            async with unit_of_work(services.sessions) as session:
                taken = await store.claim(
                    session,
                    ids=wanted,
                    now=now,
                    lease=self.message_lease,
                    max_attempts=self.max_attempts,
                    instance=self.instance,
                )
                messages = await outbox.claimed(session, keyring=services.keyring, ids=taken)
            results = await asyncio.gather(*(one(m) for m in messages), return_exceptions=True)
            wanted = []
            for result in results:
                if isinstance(result, BaseException):
                    # the row stays claimed; its lease runs out and it is tried again
                    log.error("delivering an outbox message failed", exc_info=result)
                    metrics.ERRORS.labels("delivery").inc()
                    report.errors.append(type(result).__name__)
                else:
                    report.add(result[0])
                    wanted += result[1]
        return report

    async def _message_content(
        self,
        services: Services,
        bot: Bot,
        message: outbox.Message,
        cards: dict[CardKey, asyncio.Future[Card]],
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
        timezone = (recipient.timezone if recipient else None) or settings.TIMEZONE
        group = recipient is None
        key = (message.review_id or 0, language, timezone, recipient is None)
        if key not in cards:  # the first to ask reads it; the others wait for that read
            cards[key] = asyncio.ensure_future(
                self._review_card(services, message.review_id or 0, language, timezone, group)
            )
        card = await cards[key]
        if card is None:
            return None
        return chat_id, Outgoing(card[0], card[1], (message.id,))

    async def _review_card(
        self, services: Services, review_id: int, language: str, timezone: str, group: bool
    ) -> tuple[str, InlineKeyboardMarkup | None] | None:
        """A review's card as it reads now; None once it is decided (or gone)."""
        async with unit_of_work(services.sessions) as session:
            view = await review_store.notice_view(
                session, keyring=services.keyring, review_id=review_id
            )
        if view is None or not view.pending:
            return None
        return review_chat.notice_card(Translator(language), view, timezone, group=group)

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
        self,
        services: Services,
        bot: Bot,
        message: outbox.Message,
        urgent: bool = False,
        cards: dict[CardKey, asyncio.Future[Card]] | None = None,
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
                async with self.pacer.turn(chat_id, per_chat=False, urgent=urgent):
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
                content = await self._message_content(
                    services, bot, message, {} if cards is None else cards
                )
                if content is None:
                    async with unit_of_work(services.sessions) as session:
                        await store.cancel(session, ids=ids, now=services.clock())
                    report.cancelled += 1
                    return report, []
                chat_id, outgoing = content
                sent = await self._send(bot, chat_id, outgoing, report, False, urgent=urgent)
                message_id = sent.message_id
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
            metrics.REMINDERS_FAILED.inc(failed)
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
        metrics.REMINDERS_SENT.inc()
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
        *,
        urgent: bool = False,
    ) -> Message:
        """Send once; on flood control pause everyone and try once more."""
        for attempt in range(2):
            try:
                async with self.pacer.turn(chat_id, per_chat=per_chat, urgent=urgent):
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
        metrics.REMINDERS_FAILED.inc(len(ids))
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
