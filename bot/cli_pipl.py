"""`python -m bot pipl-export KH-2026-000123 [--key-person ID] --out FILE`: a PIPL access export
for the server's operator, when a request comes by letter or the export is too large to send.

The same gathering as the chat's (storage.pipl), with the operator as the actor (None),
audited `pipl.access` with `via: cli`. FILE gets the JSON document; the text version goes
beside it (FILE with the suffix .txt), labelled in --language (default DEFAULT_LANGUAGE). An
existing file is never overwritten. A refusal is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bot.context import Services


def add_commands(sub: Any) -> None:
    """Register `pipl-export` on the top-level command parsers."""
    command = sub.add_parser(
        "pipl-export",
        help="write everything held about a customer (or one key person) for a PIPL request",
    )
    command.add_argument("customer_no", metavar="CUSTOMER_NO", help="e.g. KH-2026-000123")
    command.add_argument(
        "--key-person", type=int, metavar="ID", help="export this key person of the customer"
    )
    command.add_argument(
        "--out", required=True, metavar="FILE", help="the JSON file (the text version: FILE.txt)"
    )
    command.add_argument("--language", choices=["zh", "en"], help="labels of the text version")


def _paths(out: str) -> tuple[Path, Path]:
    data = Path(out)
    return data, data.with_suffix(".txt") if data.suffix != ".txt" else data.with_suffix(".text")


async def export(services: Services, args: argparse.Namespace) -> int:
    from bot.i18n import Translator
    from conversations.pipl import text_document
    from storage import pipl
    from storage.db import unit_of_work
    from storage.errors import NotFound

    settings = services.settings
    data_path, text_path = _paths(args.out)
    for path in (data_path, text_path):
        if path.exists():
            print(f"Cannot export: {path} exists already; choose another --out", file=sys.stderr)
            return 2
        if not path.parent.is_dir():
            print(f"Cannot export: no folder {path.parent}", file=sys.stderr)
            return 2
    try:
        async with unit_of_work(services.sessions) as session:
            customer = await pipl.customer_by_number(session, args.customer_no)
            if customer is None or customer.id is None:
                raise NotFound()
            if args.key_person is None:
                result = await pipl.export_customer(
                    session,
                    services.keyring,
                    actor=None,
                    customer_id=customer.id,
                    now=services.clock(),
                    via="cli",
                )
            else:
                result = await pipl.export_key_person(
                    session,
                    services.keyring,
                    actor=None,
                    key_person_id=args.key_person,
                    customer_id=customer.id,
                    now=services.clock(),
                    via="cli",
                )
    except NotFound:
        what = f"key person {args.key_person} of " if args.key_person is not None else ""
        print(f"Cannot export: no {what}customer {args.customer_no}", file=sys.stderr)
        return 2
    _ = Translator(args.language or settings.DEFAULT_LANGUAGE)
    text = text_document(_, result, ZoneInfo(settings.TIMEZONE))
    document = json.dumps(result.document, ensure_ascii=False, indent=1) + "\n"
    for path, content in ((data_path, document), (text_path, text)):
        with path.open("x", encoding="utf-8") as file:  # never over an existing file
            file.write(content)
        path.chmod(0o600)
    counts = ", ".join(f"{part} {count}" for part, count in result.counts().items())
    state = " (destroyed: no personal data held)" if result.destroyed else ""
    print(f"Wrote {data_path} and {text_path}{state}: {counts or 'tombstone only'}")
    print("They hold personal data: hand them over securely and delete them afterwards.")
    return 0


def cmd_pipl_export(args: argparse.Namespace) -> int:
    from bot import cli, preflight

    settings = cli.load_settings()
    services = cli._services(settings)

    async def run() -> int:
        try:
            await preflight.migrate(settings.database_url)
            return await export(services, args)
        finally:
            await services.dispose()

    return cli.checked(lambda: asyncio.run(run()))
