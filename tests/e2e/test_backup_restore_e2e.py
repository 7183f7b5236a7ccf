"""Backup and restore end to end (issue 11, items 1 and 2): the real `python -m bot run` against
the fake Bot API.

The admin opens a customer's card; the operator backs up while the bot runs and a client keeps
adding customers; the bot stops; the backup is restored into a fresh database (of the same kind,
and from SQLite into PostgreSQL: moving to a bigger installation is a restore); a bot started
on the restored database serves the same card, word for word.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from storage import audit
from storage.backup import backups_in
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import make_engine, make_session_factory
from tests.auxil.backup_helpers import COMPANY, SALES_ID, fill
from tests.auxil.customer_factory import add_customer
from tests.conftest import IS_POSTGRES, postgres_only
from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import (
    ADMIN_ID,
    Person,
    assert_no_apologies,
    bot_settings,
    run_async,
    run_cli,
    stop_cleanly,
)


def _create_pg(like: str) -> str:
    name = f"t_{secrets.token_hex(8)}"

    async def create() -> None:
        server = make_url(like).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(server)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    run_async(create())
    return make_url(like).set(database=name).render_as_string(hide_password=False)


def _drop_pg(url: str) -> None:
    async def drop() -> None:
        parsed = make_url(url)
        server = parsed.set(drivername="postgresql", database="postgres")
        connection = await asyncpg.connect(server.render_as_string(hide_password=False))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        finally:
            await connection.close()

    run_async(drop())


async def _seed(url: str, keyring: Keyring) -> list[str]:
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        return [c.customer_no for c in await fill(factory, keyring, count=3)]
    finally:
        await engine.dispose()


async def _add_some(url: str, keyring: Keyring, stop: threading.Event, added: list[str]) -> None:
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        n = 0
        while not stop.is_set():
            customer = await add_customer(factory, keyring, SALES_ID, f"备份中新客户 {n}")
            added.append(customer.customer_no)
            n += 1
    finally:
        await engine.dispose()


def open_card(admin: Person, name: str, number: str) -> str:
    admin.say(f"/find {name}", expect="个客户")
    return str(admin.tap(number, expect=number)["text"])


def _same_cards(api: FakeBotApi, tmp_path: Path, source: str, target: str) -> None:
    key = new_master_key()
    keyring = Keyring([decode_master_key(key)])
    env = {**bot_settings(api, source, tmp_path), "ENCRYPTION_KEYS": key, "BACKUP_HOUR": "off"}
    assert run_cli(env, "migrate").returncode == 0
    numbers = run_async(_seed(source, keyring))

    first = BotProcess(env, log_dir=tmp_path)
    try:
        first.start()
        first.wait_until_polling(api, timeout=60)
        admin = Person(api, first, api.user(ADMIN_ID, "Boss", language_code="zh"))
        before = {n: open_card(admin, f"{COMPANY} {i}", n) for i, n in enumerate(numbers)}
        assert all("138****" in card and n in card for n, card in before.items()), before
        # the operator backs up while the bot runs and a client keeps adding customers
        stop, added = threading.Event(), []
        writer = threading.Thread(
            target=lambda: run_async(_add_some(source, keyring, stop, added)), daemon=True
        )
        writer.start()
        try:
            done = run_cli(env, "backup")
        finally:
            stop.set()
            writer.join(60)
        assert done.returncode == 0, done.stderr
        assert added, "the client added nothing"
        assert open_card(admin, f"{COMPANY} 1", numbers[1]) == before[numbers[1]]
        assert_no_apologies(admin)
        stop_cleanly(first)
    finally:
        first.stop()
    [path] = backups_in(tmp_path / "data" / "backups")

    restored_env = {**env, "DATABASE_URL": target, "DATA_DIR": str(tmp_path / "data2")}
    done = run_cli(restored_env, "restore", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: audit log intact" in done.stdout
    second = BotProcess(restored_env, log_dir=tmp_path / "data2")
    try:
        second.start()
        second.wait_until_polling(api, timeout=60)
        admin = Person(api, second, api.user(ADMIN_ID, "Boss", language_code="zh"))
        after = {n: open_card(admin, f"{COMPANY} {i}", n) for i, n in enumerate(numbers)}
        assert after == before
        assert_no_apologies(admin)
        stop_cleanly(second)
    finally:
        second.stop()
    verify = run_cli(restored_env, "verify-audit")
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout


def test_a_restored_database_serves_the_same_cards(
    api: FakeBotApi, database_url: str, tmp_path: Path
) -> None:
    target = _create_pg(database_url) if IS_POSTGRES else f"sqlite:///{tmp_path}/restored.db"
    try:
        _same_cards(api, tmp_path, database_url, target)
    finally:
        if IS_POSTGRES:
            _drop_pg(target)


@postgres_only
@pytest.mark.usefixtures("api")
def test_moving_from_sqlite_to_postgresql_serves_the_same_cards(
    api: FakeBotApi, database_url: str, tmp_path: Path
) -> None:
    _same_cards(api, tmp_path, f"sqlite:///{tmp_path}/small.db", database_url)
