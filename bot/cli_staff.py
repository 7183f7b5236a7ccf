"""`python -m bot staff …`: the operator's staff and team commands, for the server.

The same storage functions as /staff in the bot, with the operator as the actor (None): the
rules hold here too (the last active admin stays; a role that needs a team gets one). A person
is named by their staff id as `staff list` prints it (`42`) or by their Telegram id after an
`@` (`@123456789`). A refusal is one line on stderr and exit code 2.

The group is open: each entry of `REGISTRARS` adds subcommands to it, and each subcommand sets
`staff_run`, an async function `(services, args) -> exit code` run with the database migrated
(e.g. the hand-over's `add_handover_commands` adds `staff handover` and `staff orphans`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.cli_handover import add_handover_commands
from bot.cli_teams import add_team_lead_commands

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.context import Services
    from storage.models import Staff, Team
    from storage.staff import StaffChange

StaffRun = Callable[["Services", argparse.Namespace], Awaitable[int]]
Registrar = Callable[[Any], None]  # gets the group's subparsers (argparse._SubParsersAction)
ROLES = ("salesperson", "manager", "admin")

# what a refusal says on the command line (storage.errors.Refused codes)
REFUSALS = {
    "not_found": "no such staff member",
    "stale": "the person changed meanwhile; run the command again",
    "last_admin": "this is the last active admin; make someone else an admin first",
    "team_required": "this role needs a team: give --team NAME",
    "team_not_found": "no such team",
    "unchanged": "nothing to change",
    "inactive": "this person is deactivated; reactivate them first",
    "already_active": "this person is already active",
    "already_inactive": "this person is already deactivated",
    "invalid_role": "no such role",
    "team_exists": "a team with that name exists already",
    "team_name": "a team name must be 1 to 100 characters (control characters are removed)",
}


class Refusal(Exception):
    """A command refused with one line (exit code 2)."""


def _person_ref(text: str) -> tuple[str, int]:
    """`42` (staff id) or `@123456789` (Telegram id)."""
    telegram = text.startswith("@")
    digits = text[1:] if telegram else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 15:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a staff id nor @telegram_id")
    return ("telegram" if telegram else "staff", int(digits))


def add_staff_commands(commands: Any) -> None:
    """list, deactivate, reactivate, role, team, teams, team-create, team-rename."""
    listing = commands.add_parser("list", help="staff by team (active only unless --all)")
    listing.add_argument("--team", metavar="NAME", help="only this team")
    listing.add_argument("--all", action="store_true", help="deactivated staff too")
    listing.set_defaults(staff_run=_list)

    person = "staff id as `staff list` prints it, or @telegram_id"
    deactivate = commands.add_parser(
        "deactivate", help="deactivate someone (their records wait in a hand-over)"
    )
    deactivate.add_argument("person", metavar="ID", type=_person_ref, help=person)
    deactivate.set_defaults(staff_run=_change, change="d")

    reactivate = commands.add_parser("reactivate", help="let a deactivated person back in")
    reactivate.add_argument("person", metavar="ID", type=_person_ref, help=person)
    reactivate.add_argument("--team", metavar="NAME", help="into this team (else their own)")
    reactivate.set_defaults(staff_run=_change, change="a")

    role = commands.add_parser("role", help="give someone another role")
    role.add_argument("person", metavar="ID", type=_person_ref, help=person)
    role.add_argument("role", choices=ROLES)
    role.add_argument("--team", metavar="NAME", help="and this team (a role that needs one)")
    role.set_defaults(staff_run=_change, change="r")

    team = commands.add_parser("team", help="move someone to another team (a hand-over opens)")
    team.add_argument("person", metavar="ID", type=_person_ref, help=person)
    team.add_argument("team", metavar="TEAM", help="the team's name")
    team.set_defaults(staff_run=_change, change="m")

    commands.add_parser("teams", help="list the teams").set_defaults(staff_run=_teams)
    create = commands.add_parser("team-create", help="create a team")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(staff_run=_team_create)
    rename = commands.add_parser("team-rename", help="rename a team")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    rename.set_defaults(staff_run=_team_rename)


# Each adds subcommands to `staff`; another module appends its own (see the module docstring).
REGISTRARS: list[Registrar] = [add_staff_commands, add_handover_commands, add_team_lead_commands]


def add_group(sub: Any) -> None:
    """The `staff` command and every registered subcommand."""
    group = sub.add_parser("staff", help="staff and teams: list, deactivate, role, team, …")
    commands = group.add_subparsers(dest="staff_command", metavar="SUBCOMMAND", required=True)
    for register in REGISTRARS:
        register(commands)


# ---------------------------------------------------------------------------------------------
# the commands


async def _resolve(session: AsyncSession, ref: tuple[str, int]) -> Staff:
    from storage import staff as staff_store
    from storage.models import Staff

    kind, number = ref
    if kind == "telegram":
        found = await staff_store.staff_by_telegram_id(session, number)
    else:
        found = await session.get(Staff, number) if number < 2**31 else None
    if found is None:
        raise Refusal(f"no staff member {'@' if kind == 'telegram' else ''}{number}")
    return found


async def _team_named(session: AsyncSession, name: str) -> Team:
    from storage import staff as staff_store

    team = await staff_store.team_by_name(session, name.strip())
    if team is None:
        raise Refusal(f"no team named {name!r} (see `staff teams`)")
    return team


def _refused(verb: str, code: str) -> int:
    print(f"Cannot {verb}: {REFUSALS.get(code, code)}", file=sys.stderr)
    return 2


def _seen(staff: Staff) -> str:
    return staff.last_seen_at.strftime("%Y-%m-%d %H:%M UTC") if staff.last_seen_at else "never"


async def _list(services: Services, args: argparse.Namespace) -> int:
    from storage import staff as staff_store
    from storage.db import reading

    async with reading(services.sessions) as session:
        team = await _team_named(session, args.team) if args.team else None
        listed = await staff_store.staff_page(
            session,
            actor=None,
            team_id=team.id if team else None,
            include_inactive=args.all,
            page_size=1_000_000,
        )
        names = {t.id: t.name for t in await staff_store.teams(session)}
    print(f"{'ID':>5}  {'TELEGRAM':>12}  {'ROLE':<11}  {'LANG':<4}  {'LAST SEEN':<20}  STATUS")
    current: object = object()
    for person in listed.entries:
        if person.team_id != current:
            current = person.team_id
            print(f"[{names.get(person.team_id, '-') if person.team_id else 'no team'}]")
        status = "active" if person.active else "deactivated"
        print(
            f"{person.id:>5}  {person.telegram_id:>12}  {person.role:<11}  "
            f"{person.language or '-':<4}  {_seen(person):<20}  {status:<11}  "
            f"{person.display_name}"
        )
    print(f"{listed.total} staff{'' if args.all else ' (active)'}")
    return 0


_VERBS = {"d": "deactivate", "a": "reactivate", "r": "change the role", "m": "move"}


async def _change(services: Services, args: argparse.Namespace) -> int:
    """deactivate / reactivate / role / team: one unit of work, the person told (outbox)."""
    from conversations.staff import Change, apply_change, queue_notice
    from storage import handover as handover_store
    from storage.db import unit_of_work
    from storage.errors import Refused
    from storage.models import Team

    verb = _VERBS[args.change]
    try:
        async with unit_of_work(services.sessions) as session:
            person = await _resolve(session, args.person)
            team_name = args.team if args.change in ("a", "r", "m") else None
            team = await _team_named(session, team_name) if team_name else None
            change = Change(
                args.change,
                role=getattr(args, "role", None) if args.change == "r" else None,
                team_id=team.id if team else None,
            )
            done = await apply_change(
                session, actor=None, staff_id=person.id or 0, version=None, change=change
            )
            await queue_notice(session, services, done)
            held = await handover_store.holdings(session, person.id or 0) if done.handover else None
            moved_to = await session.get(Team, done.staff.team_id) if done.team_changed else None
    except Refusal as refusal:
        print(f"Cannot {verb}: {refusal}", file=sys.stderr)
        return 2
    except Refused as refusal:
        return _refused(verb, refusal.code)
    print(_describe(done, moved_to.name if moved_to else None))
    if done.handover is not None and held is not None:
        print(
            f"hand-over {done.handover.id} is open: {held.customers} customers "
            f"({held.followups} with a follow-up planned), {held.complaints} open complaints, "
            f"{held.reviews} pending reviews; choose successors in the bot (/staff) "
            f"or with `staff handover {done.staff.id} --to ID`"
        )
    return 0


def _describe(done: StaffChange, team: str | None) -> str:
    staff = done.staff
    who = f"{staff.id} ({staff.display_name})"
    if not staff.active:
        return f"deactivated {who}"
    parts = []
    if done.kind == "reactivate":
        parts.append(f"reactivated {who}")
    if done.role_changed:
        parts.append(f"{who} is now {staff.role}")
    if done.team_changed:
        parts.append(f"{who} moved to team {team or '-'}")
    return "; ".join(parts) or f"changed {who}"


async def _teams(services: Services, args: argparse.Namespace) -> int:
    from sqlalchemy import func
    from sqlmodel import col, select

    from storage import staff as staff_store
    from storage.db import reading
    from storage.models import Staff

    async with reading(services.sessions) as session:
        every = await staff_store.teams(session)
        counts = dict(
            (
                await session.exec(
                    select(Staff.team_id, func.count())
                    .where(col(Staff.active).is_(True))
                    .group_by(col(Staff.team_id))
                )
            ).all()
        )
    for team in every:
        print(f"{team.id:>5}  {counts.get(team.id, 0):>4} active  {team.name}")
    print(f"{len(every)} teams")
    return 0


async def _team_create(services: Services, args: argparse.Namespace) -> int:
    from storage import staff as staff_store
    from storage.db import unit_of_work
    from storage.errors import Refused

    try:
        async with unit_of_work(services.sessions) as session:
            team = await staff_store.create_team(session, actor=None, name=args.name)
    except Refused as refusal:
        return _refused("create the team", refusal.code)
    print(f"created team {team.id}: {team.name}")
    return 0


async def _team_rename(services: Services, args: argparse.Namespace) -> int:
    from storage import staff as staff_store
    from storage.db import unit_of_work
    from storage.errors import Refused

    try:
        async with unit_of_work(services.sessions) as session:
            team = await _team_named(session, args.old)
            renamed = await staff_store.rename_team(
                session, actor=None, team_id=team.id or 0, name=args.new
            )
    except Refusal as refusal:
        print(f"Cannot rename the team: {refusal}", file=sys.stderr)
        return 2
    except Refused as refusal:
        return _refused("rename the team", refusal.code)
    print(f"renamed team {renamed.id} to {renamed.name}")
    return 0
