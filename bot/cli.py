"""`python -m bot`: run the bot and the operator's commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pydantic import ValidationError

from bot.settings import Settings, describe_errors

if TYPE_CHECKING:
    from bot.context import Services

log = logging.getLogger("bot")


def configure_logging(level: int = logging.INFO) -> None:
    """Plain logs; httpx logs request URLs, which contain the bot token, so it stays quiet."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
    for noisy in (
        "httpx",
        "httpcore",
        "apscheduler",
        "aiosqlite",
        "asyncio",
        "alembic.runtime.plugins",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_settings() -> Settings:
    """Read the settings or stop with one line per bad setting, never half-configured."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as error:
        print("The bot cannot start; fix these settings (environment or .env):", file=sys.stderr)
        for line in describe_errors(error):
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as error:
        print(f"The bot cannot start: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _services(settings: Settings) -> Services:
    from bot.services import build_services

    try:
        return build_services(settings)
    except ValueError as error:
        print(f"The bot cannot start: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    services = _services(settings)
    from bot.app import build_application
    from storage.migrate import upgrade_database_sync

    upgrade_database_sync(settings.database_url)
    application = build_application(services)
    if settings.WEBHOOK_URL:
        secret = settings.WEBHOOK_SECRET.get_secret_value() if settings.WEBHOOK_SECRET else None
        log.info(
            "starting in webhook mode on %s:%s", settings.WEBHOOK_LISTEN, settings.WEBHOOK_PORT
        )
        application.run_webhook(
            listen=settings.WEBHOOK_LISTEN,
            port=settings.WEBHOOK_PORT,
            url_path=urlparse(settings.WEBHOOK_URL).path.lstrip("/"),
            webhook_url=settings.WEBHOOK_URL,
            secret_token=secret,
            allowed_updates=["message", "callback_query", "edited_message"],
        )
    else:
        log.info("starting with long polling against %s", _redact(settings.TELEGRAM_BASE_URL))
        application.run_polling(
            allowed_updates=["message", "callback_query", "edited_message"],
            poll_interval=0.0,
            timeout=30,
        )
    return 0


def _redact(url: str) -> str:
    return url.split("?")[0]


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    from storage.migrate import upgrade_database_sync

    upgrade_database_sync(settings.database_url)
    print("database is up to date")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    settings = load_settings()
    services = _services(settings)

    async def invite() -> int:
        try:
            return await _invite(services, args.role, args.team)
        finally:
            await services.dispose()

    return asyncio.run(invite())


async def _bot_username(services: Services) -> str | None:
    if services.settings.BOT_USERNAME:
        return services.settings.BOT_USERNAME.lstrip("@")
    from telegram import Bot
    from telegram.error import TelegramError

    bot = Bot(
        services.settings.TELEGRAM_BOT_TOKEN.get_secret_value(),
        base_url=services.settings.TELEGRAM_BASE_URL,
    )
    try:
        async with bot:
            return bot.username
    except TelegramError:
        return None


async def _invite(services: Services, role: str, team: str | None) -> int:
    from storage import staff as staff_store
    from storage.db import unit_of_work
    from storage.errors import Refused
    from storage.migrate import upgrade_database

    await upgrade_database(services.settings.database_url)
    username = await _bot_username(services)
    if username is None:
        print(
            "Cannot reach the Bot API to learn the bot's username; set BOT_USERNAME.",
            file=sys.stderr,
        )
        return 2
    try:
        async with unit_of_work(services.sessions) as session:
            team_id = None
            if team:
                team_id = (await staff_store.get_or_create_team(session, team, actor=None)).id
            created = await staff_store.create_invite(
                session, actor=None, role=role, team_id=team_id, ttl=services.invite_ttl
            )
    except Refused as refusal:
        message = {"team_required": "--team is required for this role"}.get(
            refusal.code, refusal.code
        )
        print(f"Cannot create the invite: {message}", file=sys.stderr)
        return 2
    print(f"https://t.me/{username}?start={created.token}")
    print(
        f"(one-time link for a {role}{' in team ' + team if team else ''}; "
        f"expires in {services.settings.INVITE_TTL_HOURS} h)",
        file=sys.stderr,
    )
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    settings = load_settings()
    services = _services(settings)

    async def rotate() -> int:
        from storage.migrate import upgrade_database
        from storage.rotation import rotate_keys

        await upgrade_database(settings.database_url)
        try:
            report = await rotate_keys(services.sessions, services.keyring)
        finally:
            await services.dispose()
        print(
            f"re-wrapped {report.data_keys} data keys, re-sealed {report.drafts} drafts, "
            f"re-indexed {report.indexed_customers} customers and "
            f"{report.indexed_key_persons} key persons; "
            f"{report.left_on_old_keys} data keys still on old master keys"
        )
        if report.left_on_old_keys == 0:
            print("older master keys may now be removed from ENCRYPTION_KEYS")
        return 0

    return asyncio.run(rotate())


def cmd_verify_audit(args: argparse.Namespace) -> int:
    from storage.audit import AuditHead

    expect = None
    if args.expect is not None:
        try:
            expect = AuditHead.parse(args.expect)
        except ValueError as error:
            print(f"--expect: {error}", file=sys.stderr)
            return 2
    settings = load_settings()
    services = _services(settings)

    async def verify() -> int:
        from storage.audit import AuditKeyError, verify_chain
        from storage.db import unit_of_work

        try:
            async with unit_of_work(services.sessions) as session:
                report = await verify_chain(session, expect=expect)
        except AuditKeyError as error:
            print(f"audit log cannot be verified: {error}")
            return 1
        finally:
            await services.dispose()
        if report.legacy:
            print(f"{report.legacy} older entries are chained by plain SHA-256 (before the MAC)")
        if report.ok:
            print(f"audit log intact: {report.checked} entries verified")
            print(f"head: {report.head or 'none (the log is empty)'}")
            if expect is not None:
                print(f"expected head {expect.id} found with the same MAC")
            return 0
        print(
            f"audit log BROKEN at entry {report.first_broken_id}: {report.reason} "
            f"({report.checked} entries before it verified)"
        )
        return 1

    return asyncio.run(verify())


def cmd_not_yet(args: argparse.Namespace) -> int:
    print(
        f"'{args.command}' is not available yet: backups arrive with a later release.",
        file=sys.stderr,
    )
    return 2


def cmd_new_key(args: argparse.Namespace) -> int:
    from storage.crypto import new_master_key

    print(new_master_key())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Customer-archive bot for field sales teams."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the bot (default; long polling, or webhook if WEBHOOK_URL)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    invite = sub.add_parser("invite", help="print a one-time invite link")
    invite.add_argument("--role", required=True, choices=["salesperson", "manager", "admin"])
    invite.add_argument("--team", help="team name (created if new); required except for admins")
    sub.add_parser("rotate-keys", help="re-encrypt everything under the newest ENCRYPTION_KEYS key")
    verify = sub.add_parser(
        "verify-audit", help="check the audit log's MAC chain; prints its head (ID:MAC)"
    )
    verify.add_argument(
        "--expect",
        metavar="ID:MAC",
        help="a head printed earlier (or sent to admins): fail if the log no longer reaches it",
    )
    sub.add_parser("backup", help="back up the database (not available yet)")
    sub.add_parser("restore", help="restore a backup (not available yet)")
    sub.add_parser("new-key", help="print a fresh master key for ENCRYPTION_KEYS")
    return parser


HANDLERS = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "invite": cmd_invite,
    "rotate-keys": cmd_rotate_keys,
    "verify-audit": cmd_verify_audit,
    "backup": cmd_not_yet,
    "restore": cmd_not_yet,
    "new-key": cmd_new_key,
}


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    if args.command is None:
        args.command = "run"
    return HANDLERS[args.command](args)
