"""The bot's HTTP side: Telegram's webhook, GET /healthz and GET /metrics, on one server.

Why not Application.run_webhook: PTB's built-in server answers only the webhook path, and a
second server beside it would need a second port through the load balancer. This follows PTB's
"custom webhook" pattern (its tornado, the application started by hand, updates put on
`application.update_queue`) with the checks of PTB's own handler: JSON only, the
X-Telegram-Bot-Api-Secret-Token header or 403, and the same setWebhook call as before. In
polling mode the same /healthz and /metrics are served on METRICS_PORT, when it is set.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import signal
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlparse

import tornado.web
from sqlalchemy.exc import SQLAlchemyError
from telegram import Update
from telegram.ext import Application, ExtBot
from tornado.httpserver import HTTPServer

from bot import health, metrics, preflight
from bot.context import Services
from bot.settings import Settings
from storage.db import reading
from storage.reminders import delivery

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_CONNECTIONS = 40  # what run_webhook asked Telegram for: concurrent webhook requests
SERVER = "metrics_server"  # bot_data key of the server beside long polling
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT)  # run_webhook's own

App = Application[Any, Any, Any, Any, Any, Any]


class WebhookHandler(tornado.web.RequestHandler):
    """Takes an update from Telegram, only with the secret header, and queues it."""

    SUPPORTED_METHODS = ("POST",)  # type: ignore[assignment]

    def initialize(self, bot_app: App, secret: str | None) -> None:
        self.bot_app, self.secret = bot_app, secret

    async def post(self) -> None:
        if self.request.headers.get("Content-Type") != "application/json":
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        if self.secret is not None:
            given = self.request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        try:
            update = Update.de_json(json.loads(self.request.body), self.bot_app.bot)
        except Exception:  # never log the body: it holds what a person typed
            log.warning("refused a webhook request whose body is not an update")
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        if update is not None:  # as PTB's handler: `null` is taken and ignored
            if isinstance(self.bot_app.bot, ExtBot):
                self.bot_app.bot.insert_callback_data(update)
            await self.bot_app.update_queue.put(update)
        self.set_status(HTTPStatus.OK)


class HealthHandler(tornado.web.RequestHandler):
    """200 and the checks as JSON when healthy; 503 naming the failing check otherwise."""

    def initialize(self, live: health.LiveHealth) -> None:
        self.live = live

    async def get(self) -> None:
        result = await self.live.check()
        if not result.ok:
            log.warning("%s", result.line())
        self.set_status(HTTPStatus.OK if result.ok else HTTPStatus.SERVICE_UNAVAILABLE)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(result.body()))


class MetricsHandler(tornado.web.RequestHandler):
    """The Prometheus text format; the outbox depth is read from the database at each scrape."""

    def initialize(self, services: Services) -> None:
        self.services = services

    async def get(self) -> None:
        try:
            async with reading(self.services.sessions) as session:
                metrics.OUTBOX_DEPTH.set(await delivery.depth(session))
        except (SQLAlchemyError, OSError) as error:  # the rest is still worth scraping
            log.warning("outbox depth not read: %s", preflight.reason(error))
        body, content_type = metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.finish(body)


class QuietApplication(tornado.web.Application):
    """No access log (as PTB's webhook server): a path may hold the token, a line per update
    is noise, and the metrics count the requests that matter."""

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        pass


def webhook_path(settings: Settings) -> str:
    """The path of WEBHOOK_URL, where Telegram posts (as run_webhook's `url_path`)."""
    return "/" + urlparse(settings.WEBHOOK_URL or "").path.strip("/")


def make_app(application: App, *, webhook: bool) -> QuietApplication:
    """/healthz and /metrics, and with `webhook` Telegram's path."""
    services: Services = application.bot_data["services"]
    engine = services.sessions.kw["bind"]
    routes: list[Any] = [
        (r"/healthz", HealthHandler, {"live": health.LiveHealth(services.settings, engine)}),
        (r"/metrics", MetricsHandler, {"services": services}),
    ]
    if webhook:
        settings = services.settings
        secret = settings.WEBHOOK_SECRET.get_secret_value() if settings.WEBHOOK_SECRET else None
        path = re.escape(webhook_path(settings).rstrip("/"))
        routes.append((rf"{path}/?", WebhookHandler, {"bot_app": application, "secret": secret}))
    return QuietApplication(routes)


def listen(app: tornado.web.Application, port: int, address: str, setting: str) -> HTTPServer:
    """Serve `app`; a port taken or an address not this machine's names `setting`."""
    server = HTTPServer(app)
    try:
        server.listen(port, address=address)
    except OSError as error:
        raise preflight.StartupRefused(
            setting,
            f"cannot listen on {address}:{port} ({preflight.reason(error)}); choose a free port "
            "(and an address of this machine), or stop the process that uses it",
        ) from None
    return server


async def close(server: HTTPServer) -> None:
    server.stop()
    await server.close_all_connections()


async def _hook(hook: Callable[[App], Awaitable[None]] | None, application: App) -> None:
    if hook is not None:
        await hook(application)


async def serve_webhook(application: App, allowed_updates: list[str]) -> None:
    """Webhook mode until SIGINT or SIGTERM, in run_webhook's order: initialize, post_init, the
    server, setWebhook, start; at the end the server, stop, post_stop, shutdown, post_shutdown."""
    settings: Settings = application.bot_data["services"].settings
    secret = settings.WEBHOOK_SECRET.get_secret_value() if settings.WEBHOOK_SECRET else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, stop.set)
    servers: list[HTTPServer] = []
    await application.initialize()
    try:
        await _hook(application.post_init, application)
        servers.append(
            listen(
                make_app(application, webhook=True),
                settings.WEBHOOK_PORT,
                settings.WEBHOOK_LISTEN,
                "WEBHOOK_PORT",
            )
        )
        if settings.METRICS_PORT and settings.METRICS_PORT != settings.WEBHOOK_PORT:
            servers.append(
                listen(
                    make_app(application, webhook=False),
                    settings.METRICS_PORT,
                    settings.METRICS_LISTEN,
                    "METRICS_PORT",
                )
            )
        await application.bot.set_webhook(
            url=settings.WEBHOOK_URL or "",
            allowed_updates=allowed_updates,
            max_connections=MAX_CONNECTIONS,
            secret_token=secret,
        )
        await application.start()
        log.info("webhook mode: serving %s, /healthz and /metrics", webhook_path(settings))
        await stop.wait()
    finally:
        for server in servers:
            await close(server)
        if application.running:
            await application.stop()
            await _hook(application.post_stop, application)
        await application.shutdown()
        await _hook(application.post_shutdown, application)
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)


def serve_beside_polling(application: App) -> None:
    """Serve /healthz and /metrics on METRICS_PORT while long polling runs (same event loop)."""
    settings: Settings = application.bot_data["services"].settings
    post_init, post_stop = application.post_init, application.post_stop
    if settings.METRICS_PORT is None:
        return

    async def start(app: App) -> None:
        await _hook(post_init, app)
        port = settings.METRICS_PORT or 0
        app.bot_data[SERVER] = listen(
            make_app(app, webhook=False), port, settings.METRICS_LISTEN, "METRICS_PORT"
        )
        log.info("serving /healthz and /metrics on %s:%s", settings.METRICS_LISTEN, port)

    async def stopped(app: App) -> None:
        server = app.bot_data.pop(SERVER, None)
        if server is not None:
            await close(server)
        await _hook(post_stop, app)

    application.post_init = start
    application.post_stop = stopped
