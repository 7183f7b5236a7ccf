"""`python -m bot`: run the bot and the operator's commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TypeVar

from pydantic import ValidationError

from bot import cli_erasures, cli_pipl, cli_staff, logs, preflight
from bot.settings import Settings, describe_errors

if TYPE_CHECKING:
    from bot.context import Services
    from storage.crypto import Keyring
    from storage.db import SessionFactory

T = TypeVar("T")

log = logging.getLogger("bot")


REFUSED = "The bot cannot start: "


def configure_logging(level: int = logging.INFO) -> None:
    """Plain logs that never show the token (bot.logs pins the chatty libraries and redacts)."""
    logs.configure(level)


def refuse(*lines: str) -> NoReturn:
    """Stop with exit code 2 and one line per problem, each naming its setting."""
    for line in lines:
        print(REFUSED + logs.redact(line), file=sys.stderr)
    raise SystemExit(2)


def load_settings() -> Settings:
    """Read the settings or stop with one line per bad setting, never half-configured."""
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as error:
        refuse(*describe_errors(error))
    except ValueError as error:
        refuse(str(error))
    secret = settings.WEBHOOK_SECRET.get_secret_value() if settings.WEBHOOK_SECRET else None
    logs.keep_secret(settings.TELEGRAM_BOT_TOKEN.get_secret_value(), secret)
    logs.use_format(settings.LOG_FORMAT)
    return settings


def checked(run: Callable[[], T]) -> T:
    """Run start-up work; a setting it refuses becomes one line and exit code 2."""
    try:
        return run()
    except preflight.StartupRefused as refusal:
        refuse(refusal.line)


def _services(settings: Settings) -> Services:
    """Services for a one-off command: the data folder, the keys (never made here), the database."""
    from bot.services import build_services

    def build() -> Services:
        preflight.check_data_dir(settings, create=False)
        services = build_services(settings)
        asyncio.run(preflight.check_database(settings.database_url))
        return services

    return checked(build)


async def _prepare_run(settings: Settings) -> Keyring:
    """Everything `run` needs, checked in the order an operator would fix it."""
    from bot.services import warn_about_new_key_file

    preflight.check_data_dir(settings)
    await preflight.check_database(settings.database_url)
    await preflight.check_bot_api(settings)
    keyring, created = await preflight.check_stored_keys(settings, create=True)
    if created:
        warn_about_new_key_file(settings)
    await preflight.migrate(settings.database_url)
    await preflight.sync_erasures(settings, keyring)
    return keyring


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    keyring = checked(lambda: asyncio.run(_prepare_run(settings)))
    from bot import web
    from bot.app import UPDATE_KINDS, build_application
    from bot.services import build_services

    application = build_application(build_services(settings, keyring=keyring))
    if settings.WEBHOOK_URL:
        log.info(
            "starting in webhook mode on %s:%s", settings.WEBHOOK_LISTEN, settings.WEBHOOK_PORT
        )
        checked(lambda: asyncio.run(web.serve_webhook(application, UPDATE_KINDS)))
    else:
        log.info("starting with long polling against %s", _redact(settings.TELEGRAM_BASE_URL))
        web.serve_beside_polling(application)
        checked(
            lambda: application.run_polling(
                allowed_updates=UPDATE_KINDS, poll_interval=0.0, timeout=30
            )
        )
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the database answers, its schema is at head and the keys open the data;
    else 1 and one line naming what failed (a container's HEALTHCHECK, in either mode)."""
    from bot.health import check

    settings = load_settings()
    result = asyncio.run(check(settings))
    print(result.line(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _redact(url: str) -> str:
    return url.split("?")[0]


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def migrate() -> None:
        preflight.check_data_dir(settings, keys=False)
        await preflight.check_database(settings.database_url)
        await preflight.migrate(settings.database_url)

    checked(lambda: asyncio.run(migrate()))
    print("database is up to date")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    """An invite is audited, and the audit log is keyed: this needs the master keys (made by
    the first `run`, or given in ENCRYPTION_KEYS)."""
    settings = load_settings()
    services = _services(settings)

    async def invite() -> int:
        try:
            return await _invite(settings, services.sessions, args.role, args.team)
        finally:
            await services.dispose()

    return checked(lambda: asyncio.run(invite()))


async def _bot_username(settings: Settings) -> str | None:
    if settings.BOT_USERNAME:
        return settings.BOT_USERNAME.lstrip("@")
    try:
        return await preflight.check_bot_api(settings)
    except preflight.StartupRefused as refusal:
        print(f"{REFUSED}{refusal.line}; or set BOT_USERNAME", file=sys.stderr)
        return None


async def _invite(settings: Settings, sessions: SessionFactory, role: str, team: str | None) -> int:
    from datetime import timedelta

    from storage import staff as staff_store
    from storage.db import unit_of_work
    from storage.errors import Refused

    username = await _bot_username(settings)
    if username is None:
        return 2
    await preflight.migrate(settings.database_url)
    ttl = timedelta(hours=settings.INVITE_TTL_HOURS)
    try:
        async with unit_of_work(sessions) as session:
            team_id = None
            if team:
                team_id = (await staff_store.get_or_create_team(session, team, actor=None)).id
            created = await staff_store.create_invite(
                session, actor=None, role=role, team_id=team_id, ttl=ttl
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
        f"expires in {settings.INVITE_TTL_HOURS} h)",
        file=sys.stderr,
    )
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def prepare() -> Keyring:
        preflight.check_data_dir(settings, create=False)
        preflight.load_keyring(settings)  # without keys, stop before making a database file
        await preflight.check_database(settings.database_url)
        keyring, _ = await preflight.check_stored_keys(settings)
        await preflight.migrate(settings.database_url)
        return keyring

    keyring = checked(lambda: asyncio.run(prepare()))
    from bot.services import build_services

    services = build_services(settings, keyring=keyring)

    async def rotate() -> int:
        from storage.db import unit_of_work
        from storage.erasure_ledger import Ledger, LedgerError
        from storage.key_usage import master_keys_in_use
        from storage.rotation import rotate_keys

        try:
            report = await rotate_keys(services.sessions, services.keyring)
            async with unit_of_work(services.sessions) as session:
                usage = await master_keys_in_use(session)  # re-checked: everything, not a report
        finally:
            await services.dispose()
        print(
            f"re-wrapped {report.data_keys} data keys, re-sealed {report.drafts} drafts, "
            f"re-indexed {report.indexed_customers} customers and "
            f"{report.indexed_key_persons} key persons; "
            f"{report.left_on_old_keys} data keys still on old master keys"
        )
        ledger = Ledger(settings.erasure_ledger, services.keyring)
        try:  # its MAC key, wrapped by a master key in its first line
            if ledger.rewrap():
                print(f"re-wrapped the erasure ledger's key ({ledger.path})")
        except LedgerError as error:
            print(f"the erasure ledger does not verify, so it was not re-wrapped: {error}")
            return 1
        older = set(usage.by_kid) - {keyring.current.kid}
        if not older:
            print("older master keys may now be removed from ENCRYPTION_KEYS")
            return 0
        print(
            f"{usage.records(older)} records ({usage.kinds(older)}) still use older master key "
            f"id {', '.join(sorted(older))}: keep every key in ENCRYPTION_KEYS and run "
            "rotate-keys again"
        )
        return 1

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


def cmd_staff(args: argparse.Namespace) -> int:
    """`staff <subcommand>` (bot.cli_staff): changes are audited, so this needs the keys."""
    settings = load_settings()
    services = _services(settings)

    async def run() -> int:
        try:
            await preflight.migrate(settings.database_url)
            result: int = await args.staff_run(services, args)
            return result
        except cli_staff.Refusal as refusal:
            print(f"Cannot {args.staff_command}: {refusal}", file=sys.stderr)
            return 2
        finally:
            await services.dispose()

    return checked(lambda: asyncio.run(run()))


def cmd_backup(args: argparse.Namespace) -> int:
    from bot.backup_cli import cmd_backup as backup

    return backup(args, load_settings())


def cmd_restore(args: argparse.Namespace) -> int:
    from bot.backup_cli import cmd_restore as restore

    return restore(args, load_settings())


def cmd_erasures(args: argparse.Namespace) -> int:
    return cli_erasures.cmd_erasures(args, load_settings())


def cmd_new_key(args: argparse.Namespace) -> int:
    from storage.crypto import new_master_key

    print(new_master_key())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Customer-archive bot for field sales teams."
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log (default INFO); the token and clear values are never logged",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the bot (default; long polling, or webhook if WEBHOOK_URL)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser(
        "health",
        help="exit 0 if the database answers, the schema is at head and the keys open the data",
    )
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
    cli_staff.add_group(sub)
    backup = sub.add_parser(
        "backup", help="back up the database now (consistent while the bot runs), into BACKUP_DIR"
    )
    backup.add_argument("--out", metavar="DIR", help="write it here instead (never pruned)")
    restore = sub.add_parser(
        "restore", help="restore a backup into DATABASE_URL (empty), migrate it and verify it"
    )
    restore.add_argument("file", metavar="FILE", help="a backup made by `backup`")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace a database that holds records (it is backed up first, into BACKUP_DIR)",
    )
    cli_erasures.add_group(sub)
    sub.add_parser("new-key", help="print a fresh master key for ENCRYPTION_KEYS")
    cli_pipl.add_commands(sub)
    return parser


HANDLERS = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "health": cmd_health,
    "invite": cmd_invite,
    "rotate-keys": cmd_rotate_keys,
    "verify-audit": cmd_verify_audit,
    "staff": cmd_staff,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "erasures": cmd_erasures,
    "new-key": cmd_new_key,
    "pipl-export": cli_pipl.cmd_pipl_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(getattr(logging, args.log_level))
    if args.command is None:
        args.command = "run"
    return HANDLERS[args.command](args)
