"""`python -m bot erasures [--reapply]`: the erasure ledger (storage.erasure_ledger) for the
server's operator.

Without options it verifies the ledger (every line's MAC, the chain unbroken) and prints its
count and head, the pair a backup's manifest records; exit 1 if the ledger does not check out.
`--reapply` then does what every start does: erase again what the database still holds of what
the ledger names, and append the destroyed customers and removals the ledger lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot import preflight
from bot.settings import Settings
from storage import audit
from storage.crypto import Keyring
from storage.db import make_engine, make_session_factory
from storage.destruction import sync
from storage.erasure_ledger import Ledger, LedgerError
from storage.types import utcnow


def add_group(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `erasures` command (bot.cli registers its handler as the other groups')."""
    command = sub.add_parser(
        "erasures",
        help="verify the erasure ledger kept beside the keys; print its count and head",
    )
    command.add_argument(
        "--reapply",
        action="store_true",
        help="also erase again what the database still holds of it, and record what it lacks",
    )


def _print_head(ledger: Ledger, count: int, mac: str) -> None:
    print(f"erasure ledger {ledger.path}: {count} entries, verified")
    print(f"head: {count}:{mac or '-'}")


async def _reapply(settings: Settings, keyring: Keyring, ledger: Ledger) -> int:
    await preflight.check_database(settings.database_url)
    await preflight.migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        synced = await sync(factory, ledger, keyring, now=utcnow())
    finally:
        await engine.dispose()
    done = synced.reapplied
    print(
        f"re-applied {done.total} erasures the database still held ({done.customers} customers, "
        f"{done.key_persons} key persons, {done.complaints} complaints); recorded "
        f"{synced.recorded} the ledger lacked"
    )
    _print_head(ledger, synced.head.count, synced.head.mac)
    return 0


def cmd_erasures(args: argparse.Namespace, settings: Settings) -> int:
    """Verify (and with --reapply, apply) the ledger; 1 if it is broken, 2 on a bad setting."""
    try:
        preflight.check_data_dir(settings, create=False)
        keyring, _ = preflight.load_keyring(settings)
    except preflight.StartupRefused as refusal:
        print(f"erasures: {refusal.line}", file=sys.stderr)
        return 2
    ledger = Ledger(settings.erasure_ledger, keyring)
    try:
        if args.reapply:
            return asyncio.run(_reapply(settings, keyring, ledger))
        _, head = ledger.read()
    except LedgerError as error:
        print(f"erasure ledger FAILED verification: {error}", file=sys.stderr)
        print(
            "put back the ledger kept with the keys (from the key backup); until then the bot "
            "does not start",
            file=sys.stderr,
        )
        return 1
    except preflight.StartupRefused as refusal:
        print(f"erasures: {refusal.line}", file=sys.stderr)
        return 2
    _print_head(ledger, head.count, head.mac)
    return 0
