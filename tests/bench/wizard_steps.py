"""Benchmark: wizard steps per second, in-process on SQLite, beside a bare echo handler.

Both bots run on the same fake Telegram request layer (tests/auxil/fake_telegram.py), so the figures
compare our handler work (gate, draft load/save with encryption, validation, rendering) with
python-telegram-bot's own per-update cost. It also prints the transactions and statements one
step costs (counted with SQLAlchemy events) and the CPU time one step and one echo update take
(`time.process_time`, all threads: steadier than the rates on a busy machine). `--pg-url`
(default TEST_DATABASE_URL) runs the wizard on a fresh PostgreSQL database of its own instead.

    .venv/bin/python -m tests.bench.wizard_steps [--rounds 40] [--pg-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.app import _post_init, build_application
from bot.context import Services
from bot.settings import Settings
from storage import staff as staff_store
from storage.crypto import Keyring
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.migrate import upgrade_database
from storage.models import Staff
from tests.auxil.fake_telegram import TOKEN, FakeTelegram, Person

# One pass through /new: (kind of input, value). 14 updates, each one wizard step.
PASS: list[tuple[str, str]] = [
    ("send", "/new"),
    ("press", "企业"),
    ("send", "杭州明远机械有限公司"),
    ("press", "跳过"),  # phones
    ("press", "A 战略"),
    ("press", "红苹果"),
    ("press", "拜访"),
    ("press", "继续填写"),  # not "save now": on to the details
    ("send", "明远"),
    ("send", "机械制造"),
    ("press", "跳过"),  # region
    ("press", "跳过其余"),
    ("press", "✏️ 客户名称"),
    ("send", "宁波明远"),
]


@dataclass
class BenchBot:
    """Our bot, initialised on a fresh SQLite database in `workdir` and a fake Telegram."""

    app: Application[Any, Any, Any, Any, Any, Any]
    telegram: FakeTelegram
    services: Services
    engine: AsyncEngine

    async def close(self) -> None:
        await self.app.shutdown()
        await self.engine.dispose()
        if self.engine.url.get_backend_name() == "postgresql":
            await _drop_postgres(self.engine.url.render_as_string(hide_password=False))


@dataclass
class Counts:
    """Transactions and statements the bot's engine ran (BEGIN/PRAGMA included)."""

    transactions: int = 0
    statements: int = 0
    cpu: float = 0.0  # seconds of process CPU time (all threads) over the steps

    def per(self, steps: int) -> str:
        transactions, statements = self.transactions / steps, self.statements / steps
        return (
            f"{transactions:.2f} transactions, {statements:.2f} statements, "
            f"{1000 * self.cpu / steps:.2f} ms CPU"
        )


COUNTS = Counts()
PG_URL: str | None = None  # set by --pg-url: each bench bot gets a fresh database there


async def _fresh_postgres(url: str) -> str:
    """A new, empty database on the server of `url` (dropped when the bench bot closes)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    server = make_url(url)
    name = f"bench_{os.getpid()}_{int(time.time() * 1000)}"
    connection = await asyncpg.connect(server.set(drivername="postgresql").render_as_string(False))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return server.set(database=name).render_as_string(hide_password=False)


async def _drop_postgres(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    server = parsed.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await connection.close()


def _count(engine: AsyncEngine) -> None:
    def on_begin(_connection: Any) -> None:
        COUNTS.transactions += 1

    def on_statement(*_args: Any) -> None:
        COUNTS.statements += 1

    event.listen(engine.sync_engine, "begin", on_begin)
    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)


async def start_bench_bot(workdir: Path) -> BenchBot:
    url = await _fresh_postgres(PG_URL) if PG_URL else f"sqlite:///{workdir / 'bench.db'}"
    await upgrade_database(url)
    engine = make_engine(url)
    _count(engine)
    settings = Settings(_env_file=None, TELEGRAM_BOT_TOKEN=TOKEN, DATA_DIR=workdir)  # type: ignore[call-arg]
    services = Services(
        settings=settings,
        sessions=make_session_factory(engine),
        keyring=Keyring([os.urandom(32)]),
        clock=lambda: datetime.now(UTC),
    )
    telegram = FakeTelegram()
    app = build_application(services, request=telegram, rate_limit=False)
    await app.initialize()
    await _post_init(app)
    return BenchBot(app, telegram, services, engine)


async def wizard_rate(rounds: int, workdir: Path) -> tuple[float, int]:
    bench = await start_bench_bot(workdir)
    app, telegram, services = bench.app, bench.telegram, bench.services
    async with unit_of_work(services.sessions) as session:
        team = await staff_store.get_or_create_team(session, "Bench", actor=None)
        session.add(Staff(telegram_id=1, display_name="Bench", role="salesperson", team_id=team.id))
    person = Person(app, telegram, 1)
    steps = 0
    COUNTS.transactions = COUNTS.statements = 0
    cpu, started = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        for kind, value in PASS:
            if kind == "send":
                await person.send(value)
            else:
                await person.press(value)
            steps += 1
        await person.press("取消")
        steps += 1
    elapsed = time.perf_counter() - started
    COUNTS.cpu = time.process_time() - cpu
    counted = COUNTS.per(steps)
    await bench.close()
    print(f"per step: {counted}")
    return steps / elapsed, steps


async def echo_rate(updates: int) -> float:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        await context.bot.send_message(
            update.effective_chat.id, update.effective_message.text or ""
        )

    telegram = FakeTelegram()
    app = ApplicationBuilder().token(TOKEN).request(telegram).get_updates_request(telegram).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    person = Person(app, telegram, 1)
    person.settle = False  # the echo bot has no sender to wait for
    cpu, started = time.process_time(), time.perf_counter()
    for index in range(updates):
        await person.send(f"hello {index}")
    elapsed = time.perf_counter() - started
    print(f"echo per update: {1000 * (time.process_time() - cpu) / updates:.2f} ms CPU")
    await app.shutdown()
    return updates / elapsed


async def main(rounds: int, repeats: int) -> None:
    wizard: list[float] = []
    echo: list[float] = []
    steps = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as workdir:
            rate, steps = await wizard_rate(rounds, Path(workdir))
        wizard.append(rate)
        echo.append(await echo_rate(steps))
    print(f"updates per run: {steps}, runs: {repeats}")
    print_rates(f"wizard steps/s (/new on {database()}): ", wizard, echo)


def database() -> str:
    return "PostgreSQL" if PG_URL else "SQLite"


def use_postgres(url: str | None) -> None:
    global PG_URL
    PG_URL = url or None


def print_rates(label: str, wizard: list[float], echo: list[float]) -> None:
    """The wizard's and the echo bot's rates (median, min, max) and the ratio of the medians."""
    print(
        f"{label}median {statistics.median(wizard):8.1f}  "
        f"min {min(wizard):8.1f}  max {max(wizard):8.1f}"
    )
    print(
        f"bare echo handler updates/s:     median {statistics.median(echo):8.1f}  "
        f"min {min(echo):8.1f}  max {max(echo):8.1f}"
    )
    print(f"ratio wizard/echo: {statistics.median(wizard) / statistics.median(echo):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40, help="passes through /new per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs to take the median of")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"), help="PostgreSQL")
    parser.add_argument("--sqlite", action="store_true", help="SQLite even if TEST_DATABASE_URL")
    arguments: Any = parser.parse_args()
    use_postgres(None if arguments.sqlite else arguments.pg_url)
    asyncio.run(main(arguments.rounds, arguments.repeats))
