"""Benchmark: planning reminders over many customers, and delivering 1,000 within Telegram's limit.

Planning: customers with visits are bulk-loaded (a SQLite file in a temp folder; PostgreSQL too
with --pg-url or TEST_DATABASE_URL), then the planners run as the scheduler runs them: the first
run after install (catching up a week) and the poll after it (tomorrow's rows, when the first had
no time for them), a poll with nothing new (what every REMINDER_POLL_SECONDS costs), the next
morning, the first poll after a week down, and the heavy planners (birthdays, records to
re-check, surveys) that run every few hours, one a poll when each takes long. The plans of the
due-queries are printed, to show they read indexes.

Delivery: 1,000 reminders for 1,000 people go through the real application (AIORateLimiter) and
`bot.sender` to a fake Bot API on 127.0.0.1 that answers 429 with retry_after once more than 30
messages arrive within a second. The target is 1,000/30 s + 10 %, none lost, none sent twice.

    .venv/bin/python -m tests.bench.reminders [--sizes 100000,1000000] [--pg-url URL]
                                              [--messages 1000] [--skip-planning]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import random
import sqlite3
import tempfile
import threading
import time
from collections import Counter, deque
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import col, func, select

from bot.app import build_application
from bot.context import Services
from bot.sender import Pacer, Sender
from bot.settings import Settings
from storage import reminders as store
from storage import vault
from storage.crypto import Keyring
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import Reminder
from storage.reminders import stale
from storage.reminders.planning import first_per_owner
from tests.auxil.fake_telegram import TOKEN
from tests.bench.cached_db import fresh_copy
from tests.e2e.fake_bot_api import _PATH_RE, FakeBotApi

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
TODAY = NOW.date()
TEAMS, SALESPEOPLE, MANAGERS_PER_TEAM = 50, 1000, 2
KEY_PERSON_SHARE = 0.02  # customers with a key person (their birthdays need decryption)
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy keeps datetimes in SQLite


# ---------------------------------------------------------------------------------------------
# a Bot API that enforces Telegram's 30 messages a second


class RateLimitedBotApi(FakeBotApi):
    """The e2e fake Bot API, answering sendMessage with 429 Too Many Requests (retry_after) when
    `limit` messages were accepted within the last second; counts what it refused."""

    def __init__(self, token: str, limit: int = 30, retry_after: int = 1) -> None:
        super().__init__(token)
        self.limit, self.retry_after = limit, retry_after
        self.too_many = 0
        self.arrivals: list[tuple[float, bool]] = []  # wall-clock time, accepted
        self._accepted: deque[float] = deque()
        self._window = threading.Lock()

    def _handle(self, handler: Any) -> None:
        match = _PATH_RE.fullmatch(urlsplit(handler.path).path)
        if match and match.group(3).lower() == "sendmessage" and self._refuse():
            handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
            body = json.dumps(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {self.retry_after}",
                    "parameters": {"retry_after": self.retry_after},
                }
            ).encode()
            handler.send_response(429)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        super()._handle(handler)

    def _refuse(self) -> bool:
        with self._window:
            now = time.monotonic()
            while self._accepted and self._accepted[0] <= now - 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= self.limit:
                self.too_many += 1
                self.arrivals.append((time.time(), False))
                return True
            self._accepted.append(now)
            self.arrivals.append((time.time(), True))
            return False

    def messages_per_chat(self) -> Counter[int]:
        with self._cond:
            return Counter(int(p["chat_id"]) for name, p in self.calls if name == "sendMessage")


def _serve(connection: Any, limit: int, retry_after: int) -> None:
    """The fake Bot API in a process of its own, so its clock is not the bot's event loop's."""
    api = RateLimitedBotApi(TOKEN, limit, retry_after).start()
    connection.send(api.base_url)
    connection.recv()  # until the benchmark is done
    connection.send(
        {
            "too_many": api.too_many,
            "per_chat": dict(api.messages_per_chat()),
            "arrivals": api.arrivals,
        }
    )
    api.stop()


class ServerProcess:
    """Starts `RateLimitedBotApi` in a child process and collects its counts at the end."""

    def __init__(self, limit: int = 30, retry_after: int = 1) -> None:
        context = multiprocessing.get_context("spawn")
        self._ours, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, limit, retry_after))

    def start(self) -> str:
        self._process.start()
        return str(self._ours.recv())

    def stop(self) -> dict[str, Any]:
        self._ours.send("stop")
        counts = self._ours.recv()
        self._process.join(timeout=10)
        return counts


# ---------------------------------------------------------------------------------------------
# bulk loading


def _people() -> tuple[list[tuple], list[tuple], dict[int, int]]:
    """Teams, staff (salespeople and managers), and each salesperson's team."""
    stamp = NOW.strftime(STAMP)
    teams = [(t, f"Team {t}", stamp, stamp) for t in range(1, TEAMS + 1)]
    staff, team_of = [], {}
    for sid in range(1, SALESPEOPLE + 1):
        team = (sid - 1) % TEAMS + 1
        team_of[sid] = team
        staff.append((sid, 10_000 + sid, f"s{sid}", "salesperson", team, "Asia/Shanghai"))
    for index in range(TEAMS * MANAGERS_PER_TEAM):
        sid = SALESPEOPLE + 1 + index
        staff.append((sid, 10_000 + sid, f"m{sid}", "manager", index % TEAMS + 1, "Europe/Berlin"))
    return teams, staff, team_of


