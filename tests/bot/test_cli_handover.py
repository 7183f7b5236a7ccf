"""`python -m bot staff orphans` and `python -m bot staff handover`: the operator finds what an
inactive person still holds (exit 1, for a cron alert), hands it all to one successor, and then
finds nothing (exit 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from storage.db import reading
from storage.models import Handover, HandoverStatus, Reminder
from tests.auxil.cli_helpers import run_cli
from tests.auxil.handover_helpers import company, deactivate, leave, owners, pending_of
from tests.auxil.world import World


async def cli(*argv: str) -> int:
    return await run_cli(*argv)


async def test_orphans_then_handover_then_none(
    world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = world.services.sessions
    c = await company(world)
    assert await cli("staff", "orphans") == 0  # everyone is active
    assert "no records are held by inactive staff" in capsys.readouterr().out

    await deactivate(sessions, c.li_id)  # deactivated without a hand-over (before this issue)
    assert await cli("staff", "orphans") == 1
    out = capsys.readouterr().out
    assert f"staff {c.li_id} (Li, inactive): 3 customers, 2 complaints" in out
    assert "no hand-over is open" in out
    assert f"  customer {c.customers[2]} " in out  # the archived one is listed too

    assert await cli("staff", "handover", str(c.li_id), "--to", str(c.zhao_id)) == 0
    out = capsys.readouterr().out
    assert "done: 3 customers, 2 complaints" in out and "summaries queued" in out
    assert await owners(sessions, c.customers) == [c.zhao_id] * 3
    assert await pending_of(sessions, c.li_id) == (0, 0)
    async with reading(sessions) as session:
        handover = (await session.exec(select(Handover))).one()
        assert handover.status == HandoverStatus.done and handover.started_by is None
        queued = (
            await session.exec(
                select(Reminder).where(
                    Reminder.kind == "confirmation", col(Reminder.recipient_id) == c.zhao_id
                )
            )
        ).all()
        assert len(queued) == 1  # the running bot sends Zhao his summary
    assert await cli("staff", "orphans") == 0


async def test_handover_refusals_say_why(
    world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = world.services.sessions
    c = await company(world)
    assert await cli("staff", "handover", str(c.li_id), "--to", str(c.zhao_id)) == 2
    assert "still active" in capsys.readouterr().err
    assert await cli("staff", "handover", "999999", "--to", str(c.zhao_id)) == 2
    assert "no staff member 999999" in capsys.readouterr().err
    hid = await leave(sessions, c.li_id)
    await deactivate(sessions, c.zhao_id)
    assert await cli("staff", "handover", str(c.li_id), "--to", str(c.zhao_id)) == 2
    assert "cannot receive" in capsys.readouterr().err
    assert await cli("staff", "orphans") == 1
    out = capsys.readouterr().out
    assert f"hand-over #{hid} is open" in out and f"staff {c.zhao_id} (Zhao, inactive)" in out
    assert await owners(sessions, c.customers) == [c.li_id] * 3  # nothing moved
    assert await cli("staff", "handover", str(c.zhao_id), "--to", str(c.qian_id)) == 0
    assert "1 customers" in capsys.readouterr().out
    # someone who holds nothing: nothing to do
    assert await cli("staff", "handover", str(c.zhao_id), "--to", str(c.qian_id)) == 0
    assert "holds nothing" in capsys.readouterr().out
