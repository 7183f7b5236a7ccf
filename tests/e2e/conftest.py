"""End-to-end fixtures: the fake Telegram, the bot's settings, the bot process (always stopped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import BOT_USERNAME, TOKEN, bot_settings


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TOKEN, username=BOT_USERNAME) as fake:
        yield fake
    # a message Telegram would refuse fails its test, even where the bot carried on after it
    refused = [(r.method, r.description) for r in fake.refused]
    assert fake.expect_refusals or not refused, refused


@pytest.fixture
def bot_env(api: FakeBotApi, database_url: str, tmp_path: Path) -> dict[str, str]:
    """With ADMIN_ID as admin and Chinese as the default (people's English apps must win)."""
    return bot_settings(api, database_url, tmp_path)


@pytest.fixture
def bot(bot_env: dict[str, str], tmp_path: Path) -> Iterator[BotProcess]:
    process = BotProcess(bot_env, log_dir=tmp_path)
    try:
        yield process
    finally:
        process.stop()
