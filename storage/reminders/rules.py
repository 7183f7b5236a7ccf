"""Rules and time: the settings reminders follow, time zones, local hours and quiet hours."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.models import Staff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rules:
    """The settings reminders follow, so storage needs nothing from the bot's settings class."""

    timezone: str = "Asia/Shanghai"
    followup_hour: int = 9
    digest_hour: int = 9
    quiet_hours: str = "21-8"
    cycles: dict[str, int] = field(default_factory=lambda: {"A": 7, "B": 14, "C": 30, "D": 60})
    overdue_days: int = 3
    review_hours: int = 24
    rejected_days: int = 3
    complaint_warning_hours: int = 24
    birthday_days: int = 3
    stale_days: int = 180
    survey_days: int = 365
    weekly_weekday: int = 1  # ISO: 1 = Monday
    catchup_days: int = 7
    audit_head_days: int = 1  # 0: never
    # the team pool (storage.pool): days overdue per class before release ({}: off; a class
    # left out is never released), and how many days before release the owner is warned
    pool_after: dict[str, int] = field(default_factory=dict)
    pool_warning_days: int = 3
    # archived customers proposed for destruction after this many years (None: never)
    retention_years: int | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Rules:
        return cls(
            timezone=settings.TIMEZONE,
            followup_hour=settings.FOLLOWUP_HOUR,
            digest_hour=settings.DIGEST_HOUR,
            quiet_hours=settings.QUIET_HOURS,
            cycles=dict(settings.followup_cycles),
            overdue_days=settings.OVERDUE_ESCALATION_DAYS,
            review_hours=settings.REVIEW_REMINDER_HOURS,
            rejected_days=settings.REJECTED_REMINDER_DAYS,
            complaint_warning_hours=settings.COMPLAINT_WARNING_HOURS,
            birthday_days=settings.BIRTHDAY_NOTICE_DAYS,
            stale_days=settings.STALE_RECORD_DAYS,
            survey_days=settings.SURVEY_INTERVAL_DAYS,
            weekly_weekday=settings.WEEKLY_SUMMARY_WEEKDAY,
            catchup_days=settings.REMINDER_CATCHUP_DAYS,
            audit_head_days=settings.AUDIT_HEAD_DAYS,
            pool_after=dict(settings.pool_after_days),
            pool_warning_days=settings.POOL_WARNING_DAYS,
            retention_years=getattr(settings, "RETENTION_YEARS", None),
        )

    def zone_of(self, staff: Staff | None) -> tzinfo:
        return zone(staff.timezone if staff else None, self.timezone)

    def quiet_of(self, staff: Staff | None) -> tuple[int, int] | None:
        """The person's quiet hours; their own setting wins, an empty one means none."""
        value = staff.quiet_hours if staff is not None and staff.quiet_hours is not None else None
        return hours_range(self.quiet_hours if value is None else value)

    def today_of(self, staff: Staff | None, now: datetime) -> date:
        return now.astimezone(self.zone_of(staff)).date()

    def cycle(self, customer_class: str | None) -> int:
        return self.cycles.get(customer_class or "C", 30)


@lru_cache(maxsize=256)
def zone(name: str | None, default: str) -> tzinfo:
    """The IANA zone `name`, else `default`, else UTC; a bad name is logged, never fatal."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("unknown time zone %r; using the default", candidate)
    return UTC


def hours_range(value: str | None) -> tuple[int, int] | None:
    """`21-8` → (21, 8); None for empty or malformed (then there are no quiet hours)."""
    start, dash, end = (value or "").strip().partition("-")
    if not dash or not start.strip().isdigit() or not end.strip().isdigit():
        return None
    first, last = int(start), int(end)
    if not (0 <= first <= 23 and 0 <= last <= 23) or first == last:
        return None
    return first, last


def local_moment(day: date, hour: int, tz: tzinfo) -> datetime:
    """`hour` o'clock on `day` in `tz`, as UTC (a time skipped by DST moves forward)."""
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


def quiet_until(moment: datetime, tz: tzinfo, quiet: tuple[int, int] | None) -> datetime | None:
    """When the quiet hours around `moment` end (UTC), or None if it is not in them."""
    if quiet is None:
        return None
    start, end = quiet
    local = moment.astimezone(tz)
    inside = start <= local.hour < end if start < end else local.hour >= start or local.hour < end
    if not inside:
        return None
    finish = datetime.combine(local.date(), time(end), tzinfo=tz)
    if finish <= local:
        finish = datetime.combine(local.date() + timedelta(days=1), time(end), tzinfo=tz)
    return finish.astimezone(UTC)
