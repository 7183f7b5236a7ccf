"""Webhook mode: the bot registers its webhook and only accepts updates with the secret header."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from bot.i18n import translate
from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import TOKEN

SECRET = "webhook-secret-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(port: int, update: dict, secret: str | None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/telegram",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if secret is not None:
        request.add_header("X-Telegram-Bot-Api-Secret-Token", secret)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except urllib.error.URLError:  # not listening yet
        return 0


def test_webhook_mode_checks_the_secret_header(
    api: FakeBotApi, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    bot = BotProcess(
        {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": api.base_url,
            "DATABASE_URL": database_url,
            "DATA_DIR": str(tmp_path / "data"),
            "WEBHOOK_URL": "https://bot.example.invalid/telegram",
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_LISTEN": "127.0.0.1",
            "WEBHOOK_PORT": str(port),
        },
        log_dir=tmp_path,
    )
    bot.start()
    try:
        registered = api.wait_for_call("setWebhook", timeout=30)
        assert registered["url"] == "https://bot.example.invalid/telegram"
        assert registered["secret_token"] == SECRET
        stranger = api.user(4321, "Stranger", language_code="en")
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": 4321, "type": "private", "first_name": "Stranger"},
                "from": stranger,
                "text": "hello",
            },
        }
        deadline = time.monotonic() + 20
        status = post(port, update, secret=None)
        while status == 0 and time.monotonic() < deadline:  # the server may still be starting
            time.sleep(0.2)
            status = post(port, update, secret=None)
        assert status == 403, bot.log_text()
        assert api.sent_messages(4321) == []
        assert post(port, update, secret="wrong-secret-value-123") == 403
        assert post(port, update, secret=SECRET) == 200
        reply = api.wait_for_message(4321, timeout=20)
        assert reply["text"] == translate("en", "access.unregistered")
    finally:
        bot.stop()
    assert "Traceback" not in bot.log_text()
