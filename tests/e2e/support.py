"""What the end-to-end tests share: the bot's settings, a person chatting, the CLI, the database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlmodel import SQLModel, col, select

from storage.db import make_engine, make_session_factory
from tests.e2e.fake_bot_api import JSON, FakeBotApi
from tests.e2e.harness import REPO_ROOT, BotProcess

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
BOT_USERNAME = "archive_test_bot"
ADMIN_ID = 900_001
WAIT = 20.0  # seconds for each reply: generous, a loaded CI machine may be slow
LINK = re.compile(rf"https://t\.me/{BOT_USERNAME}\?start=([A-Za-z0-9_-]+)")


def bot_settings(
    api: FakeBotApi,
    database_url: str,
    tmp_path: Path,
    *,
    language: str = "zh",
    admin: bool = True,
) -> dict[str, str]:
    """The environment of a bot talking to `api`; `admin` configures ADMIN_ID as its admin."""
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": api.base_url,
        "BOT_USERNAME": BOT_USERNAME,
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database_url,
        "DEFAULT_LANGUAGE": language,
        # the admins' daily audit-head message would arrive at any time of the test run
        "AUDIT_HEAD_DAYS": "0",
    }
    if admin:
        env["ADMIN_TELEGRAM_IDS"] = str(ADMIN_ID)
    return env


# ---------------------------------------------------------------------------------------------
# Talking to the bot like a person does


@dataclass
class Person:
    """Someone chatting with the bot privately; every reply is awaited with a generous timeout."""

    api: FakeBotApi
    bot: BotProcess
    user: JSON

    @property
    def chat_id(self) -> int:
        return int(self.user["id"])

    def say(self, text: str, expect: str) -> JSON:
        """Type `text`; return the bot's next new message containing `expect`."""
        mark = self.api.last_seq()
        self.api.send_text(self.user, text)
        return self.reply(expect, after=mark)

    def tap(self, label: str, expect: str) -> JSON:
        """Press the button `label` on the newest message having it; return the next reply."""
        message = self.newest_with_button(label)
        mark = self.api.last_seq()
        self.api.press_button(self.user, message, _button(message, label))
        return self.reply(expect, after=mark)

    def reply(self, expect: str, after: int) -> JSON:
        def wanted(event: JSON) -> bool:
            return event["event"] == "sent" and expect in (event.get("text") or "")

        try:
            return self.api.wait_for_message(self.chat_id, wanted, timeout=WAIT, after=after)
        except AssertionError as error:
            raise AssertionError(f"expected {expect!r}: {error}\n\nbot log:\n{self.log}") from None

    def newest_with_button(self, label: str) -> JSON:
        for message in reversed(self.messages()):
            if not message.get("deleted") and any(
                label in text for text in FakeBotApi.button_texts(message)
            ):
                return message
        raise AssertionError(f"no message with a {label!r} button\n\nbot log:\n{self.log}")

    def messages(self) -> list[JSON]:
        return self.api.sent_messages(self.chat_id)

    @property
    def log(self) -> str:
        return self.bot.log_text()


def _button(message: JSON, label: str) -> str:
    """callback_data of the button labelled exactly `label`, else of the first containing it."""
    buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
    exact = [b for b in buttons if b["text"] == label]
    return exact[0]["callback_data"] if exact else FakeBotApi.button_data(message, label)


def assert_no_apologies(*people: Person) -> None:
    """Nobody was told that something went wrong."""
    for person in people:
        texts = [m.get("text") or "" for m in person.messages()]
        assert not [t for t in texts if "something went wrong" in t], texts


def stop_cleanly(bot: BotProcess) -> str:
    """Stop the bot, which must exit 0 without a traceback; return its whole log."""
    assert bot.stop() == 0, f"bot did not stop cleanly:\n{bot.log_text()}"
    log = bot.log_text(tail=10**7)
    assert "Traceback" not in log, log
    return log


def shanghai_today() -> date:
    """The bot's calendar day (TIMEZONE defaults to Asia/Shanghai)."""
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


# ---------------------------------------------------------------------------------------------
# The command line and the database, as an operator would use them


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot <args>` with the bot's environment (and nothing of ours)."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    full_env = {**base, "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8", **env}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_audit_intact(env: dict[str, str]) -> None:
    """`python -m bot verify-audit` finds the audit chain intact."""
    audit = run_cli(env, "verify-audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "intact" in audit.stdout, audit.stdout


T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh loop in a worker thread (the tests are synchronous)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def read_rows(database_url: str, *tables: type[SQLModel]) -> list[list[Any]]:
    """Every row of each table (in order of id), as the project's own code reads them."""
    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            found: list[list[Any]] = []
            for table in tables:
                by_id = col(table.id)  # type: ignore[attr-defined]
                found.append(list((await session.exec(select(table).order_by(by_id))).all()))
            return found
    finally:
        await engine.dispose()