def _customers(count: int, team_of: dict[int, int], seed: int = 7) -> list[tuple]:
    """Customers spread over their follow-up cycle: most with a next follow-up date within
    -30..+60 days, a tenth only with a last visit (the class cycle applies)."""
    rng = random.Random(seed)
    created = (NOW - timedelta(days=400)).strftime(STAMP)
    rows = []
    for cid in range(1, count + 1):
        owner = rng.randint(1, SALESPEOPLE)
        status = rng.choices(("approved", "pending", "rejected"), (90, 5, 5))[0]
        visit = TODAY - timedelta(days=rng.randint(1, 90))
        following: date | None = TODAY + timedelta(days=rng.randint(-30, 60))
        if rng.random() < 0.1:
            following = None
        elif following is not None and following <= visit:
            visit = following - timedelta(days=rng.randint(1, 30))
        approved = (NOW - timedelta(days=rng.randint(10, 400))).strftime(STAMP)
        rows.append(
            (
                cid,
                f"KH-2026-{cid:07d}",
                "company",
                f"Customer {cid}",
                rng.choice("ABCD"),
                "none",
                False,
                owner,
                team_of[owner],
                status,
                following.isoformat() if following else None,
                visit.isoformat(),
                approved if status == "approved" else None,
                1,
                created,
                created,
            )
        )
    return rows


CUSTOMER_COLUMNS = (
    "id, customer_no, kind, name, customer_class, deal_status, consent_given, owner_id, team_id, "
    "status, next_followup_on, last_visit_on, approved_at, version, created_at, updated_at"
)


def _key_people(customers: list[tuple], keyring: Keyring) -> tuple[list[tuple], list[tuple]]:
    """Data keys and one key person (with a sealed birthday) for a share of the customers."""
    rng = random.Random(11)
    keys, people = [], []
    stamp = NOW.strftime(STAMP)
    chosen = [c for c in customers if rng.random() < KEY_PERSON_SHARE]
    for pid, customer in enumerate(chosen, start=1):
        cid = customer[0]
        data_key = keyring.new_data_key()
        kid, wrapped = keyring.wrap(data_key, customer_id=cid)
        keys.append((pid, cid, kid, wrapped, stamp, stamp))
        birthday = date(1980, 1, 1) + timedelta(days=rng.randint(0, 365 * 30))
        sealed = vault.seal(
            data_key, {"birthday": birthday.isoformat()}, table="key_persons", row_id=pid
        )
        people.append((pid, cid, f"Person {pid}", sealed, 1, stamp, stamp))
    return keys, people


