"""`python -m bot staff lead|unlead STAFF_ID TEAM`: which teams a manager leads besides their
own, for the server's operator (the same rules as the admins' "Teams led" view, audited).

`add_team_lead_commands` adds the two subcommands to the `staff` group (bot.cli_staff's
`REGISTRARS`); each sets `staff_run`, an async function of (services, args) the group runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from bot.i18n import Translator
from storage import outbox, team_leads
from storage.db import unit_of_work
from storage.errors import NotFound, Refused

if TYPE_CHECKING:
    from bot.context import Services

REFUSALS = {
    "not_found": "there is no staff member with that id",
    "team_not_found": "there is no such team (give its exact name or its id)",
    "own_team": "that is their own team; move them to another team to change it",
    "not_a_manager": "only a manager can lead teams besides their own",
    "staff_inactive": "that person is deactivated",
}


def add_team_lead_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`staff lead` and `staff unlead`, under the `staff` command group."""
    for name, adds, text in (
        ("lead", True, "let a manager lead TEAM besides their own team"),
        ("unlead", False, "stop a manager leading TEAM"),
    ):
        command = subparsers.add_parser(name, help=text, description=text)
        command.add_argument("staff_id", metavar="STAFF_ID", type=int, help="the staff id")
        command.add_argument("team", metavar="TEAM", help="the team's exact name, or its id")
        command.set_defaults(staff_run=change_lead, adds=adds)


async def change_lead(services: Services, args: argparse.Namespace) -> int:
    """Lead or unlead; the manager is told through the outbox (the running bot sends it)."""
    change = team_leads.lead_team if args.adds else team_leads.unlead_team
    try:
        async with unit_of_work(services.sessions) as session:
            team = await team_leads.team_by_name_or_id(session, args.team)
            if team is None or team.id is None:
                raise Refused("team_not_found")
            done = await change(session, actor=None, staff_id=args.staff_id, team_id=team.id)
            if done.changed:
                _ = Translator(done.staff.language or services.settings.DEFAULT_LANGUAGE)
                key = "teams.notice.added" if done.leads else "teams.notice.removed"
                await outbox.queue_confirmation(
                    session,
                    keyring=services.keyring,
                    recipient=done.staff,
                    text=_(key, team=done.team.name),
                    markup=None,
                    now=services.clock(),
                )
            led = [t.name for t in await team_leads.teams_led_by(session, done.staff)]
    except (Refused, NotFound) as refusal:
        print(
            f"Cannot change the teams led: {REFUSALS.get(refusal.code, refusal.code)}",
            file=sys.stderr,
        )
        return 2
    who = f"{done.staff.display_name} (id {done.staff.id})"
    if not done.changed:
        state = "already leads" if done.leads else "does not lead"
        print(f"{who} {state} team {done.team.name}; nothing changed")
        return 0
    now = "now also leads" if done.leads else "no longer leads"
    print(f"{who} {now} team {done.team.name}")
    print(f"teams led now: {', '.join(led) or 'none'}")
    return 0
