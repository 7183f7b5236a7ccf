"""Configuration from the environment or a `.env` file, checked before anything starts."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.exc import ArgumentError

from storage.crypto import decode_master_key
from storage.db import async_url

TELEGRAM_API = "https://api.telegram.org/bot"
_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
_PLACEHOLDERS = {"changeme", "change-me", "your-token", "token", "xxx"}


def _parse_pairs(raw: str, setting: str) -> dict[str, int]:
    """Parse `A=7,B=14` into a dict of positive integers."""
    pairs: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, _, value = part.partition("=")
        if not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"{setting}: '{part}' is not NAME=positive number")
        pairs[name.strip()] = int(value)
    return pairs


DEFAULT_POOL_AFTER_DAYS = "A=30,B=45,C=60,D=90"
POOL_OFF = "off"
POOL_CLASSES = ("A", "B", "C", "D")
POOL_MAX_DAYS = 3 * 365


def parse_pool_after(raw: str) -> dict[str, int]:
    """`A=30,B=45` → {"A": 30, "B": 45}; `off` (or empty) → {}: no class is ever pooled. A class
    left out is never pooled either."""
    text = raw.strip()
    if not text or text.lower() == POOL_OFF:
        return {}
    pairs: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, value = (piece.strip() for piece in part.partition("="))
        name = name.upper()
        if not equals or name not in POOL_CLASSES or not value.isascii() or not value.isdigit():
            raise ValueError(
                f"'{part}' is not CLASS=days; give days per class A, B, C or D, "
                f"e.g. {DEFAULT_POOL_AFTER_DAYS}, or off"
            )
        if not 1 <= int(value) <= POOL_MAX_DAYS:
            raise ValueError(f"'{part}': the days must be from 1 to {POOL_MAX_DAYS}")
        if name in pairs:
            raise ValueError(f"class {name} is given twice")
        pairs[name] = int(value)
    return pairs


class Settings(BaseSettings):
    """Every setting of SPEC section 9, with the names people put in their environment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    TELEGRAM_BOT_TOKEN: SecretStr
    TELEGRAM_BASE_URL: str = TELEGRAM_API
    BOT_USERNAME: str | None = None
    DATA_DIR: Path = Path("data")
    DATABASE_URL: str | None = None
    ENCRYPTION_KEYS: SecretStr | None = None
    ADMIN_TELEGRAM_IDS: Annotated[list[int], NoDecode] = Field(default_factory=list)
    DEFAULT_LANGUAGE: str = "zh"
    TIMEZONE: str = "Asia/Shanghai"
    FOLLOWUP_HOUR: int = 9
    QUIET_HOURS: str = "21-8"
    REMINDER_POLL_SECONDS: int = 60
    # updates of different people handled at once (a person's own always one after the other);
    # unset: 1 on SQLite, 32 on PostgreSQL (bot.update_order)
    CONCURRENT_UPDATES: int | None = None
    OUTBOX_LEASE_SECONDS: int = 120  # a message being sent is tried again after this (a crash)
    INVITE_TTL_HOURS: int = 72
    DUPLICATE_CHECKS_PER_DAY: int = 100
    FOLLOWUP_CYCLES: str = "A=7,B=14,C=30,D=60"
    COMPLAINT_DUE_HOURS: str = "critical=24,high=72,medium=168,low=336"
    # reminders (SPEC section 7): when each kind of notice is due
    DIGEST_HOUR: int = 9
    OVERDUE_ESCALATION_DAYS: int = 3
    REVIEW_REMINDER_HOURS: int = 24
    REJECTED_REMINDER_DAYS: int = 3
    COMPLAINT_WARNING_HOURS: int = 24
    BIRTHDAY_NOTICE_DAYS: int = 3
    STALE_RECORD_DAYS: int = 180
    SURVEY_INTERVAL_DAYS: int = 365
    WEEKLY_SUMMARY_WEEKDAY: int = 1
    REMINDER_CATCHUP_DAYS: int = 7
    DRAFT_EXPIRY_DAYS: int = 14  # unfinished entries hold personal data: gone after this
    AUDIT_HEAD_DAYS: int = 1
    # the team pool (公海, SPEC section 10): storage.pool
    POOL_AFTER_DAYS: str = DEFAULT_POOL_AFTER_DAYS
    POOL_WARNING_DAYS: int = 3
    POOL_CLAIM_LIMIT: int = 10
    # verified check-in (storage.checkin): an on-site visit farther than this from the
    # customer's location is saved but flagged for the manager
    CHECKIN_RADIUS_M: int = 500
    # backups (storage.backup): where, at which local hour (None: `off`), how many are kept
    BACKUP_DIR: Path | None = None
    BACKUP_HOUR: int | None = 3
    BACKUP_KEEP: int = 14
    PG_BIN: Path | None = None  # the PostgreSQL client's bin folder; else pg_dump from PATH
    # the record of every erasure, kept beside the keys: a restored backup is erased again by it
    ERASURE_LEDGER: Path | None = None
    # archived customers older than this many years are proposed to admins for destruction
    # (storage.reminders.retention; None: `off`)
    RETENTION_YEARS: int | None = 3
    WEBHOOK_URL: str | None = None
    WEBHOOK_SECRET: SecretStr | None = Field(default=None, validate_default=True)
    WEBHOOK_LISTEN: str = "0.0.0.0"
    WEBHOOK_PORT: int = 8443
    # operations (bot.web, bot.logs): /healthz and /metrics beside long polling (in webhook mode
    # they are on WEBHOOK_PORT), and log lines as JSON for a log shipper
    METRICS_PORT: int | None = None
    METRICS_LISTEN: str = "127.0.0.1"
    LOG_FORMAT: str = "plain"

    @field_validator("TELEGRAM_BOT_TOKEN")
    @classmethod
    def _token_looks_real(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if token.lower() in _PLACEHOLDERS or not _TOKEN_RE.match(token):
            raise ValueError("must be the token BotFather gave you, like 123456:ABC-DEF...")
        return SecretStr(token)

    @field_validator("TELEGRAM_BASE_URL")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if not value.endswith("/bot") else value

    @field_validator("ADMIN_TELEGRAM_IDS", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            if not all(re.fullmatch(r"\d+", p) for p in parts):
                raise ValueError("must be Telegram user ids separated by commas, e.g. 12345,67890")
            return [int(p) for p in parts]
        return value

    @field_validator("DEFAULT_LANGUAGE")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in ("zh", "en"):
            raise ValueError("must be zh or en")
        return value

    @field_validator("TIMEZONE")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as Asia/Shanghai") from exc
        return value

    @field_validator("FOLLOWUP_HOUR")
    @classmethod
    def _hour(cls, value: int) -> int:
        if not 0 <= value <= 23:
            raise ValueError("must be an hour from 0 to 23")
        return value

    @field_validator("DIGEST_HOUR")
    @classmethod
    def _digest_hour(cls, value: int) -> int:
        if not 0 <= value <= 23:
            raise ValueError("must be an hour from 0 to 23")
        return value

    @field_validator(
        "OVERDUE_ESCALATION_DAYS",
        "REVIEW_REMINDER_HOURS",
        "REJECTED_REMINDER_DAYS",
        "COMPLAINT_WARNING_HOURS",
        "BIRTHDAY_NOTICE_DAYS",
        "STALE_RECORD_DAYS",
        "SURVEY_INTERVAL_DAYS",
        "REMINDER_CATCHUP_DAYS",
        "DRAFT_EXPIRY_DAYS",
    )
    @classmethod
    def _reminder_period(cls, value: int, info: ValidationInfo) -> int:
        """Positive and at most three years: a typo like 1800 days would silence a reminder."""
        limit = 3 * 365 * (24 if info.field_name and info.field_name.endswith("HOURS") else 1)
        if not 1 <= value <= limit:
            raise ValueError(f"must be a number from 1 to {limit}")
        return value

    @field_validator("CHECKIN_RADIUS_M")
    @classmethod
    def _checkin_radius(cls, value: int) -> int:
        """Metres: under 50 a phone's GPS error flags honest visits; over 50 km flags nothing."""
        if not 50 <= value <= 50_000:
            raise ValueError("must be a number of metres from 50 to 50000")
        return value

    @field_validator("WEEKLY_SUMMARY_WEEKDAY")
    @classmethod
    def _weekday(cls, value: int) -> int:
        if not 1 <= value <= 7:
            raise ValueError("must be a weekday from 1 (Monday) to 7 (Sunday)")
        return value

    @field_validator("AUDIT_HEAD_DAYS")
    @classmethod
    def _audit_head_days(cls, value: int) -> int:
        if not 0 <= value <= 31:
            raise ValueError("must be a number of days from 1 to 31, or 0 for never")
        return value

    @field_validator("POOL_AFTER_DAYS")
    @classmethod
    def _pool_after(cls, value: str) -> str:
        parse_pool_after(value)
        return value.strip()

    @field_validator("POOL_WARNING_DAYS")
    @classmethod
    def _pool_warning(cls, value: int) -> int:
        if not 1 <= value <= 30:
            raise ValueError("must be a number of days from 1 to 30")
        return value

    @field_validator("POOL_CLAIM_LIMIT")
    @classmethod
    def _pool_claims(cls, value: int) -> int:
        if not 0 <= value <= 10_000:
            raise ValueError(
                "must be claims per person per 30 days, from 0 (nobody claims) to 10000"
            )
        return value

    @field_validator("BACKUP_HOUR", mode="before")
    @classmethod
    def _backup_hour(cls, value: object) -> object:
        """A local hour in TIMEZONE, or `off` for no scheduled backups."""
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("off", "none", ""):
                return None
            if not value.isdigit():
                raise ValueError("must be an hour from 0 to 23, or off")
            value = int(value)
        if value is not None and not (isinstance(value, int) and 0 <= value <= 23):
            raise ValueError("must be an hour from 0 to 23, or off")
        return value

    @field_validator("RETENTION_YEARS", mode="before")
    @classmethod
    def _retention_years(cls, value: object) -> object:
        """Whole years after archiving, or `off` for no retention proposals."""
        wrong = "must be a whole number of years from 1 to 100 after archiving, or off"
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("off", "none"):
                return None
            if not value.isdigit():
                raise ValueError(wrong)
            value = int(value)
        if value is not None and not (
            isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100
        ):
            raise ValueError(wrong)
        return value

    @field_validator("BACKUP_KEEP")
    @classmethod
    def _backup_keep(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("must be how many backups to keep, from 1 to 1000")
        return value

    @field_validator("BACKUP_DIR", "PG_BIN", "ERASURE_LEDGER", mode="before")
    @classmethod
    def _empty_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("PG_BIN")
    @classmethod
    def _pg_bin(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder (the PostgreSQL client's bin folder)")
        return value

    @field_validator("QUIET_HOURS")
    @classmethod
    def _quiet(cls, value: str) -> str:
        value = value.strip()
        if value and parse_quiet_hours(value) is None:
            raise ValueError("must look like 21-8 (from hour-to hour), or be empty")
        return value

    @field_validator("REMINDER_POLL_SECONDS", "INVITE_TTL_HOURS", "CONCURRENT_UPDATES")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive number")
        return value

    @field_validator("DUPLICATE_CHECKS_PER_DAY")
    @classmethod
    def _duplicate_checks(cls, value: int) -> int:
        """At least one; a cap in the millions would be no cap against probing the archive."""
        if not 1 <= value <= 100_000:
            raise ValueError("must be a number of look-ups per person per day, from 1 to 100000")
        return value

    @field_validator("OUTBOX_LEASE_SECONDS")
    @classmethod
    def _outbox_lease(cls, value: int) -> int:
        if not 5 <= value <= 3600:
            raise ValueError(
                "must be 5 to 3600 seconds: longer than one message takes to send, since a "
                "message claimed that long ago is sent again"
            )
        return value

    @field_validator("FOLLOWUP_CYCLES")
    @classmethod
    def _cycles(cls, value: str) -> str:
        pairs = _parse_pairs(value, "FOLLOWUP_CYCLES")
        if set(pairs) != {"A", "B", "C", "D"}:
            raise ValueError("must give days for each class A, B, C and D, e.g. A=7,B=14,C=30,D=60")
        return value

    @field_validator("COMPLAINT_DUE_HOURS")
    @classmethod
    def _due(cls, value: str) -> str:
        pairs = _parse_pairs(value, "COMPLAINT_DUE_HOURS")
        if set(pairs) != {"critical", "high", "medium", "low"}:
            raise ValueError("must give hours for critical, high, medium and low")
        return value

    @field_validator("ENCRYPTION_KEYS")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for part in value.get_secret_value().split(","):
            decode_master_key(part)
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        """Parsed here, so a typo is named with the other settings (never echoed: passwords)."""
        if not value or not value.strip():
            return None
        try:
            async_url(value.strip())
        except (ArgumentError, ValueError):
            raise ValueError(
                "must be a sqlite:///path/file.db or postgresql://user:password@host/db URL"
            ) from None
        return value.strip()

    @field_validator("WEBHOOK_PORT")
    @classmethod
    def _webhook_port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("must be a TCP port from 1 to 65535")
        return value

    @field_validator("METRICS_PORT", mode="before")
    @classmethod
    def _metrics_port(cls, value: object) -> object:
        """A TCP port, or empty / `off` for none (webhook mode serves them on WEBHOOK_PORT)."""
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("", "off", "none"):
                return None
            if not value.isdigit():
                raise ValueError("must be a TCP port from 1 to 65535, or off")
            value = int(value)
        if value is not None and not (
            isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
        ):
            raise ValueError("must be a TCP port from 1 to 65535, or off")
        return value

    @field_validator("LOG_FORMAT")
    @classmethod
    def _log_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("plain", "json"):
            raise ValueError("must be plain or json (one JSON object per line)")
        return value

    @field_validator("WEBHOOK_URL")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value and not value.startswith("https://"):
            raise ValueError("must start with https://")
        return value or None

    @field_validator("WEBHOOK_SECRET")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """Required with WEBHOOK_URL; checked here so it is listed with any other bad setting."""
        secret = value.get_secret_value() if value else ""
        wanted = info.data.get("WEBHOOK_URL")
        if wanted and not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", secret):
            raise ValueError("is required with WEBHOOK_URL: 16-256 letters, digits, _ or -")
        return value

    @property
    def database_url(self) -> str:
        """The configured URL, or a SQLite file under DATA_DIR."""
        return self.DATABASE_URL or f"sqlite:///{self.DATA_DIR / 'archive.db'}"

    @property
    def backup_dir(self) -> Path:
        """BACKUP_DIR, or `backups` in DATA_DIR."""
        return self.BACKUP_DIR or self.DATA_DIR / "backups"

    @property
    def key_file(self) -> Path:
        return self.DATA_DIR / "encryption.key"

    @property
    def erasure_ledger(self) -> Path:
        """ERASURE_LEDGER, or `erasures.log` in DATA_DIR, next to the key file."""
        return self.ERASURE_LEDGER or self.DATA_DIR / "erasures.log"

    @cached_property
    def followup_cycles(self) -> dict[str, int]:
        return _parse_pairs(self.FOLLOWUP_CYCLES, "FOLLOWUP_CYCLES")

    @cached_property
    def pool_after_days(self) -> dict[str, int]:
        """Days overdue per class before a customer goes to the pool; {} when it is off."""
        return parse_pool_after(self.POOL_AFTER_DAYS)

    @cached_property
    def complaint_due_hours(self) -> dict[str, int]:
        return _parse_pairs(self.COMPLAINT_DUE_HOURS, "COMPLAINT_DUE_HOURS")

    @property
    def quiet_hours(self) -> tuple[int, int] | None:
        return parse_quiet_hours(self.QUIET_HOURS) if self.QUIET_HOURS else None


def parse_quiet_hours(value: str) -> tuple[int, int] | None:
    """Parse `21-8` into (21, 8); None when malformed."""
    match = re.fullmatch(r"(\d{1,2})-(\d{1,2})", value.strip())
    if not match:
        return None
    start, end = int(match[1]), int(match[2])
    if not (0 <= start <= 23 and 0 <= end <= 23) or start == end:
        return None
    return start, end


def describe_errors(error: ValidationError) -> list[str]:
    """Turn a validation error into one line per setting, naming it, never echoing secrets."""
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "configuration"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required but not set"
        lines.append(f"{name}: {message}")
    return lines