def load_sqlite(path: Path, customers: list[tuple], keys: list[tuple], people: list[tuple]) -> None:
    teams, staff, _ = _people()
    stamp = NOW.strftime(STAMP)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    with db:
        db.executemany(
            "INSERT INTO teams (id, name, created_at, updated_at) VALUES (?,?,?,?)", teams
        )
        db.executemany(
            "INSERT INTO staff (id, telegram_id, display_name, role, team_id, timezone, active, "
            "version, created_at, updated_at) VALUES (?,?,?,?,?,?,1,1,?,?)",
            [(*s, stamp, stamp) for s in staff],
        )
        db.executemany(
            f"INSERT INTO customers ({CUSTOMER_COLUMNS}) VALUES ({','.join('?' * 16)})", customers
        )
        db.executemany(
            "INSERT INTO visits (customer_id, salesperson_id, visited_at, kind, version, "
            "created_at, updated_at) VALUES (?,?,?,?,1,?,?)",
            ((c[0], c[7], c[11] + " 02:00:00.000000", "on_site", stamp, stamp) for c in customers),
        )
        db.executemany(
            "INSERT INTO data_keys (id, customer_id, kek_id, wrapped, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?)",
            keys,
        )
        db.executemany(
            "INSERT INTO key_persons (id, customer_id, name, sealed, version, created_at, "
            "updated_at) VALUES (?,?,?,?,?,?,?)",
            people,
        )
    db.close()


async def load_postgres(
    url: str, customers: list[tuple], keys: list[tuple], people: list[tuple]
) -> None:
    import asyncpg

    teams, staff, _ = _people()

    def stamp(value: str | None) -> datetime | None:
        return datetime.strptime(value, STAMP).replace(tzinfo=UTC) if value else None

    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        await connection.copy_records_to_table(
            "teams",
            records=[(t[0], t[1], NOW, NOW) for t in teams],
            columns=["id", "name", "created_at", "updated_at"],
        )
        await connection.copy_records_to_table(
            "staff",
            records=[(*s, True, 1, NOW, NOW) for s in staff],
            columns=[
                "id",
                "telegram_id",
                "display_name",
                "role",
                "team_id",
                "timezone",
                "active",
                "version",
                "created_at",
                "updated_at",
            ],
        )
        await connection.copy_records_to_table(
            "customers",
            records=[
                (*c[:10], day(c[10]), day(c[11]), stamp(c[12]), c[13], stamp(c[14]), stamp(c[15]))
                for c in customers
            ],
            columns=[name.strip() for name in CUSTOMER_COLUMNS.split(",")],
        )
        await connection.copy_records_to_table(
            "visits",
            records=[
                (
                    c[0],
                    c[7],
                    datetime.fromisoformat(c[11]).replace(hour=2, tzinfo=UTC),
                    "on_site",
                    1,
                    NOW,
                    NOW,
                )
                for c in customers
            ],
            columns=[
                "customer_id",
                "salesperson_id",
                "visited_at",
                "kind",
                "version",
                "created_at",
                "updated_at",
            ],
        )
        await connection.copy_records_to_table(
            "data_keys",
            records=[(*k[:4], NOW, NOW) for k in keys],
            columns=["id", "customer_id", "kek_id", "wrapped", "created_at", "updated_at"],
        )
        await connection.copy_records_to_table(
            "key_persons",
            records=[(*p[:5], NOW, NOW) for p in people],
            columns=["id", "customer_id", "name", "sealed", "version", "created_at", "updated_at"],
        )
        for table in ("teams", "staff", "customers", "visits", "data_keys", "key_persons"):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def _fresh_postgres(server_url: str) -> str:
    import asyncpg

    parsed = make_url(server_url).set(drivername="postgresql")
    name = f"bench_reminders_{os.getpid()}"
    connection = await asyncpg.connect(parsed.render_as_string(False))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return parsed.set(database=name).render_as_string(False)


async def _drop_postgres(url: str) -> None:
    import asyncpg

    parsed = make_url(url).set(drivername="postgresql")
    name = parsed.database
    connection = await asyncpg.connect(parsed.set(database="postgres").render_as_string(False))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# planning

