"""Build the process-wide services from settings: database, keys, clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.context import Services
from bot.settings import Settings
from storage.crypto import Keyring, load_or_create_keys
from storage.db import make_engine, make_session_factory

log = logging.getLogger(__name__)


def system_clock() -> datetime:
    return datetime.now(UTC)


def load_keyring(settings: Settings) -> Keyring:
    configured = settings.ENCRYPTION_KEYS.get_secret_value() if settings.ENCRYPTION_KEYS else None
    keys, created = load_or_create_keys(configured, settings.key_file)
    if created:
        log.warning(
            "ENCRYPTION_KEYS is not set: generated a key into %s. Back it up apart from the "
            "database; without it the encrypted fields cannot be read.",
            settings.key_file,
        )
    return Keyring(keys)


def build_services(settings: Settings) -> Services:
    engine = make_engine(settings.database_url)
    return Services(
        settings=settings,
        sessions=make_session_factory(engine),
        keyring=load_keyring(settings),
        clock=system_clock,
    )
