"""`python -m bot staff orphans` and `python -m bot staff handover`: the hand-over for the server.

`orphans` lists every record an inactive person still holds (exit 0 when there is none, 1 when
there is any, so a cron job can alert); `handover STAFF_ID --to SUCCESSOR_ID` gives everything
of someone who left (or moved, with a hand-over open) to one successor, in one transaction, and
queues the summaries for the running bot to send. The `staff` group itself is bot.cli_staff's;
these subcommands join it through its `REGISTRARS` (`add_handover_commands`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.services import Services

ORPHAN_KINDS = ("customer", "complaint", "review", "reminder")


def add_handover_commands(subparsers: Any) -> None:
    """Add `orphans` and `handover` to the `staff` command group's subparsers."""
    orphans = subparsers.add_parser(
        "orphans",
        help="list records still held by inactive staff (exit 1 if any, for a cron alert)",
    )
    orphans.set_defaults(staff_run=cmd_orphans)
    handover = subparsers.add_parser(
        "handover",
        help="hand over everything an inactive (or moved) person holds to one successor",
    )
    handover.add_argument("staff_id", type=int, metavar="STAFF_ID")
    handover.add_argument("--to", type=int, required=True, metavar="SUCCESSOR_ID", dest="to")
    handover.set_defaults(staff_run=cmd_handover)


async def cmd_orphans(services: Services, args: argparse.Namespace) -> int:
    from storage import handover
    from storage.db import reading

    async with reading(services.sessions) as session:
        found = await handover.orphans(session)
    if found.empty:
        print("no records are held by inactive staff")
        return 0
    by_holder: dict[int, list[handover.Orphan]] = {}
    for record in found.records:
        by_holder.setdefault(record.holder_id, []).append(record)
    for holder_id, records in by_holder.items():
        counts = Counter(r.kind for r in records)
        summary = ", ".join(f"{counts[k]} {k}s" for k in ORPHAN_KINDS if counts[k])
        opened = found.handovers.get(holder_id)
        where = f"hand-over #{opened} is open" if opened else "no hand-over is open"
        name = found.holders.get(holder_id, "?")
        print(f"staff {holder_id} ({name}, inactive): {summary}; {where}")
        for record in records:
            print(f"  {record.kind} {record.record_id} {record.label}")
    print(
        f"{len(found.records)} records held by {len(by_holder)} inactive people: "
        "hand them over with `python -m bot staff handover STAFF_ID --to SUCCESSOR_ID`"
    )
    return 1


REFUSALS = {
    "not_found": "there is no staff member {staff_id}",
    "handover_still_active": (
        "staff {staff_id} is still active: deactivate them first (or move them, which opens a "
        "hand-over)"
    ),
    "handover_successor": (
        "staff {to} cannot receive these records (inactive, an admin, the same person, or "
        "outside the team while the team still has people)"
    ),
    "handover_unassigned": "{count} records have no successor",
    "handover_closed": "the hand-over was finished or cancelled meanwhile",
}


async def cmd_handover(services: Services, args: argparse.Namespace) -> int:
    from conversations.handover_summary import notifier
    from storage import handover
    from storage.db import unit_of_work
    from storage.errors import Refused

    try:
        async with unit_of_work(services.sessions) as session:
            finished = await handover.hand_over_all(
                session,
                services.keyring,
                actor=None,
                staff_id=args.staff_id,
                successor_id=args.to,
                notify=notifier(services.settings.DEFAULT_LANGUAGE),
            )
    except Refused as refusal:
        template = REFUSALS.get(refusal.code, refusal.code)
        values = {"staff_id": args.staff_id, "to": args.to, **refusal.details}
        print(f"Cannot hand over: {template.format(**values)}", file=sys.stderr)
        return 2
    if finished is None:
        print(f"staff {args.staff_id} holds nothing: there is nothing to hand over")
        return 0
    print(
        f"hand-over #{finished.handover.id} done: {finished.customers} customers, "
        f"{finished.complaints} complaints, {finished.reviews} reviews and "
        f"{finished.reminders} reminders moved to staff {args.to}; "
        f"{finished.messages} summaries queued (the running bot sends them)"
    )
    return 0
