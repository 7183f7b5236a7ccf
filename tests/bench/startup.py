"""Benchmark: start to first poll and the bot process's memory, with 100,000 or 1,000,000 customers.

The database is populated with bulk SQL inserts (tests/bench/search.py `populate`, run by the
code under test so its own schema is used) and cached under /tmp/bench-cache-index/ (SQLite: a
file, copied for every run because the bot writes to it; PostgreSQL: one database per size and
schema, reused). Then the real bot starts as its own process (`python -m bot run`) against the
fake Bot API server of the end-to-end tests, and the benchmark measures:

- seconds from starting the process to its first getUpdates call (the first poll);
- its peak RSS (VmHWM) and its RSS once the name index is built and one `/find` from an admin
  has been answered (steady);
- the same for a bare python-telegram-bot process (an Application with the same base URL that
  only polls): the reference of this run, and the bot's figures divided by it.

    .venv/bin/python -m tests.bench.startup [--customers 100000,1000000] [--runs 3]
    .venv/bin/python -m tests.bench.startup --pg-url postgresql://postgres@127.0.0.1:55432/postgres
    .venv/bin/python -m tests.bench.startup --code /tmp/before-index   # older code, same bench
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.bench.cached_db import fresh_copy
from tests.e2e.fake_bot_api import FakeBotApi

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path("/tmp/bench-cache-index")
TOKEN = "123456:BENCH-token-abcdefghijklmnopqrstuvwxyz"
ADMIN = 1  # the admin's telegram id in tests/bench/search.py `populate`
QUERY = "明远"
KEY = bytes(range(32))  # the populated rows' master key (a benchmark's, never a real one)
KEY_TEXT = base64.urlsafe_b64encode(KEY).decode()
LOG = CACHE / "bot.log"  # the last bot's output, to look at when a run fails
WAIT = 900.0  # seconds: the old code builds the index of 1M customers before it polls

# Runs in the code under test (its own storage and schema): migrate, then bulk-insert.
POPULATE = """
import asyncio, random, sys
from storage.crypto import Keyring
from storage.db import make_engine, make_session_factory
from storage.migrate import upgrade_database
from tests.bench.search import populate

async def main(url, customers):
    await upgrade_database(url)
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        await populate(sessions, Keyring([bytes(range(32))]), customers, random.Random(20261122))
    finally:
        await engine.dispose()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

# The reference: python-telegram-bot alone, polling the same fake server.
BARE_BOT = """
import sys
from telegram.ext import ApplicationBuilder, MessageHandler, filters

async def echo(update, context):
    await update.effective_message.reply_text(update.effective_message.text or "")

app = ApplicationBuilder().token(sys.argv[1]).base_url(sys.argv[2]).build()
app.add_handler(MessageHandler(filters.TEXT, echo))
app.run_polling(poll_interval=0.0, timeout=10)
"""


@dataclass
class Figures:
    """One process's start: seconds to the first poll, peak and steady RSS in MB."""

    first_poll: float
    peak_mb: float
    steady_mb: float
    answered: float | None = None  # seconds from start to the first /find answer


def head_revision(code: Path) -> str:
    """The newest migration of the code under test (the cache is kept per schema)."""
    versions = sorted((code / "storage" / "migrations" / "versions").glob("00*.py"))
    return versions[-1].stem


def _env(code: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPATH": str(code),
    }
    env.update(extra)
    return env


def _populate(code: Path, url: str, customers: int) -> None:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", POPULATE, url, str(customers)],
        cwd=code,
        env=_env(code, {}),
        check=True,
    )
    print(f"populated {customers} customers in {time.perf_counter() - started:.0f} s")


def sqlite_database(code: Path, customers: int, workdir: Path) -> str:
    """A fresh copy of the cached, populated SQLite file (populated on first use)."""
    cached = CACHE / f"customers-{customers}-{head_revision(code)}.db"
    return fresh_copy(cached, workdir / "bot.db", lambda url: _populate(code, url, customers))


