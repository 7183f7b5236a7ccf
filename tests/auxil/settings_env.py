"""A clean settings environment for tests that run `bot.cli.main` or build `Settings`."""

from __future__ import annotations

from pathlib import Path

import pytest

TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SETTINGS_ENV = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_BASE_URL",
    "BOT_USERNAME",
    "DATA_DIR",
    "DATABASE_URL",
    "ENCRYPTION_KEYS",
    "ADMIN_TELEGRAM_IDS",
    "DEFAULT_LANGUAGE",
    "TIMEZONE",
    "FOLLOWUP_HOUR",
    "QUIET_HOURS",
    "REMINDER_POLL_SECONDS",
    "INVITE_TTL_HOURS",
    "FOLLOWUP_CYCLES",
    "COMPLAINT_DUE_HOURS",
    "POOL_AFTER_DAYS",
    "POOL_WARNING_DAYS",
    "POOL_CLAIM_LIMIT",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_LISTEN",
    "WEBHOOK_PORT",
    "BACKUP_DIR",
    "BACKUP_HOUR",
    "BACKUP_KEEP",
    "PG_BIN",
    "ERASURE_LEDGER",
    "RETENTION_YEARS",
    "METRICS_PORT",
    "METRICS_LISTEN",
    "LOG_FORMAT",
)


def clean_settings_env(monkeypatch: pytest.MonkeyPatch, folder: Path, **settings: str) -> None:
    """Unset every setting, then set a valid token and `settings`; run from `folder` (no .env)."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(folder)
