"""Whether this bot can serve: the database answers, its schema is the code's, the keys open it.

One set of checks for `python -m bot health` (polling mode, a container's HEALTHCHECK) and for
GET /healthz (bot.web), made of the start-up checks (bot.preflight, storage.schema_head), so a
failure reads like the refusal at start would: one line that names what to fix, never a secret.
Nothing here creates anything: no SQLite file, no key file, no migration.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import logs, preflight
from bot.settings import Settings
from storage import schema_head
from storage.db import async_url

MIGRATE = "run `python -m bot migrate` (or start the bot, which migrates)"
# a running bot re-counts the keys of the stored data at most this often (a balancer asks for
# /healthz every second or two; the count reads every data key's id, a million at a large company)
KEYS_RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class Check:
    """One check's outcome; `detail` is safe to print and to serve."""

    name: str  # database, schema or keys
    ok: bool
    detail: str


@dataclass(frozen=True)
class Health:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> Check | None:
        return next((check for check in self.checks if not check.ok), None)

    def line(self) -> str:
        """`healthy: ...` or `unhealthy: <check>: <why>`, one line for an operator or a log."""
        if self.failed is not None:
            return logs.redact(f"unhealthy: {self.failed.name}: {self.failed.detail}")
        return "healthy: " + "; ".join(check.detail for check in self.checks)

    def body(self) -> dict[str, object]:
        """The JSON answer of /healthz."""
        result: dict[str, object] = {"status": "ok" if self.ok else "unhealthy"}
        result["checks"] = {
            check.name: {"ok": check.ok, "detail": logs.redact(check.detail)}
            for check in self.checks
        }
        return result


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another engine or an in-memory database)."""
    parsed = make_url(async_url(url))
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return None if database.startswith("file:") else Path(database)


async def _database(settings: Settings) -> Check:
    url = settings.database_url
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.is_file():  # connecting would create it
        return Check(
            "database",
            False,
            f"DATABASE_URL: there is no database file {sqlite_file}; check DATABASE_URL or "
            "DATA_DIR (the first `python -m bot run` or `migrate` creates it)",
        )
    try:
        await preflight.check_database(url)
    except preflight.StartupRefused as refusal:
        return Check("database", False, refusal.line)
    return Check("database", True, f"database {preflight.shown_url(url)} answers")


async def _schema(settings: Settings) -> Check:
    return _schema_verdict(await schema_head.database_revisions(settings.database_url))


def _schema_verdict(found: list[str] | None) -> Check:
    """What the database's revisions (None: no version table) say about its schema."""
    head = schema_head.head_revision()
    if head is None:
        return Check("schema", False, "the migrations of this code have no single head revision")
    if found == [head]:
        return Check("schema", True, f"schema at head {head}")
    if not found:
        return Check("schema", False, f"the database has no schema yet; {MIGRATE}")
    if head in found:  # several rows: a branch merged by hand
        return Check("schema", False, f"the database is at {', '.join(found)}, not only {head}")
    return Check(
        "schema",
        False,
        f"the database is at revision {', '.join(found)}, not at head {head}: behind it "
        f"({MIGRATE}), or ahead of this code (run the newer version)",
    )


async def _keys(settings: Settings) -> Check:
    try:
        keyring, _ = await preflight.check_stored_keys(settings)
    except preflight.StartupRefused as refusal:
        return Check("keys", False, refusal.line)
    return Check("keys", True, f"{len(keyring.keys)} master key(s) open the stored data")


async def check(settings: Settings) -> Health:
    """Run the checks in the order an operator fixes them; after a failed database, no more."""
    checks: list[Check] = []
    for name, run in (("database", _database), ("schema", _schema), ("keys", _keys)):
        try:
            outcome = await run(settings)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            outcome = Check(name, False, preflight.reason(error))
        checks.append(outcome)
        if not outcome.ok:
            break
    return Health(tuple(checks))


class LiveHealth:
    """GET /healthz of a running bot, asked every second or two by a load balancer.

    The database and its schema are read every time, through the bot's own connection pool
    (`python -m bot health` opens connections of its own: three a check would be three new
    PostgreSQL backends a second). The keys check counts the key ids of all stored data, so its
    outcome is kept for KEYS_RECHECK_SECONDS while it holds; a failed one is checked again at
    the next request.
    """

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self._keys: tuple[float, Check] | None = None

    async def _database_and_schema(self) -> list[Check]:
        url = preflight.shown_url(self.settings.database_url)
        found: list[str] | None = None
        try:
            async with asyncio.timeout(preflight.CONNECT_TIMEOUT), self.engine.connect() as db:
                await db.exec_driver_sql("SELECT 1")
                with contextlib.suppress(SQLAlchemyError):  # no version table: no schema yet
                    versions = await db.execute(text("SELECT version_num FROM alembic_version"))
                    found = sorted(row[0] for row in versions)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            return [Check("database", False, f"cannot reach {url} ({preflight.reason(error)})")]
        return [Check("database", True, f"database {url} answers"), _schema_verdict(found)]

    async def check(self) -> Health:
        checks = await self._database_and_schema()
        if not all(c.ok for c in checks):
            return Health(tuple(checks))
        now = self.clock()
        if self._keys is None or now - self._keys[0] >= KEYS_RECHECK_SECONDS:
            try:
                keys = await _keys(self.settings)
            except (SQLAlchemyError, OSError, TimeoutError) as error:
                keys = Check("keys", False, preflight.reason(error))
            self._keys = (now, keys) if keys.ok else None
        else:
            keys = self._keys[1]
        return Health((*checks, keys))