CACHE = Path(os.environ.get("BENCH_CACHE", "/tmp/bench-cache-poll"))
EVERY_POLL = ("followup", "overdue", "catch_up", "reviews", "rejected", "complaints", "weekly")
HEAVY = ("birthday", "stale", "survey")
# a poll reads one whole day when a day takes longer than storage.reminders.cursor.DAY_BUDGET:
# after install or days down, tomorrow waits for the poll after
AFTER = "the poll after it (tomorrow, if it waited)"
# a poll runs one planner of HEAVY, and the next only within registry.PERIODIC_BUDGET
NEXT_PERIODIC = "the poll after it (the next daily planner)"
REF_COLUMNS = (
    "dedup_key, kind, subject_type, subject_id, recipient_id, due_at, next_attempt_at, status, "
    "attempts, period_on, created_at, updated_at"
)


def _schema_mark() -> str:
    """The migrations the cached database was built with: another schema, another cache."""
    versions = Path(__file__).resolve().parents[2] / "storage" / "migrations" / "versions"
    names = ",".join(sorted(p.name for p in versions.glob("00*.py")))
    return hashlib.sha1(names.encode()).hexdigest()[:10]


def _populate(size: int, url: str, secret: bytes) -> None:
    """Load the customers (in a child process, so the poller's memory is only its own)."""
    keyring = Keyring([secret])
    _, _, team_of = _people()
    customers = _customers(size, team_of)
    keys, people = _key_people(customers, keyring)
    asyncio.run(upgrade_database(url))
    if url.startswith("sqlite"):
        load_sqlite(Path(make_url(url).database or ""), customers, keys, people)
    else:
        asyncio.run(load_postgres(url, customers, keys, people))


def _populate_in_child(size: int, url: str, secret: bytes) -> None:
    process = multiprocessing.get_context("spawn").Process(
        target=_populate, args=(size, url, secret)
    )
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"loading {size:,} customers failed ({process.exitcode})")


def _prepared_sqlite(size: int, workdir: Path, secret: bytes) -> str:
    """A copy of the cached, loaded database (loaded first if there is none)."""
    cached = CACHE / f"plan-{size}-{_schema_mark()}.db"
    return fresh_copy(
        cached, workdir / f"plan-{size}.db", lambda url: _populate_in_child(size, url, secret)
    )


async def _prepared_postgres(size: int, server_url: str, secret: bytes) -> str:
    """A database made from the cached, loaded template (loaded first if there is none)."""
    import asyncpg

    server = make_url(server_url).set(drivername="postgresql")
    template = f"bench_cache_poll_{size}_{_schema_mark()}"
    name = f"bench_reminders_{os.getpid()}"
    connection = await asyncpg.connect(server.render_as_string(False))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", template)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{template}"')
            loading = server.set(database=template).render_as_string(False)
            try:
                await asyncio.to_thread(_populate_in_child, size, loading, secret)
            except BaseException:
                await connection.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
                raise
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await connection.close()
    return server.set(database=name).render_as_string(False)


