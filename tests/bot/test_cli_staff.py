"""`python -m bot staff …`: the operator's staff commands, the same rules as /staff in the bot."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from sqlmodel import select

from bot import cli_staff
from bot.cli import main
from storage import audit
from storage import staff as staff_store
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Handover, Reminder, Role, Staff, Team
from tests.auxil.cli_helpers import run_cli
from tests.auxil.customer_factory import add_customer


async def cli(*argv: str) -> int:
    return await run_cli("staff", *argv)


@pytest.fixture
async def people(session_factory: SessionFactory) -> dict[str, Staff]:
    async with unit_of_work(session_factory) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        rows = {
            "boss": Staff(telegram_id=111, display_name="Boss", role=Role.admin),
            "zhou": Staff(telegram_id=222, display_name="Zhou", role=Role.manager, team_id=east.id),
            "li": Staff(telegram_id=333, display_name="Li", role=Role.salesperson, team_id=east.id),
            "wu": Staff(telegram_id=444, display_name="Wu", role=Role.salesperson, team_id=west.id),
        }
        session.add_all(rows.values())
    return rows


async def _row(sessions: SessionFactory, staff_id: int | None) -> Staff:
    async with unit_of_work(sessions) as session:
        staff = await session.get(Staff, staff_id)
    assert staff is not None
    return staff


async def test_list_shows_staff_by_team_and_deactivated_on_request(
    cli_env: Path,
    session_factory: SessionFactory,
    people: dict[str, Staff],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with unit_of_work(session_factory) as session:
        await staff_store.deactivate(session, actor=None, staff_id=people["wu"].id or 0)
    assert await cli("list") == 0
    out = capsys.readouterr().out
    assert out.index("[East]") < out.index("Li") < out.index("[no team]") < out.index("Boss")
    assert "Wu" not in out and "3 staff (active)" in out
    assert await cli("list", "--all") == 0
    out = capsys.readouterr().out
    assert "deactivated" in out and "Wu" in out and "4 staff" in out
    assert await cli("list", "--team", "East") == 0
    out = capsys.readouterr().out
    assert "Zhou" in out and "Boss" not in out
    assert await cli("list", "--team", "Nowhere") == 2
    assert "no team named 'Nowhere'" in capsys.readouterr().err


async def test_deactivate_by_staff_id_or_telegram_id_and_the_hand_over(
    cli_env: Path,
    session_factory: SessionFactory,
    keyring: Keyring,
    people: dict[str, Staff],
    capsys: pytest.CaptureFixture[str],
) -> None:
    li = people["li"]
    await add_customer(session_factory, keyring, li.telegram_id, "客户一")
    await add_customer(session_factory, keyring, li.telegram_id, "客户二")
    assert await cli("deactivate", str(li.id)) == 0
    out = capsys.readouterr().out
    assert f"deactivated {li.id} (Li)" in out
    assert (
        "hand-over" in out
        and "is open: 2 customers (0 with a follow-up planned), 0 open complaints" in out
    )
    assert not (await _row(session_factory, li.id)).active
    async with unit_of_work(session_factory) as session:
        (handover,) = (await session.exec(select(Handover))).all()
        assert (await audit.verify_chain(session)).ok
    assert handover.started_by is None and handover.reason == "leave"
    assert await cli("deactivate", str(li.id)) == 2
    assert capsys.readouterr().err.strip() == (
        "Cannot deactivate: this person is already deactivated"
    )
    assert await cli("deactivate", "@444") == 0
    assert not (await _row(session_factory, people["wu"].id)).active
    assert "hand-over" not in capsys.readouterr().out  # Wu held nothing
    assert await cli("deactivate", "@999") == 2
    assert "no staff member @999" in capsys.readouterr().err


async def test_the_last_admin_stays(
    cli_env: Path, people: dict[str, Staff], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("deactivate", "@111") == 2
    assert "last active admin" in capsys.readouterr().err
    assert await cli("role", "@111", "manager", "--team", "East") == 2
    assert "last active admin" in capsys.readouterr().err


async def test_role_and_team_changes_tell_the_person(
    cli_env: Path,
    session_factory: SessionFactory,
    people: dict[str, Staff],
    capsys: pytest.CaptureFixture[str],
) -> None:
    li = people["li"]
    assert await cli("role", str(li.id), "manager") == 0
    assert "is now manager" in capsys.readouterr().out
    assert await cli("team", str(li.id), "West") == 0
    assert "moved to team West" in capsys.readouterr().out
    staff = await _row(session_factory, li.id)
    assert (staff.role, staff.team_id, staff.version) == (Role.manager, people["wu"].team_id, 3)
    async with unit_of_work(session_factory) as session:
        notices = (await session.exec(select(Reminder).where(Reminder.recipient_id == li.id))).all()
    assert [n.kind for n in notices] == ["confirmation", "confirmation"]
    assert await cli("team", str(li.id), "West") == 2
    assert capsys.readouterr().err.strip() == "Cannot move: nothing to change"
    assert await cli("role", "@444", "admin") == 0  # Boss is no longer the last admin
    capsys.readouterr()
    assert await cli("role", "@111", "salesperson") == 2  # an admin has no team
    assert "--team" in capsys.readouterr().err


async def test_reactivate_needs_a_team_where_the_role_does(
    cli_env: Path,
    session_factory: SessionFactory,
    people: dict[str, Staff],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with unit_of_work(session_factory) as session:
        lone = Staff(telegram_id=555, display_name="Lone", role=Role.salesperson, active=False)
        session.add(lone)
    assert await cli("reactivate", "@555") == 2
    assert "needs a team" in capsys.readouterr().err
    assert await cli("reactivate", "@555", "--team", "East") == 0
    assert "reactivated" in capsys.readouterr().out
    staff = await _row(session_factory, lone.id)
    assert staff.active and staff.team_id == people["li"].team_id
    assert await cli("reactivate", "@555") == 2
    assert "already active" in capsys.readouterr().err


async def test_teams_are_listed_created_and_renamed(
    cli_env: Path,
    session_factory: SessionFactory,
    people: dict[str, Staff],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await cli("teams") == 0
    out = capsys.readouterr().out
    assert "2 active  East" in out and "2 teams" in out
    assert await cli("team-create", "North\x00") == 0
    assert "created team" in capsys.readouterr().out
    assert await cli("team-create", "north") == 2
    assert "exists already" in capsys.readouterr().err
    assert await cli("team-create", "x" * 101) == 2
    assert "1 to 100 characters" in capsys.readouterr().err
    assert await cli("team-rename", "North", "South") == 0
    assert "renamed team" in capsys.readouterr().out
    assert await cli("team-rename", "Nowhere", "X") == 2
    assert "no team named" in capsys.readouterr().err
    async with unit_of_work(session_factory) as session:
        assert await staff_store.team_by_name(session, "South") is not None


def test_a_bad_id_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("x1", "@", "-3", "²"):
        with pytest.raises(SystemExit) as stopped:
            main(["staff", "deactivate", bad])
        assert stopped.value.code == 2
    assert "neither a staff id nor @telegram_id" in capsys.readouterr().err


async def test_another_module_adds_subcommands_to_the_group(
    cli_env: Path, people: dict[str, Staff], capsys: pytest.CaptureFixture[str]
) -> None:
    async def greet(services: object, args: argparse.Namespace) -> int:
        print(f"hello {args.who}")
        return 0

    def add_greet(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        parser = commands.add_parser("greet")
        parser.add_argument("who")
        parser.set_defaults(staff_run=greet)

    cli_staff.REGISTRARS.append(add_greet)
    try:
        assert await cli("greet", "everyone") == 0
    finally:
        cli_staff.REGISTRARS.remove(add_greet)
    assert capsys.readouterr().out.strip() == "hello everyone"
    assert cli_staff.add_handover_commands in cli_staff.REGISTRARS  # the hand-over's own
