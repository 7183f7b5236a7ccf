"""Logging that never shows the bot token, whatever the level (SPEC section 5, STYLE habit 6).

python-telegram-bot and httpx log request URLs, which hold the token (`/bot<token>/getMe`), and
at DEBUG the parameters and answers of every call, which hold clear values (a phone being
revealed). Their loggers are pinned above those levels, and every record and every uncaught
traceback is passed through `redact` as a last line of defence.

LOG_FORMAT=json writes one JSON object per line for a log shipper. Its formatter takes the text
the filter already redacted and never formats the exception again from `exc_info` (a library
JSON formatter would, and bring the token back in a traceback).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType

# bot tokens look like 123456:AA... ; in URLs they follow /bot
_TOKEN_RE = re.compile(r"\b\d{3,}:[A-Za-z0-9_-]{20,}")
_SECRETS: set[str] = set()
# logger name -> the lowest level it may log at (a higher root level still wins)
PINNED = {
    "httpx": logging.WARNING,  # request URLs with the token, at INFO
    "httpcore": logging.WARNING,  # raw requests and answers, at DEBUG
    "telegram": logging.INFO,  # every call's parameters and answer, at DEBUG
    "apscheduler": logging.WARNING,
    "aiosqlite": logging.WARNING,  # every statement and its parameters, at DEBUG
    "asyncio": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,
    "tornado.access": logging.WARNING,  # every request's path, which may hold the token
}


def redact(text: str) -> str:
    """`text` with the configured secrets and anything shaped like a bot token replaced."""
    for secret in _SECRETS:
        text = text.replace(secret, "<secret>")
    return _TOKEN_RE.sub("<token>", text)


def keep_secret(*values: str | None) -> None:
    """Never let these values (the token, the webhook secret) reach a log line."""
    _SECRETS.update(v for v in values if v and len(v) >= 8)


class RedactFilter(logging.Filter):
    """Redacts a record before any handler formats it: message, exception text and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and exception or stack."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:  # a handler without RedactFilter
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("plain", "json")
_format = "plain"


def _excepthook(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    text = redact("".join(traceback.format_exception(kind, error, trace)))
    if _format == "json":
        record = logging.LogRecord(
            "uncaught", logging.CRITICAL, "", 0, "uncaught exception", (), None
        )
        record.exc_text = text
        text = JsonFormatter().format(record) + "\n"
    sys.stderr.write(text)


def use_format(name: str) -> None:
    """Format every root handler's lines as `plain` text or `json` (LOG_FORMAT)."""
    global _format
    if name not in FORMATS:
        raise ValueError(f"unknown log format {name!r}")
    if name == _format == "plain":
        return  # as logging.basicConfig made them (and a test runner's own handlers stay)
    _format = name
    formatter = JsonFormatter() if name == "json" else logging.Formatter(PLAIN)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def configure(level: int = logging.INFO, fmt: str = "plain") -> None:
    """Logs on stderr, every handler of the root logger redacting, chatty libraries pinned."""
    logging.basicConfig(format=PLAIN, level=level)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())
    use_format(fmt)
    for name, floor in PINNED.items():
        logging.getLogger(name).setLevel(max(level, floor))
    sys.excepthook = _excepthook