class PeakMemory:
    """The process's peak RSS while a block runs (Linux: clear_refs resets VmHWM)."""

    def __enter__(self) -> PeakMemory:
        gc.collect()
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.before = self._read("VmRSS")
        return self

    def __exit__(self, *_: object) -> None:
        self.peak = self._read("VmHWM")

    @staticmethod
    def _read(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")


class Reference:
    """The bare SQL a poll cannot do without, on the driver's own connection: the indexed
    due-query over the poll's days, and a plain executemany insert of as many outbox rows."""

    def __init__(self, url: str, dialect: str) -> None:
        self.url, self.dialect = url, dialect

    async def __aenter__(self) -> Reference:
        if self.dialect == "sqlite":
            self.db = sqlite3.connect(make_url(self.url).database or "", isolation_level=None)
            self.db.execute("DROP TABLE IF EXISTS bench_ref")
            self.db.execute("CREATE TABLE bench_ref AS SELECT * FROM reminders WHERE 0")
            for (sql,) in self.db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'reminders' "
                "AND sql IS NOT NULL"
            ).fetchall():
                self.db.execute(
                    sql.replace("INDEX ix_", "INDEX ref_").replace("ON reminders", "ON bench_ref")
                )
            self.db.execute("CREATE UNIQUE INDEX ref_dedup ON bench_ref (dedup_key)")
        else:
            import asyncpg

            self.pg = await asyncpg.connect(
                make_url(self.url).set(drivername="postgresql").render_as_string(False)
            )
            await self.pg.execute("DROP TABLE IF EXISTS bench_ref")
            await self.pg.execute("CREATE TABLE bench_ref (LIKE reminders INCLUDING ALL)")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.dialect == "sqlite":
            self.db.execute("DROP TABLE IF EXISTS bench_ref")
            self.db.close()
        else:
            await self.pg.execute("DROP TABLE IF EXISTS bench_ref")
            await self.pg.close()

    async def measure(self, lo: date, hi: date, rows: int) -> float:
        """Seconds for the due-query over [lo, hi] plus inserting `rows` outbox rows."""
        started = time.perf_counter()
        due = "SELECT id, owner_id, next_followup_on FROM customers WHERE next_followup_on "
        stamp = NOW.replace(tzinfo=None)
        records = [
            (
                f"ref:customer:{i}:1:x",
                "followup",
                "customer",
                i,
                1 + i % SALESPEOPLE,
                stamp,
                stamp,
                "pending",
                0,
                TODAY,
                stamp,
                stamp,
            )
            for i in range(rows)
        ]
        if self.dialect == "sqlite":
            self.db.execute(due + "BETWEEN ? AND ?", (lo.isoformat(), hi.isoformat())).fetchall()
            text_records = [
                (
                    *r[:5],
                    r[5].strftime(STAMP),
                    r[6].strftime(STAMP),
                    *r[7:9],
                    r[9].isoformat(),
                    r[10].strftime(STAMP),
                    r[11].strftime(STAMP),
                )
                for r in records
            ]
            self.db.execute("BEGIN")
            self.db.executemany(
                f"INSERT INTO bench_ref ({REF_COLUMNS}) VALUES ({','.join('?' * 12)}) "
                "ON CONFLICT DO NOTHING",
                text_records,
            )
            self.db.execute("COMMIT")
            elapsed = time.perf_counter() - started
            self.db.execute("DELETE FROM bench_ref")
        else:
            await self.pg.fetch(due + "BETWEEN $1 AND $2", lo, hi)
            aware = [
                (
                    *r[:5],
                    r[5].replace(tzinfo=UTC),
                    r[6].replace(tzinfo=UTC),
                    *r[7:10],
                    r[10].replace(tzinfo=UTC),
                    r[11].replace(tzinfo=UTC),
                )
                for r in records
            ]
            async with self.pg.transaction():
                await self.pg.executemany(
                    f"INSERT INTO bench_ref ({REF_COLUMNS}) VALUES "
                    f"({','.join(f'${i}' for i in range(1, 13))}) ON CONFLICT DO NOTHING",
                    aware,
                )
            elapsed = time.perf_counter() - started
            await self.pg.execute("DELETE FROM bench_ref")
        return elapsed


