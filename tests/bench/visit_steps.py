"""Benchmark: /visit wizard steps per second, in-process on SQLite, beside a bare echo handler.

The same approach as tests/bench/wizard_steps.py (and its echo bot, run in the same process
right after): both bots run on the fake Telegram request layer, so the figures compare our
handler work for a visit (gate, draft load/save with encryption, the customer picker's query,
location and photo answers, the summary, and saving the visit with its attachment, the
customer's dates, history and audit entries) with python-telegram-bot's own per-update cost.
It prints the same per-step transactions, statements and CPU time, and the echo's CPU time.

`--pg-url` (default TEST_DATABASE_URL) runs it on PostgreSQL instead (`--sqlite` forces SQLite).

    .venv/bin/python -m tests.bench.visit_steps [--rounds 30] [--repeats 3] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from storage import customers
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import Staff, Visit
from tests.auxil.fake_telegram import Person
from tests.bench import wizard_steps
from tests.bench.wizard_steps import COUNTS, echo_rate, print_rates, start_bench_bot

# One visit, logged from start to finish: 16 updates, each one wizard step.
PASS: list[tuple[str, str]] = [
    ("send", "/visit"),
    ("press", "明远"),  # the customer, from the recent ones
    ("press", "上门拜访"),
    ("send", "2025-11-21 09:30"),  # time of the visit (always in the past)
    ("location", ""),
    ("send", "介绍新款数控机床"),  # purpose
    ("send", "报价和交货期"),  # discussion
    ("press", "跳过"),  # needs and feedback
    ("send", "下周发正式报价"),  # outcome
    ("press", "红苹果"),  # stage change
    ("press", "跳过"),  # next follow-up: the class default
    ("photo", ""),
    ("photo", ""),
    ("press", "完成"),
    ("press", "✏️ 拜访目的"),  # one edit from the summary
    ("send", "年度回访"),
]
SUBMIT = ("press", "提交")


async def _step(person: Person, kind: str, value: str) -> None:
    if kind == "send":
        await person.send(value)
    elif kind == "press":
        await person.press(value)
    elif kind == "location":
        await person.send_location(30.27, 120.15)
    else:
        await person.send_photo()


async def visit_rate(rounds: int, workdir: Path) -> tuple[float, int, int]:
    """Steps per second over `rounds` visits; also the steps taken and the visits saved."""
    bench = await start_bench_bot(workdir)
    app, telegram, services = bench.app, bench.telegram, bench.services
    async with unit_of_work(services.sessions) as session:
        team = await staff_store.get_or_create_team(session, "Bench", actor=None)
        seller = Staff(telegram_id=1, display_name="Bench", role="salesperson", team_id=team.id)
        session.add(seller)
        await session.flush()
        for n in range(30):  # a salesperson's book: the picker shows the recent ones
            await customers.create_customer(
                session,
                keyring=services.keyring,
                actor=seller,
                values={"kind": "company", "name": f"客户 {n:02d}", "customer_class": "B"},
            )
        await customers.create_customer(
            session,
            keyring=services.keyring,
            actor=seller,
            values={
                "kind": "company",
                "name": "明远机械",
                "customer_class": "B",
                "stage": "yellow",
            },
        )
    person = Person(app, telegram, 1)
    steps = 0
    COUNTS.transactions = COUNTS.statements = 0
    cpu, started = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        for kind, value in (*PASS, SUBMIT):
            await _step(person, kind, value)
            steps += 1
    elapsed = time.perf_counter() - started
    COUNTS.cpu = time.process_time() - cpu
    print(f"per step: {COUNTS.per(steps)}")
    async with unit_of_work(services.sessions) as session:
        saved = (await session.exec(select(func.count()).select_from(Visit))).one()
    await bench.close()
    return steps / elapsed, steps, saved


async def main(rounds: int, repeats: int) -> None:
    wizard: list[float] = []
    echo: list[float] = []
    steps = saved = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as workdir:
            rate, steps, saved = await visit_rate(rounds, Path(workdir))
        assert saved == rounds, f"{saved} visits saved, {rounds} expected"
        wizard.append(rate)
        echo.append(await echo_rate(steps))
    print(f"updates per run: {steps} ({rounds} visits saved), runs: {repeats}")
    print_rates(f"/visit wizard steps/s ({wizard_steps.database()}): ", wizard, echo)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="visits logged per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs to take the median of")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"), help="PostgreSQL")
    parser.add_argument("--sqlite", action="store_true", help="SQLite even if TEST_DATABASE_URL")
    arguments: Any = parser.parse_args()
    wizard_steps.use_postgres(None if arguments.sqlite else arguments.pg_url)
    asyncio.run(main(arguments.rounds, arguments.repeats))
