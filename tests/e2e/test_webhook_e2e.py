"""Webhook mode: the bot registers its webhook and only accepts updates with the secret header;
the same port answers GET /healthz and GET /metrics (bot.web), and METRICS_PORT does beside
long polling."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bot.i18n import translate
from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import ADMIN_ID, TOKEN, Person, run_async, stop_cleanly
from tests.e2e.test_health_e2e import set_revision

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


def get(port: int, path: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            body = response.read().decode()
            return int(response.status), response.headers["Content-Type"], body
    except urllib.error.HTTPError as error:
        return int(error.code), error.headers["Content-Type"], error.read().decode()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and labels (the bot's own series only)."""
    status, content_type, body = get(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain"), body
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    assert found and all(name.startswith("archive_bot_") for name, _ in found), found
    return found


def message(update_id: int, user: dict, text: str) -> dict:
    chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            "text": text,
        },
    }


def test_webhook_port_serves_health_and_metrics_that_count_updates(
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
    updates = ("archive_bot_updates_total", (("kind", "message"),))
    latency = ("archive_bot_update_seconds_count", ())
    bot.start()
    try:
        api.wait_for_call("setWebhook", timeout=30)
        deadline = time.monotonic() + 20
        while post(port, {}, secret=None) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, content_type, body = get(port, "/healthz")
        assert status == 200, body
        assert content_type.startswith("application/json")
        health = json.loads(body)
        assert health["status"] == "ok"
        assert {name: check["ok"] for name, check in health["checks"].items()} == {
            "database": True,
            "schema": True,
            "keys": True,
        }

        before = samples(port)
        assert before.get(updates, 0) == 0 and before[latency] == 0
        assert before["archive_bot_outbox_depth", ()] == 0
        for name in ("reminders_sent", "reminders_failed", "telegram_429"):
            assert before[f"archive_bot_{name}_total", ()] == 0

        stranger = api.user(4321, "Stranger", language_code="en")
        assert post(port, message(1, stranger, "hello"), secret="wrong-secret-value-123") == 403
        assert post(port, {"not": "an update"}, secret=SECRET) == 400
        assert post(port, message(2, stranger, "hello"), secret=SECRET) == 200
        api.wait_for_message(4321, timeout=20)
        deadline = time.monotonic() + 10  # the answer is sent before the handler returns
        while samples(port).get(latency, 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        after = samples(port)
        assert after[updates] == 1 and after[latency] == 1  # the refused post counted nothing
        assert after["archive_bot_errors_total", (("source", "handler"),)] == 0
        assert post(port, message(3, stranger, "/start"), secret=SECRET) == 200
        deadline = time.monotonic() + 10
        while samples(port)[updates] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert samples(port)[updates] == 2
        _, _, text = get(port, "/metrics")
        assert "4321" not in text and "Stranger" not in text  # no people in labels

        # the database is stamped with an older schema while the bot runs: unhealthy, named
        run_async(set_revision(database_url, "0015_staff_changes"))
        status, _, body = get(port, "/healthz")
        assert status == 503, body
        health = json.loads(body)
        assert health["status"] == "unhealthy"
        assert health["checks"]["schema"]["ok"] is False
        assert "not at head" in health["checks"]["schema"]["detail"]
        assert get(port, "/nothing-here")[0] == 404
    finally:
        log = stop_cleanly(bot)
    assert TOKEN not in log and SECRET not in log


def test_long_polling_serves_health_and_metrics_on_metrics_port(
    api: FakeBotApi, bot_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**bot_env, "METRICS_PORT": str(port), "METRICS_LISTEN": "127.0.0.1"}
    bot = BotProcess(env, log_dir=tmp_path)
    try:
        bot.start().wait_until_polling(api)
        status, _, body = get(port, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok", body
        admin = Person(api, bot, api.user(ADMIN_ID, "Boss"))
        admin.say("/help", "/invite")
        admin.say("/help", "/invite")
        latency = ("archive_bot_update_seconds_count", ())
        deadline = time.monotonic() + 10  # counted once the last handler has returned
        while samples(port).get(latency, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        found = samples(port)
        assert found["archive_bot_updates_total", (("kind", "message"),)] == 2
        assert found[latency] == 2
        assert get(port, "/telegram")[0] == 404  # no webhook in polling mode
    finally:
        stop_cleanly(bot)


def test_a_webhook_port_in_use_stops_the_bot_with_one_line(
    api: FakeBotApi, database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
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
        assert bot.proc is not None
        assert bot.proc.wait(60) == 2
        bot.stop()
    log = bot.log_text()
    assert f"The bot cannot start: WEBHOOK_PORT: cannot listen on 127.0.0.1:{port}" in log
    assert "Traceback" not in log and TOKEN not in log
    assert "setWebhook" not in [name for name, _ in api.calls]  # refused before registering
