"""The scheduler: wakes up every REMINDER_POLL_SECONDS and asks the database what is due.

APScheduler runs inside python-telegram-bot's JobQueue, in the bot's own event loop. It holds
no reminders: each tick plans (storage.reminders.plan turns records into outbox rows) and then
delivers (bot.sender), so a restart loses nothing and repeats nothing. All time comes from
`services.clock`, so tests move time forward by changing the clock and calling `run_once`.

A second job beats every HEARTBEAT (bot.sender): it tells other bot processes this one lives
and takes back, for sending at once, what a crashed process had claimed. It runs apart from the
tick, so a long delivery never stops the heartbeat. A third counts the live instances every
SHARE_SECONDS, a read only: they share Telegram's limits for the bot (bot.rate_limits), and an
instance that has just started must not wait a whole heartbeat for the others to make room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from telegram.ext import Application

from bot import menus
from bot.context import OUTBOX_DELIVERY, REMINDER_DELIVERY, BotContext, Services
from bot.rate_limits import SharedRateLimiter
from bot.sender import HEARTBEAT, Report, Sender
from bot.settings import Settings
from storage import drafts, pool, reminders
from storage.backup import BackupError, BackupResult, create_backup, prune
from storage.crypto import Keyring
from storage.db import reading, unit_of_work
from storage.erasure_ledger import Ledger
from storage.reminders import backup as backup_report

log = logging.getLogger(__name__)
JOB_NAME = "reminders"
HEARTBEAT_JOB = "sender-heartbeat"
SHARE_JOB = "rate-limit-share"
SHARE_SECONDS = 2.0  # how soon the others make room for an instance that has just started
BACKUP_JOB = "backups"
BACKUP_POLL_SECONDS = 60  # how often the backup job asks whether today's BACKUP_HOUR has come
SENDER_KEY = "reminder_sender"
MENUS_AT_STOP = 5  # seconds a clean stop waits for command menus being set
FIRST_RUN_SECONDS = 5  # soon after start: whatever fell due while the bot was down goes out

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


@dataclass
class Tick:
    """What one wake-up did."""

    planned: dict[str, int] = field(default_factory=dict)
    released: int = 0  # customers released into their team's pool
    delivered: Report = field(default_factory=Report)
    drafts_expired: int = 0


def sender_of(application: AnyApplication) -> Sender:
    """The process's sender (its pacing is shared by the scheduler and /testreminder)."""
    sender = application.bot_data.get(SENDER_KEY)
    if not isinstance(sender, Sender):
        services: Services = application.bot_data["services"]
        lease = timedelta(seconds=services.settings.OUTBOX_LEASE_SECONDS)
        sender = application.bot_data[SENDER_KEY] = Sender(message_lease=lease)
    return sender


def install(application: AnyApplication) -> None:
    """Let handlers send what they queued at once; schedule the repeating tick (one at a time,
    a missed one is simply the next one)."""
    application.bot_data[OUTBOX_DELIVERY] = partial(deliver_messages, application)
    application.bot_data[REMINDER_DELIVERY] = partial(_sent_to, application)
    queue = application.job_queue
    if queue is None:
        log.warning("no job queue (python-telegram-bot[job-queue] missing): no reminders")
        return
    if queue.get_jobs_by_name(JOB_NAME):
        return
    services: Services = application.bot_data["services"]
    queue.run_repeating(
        tick,
        interval=services.settings.REMINDER_POLL_SECONDS,
        first=FIRST_RUN_SECONDS,
        name=JOB_NAME,
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )
    queue.run_repeating(
        heartbeat,
        interval=HEARTBEAT.total_seconds(),
        first=0,
        name=HEARTBEAT_JOB,
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )
    queue.run_repeating(
        share_limits_job,
        interval=SHARE_SECONDS,
        first=SHARE_SECONDS,
        name=SHARE_JOB,
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )
    if services.settings.BACKUP_HOUR is not None and not queue.get_jobs_by_name(BACKUP_JOB):
        queue.run_repeating(
            backup_tick,
            interval=BACKUP_POLL_SECONDS,
            first=FIRST_RUN_SECONDS * 2,
            name=BACKUP_JOB,
            job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )


async def tick(context: BotContext) -> None:
    """The job: plan, then deliver."""
    result = await run_once(context.application)
    if result.delivered.messages or any(result.planned.values()) or result.released:
        log.info(
            "reminders: planned %s, sent %d in %d messages, %d deferred, %d failed",
            {k: v for k, v in result.planned.items() if v},
            result.delivered.sent,
            result.delivered.messages,
            result.delivered.deferred,
            result.delivered.failed,
        )


async def heartbeat(context: BotContext) -> None:
    """The job: this process lives; what a stopped one had claimed goes out now."""
    await beat(context.application)


async def beat(application: AnyApplication) -> int:
    """One heartbeat; released rows are delivered in the background at once (not at the next
    tick, which may be a minute away). Returns how many were released."""
    services: Services = application.bot_data["services"]
    sender = sender_of(application)
    try:
        released = await sender.heartbeat(services)
    except SQLAlchemyError:
        log.exception("the sender's heartbeat failed; retrying at the next beat")
        return 0
    share(application, sender.instances)
    if released:
        sender.kick(services, application.bot)
    return released


def share(application: AnyApplication, instances: int) -> None:
    """`instances` live: this one's background sends and handlers' answers take 1/n of the
    bot's budgets from now on."""
    sender_of(application).share(instances)
    limiter = application.bot.rate_limiter
    if isinstance(limiter, SharedRateLimiter):
        limiter.share(instances)


async def share_limits(application: AnyApplication) -> int:
    """Count the live instances and take this one's share; returns the count."""
    services: Services = application.bot_data["services"]
    try:
        async with reading(services.sessions) as session:
            instances = await reminders.live_instances(session, now=services.clock())
    except SQLAlchemyError:
        log.warning("could not count the bot's instances; keeping the last share")
        return sender_of(application).instances
    if instances < sender_of(application).instances:
        # one went silent for INSTANCE_STALE just now: send what it had claimed at once,
        # not at this instance's next beat (the beat shares the limits too)
        await beat(application)
    else:
        share(application, instances)
    return instances


async def share_limits_job(context: BotContext) -> None:
    """The job: the others may have started or stopped since the last count."""
    await share_limits(context.application)


async def settle(application: AnyApplication) -> Report:
    """Wait for the background work this process started: deliveries and command menus (tests,
    a clean stop)."""
    await menus.settle(application)
    return await sender_of(application).settle()


async def stop(application: AnyApplication) -> None:
    """A clean stop: let background sends finish (briefly), then give back unsent claims, so
    the next process sends them at once."""
    services: Services = application.bot_data["services"]
    sender = sender_of(application)
    try:
        await asyncio.wait_for(menus.settle(application), timeout=MENUS_AT_STOP)
    except TimeoutError:
        log.warning("command menus still being set at stop; the next start sets them")
    try:
        await asyncio.wait_for(sender.settle(), timeout=10)
    except TimeoutError:
        log.warning("background deliveries still running at stop; their rows are given back")
        await sender.abandon()
    try:
        released = await sender.retire(services)
    except SQLAlchemyError:
        log.exception("giving back this process's claims failed; other processes take them")
        return
    if released:
        log.info("%d claimed reminders given back for the next process", released)


async def run_once(application: AnyApplication) -> Tick:
    """One wake-up. A planning failure (say the database is briefly unreachable) is logged
    and delivery still runs; what was not planned now is planned at the next tick."""
    services: Services = application.bot_data["services"]
    result = Tick()
    rules = reminders.Rules.from_settings(services.settings)
    try:
        result.planned = await reminders.plan(
            services.sessions, keyring=services.keyring, rules=rules, now=services.clock()
        )
    except SQLAlchemyError:
        log.exception("planning reminders failed; retrying at the next tick")
    result.released = await release_to_pool(services, rules)
    result.drafts_expired = await expire_drafts(services)
    result.delivered = await deliver_now(application)
    return result


async def release_to_pool(services: Services, rules: reminders.Rules) -> int:
    """Release the customers due for their team's pool (storage.pool); their owners' notices
    are outbox rows, sent by this tick's delivery."""
    try:
        released = await pool.release_due(
            services.sessions, keyring=services.keyring, rules=rules, now=services.clock()
        )
    except SQLAlchemyError:
        log.exception("releasing customers to the pool failed; retrying at the next tick")
        return 0
    if released:
        log.info("pool: %d customers released into their teams' pools", released)
    return released