async def _explain(sessions: Any, dialect: str) -> None:
    """Print the plan of each follow-up due-query and of the delivery query."""
    lo, hi = TODAY - timedelta(days=1), TODAY + timedelta(days=1)
    rules = store.Rules()
    queries = [
        (
            "follow-ups due (next follow-up date)",
            store.followup_query(lo, hi, rules.cycles, dialect)[0],
        ),
        (
            "follow-ups due (class A cycle after the last visit)",
            store.followup_query(lo, hi, rules.cycles, dialect)[1],
        ),
        (
            "overdue escalation (next follow-up date)",
            store.overdue_query(lo, hi, rules, dialect)[0],
        ),
        (
            "records to re-check, each owner's oldest five (the first 500 staff ids)",
            first_per_owner(list(range(1, 501)), stale.pick(NOW - timedelta(days=180)), 5, dialect),
        ),
        (
            "delivery: what is due now",
            select(Reminder.id, Reminder.recipient_id)
            .where(
                col(Reminder.status).in_(("pending", "sending")),
                col(Reminder.next_attempt_at) <= NOW,
            )
            .order_by(col(Reminder.recipient_id))
            .limit(200),
        ),
    ]
    async with unit_of_work(sessions) as session:
        bind = session.get_bind().dialect
        for label, query in queries:
            sql = str(query.compile(dialect=bind, compile_kwargs={"literal_binds": True}))
            print(f"    plan of {label}:")
            if dialect == "sqlite":
                rows = (await session.exec(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
                lines = [r[3] for r in rows]
            else:
                rows = (await session.exec(text(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}"))).all()
                lines = [r[0] for r in rows]
            for line in lines:
                print(f"        {line}")


async def _outbox_size(sessions: Any) -> int:
    async with unit_of_work(sessions) as session:
        return int((await session.exec(select(func.count(col(Reminder.id))))).one())


async def planning(size: int, url: str, keyring: Keyring, dialect: str, explain: bool) -> None:
    print(f"\n== planning over {size:,} customers with visits ({dialect})")
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rules = store.Rules(quiet_hours="")
    # (label, moment, planners, first day the poll's reference reads, last day)
    polls = [
        ("first poll after install (catches up 7 days)", NOW, EVERY_POLL, -8, 1),
        (AFTER, NOW + timedelta(minutes=1), EVERY_POLL, 1, 1),
        ("ordinary poll, nothing new", NOW + timedelta(minutes=2), EVERY_POLL, -1, 1),
        ("the next morning's poll (a new day)", NOW + timedelta(days=1), EVERY_POLL, 1, 1),
        ("ordinary poll, nothing new", NOW + timedelta(days=1, minutes=1), EVERY_POLL, -1, 1),
        ("first poll after 7 days down", NOW + timedelta(days=8), EVERY_POLL, -8, 1),
        (AFTER, NOW + timedelta(days=8, minutes=1), EVERY_POLL, 1, 1),
        ("ordinary poll, nothing new", NOW + timedelta(days=8, minutes=2), EVERY_POLL, -1, 1),
        ("daily planners: birthdays, records to re-check, surveys", NOW, HEAVY, -8, 1),
        (NEXT_PERIODIC, NOW + timedelta(minutes=1), HEAVY, 1, 1),
        (NEXT_PERIODIC, NOW + timedelta(minutes=2), HEAVY, 1, 1),
        ("the same a day later", NOW + timedelta(days=1), HEAVY, 1, 1),
        (NEXT_PERIODIC, NOW + timedelta(days=1, minutes=1), HEAVY, 1, 1),
        (NEXT_PERIODIC, NOW + timedelta(days=1, minutes=2), HEAVY, 1, 1),
    ]
    print(
        f"    {'poll':<56} {'bot':>7} {'ref':>7} {'ratio':>6} {'new rows':>9} "
        f"{'peak RSS':>9} {'(before)':>9}"
    )
    try:
        async with Reference(url, dialect) as reference:
            for label, now, only, first, last in polls:
                before = await _outbox_size(sessions)
                with PeakMemory() as memory:
                    started = time.perf_counter()
                    created = await store.plan(
                        sessions, keyring=keyring, rules=rules, now=now, only=only
                    )
                    elapsed = time.perf_counter() - started
                new = await _outbox_size(sessions) - before
                day = now.date()
                ref = await reference.measure(
                    day + timedelta(days=first), day + timedelta(days=last), new
                )
                print(
                    f"    {label:<56} {elapsed:6.2f}s {ref:6.2f}s {elapsed / ref:6.1f} {new:9,} "
                    f"{memory.peak:6.0f} MB {memory.before:6.0f} MB"
                )
                print(f"        {dict((k, v) for k, v in created.items() if v)}")
        print(f"    reminders in the outbox: {await _outbox_size(sessions):,}")
        if explain:
            await _explain(sessions, dialect)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------
# delivery


async def delivery(messages: int, workdir: Path, pacer: Pacer | None, label: str) -> None:
    print(f"\n== delivering {messages:,} reminders to {messages:,} people: {label}")
    url = f"sqlite:///{workdir / f'deliver-{time.monotonic_ns()}.db'}"
    await upgrade_database(url)
    keyring = Keyring([os.urandom(32)])
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    server = ServerProcess()
    base_url = await asyncio.to_thread(server.start)
    counts: dict[str, Any] | None = None
    try:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            TELEGRAM_BOT_TOKEN=TOKEN,
            DATA_DIR=workdir,
            TELEGRAM_BASE_URL=base_url,
            QUIET_HOURS="",
            FOLLOWUP_HOUR=0,
        )
        services = Services(
            settings=settings,
            sessions=sessions,
            keyring=keyring,
            clock=lambda: datetime.now(UTC),
        )
        async with unit_of_work(sessions) as session:
            from storage.models import Customer, Staff, Team

            team = Team(name="Bench")
            session.add(team)
            await session.flush()
            for index in range(messages):
                person = Staff(
                    telegram_id=50_000 + index,
                    display_name=f"p{index}",
                    role="salesperson",
                    team_id=team.id,
                    quiet_hours="",
                )
                session.add(person)
                await session.flush()
                session.add(
                    Customer(
                        customer_no=f"KH-2026-{index:06d}",
                        kind="company",
                        name=f"Customer {index}",
                        owner_id=person.id or 0,
                        team_id=team.id,
                        status="approved",
                        next_followup_on=datetime.now(UTC).date(),
                        approved_at=datetime.now(UTC),
                    )
                )
        planned = await store.plan(
            sessions,
            keyring=keyring,
            rules=store.Rules.from_settings(settings),
            now=datetime.now(UTC),
            only=("followup",),
        )
        assert planned["followup"] == messages, planned
        application = build_application(services)  # with AIORateLimiter, as in production
        await application.initialize()
        sender = Sender(pacer) if pacer is not None else Sender()
        started = time.perf_counter()
        report = await sender.deliver(services, application.bot)
        rounds = 1
        while True:  # what a later tick would do for anything deferred
            async with unit_of_work(sessions) as session:
                left = (
                    await session.exec(
                        select(func.count(col(Reminder.id))).where(col(Reminder.status) != "sent")
                    )
                ).one()
            if not left:
                break
            await asyncio.sleep(0.2)
            report.add(await sender.deliver(services, application.bot))
            rounds += 1
        elapsed = time.perf_counter() - started
        await application.shutdown()
        counts = await asyncio.to_thread(server.stop)
        per_chat = Counter({int(chat): n for chat, n in counts["per_chat"].items()})
        target = messages / 30
        print(f"    elapsed {elapsed:.2f} s  (ideal {target:.2f} s; +10 % = {target * 1.1:.2f} s)")
        print(
            f"    {elapsed / target * 100 - 100:+.1f} % against the ideal; "
            f"{messages / elapsed:.1f} messages/s"
        )
        print(
            f"    429 answers from the server: {counts['too_many']}; seen by the sender: "
            f"{report.retry_after}; rows deferred: {report.deferred}; delivery rounds: {rounds}"
        )
        print(
            f"    chats reached: {len(per_chat):,} of {messages:,}; sent twice: "
            f"{sum(1 for n in per_chat.values() if n > 1)}; lost: {messages - len(per_chat)}; "
            f"rows sent: {report.sent:,}; failed: {report.failed}"
        )
    finally:
        if counts is None:
            await asyncio.to_thread(server.stop)
        await engine.dispose()


async def main(arguments: Any) -> None:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
    secret = bytes(32)  # the cached databases' key persons are sealed with it
    keyring = Keyring([secret])
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        if not arguments.skip_planning:
            for size in arguments.sizes:
                if not arguments.skip_sqlite:
                    url = _prepared_sqlite(size, workdir, secret)
                    await planning(size, url, keyring, "sqlite", arguments.explain)
                    os.remove(make_url(url).database or "")
                if arguments.pg_url:
                    url = await _prepared_postgres(size, arguments.pg_url, secret)
                    try:
                        await planning(size, url, keyring, "postgresql", arguments.explain)
                    finally:
                        await _drop_postgres(url)
        if arguments.skip_delivery:
            return
        await delivery(arguments.messages, workdir, None, "Sender's pacer + AIORateLimiter")
        if arguments.compare:
            unpaced = Pacer(per_window=0, chat_interval=0, gap=0)
            await delivery(arguments.messages, workdir, unpaced, "AIORateLimiter alone")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[100_000, 1_000_000]
    )
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL", ""))
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--skip-planning", action="store_true")
    parser.add_argument("--skip-delivery", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true", help="plan on PostgreSQL only")
    parser.add_argument("--explain", action="store_true", help="print the due-queries' plans")
    parser.add_argument(
        "--compare", action="store_true", help="also deliver with AIORateLimiter alone"
    )
    asyncio.run(main(parser.parse_args()))
