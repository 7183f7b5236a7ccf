"""Prometheus metrics of one bot process (served at /metrics by bot.web).

Labels carry kinds, never people: no user, chat or customer id reaches a label, so a scrape
holds no personal data and the number of series stays fixed however many staff there are.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter, Application

from bot import side_calls

T = TypeVar("T")
JSONDict = dict[str, Any]  # what a Bot API request answers (PTB's own alias is private)
PREFIX = "archive_bot"
# the bot's own registry: every series prefixed, none from whatever else imports the library
REGISTRY = CollectorRegistry()
ProcessCollector(namespace=PREFIX, registry=REGISTRY)  # memory, CPU, open files (on Linux)

UPDATES = Counter(
    f"{PREFIX}_updates",
    "Updates handled, by kind of update.",
    ["kind"],
    registry=REGISTRY,
)
UPDATE_SECONDS = Histogram(
    f"{PREFIX}_update_seconds",
    "Time from taking an update to its last handler finishing.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
ERRORS = Counter(
    f"{PREFIX}_errors",
    "Failures: a handler raising (handler), a network error in one (network), a delivery "
    "pass failing (delivery).",
    ["source"],
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    f"{PREFIX}_outbox_depth",
    "Outbox rows (reminders and follow-up messages) waiting or being sent, read at scrape.",
    registry=REGISTRY,
)
REMINDERS_SENT = Counter(
    f"{PREFIX}_reminders_sent", "Outbox rows delivered to Telegram.", registry=REGISTRY
)
REMINDERS_FAILED = Counter(
    f"{PREFIX}_reminders_failed",
    "Outbox rows given up on (blocked, chat gone, refused, out of attempts).",
    registry=REGISTRY,
)
TOO_MANY_REQUESTS = Counter(
    f"{PREFIX}_telegram_429",
    "Answers 429 (flood control, RetryAfter) from the Bot API, retried or not.",
    registry=REGISTRY,
)
for _source in ("handler", "network", "delivery"):
    ERRORS.labels(_source)  # every series from the start: a rate over a missing one is empty


def update_kind(update: object) -> str:
    """The kind of an update (message, callback_query...), a label without personal data."""
    if isinstance(update, Update):
        for kind in Update.ALL_TYPES:
            if getattr(update, kind, None) is not None:
                return kind
    return "other"


def counting_429(
    callback: Callable[..., Coroutine[Any, Any, T]],
) -> Callable[..., Coroutine[Any, Any, T]]:
    """`callback` (one Bot API request), counting each answer 429 before it is raised on."""

    async def request(*args: Any, **kwargs: Any) -> T:
        try:
            return await callback(*args, **kwargs)
        except RetryAfter:
            TOO_MANY_REQUESTS.inc()
            raise

    return request


class MeasuredApplication(Application):  # type: ignore[type-arg]
    """PTB's Application, counting every update it handles and timing all its handlers.

    Wrapping `process_update` (ApplicationBuilder.application_class) times the whole update,
    every handler group included, which a handler of its own could not see the end of; its
    side calls (bot.side_calls) are part of it.
    """

    async def process_update(self, update: object) -> None:
        started = perf_counter()
        try:
            async with side_calls.collected():
                await super().process_update(update)
        finally:
            UPDATE_SECONDS.observe(perf_counter() - started)
            UPDATES.labels(update_kind(update)).inc()


class CountingRateLimiter(AIORateLimiter):
    """PTB's rate limiter, counting each 429 from the Bot API (including those it retries)."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        return await super().process_request(
            counting_429(callback), args, kwargs, endpoint, data, rate_limit_args
        )


def exposition() -> tuple[bytes, str]:
    """The text format a Prometheus server scrapes, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
