"""storage.reports: the figures of a crafted week equal what the database holds, for each role's
scope, on SQLite and PostgreSQL (tests/auxil/report_helpers.py says why each figure is what it
is)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from storage import reports
from storage.crypto import Keyring
from storage.db import reading
from storage.errors import Refused
from storage.reports import Period, Report
from tests.auxil.customer_factory import staff_of
from tests.auxil.report_helpers import EXPECTED_EAST, FIRST, LAST, TODAY, crafted_week
from tests.auxil.world import World

SHANGHAI = ZoneInfo("Asia/Shanghai")
PERIOD = Period.of(FIRST, LAST, SHANGHAI)


async def _report(
    world: World, who: object, team_id: int | None, period: Period = PERIOD
) -> Report:
    actor = await staff_of(world.services.sessions, who)  # type: ignore[arg-type]
    async with reading(world.services.sessions) as session:
        return await reports.build(
            session, actor=actor, team_id=team_id, period=period, today=TODAY
        )


def _by_name(report: Report) -> dict[str, tuple[int, tuple[int, int, int, int]]]:
    return {
        p.name: (
            p.visits,
            (p.followups.on_time, p.followups.late, p.followups.overdue, p.followups.not_yet_due),
        )
        for p in report.salespeople
    }


async def test_east_figures_equal_the_crafted_week(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    report = await _report(world, week.manager, week.east_id)
    expected = EXPECTED_EAST
    people = _by_name(report)
    assert {n: v for n, (v, _) in people.items()} == expected["visits"]
    assert {n: f for n, (_, f) in people.items()} == expected["followups"]
    assert (report.followups.on_time, report.followups.late) == (1, 1)
    assert (report.followups.overdue, report.followups.not_yet_due) == (1, 1)
    assert report.new_customers == expected["new"]
    assert report.approved == expected["approved"]
    assert report.stages == expected["stages"]
    assert report.moved_into == expected["moved"]
    rows = {r.severity: r for r in report.complaints}
    assert {s: r.opened for s, r in rows.items()} == expected["opened"]
    assert {s: r.closed for s, r in rows.items()} == expected["closed"]
    assert {s: r.past_due for s, r in rows.items()} == expected["past_due"]
    for severity, hours in expected["hours"].items():  # type: ignore[attr-defined]
        assert rows[severity].avg_hours == pytest.approx(hours, abs=0.01)
        assert rows[severity].max_hours == pytest.approx(hours, abs=0.01)
    assert rows["medium"].avg_hours is None
    assert report.open_complaints == expected["open_now"]
    assert [r.severity for r in report.complaints] == ["critical", "high", "medium", "low"]


async def test_the_company_adds_west_and_west_sees_only_west(
    world: World, keyring: Keyring
) -> None:
    week = await crafted_week(world, keyring)
    company = await _report(world, world.admin(), None)
    assert _by_name(company)["Chen C"] == (1, (0, 0, 1, 0))
    assert company.visits == 6
    assert company.stages["rotten"] == 1 and company.moved_into["rotten"] == 1
    assert company.new_customers == 3
    assert {r.severity: r.opened for r in company.complaints}["low"] == 1
    west = await _report(world, week.west_manager, week.west_id)
    assert set(_by_name(west)) == {"Chen C"}
    assert west.visits == 1 and west.opened == 1 and west.stages["red"] == 0


async def test_each_role_sees_only_its_teams(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    with pytest.raises(Refused):
        await _report(world, week.manager, week.west_id)  # another team's
    with pytest.raises(Refused):
        await _report(world, week.manager, None)  # the company: admins only
    with pytest.raises(Refused):
        await _report(world, week.a, week.east_id)  # salespeople: /stats only
    with pytest.raises(Refused):
        await _report(world, week.manager, 999_999)  # no such team
    sessions = world.services.sessions
    async with reading(sessions) as session:
        mine = await reports.scopes_for(session, await staff_of(sessions, week.manager))
        everyone = await reports.scopes_for(session, await staff_of(sessions, world.admin()))
        none = await reports.scopes_for(session, await staff_of(sessions, week.a))
    assert [s.team_id for s in mine] == [week.east_id]
    assert [s.team_id for s in everyone] == [None, week.east_id, week.west_id]
    assert none == []


async def test_an_empty_period_lists_the_team_with_zeros(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    empty = Period.of(date(2026, 1, 5), date(2026, 1, 11), SHANGHAI)
    report = await _report(world, week.manager, week.east_id, empty)
    assert _by_name(report) == {"Wang A": (0, (0, 0, 0, 0)), "Li B": (0, (0, 0, 0, 0))}
    assert report.new_customers == report.approved == report.opened == report.closed == 0
    assert all(r.avg_hours is None for r in report.complaints)
    assert report.stages["red"] == 1  # the pipeline is as it is now


def test_periods_are_checked() -> None:
    with pytest.raises(Refused) as backwards:
        Period.of(date(2026, 11, 22), date(2026, 11, 1), SHANGHAI)
    assert backwards.value.code == "report_period_backwards"
    with pytest.raises(Refused) as long:
        Period.of(date(2025, 1, 1), date(2026, 11, 1), SHANGHAI)
    assert long.value.code == "report_period_too_long"
    one_year = Period.of(date(2025, 11, 23), date(2026, 11, 23), SHANGHAI)
    assert one_year.days == reports.MAX_DAYS
    assert PERIOD.minutes == 480
    assert reports.last_week(date(2026, 11, 25)) == (date(2026, 11, 16), date(2026, 11, 22))
    assert reports.month_of(date(2026, 11, 25)) == (date(2026, 11, 1), date(2026, 11, 25))
    assert reports.last_month(date(2026, 1, 5)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert reports.week_of(date(2026, 11, 22)) == (date(2026, 11, 16), date(2026, 11, 22))


async def test_own_week_counts_only_ones_own(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    sessions = world.services.sessions
    a = await staff_of(sessions, week.a)
    async with reading(sessions) as session:
        mine = await reports.own_week(
            session,
            actor=a,
            period=PERIOD,
            today=TODAY,
            now=world.services.clock(),
        )
    assert mine.visits == 3
    assert (mine.followups.late, mine.followups.overdue) == (1, 1)
    assert mine.open_complaints == 2  # medium and low on cA1, A's customer
    assert mine.complaints_past_due == 1  # medium: due 11-21
