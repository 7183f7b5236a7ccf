"""Build the process-wide services from settings: database, keys, clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot import preflight
from bot.context import Services
from bot.settings import Settings
from storage.crypto import Keyring
from storage.db import make_engine, make_session_factory

log = logging.getLogger(__name__)


def system_clock() -> datetime:
    return datetime.now(UTC)


def warn_about_new_key_file(settings: Settings) -> None:
    log.warning(
        "ENCRYPTION_KEYS is not set: generated a key into %s. Back it up apart from the "
        "database; without it the encrypted fields cannot be read.",
        settings.key_file,
    )


def load_keyring(settings: Settings, *, create: bool = False) -> Keyring:
    """The master keys; only `run` passes `create` (a stray key file elsewhere opens nothing)."""
    keyring, created = preflight.load_keyring(settings, create=create)
    if created:
        warn_about_new_key_file(settings)
    return keyring


def build_services(settings: Settings, *, keyring: Keyring | None = None) -> Services:
    """Keys first: a command without its keys stops before it makes any database file."""
    keyring = keyring or load_keyring(settings)
    engine = make_engine(settings.database_url)
    return Services(
        settings=settings,
        sessions=make_session_factory(engine),
        keyring=keyring,
        clock=system_clock,
    )