async def expire_drafts(services: Services) -> int:
    """Empty the drafts nobody touched for DRAFT_EXPIRY_DAYS (they hold personal data)."""
    try:
        async with unit_of_work(services.sessions) as session:
            expired = await drafts.expire_old(
                session, not_before=services.draft_cutoff(), now=services.clock()
            )
    except SQLAlchemyError:
        log.exception("expiring drafts failed; retrying at the next tick")
        return 0
    if expired:
        log.info("drafts: %d expired and emptied", expired)
    return expired


async def deliver_now(application: AnyApplication, *, recipient_id: int | None = None) -> Report:
    """Send what is due now (only one person's, for /testreminder)."""
    services: Services = application.bot_data["services"]
    try:
        return await sender_of(application).deliver(
            services, application.bot, recipient_id=recipient_id
        )
    except SQLAlchemyError:
        log.exception("delivering reminders failed; retrying at the next tick")
        return Report(errors=["database"])


async def _sent_to(application: AnyApplication, recipient_id: int) -> int:
    """Deliver one person's due reminders now (/testreminder); how many went out."""
    return (await deliver_now(application, recipient_id=recipient_id)).sent


async def deliver_messages(application: AnyApplication, ids: Sequence[int]) -> Report:
    """Send outbox messages a handler just queued and committed (storage.outbox): what the
    person pressing waits for now, the rest in the background, paced (Sender.send_queued);
    whatever fails stays in the outbox for the next tick, and never fails the handler."""
    services: Services = application.bot_data["services"]
    try:
        return await sender_of(application).send_queued(services, application.bot, ids)
    except SQLAlchemyError:
        log.exception("delivering outbox messages failed; retrying at the next tick")
        return Report(errors=["database"])


# ---------------------------------------------------------------------------------------------
# scheduled backups


async def backup_tick(context: BotContext) -> None:
    """The job: back up once BACKUP_HOUR has come today (at most once a day, one process)."""
    await scheduled_backup(context.application)


def _backup_in_thread(settings: Settings, keyring: Keyring, now: datetime) -> BackupResult:
    """The whole backup on a worker thread with a loop and engines of its own: the snapshot,
    the compression and the checksum never hold up the bot's event loop."""
    result = asyncio.run(
        create_backup(
            settings.database_url,
            folder=settings.backup_dir,
            keyring=keyring,
            now=now,
            pg_bin=settings.PG_BIN,
            ledger=Ledger(settings.erasure_ledger, keyring),
            reason="schedule",
        )
    )
    prune(settings.backup_dir, settings.BACKUP_KEEP)
    return result


async def scheduled_backup(application: AnyApplication) -> dict[str, Any] | None:
    """Back up if this process claims the day's slot, then tell every admin how it went (through
    the outbox). Returns what the admins were told, or None when there was nothing to do."""
    services: Services = application.bot_data["services"]
    settings = services.settings
    if settings.BACKUP_HOUR is None:
        return None
    now = services.clock()
    slot = backup_report.latest_slot(now, settings.BACKUP_HOUR, ZoneInfo(settings.TIMEZONE))
    try:
        async with unit_of_work(services.sessions) as session:
            if not await backup_report.claim(session, slot=slot):
                return None
    except SQLAlchemyError:
        log.exception("claiming the scheduled backup failed; retrying at the next tick")
        return None
    log.info("scheduled backup of %s starting", slot.isoformat())
    try:
        result = await asyncio.to_thread(_backup_in_thread, settings, services.keyring, now)
    except BackupError as error:
        log.error("scheduled backup failed: %s", error.line)
        values = backup_report.failure_values(error.line)
    except Exception:  # the admins must hear of any failure; the log has the traceback
        log.exception("scheduled backup failed")
        values = backup_report.failure_values("unexpected error (see the bot's log)")
    else:
        log.info("scheduled backup written: %s (%d bytes)", result.path, result.size)
        values = backup_report.success_values(result)
    try:
        async with unit_of_work(services.sessions) as session:
            await backup_report.queue_report(session, values=values, slot=slot, now=now)
    except SQLAlchemyError:
        log.exception("queuing the backup report for admins failed")
        return values
    await deliver_now(application)
    return values
