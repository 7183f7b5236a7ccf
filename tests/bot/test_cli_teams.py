"""`python -m bot staff lead|unlead STAFF_ID TEAM`: the operator's side of the teams a manager
leads (storage.team_leads), audited and told to the manager through the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.cli import main
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry, Reminder, Role, Staff, Team, TeamLead
from tests.auxil.cli_helpers import run_cli


async def cli(*argv: str) -> int:
    return await run_cli(*argv)


async def company(sessions: SessionFactory) -> dict[str, int]:
    """Teams East and West; Zhou manages East, Li sells in East."""
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        zhou = Staff(telegram_id=11, display_name="Zhou", role=Role.manager, team_id=east.id)
        li = Staff(telegram_id=12, display_name="Li", role=Role.salesperson, team_id=east.id)
        session.add_all([zhou, li])
        await session.flush()
        return {"east": east.id or 0, "west": west.id or 0, "zhou": zhou.id or 0, "li": li.id or 0}


async def leads(sessions: SessionFactory) -> list[tuple[int, int]]:
    async with unit_of_work(sessions) as session:
        rows = (await session.exec(select(TeamLead))).all()
        return [(r.staff_id, r.team_id) for r in rows]


async def test_lead_and_unlead_by_team_name_or_id(
    cli_env: Path, session_factory: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await company(session_factory)
    assert await cli("staff", "lead", str(ids["zhou"]), "West") == 0
    out = capsys.readouterr().out
    assert f"Zhou (id {ids['zhou']}) now also leads team West" in out
    assert "teams led now: East, West" in out
    assert await leads(session_factory) == [(ids["zhou"], ids["west"])]

    assert await cli("staff", "lead", str(ids["zhou"]), str(ids["west"])) == 0  # by id: again
    assert "already leads team West; nothing changed" in capsys.readouterr().out

    assert await cli("staff", "unlead", str(ids["zhou"]), "West") == 0
    assert "no longer leads team West" in capsys.readouterr().out
    assert await leads(session_factory) == []

    async with unit_of_work(session_factory) as session:
        actions = (
            await session.exec(
                select(AuditEntry.action, AuditEntry.actor_staff_id)
                .where(col(AuditEntry.action).like("staff.%lead_team"))
                .order_by(col(AuditEntry.id))
            )
        ).all()
        confirmations = select(Reminder).where(Reminder.kind == "confirmation")
        notices = (await session.exec(confirmations)).all()
    assert list(actions) == [("staff.lead_team", None), ("staff.unlead_team", None)]
    assert [n.recipient_id for n in notices] == [ids["zhou"], ids["zhou"]]  # sent by the bot


@pytest.mark.parametrize(
    ("who", "team", "why"),
    [
        ("li", "West", "only a manager can lead teams besides their own"),
        ("zhou", "East", "that is their own team"),
        ("zhou", "Nowhere", "there is no such team"),
        ("zhou", "west", "there is no such team"),  # a name is matched exactly, never guessed
        ("nobody", "West", "there is no staff member with that id"),
    ],
)
async def test_refusals_say_why_and_change_nothing(
    cli_env: Path,
    session_factory: SessionFactory,
    capsys: pytest.CaptureFixture[str],
    who: str,
    team: str,
    why: str,
) -> None:
    ids = await company(session_factory)
    staff_id = str(ids.get(who, 999_999))
    assert await cli("staff", "lead", staff_id, team) == 2
    assert why in capsys.readouterr().err
    assert await leads(session_factory) == []
    async with unit_of_work(session_factory) as session:
        assert (await session.exec(select(Team).where(Team.name == "Nowhere"))).first() is None


def test_the_staff_group_lists_lead_and_unlead(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["staff", "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "lead" in out and "unlead" in out
    with pytest.raises(SystemExit) as stopped:
        main(["staff", "lead", "x", "West"])  # not an id
    assert stopped.value.code == 2
