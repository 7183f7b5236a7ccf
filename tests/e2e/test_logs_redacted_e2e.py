"""At every log level, the log never shows the bot token or clear values (issue 8, should-fix).

python-telegram-bot logs every call's parameters and answers at DEBUG, httpx every request URL
(`/bot<token>/getMe`) at INFO; `python -m bot --log-level DEBUG run` must still show neither.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import logs
from tests.e2e.fake_bot_api import FakeBotApi
from tests.e2e.harness import BotProcess
from tests.e2e.support import ADMIN_ID, TOKEN, Person, stop_cleanly

PHONE = "13812345678"


def test_debug_logs_of_a_running_bot_hold_no_token_and_no_message_text(
    api: FakeBotApi, bot_env: dict[str, str], tmp_path: Path
) -> None:
    argv = [sys.executable, "-m", "bot", "--log-level", "DEBUG", "run"]
    bot = BotProcess(bot_env, log_dir=tmp_path, argv=argv)
    try:
        bot.start().wait_until_polling(api)
        admin = Person(api, bot, api.user(ADMIN_ID, "Boss"))
        admin.say("/help", "/invite")
        admin.say(f"my phone is {PHONE}", "/help")
    finally:
        log = stop_cleanly(bot)
    assert " DEBUG " in log  # the level really was DEBUG
    assert TOKEN not in log and TOKEN.split(":")[1] not in log
    assert PHONE not in log


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger configured as `python -m bot` does, writing into a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in logs.PINNED}
    root.handlers = [logging.StreamHandler(buffer)]
    logs.keep_secret(TOKEN)
    logs.configure(logging.DEBUG)
    yield buffer
    root.handlers, root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_every_record_is_redacted_on_the_root_handler(captured: io.StringIO) -> None:
    url = f"https://api.telegram.org/bot{TOKEN}/getMe"
    logging.getLogger("somewhere.else").debug("calling %s", url)
    logging.getLogger("httpx").warning("HTTP Request: POST %s", url)
    try:
        raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
    except RuntimeError:
        logging.getLogger("telegram.ext").exception("start failed")
    unknown = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # shaped like a token, not ours
    logging.getLogger("bot").error("a token %s in a message", unknown)
    text = captured.getvalue()
    assert TOKEN not in text and unknown not in text
    assert "/bot<secret>/getMe" in text and "The token `<secret>` was rejected" in text
    assert "<token> in a message" in text


def test_pinned_libraries_stay_quiet_at_debug(captured: io.StringIO) -> None:
    logging.getLogger("telegram.ext.ExtBot").debug("Calling Bot API endpoint `sendMessage`")
    logging.getLogger("httpx").info("HTTP Request: POST ...")
    logging.getLogger("httpcore.http11").debug("send_request_body.started")
    logging.getLogger("bot.app").debug("ours still shows")
    assert captured.getvalue().splitlines() == ["ours still shows"]


def json_lines(log: str) -> list[dict[str, str]]:
    """Every line the bot wrote, each parsed as JSON (the harness's own `=====` lines aside)."""
    entries = []
    for line in log.splitlines():
        if line.startswith("===== start"):
            continue
        entry = json.loads(line)  # fails the test on a line that is not JSON
        assert {"time", "level", "logger", "message"} <= set(entry), line
        entries.append(entry)
    return entries


def test_json_logs_of_a_running_bot_parse_and_hold_no_token_and_no_message_text(
    api: FakeBotApi, bot_env: dict[str, str], tmp_path: Path
) -> None:
    argv = [sys.executable, "-m", "bot", "--log-level", "DEBUG", "run"]
    bot = BotProcess({**bot_env, "LOG_FORMAT": "json"}, log_dir=tmp_path, argv=argv)
    try:
        bot.start().wait_until_polling(api)
        admin = Person(api, bot, api.user(ADMIN_ID, "Boss"))
        admin.say("/help", "/invite")
        admin.say(f"my phone is {PHONE}", "/help")
    finally:
        log = stop_cleanly(bot)
    entries = json_lines(log)
    assert any(e["level"] == "DEBUG" for e in entries)  # the level really was DEBUG
    assert any(e["message"].startswith("starting with long polling") for e in entries)
    assert TOKEN not in log and TOKEN.split(":")[1] not in log
    assert PHONE not in log


def test_a_json_line_carries_the_redacted_traceback(captured: io.StringIO) -> None:
    logs.use_format("json")
    try:
        try:
            raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
        except RuntimeError:
            logging.getLogger("telegram.ext").exception("start failed for %s", TOKEN)
        logging.getLogger("bot").warning("短信 %d", 1)
    finally:
        logs.use_format("plain")
    text = captured.getvalue()
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    failed, warned = (json.loads(line) for line in text.splitlines())
    assert failed["level"] == "ERROR" and failed["logger"] == "telegram.ext"
    assert failed["message"] == "start failed for <secret>"
    assert "RuntimeError: The token `<secret>` was rejected" in failed["exception"]
    assert warned["message"] == "短信 1"