def postgres_database(code: Path, customers: int, server_url: str) -> str:
    """A database on the server holding `customers` rows of this schema (populated once).

    The bot writes a little at start (admins, planned reminders); at these sizes that does
    not change what is measured, so the database is reused between runs.
    """
    name = f"bench_startup_{customers}_{head_revision(code)}".lower()
    server = make_url(server_url)
    url = server.set(database=name).render_as_string(hide_password=False)

    async def count() -> int:
        plain = server.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(plain)
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await connection.execute(f'CREATE DATABASE "{name}"')
                return 0
        finally:
            await connection.close()
        mine = await asyncpg.connect(make_url(plain).set(database=name).render_as_string(False))
        try:
            return int(await mine.fetchval("SELECT count(*) FROM customers"))
        except asyncpg.UndefinedTableError:
            return 0
        finally:
            await mine.close()

    held = asyncio.run(count())
    if held != customers:
        if held:
            raise SystemExit(f"{name} holds {held} customers, not {customers}: drop it")
        _populate(code, url, customers)
    return url


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def _first_call(api: FakeBotApi, method: str, since: float, proc: subprocess.Popen[Any]) -> float:
    """Monotonic time of the first `method` call made since `since` (the process must live)."""
    deadline = since + WAIT
    while time.monotonic() < deadline:
        with api._cond:
            for (name, _params), at in zip(api.calls, api._call_times, strict=True):
                if name.lower() == method.lower() and at >= since:
                    return at
        if proc.poll() is not None:
            raise SystemExit(f"the process exited with {proc.returncode} before {method}")
        time.sleep(0.01)
    raise SystemExit(f"no {method} within {WAIT} s")


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_bot(code: Path, database_url: str, workdir: Path) -> Figures:
    """Start `python -m bot run` from `code`, wait for its first poll, then search once."""
    with FakeBotApi(TOKEN) as api:
        env = _env(
            code,
            {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_BASE_URL": api.base_url,
                "BOT_USERNAME": "archive_test_bot",
                "DATA_DIR": str(workdir / "data"),
                "DATABASE_URL": database_url,
                "DEFAULT_LANGUAGE": "zh",
                "ADMIN_TELEGRAM_IDS": str(ADMIN),
                "AUDIT_HEAD_DAYS": "0",
                "ENCRYPTION_KEYS": KEY_TEXT,
            },
        )
        log = LOG.open("wb")
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=code,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            polled = _first_call(api, "getUpdates", started, proc)
            asked = api.last_seq()
            api.send_text(api.user(ADMIN), f"/find {QUERY}")
            api.wait_for_message(ADMIN, after=asked, timeout=WAIT)
            answered = time.monotonic()
            time.sleep(1.0)  # let the answer's work settle
            status = _status(proc.pid)
        finally:
            _stop(proc)
            log.close()
    return Figures(polled - started, status["VmHWM"], status["VmRSS"], answered - started)


def run_bare() -> Figures:
    """The reference: a bare python-telegram-bot Application polling the same kind of server."""
    with FakeBotApi(TOKEN) as api:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", BARE_BOT, TOKEN, api.base_url],
            cwd=REPO_ROOT,
            env=_env(REPO_ROOT, {}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            polled = _first_call(api, "getUpdates", started, proc)
            time.sleep(1.0)
            status = _status(proc.pid)
        finally:
            _stop(proc)
    return Figures(polled - started, status["VmHWM"], status["VmRSS"])


def main(code: Path, sizes: list[int], runs: int, pg_url: str | None) -> None:
    database = "PostgreSQL" if pg_url else "SQLite"
    print(f"code: {code} (schema {head_revision(code)}); database: {database}")
    header = (
        f"{'customers':>9} {'run':>3} | {'first poll s':>12} {'bare s':>6} {'ratio':>6} | "
        f"{'peak MB':>7} {'steady MB':>9} {'bare MB':>7} {'ratio':>6} | {'1st /find s':>11}"
    )
    rows: list[str] = []
    for customers in sizes:
        for run in range(1, runs + 1):
            with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
                workdir = Path(tmp)
                if pg_url:
                    url = postgres_database(code, customers, pg_url)
                else:
                    url = sqlite_database(code, customers, workdir)
                bare = run_bare()
                bot = run_bot(code, url, workdir)
            rows.append(
                f"{customers:>9} {run:>3} | {bot.first_poll:12.2f} {bare.first_poll:6.2f} "
                f"{bot.first_poll / bare.first_poll:6.1f} | {bot.peak_mb:7.0f} "
                f"{bot.steady_mb:9.0f} {bare.peak_mb:7.0f} {bot.peak_mb / bare.peak_mb:6.1f} | "
                f"{bot.answered or 0:11.2f}"
            )
            print(rows[-1], flush=True)
    print()
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=None, help="a PostgreSQL server (default SQLite)")
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the tree whose bot runs")
    arguments: Any = parser.parse_args()
    sizes = [int(size) for size in arguments.customers.split(",")]
    main(arguments.code.resolve(), sizes, arguments.runs, arguments.pg_url)
