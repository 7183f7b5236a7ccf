"""Start-up checks: every bad setting becomes one line naming it and what to do, exit code 2.

SPEC section 9: with a wrong setting the bot refuses to start and says which one and why. The
checks here run before anything else touches the database or Telegram, so an operator sees
`The bot cannot start: DATA_DIR: ...` instead of forty lines of traceback, and never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError

from bot.settings import Settings
from storage import audit
from storage.crypto import Keyring, MasterKey, decode_master_key, load_or_create_keys
from storage.db import make_engine, make_session_factory
from storage.destruction import sync
from storage.erasure_ledger import Ledger, LedgerError
from storage.key_usage import KEY_TABLES, KeyUsage, master_keys_in_use
from storage.types import utcnow

CONNECT_TIMEOUT = 15.0
log = logging.getLogger(__name__)


class StartupRefused(Exception):
    """A setting the bot cannot start with; `line` is what the operator is shown."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting, self.message = setting, message

    @property
    def line(self) -> str:
        return f"{self.setting}: {self.message}"


def reason(error: BaseException) -> str:
    """A short cause without SQL, parameters or secrets: the driver's first line."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    if isinstance(error, OSError) and (error.errno or error.strerror):
        return (os.strerror(error.errno) if error.errno else str(error.strerror)).lower()
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text[:200]


# --- the data folder -------------------------------------------------------------------------


def uses_data_dir(settings: Settings, *, keys: bool) -> bool:
    """DATA_DIR matters for the default SQLite file and, when `keys`, for the key file."""
    return settings.DATABASE_URL is None or (keys and settings.ENCRYPTION_KEYS is None)


def check_data_dir(settings: Settings, *, keys: bool = True, create: bool = True) -> None:
    """DATA_DIR is a folder the bot can write, made (0700) when missing and `create`."""
    if not uses_data_dir(settings, keys=keys):
        return
    folder = settings.DATA_DIR
    what_to_do = "set DATA_DIR to a folder the bot's user may write"
    if folder.exists() and not folder.is_dir():
        raise StartupRefused("DATA_DIR", f"{folder} is a file, not a folder; {what_to_do}")
    if not folder.exists():
        if not create:
            return
        try:
            folder.mkdir(mode=0o700, parents=True)
        except OSError as error:
            raise StartupRefused(
                "DATA_DIR", f"cannot create {folder} ({reason(error)}); {what_to_do}"
            ) from None
    try:  # os.access says yes to root everywhere; writing a file is the real test
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise StartupRefused(
            "DATA_DIR", f"cannot write in {folder} ({reason(error)}); {what_to_do}"
        ) from None


# --- the database ----------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """The database URL as it may be printed: password hidden."""
    return make_url(url).render_as_string(hide_password=True)


async def check_database(url: str) -> None:
    """The database answers; otherwise name DATABASE_URL and the cause."""
    try:
        engine = make_engine(url)
    except OSError as error:
        folder = Path(make_url(url).database or "").parent
        raise StartupRefused(
            "DATABASE_URL",
            f"cannot create the folder {folder} of the SQLite file ({reason(error)}); "
            "point DATABASE_URL at a folder the bot's user may write",
        ) from None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT), engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        raise StartupRefused(
            "DATABASE_URL",
            f"cannot connect to {shown_url(url)} ({reason(error)}); check that the database "
            "server is running and that DATABASE_URL names it, its user and password",
        ) from None
    finally:
        await engine.dispose()


async def migrate(url: str) -> None:
    """Bring the schema up to date; a database that refuses (rights, a full disk) is named.

    A database already at the newest revision (every start but the first after an upgrade)
    is left alone without loading Alembic (storage.schema_head).
    """
    from storage import schema_head

    if await schema_head.is_current(url):
        return
    from storage.migrate import upgrade_database

    try:
        await upgrade_database(url)
    except (SQLAlchemyError, OSError) as error:
        raise StartupRefused(
            "DATABASE_URL",
            f"cannot bring the schema of {shown_url(url)} up to date ({reason(error)}); check "
            "that its user may create tables, and the disk",
        ) from None


# --- the master keys -------------------------------------------------------------------------


def load_keyring(settings: Settings, *, create: bool = False) -> tuple[Keyring, bool]:
    """The master keys from ENCRYPTION_KEYS or the key file; only `create` may write one.

    Returns the keyring and whether a new key file was written (the caller warns).
    """
    configured = settings.ENCRYPTION_KEYS.get_secret_value() if settings.ENCRYPTION_KEYS else None
    key_file = settings.key_file
    if not configured and not key_file.exists() and not create:
        raise StartupRefused(
            "ENCRYPTION_KEYS",
            f"is not set and there is no key file {key_file}; set ENCRYPTION_KEYS, or DATA_DIR "
            "to the bot's data folder (run this from where the bot runs; a new installation "
            "makes its key file at the first `python -m bot run`)",
        )
    try:
        keys, created = load_or_create_keys(configured, key_file)
    except OSError as error:
        raise StartupRefused(
            "DATA_DIR", f"cannot read or write the key file {key_file} ({reason(error)})"
        ) from None
    except ValueError as error:
        raise StartupRefused("DATA_DIR", f"{error}; restore the key file from its backup") from None
    return Keyring(keys), created


def _key_file_kids(settings: Settings) -> set[str]:
    """The key ids of the key file, when it exists and reads (for a helpful message only)."""
    try:
        lines = settings.key_file.read_text(encoding="ascii").split()
        return {MasterKey.from_bytes(decode_master_key(line)).kid for line in lines}
    except (OSError, ValueError):
        return set()


async def check_stored_keys(settings: Settings, *, create: bool = False) -> tuple[Keyring, bool]:
    """Load the keys and refuse when stored data is sealed under a key id they do not hold.

    Runs before the migrations, so nothing is changed when it refuses; a database without the
    tables yet holds nothing encrypted. A key file is created only when `create` and nothing is
    encrypted yet: a new key beside old data would open none of it.
    """
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        usage = KeyUsage()
        if tables & KEY_TABLES:
            async with make_session_factory(engine)() as session:
                usage = await master_keys_in_use(session, tables=tables)
    finally:
        await engine.dispose()
    configured = settings.ENCRYPTION_KEYS is not None
    if not configured and not settings.key_file.exists() and usage.records():
        raise StartupRefused(
            "ENCRYPTION_KEYS",
            f"is not set and there is no key file {settings.key_file}, but "
            f"{usage.records()} stored records are encrypted; set ENCRYPTION_KEYS to the keys "
            "used before, or DATA_DIR to the folder holding their encryption.key",
        )
    keyring, created = load_keyring(settings, create=create)
    missing = set(usage.by_kid) - {key.kid for key in keyring.keys}
    if not missing:
        return keyring, created
    ids = ", ".join(sorted(missing))
    affected = f"{usage.records(missing)} stored records ({usage.kinds(missing)})"
    if not configured:
        raise StartupRefused(
            "DATA_DIR",
            f"{affected} are encrypted under master key id {ids}, which the key file "
            f"{settings.key_file} does not hold; set ENCRYPTION_KEYS to the keys used before, "
            "or DATA_DIR to the folder with the key file used before",
        )
    if missing & _key_file_kids(settings):
        hint = (
            f"the key file {settings.key_file} holds it: add that key to ENCRYPTION_KEYS after "
            "the newest one (ENCRYPTION_KEYS=NEW,OLD), then run rotate-keys"
        )
    else:
        hint = (
            "put the removed key back into ENCRYPTION_KEYS (newest first) and run rotate-keys "
            "before removing it"
        )
    raise StartupRefused(
        "ENCRYPTION_KEYS",
        f"{affected} are encrypted under master key id {ids}, which ENCRYPTION_KEYS does not "
        f"hold; {hint}",
    )


# --- the Bot API -----------------------------------------------------------------------------


async def check_bot_api(settings: Settings) -> str:
    """Ask the Bot API who we are; name the token or the URL when that fails. Returns @name."""
    bot = Bot(settings.TELEGRAM_BOT_TOKEN.get_secret_value(), base_url=settings.TELEGRAM_BASE_URL)
    where = settings.TELEGRAM_BASE_URL.split("?")[0]
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * 2):
            await bot.initialize()
            return bot.username
    except InvalidToken as error:
        # PTB's own message repeats the whole token: only the server's word is shown
        said = getattr(error.__cause__, "message", "") or "rejected"
        raise StartupRefused(
            "TELEGRAM_BOT_TOKEN",
            f"the Bot API at {where} refused the token ({said}); copy the token again from "
            "@BotFather (or check TELEGRAM_BASE_URL)",
        ) from None
    except (NetworkError, TimeoutError, OSError) as error:
        raise StartupRefused(
            "TELEGRAM_BASE_URL",
            f"cannot reach the Bot API at {where} ({reason(error)}); check the network, a "
            "proxy or TELEGRAM_BASE_URL",
        ) from None
    except TelegramError as error:
        raise StartupRefused(
            "TELEGRAM_BASE_URL", f"the Bot API at {where} answered {reason(error)}"
        ) from None
    finally:
        with contextlib.suppress(TelegramError):
            await bot.shutdown()


# --- the erasure ledger ----------------------------------------------------------------------


async def sync_erasures(settings: Settings, keyring: Keyring) -> None:
    """Re-apply the erasure ledger to the database before anyone uses it (a database restored
    by hand, or from a backup older than a destruction, must not show a destroyed customer),
    and record erasures the ledger lacks. A forged or altered ledger stops the start."""
    engine = make_engine(settings.database_url)
    try:
        ledger = Ledger(settings.erasure_ledger, keyring)
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        synced = await sync(factory, ledger, keyring, now=utcnow())
    except LedgerError as error:
        raise StartupRefused(
            "ERASURE_LEDGER",
            f"{error}; put back the ledger kept with the keys (from the key backup), or run "
            "`python -m bot erasures` to see what is wrong",
        ) from None
    finally:
        await engine.dispose()
    log.info(
        "erasure ledger %s: %d entries; re-applied %d, recorded %d missing (%.2f s)",
        settings.erasure_ledger,
        synced.head.count,
        synced.reapplied.total,
        synced.recorded,
        synced.seconds,
    )
