"""`python -m bot backup` and `python -m bot restore FILE`: the operator's side of storage.backup
and storage.restore (what to check first, what to print, which exit code)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bot import preflight
from bot.settings import Settings
from storage.backup import (
    PRE_RESTORE,
    BackupError,
    BackupResult,
    create_backup,
    human_size,
    prune,
)
from storage.crypto import Keyring
from storage.erasure_ledger import Ledger
from storage.restore import VerificationFailed, restore
from storage.types import utcnow

# the tables an operator looks at first in a summary
SUMMARY_TABLES = ("customers", "key_persons", "visits", "complaints", "staff", "audit_log")


def _fail(prefix: str, line: str) -> int:
    print(f"{prefix}: {line}", file=sys.stderr)
    return 2


def summary(result: BackupResult) -> list[str]:
    manifest = result.manifest
    rows = ", ".join(f"{name} {manifest.tables.get(name, 0)}" for name in SUMMARY_TABLES)
    total = sum(manifest.tables.values())
    kids = ", ".join(sorted(manifest.all_key_ids)) or "none"
    lines = [
        f"backup written: {result.path} ({human_size(result.size)}, {manifest.database}, "
        f"schema {manifest.schema_revision})",
        f"rows: {rows} ({total} in {len(manifest.tables)} tables)",
        f"audit head: {manifest.audit_head or 'none (the log is empty)'}",
        f"master key ids needed to read it: {kids} (the keys are not in the backup: keep them "
        "apart from it)",
    ]
    if result.audit_problem:
        lines.append(f"warning: the backup was not audited: {result.audit_problem}")
    return lines


async def _keys_and_database(settings: Settings) -> Keyring:
    preflight.check_data_dir(settings, create=False)
    await preflight.check_database(settings.database_url)
    keyring, _ = await preflight.check_stored_keys(settings)
    return keyring


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    """Back up now; prune to BACKUP_KEEP only in BACKUP_DIR and only after a success."""
    try:
        keyring = asyncio.run(_keys_and_database(settings))
    except preflight.StartupRefused as refusal:
        return _fail("backup failed", refusal.line)
    folder = Path(args.out) if args.out else settings.backup_dir
    try:
        result = asyncio.run(
            create_backup(
                settings.database_url,
                folder=folder,
                keyring=keyring,
                now=utcnow(),
                pg_bin=settings.PG_BIN,
                ledger=Ledger(settings.erasure_ledger, keyring),
            )
        )
    except BackupError as error:
        return _fail("backup failed", error.line)
    for line in summary(result):
        print(line)
    if not args.out:
        removed = prune(folder, settings.BACKUP_KEEP)
        if removed:
            print(f"removed {len(removed)} older backups (BACKUP_KEEP={settings.BACKUP_KEEP})")
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    """Restore FILE into DATABASE_URL; exit 2 on a refusal or a failed verification."""
    try:
        preflight.check_data_dir(settings, create=False)
        keyring, _ = preflight.load_keyring(settings)
        asyncio.run(preflight.check_database(settings.database_url))
    except preflight.StartupRefused as refusal:
        return _fail("restore refused", refusal.line)
    now = utcnow()

    async def backup_first() -> Path:
        result = await create_backup(
            settings.database_url,
            folder=settings.backup_dir,
            keyring=keyring,
            now=now,
            pg_bin=settings.PG_BIN,
            ledger=Ledger(settings.erasure_ledger, keyring),
            prefix=PRE_RESTORE,
            reason="restore --force",
        )
        print(f"the database being replaced was backed up first: {result.path}")
        return result.path

    try:
        report = asyncio.run(
            restore(
                Path(args.file),
                url=settings.database_url,
                keyring=keyring,
                work_dir=settings.backup_dir,
                now=now,
                force=args.force,
                backup_first=backup_first,
                pg_bin=settings.PG_BIN,
                ledger=Ledger(settings.erasure_ledger, keyring),
                data_dir=settings.DATA_DIR,
            )
        )
    except BackupError as error:
        return _fail("restore refused", error.line)
    except VerificationFailed as failure:
        for problem in failure.problems:
            print(f"restore verification FAILED: {problem}", file=sys.stderr)
        print(
            "the database now holds this backup's data, which did not check out: do not start "
            "the bot on it; restore again (--force) with the right keys or another backup",
            file=sys.stderr,
        )
        return 2
    manifest = report.manifest
    print(
        f"restored {Path(args.file).name} (made {manifest.created_at} from {manifest.database}, "
        f"schema {manifest.schema_revision}) into {preflight.shown_url(settings.database_url)}"
    )
    print(f"rows: {sum(report.rows.values())} in {len(report.rows)} tables, as the manifest says")
    print(f"schema now {report.schema}")
    print(
        f"verified: audit log intact ({report.audit_checked} entries, reaching the manifest's "
        f"head {manifest.audit_head or 'none'}); {report.data_keys} customer data keys open"
    )
    return 0
