"""A crafted week for the report tests: what the database holds, and what the report must say.

Teams East (salespeople A and B, manager M) and West (salesperson C). The period is
2026-11-16 to 2026-11-22 (Shanghai, UTC+8); today is 2026-11-22. Visits, complaints and the
customers' dates are written as rows, with chosen times, so every expected figure below can be
checked by hand against the module docstring of storage/reports.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime

from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Complaint, Visit
from tests.auxil.customer_factory import add_customer, set_columns, staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.world import World

FIRST, LAST, TODAY = date(2026, 11, 16), date(2026, 11, 22), date(2026, 11, 22)
_numbers = itertools.count(1)


def utc(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00+00:00").astimezone(UTC)


@dataclass
class Week:
    a: Person
    b: Person
    c: Person
    manager: Person
    west_manager: Person
    east_id: int
    west_id: int
    a_id: int
    b_id: int
    c_id: int


async def _visit(
    sessions: SessionFactory,
    customer_id: int,
    salesperson_id: int,
    at: datetime,
    next_on: str | None = None,
    stage: str | None = None,
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            Visit(
                customer_id=customer_id,
                salesperson_id=salesperson_id,
                visited_at=at,
                kind="onsite",
                stage_change=stage,
                next_followup_on=date.fromisoformat(next_on) if next_on else None,
            )
        )


async def _complaint(
    sessions: SessionFactory,
    customer_id: int,
    by: int,
    severity: str,
    received: datetime,
    due: datetime,
    closed: datetime | None = None,
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            Complaint(
                complaint_no=f"TS-{next(_numbers):06d}",
                customer_id=customer_id,
                received_by=by,
                received_at=received,
                type="service",
                severity=severity,
                description="-",
                status="closed" if closed else "open",
                due_at=due,
                closed_at=closed,
            )
        )


async def crafted_week(world: World, keyring: Keyring) -> Week:
    """The crafted data set (the module docstring); the expected figures are in `EXPECTED`."""
    sessions = world.services.sessions
    a = await world.member("salesperson", "East", "Wang A")
    b = await world.member("salesperson", "East", "Li B")
    c = await world.member("salesperson", "West", "Chen C")
    manager = await world.member("manager", "East", "Manager M")
    west_manager = await world.member("manager", "West", "Manager W")
    sa, sb, sc = [await staff_of(sessions, p) for p in (a, b, c)]
    a_id, b_id, c_id = sa.id or 0, sb.id or 0, sc.id or 0
    ca1 = await add_customer(sessions, keyring, a, "红苹果客户一", stage="red")
    ca2 = await add_customer(sessions, keyring, a, "黄苹果客户二", stage="yellow")
    cb1 = await add_customer(sessions, keyring, b, "青苹果客户三", stage="green")
    cw = await add_customer(sessions, keyring, c, "西区客户", stage="rotten")
    draft = await add_customer(sessions, keyring, a, "草稿客户", stage="red")
    await set_columns(
        sessions,
        ca1.id or 0,
        created_at=utc("2026-11-16", 1),
        approved_at=utc("2026-11-17", 3),
        status="approved",
    )
    await set_columns(sessions, ca2.id or 0, created_at=utc("2026-11-01", 1))
    await set_columns(sessions, cb1.id or 0, created_at=utc("2026-11-20", 1))
    await set_columns(sessions, cw.id or 0, created_at=utc("2026-11-18", 1))
    await set_columns(sessions, draft.id or 0, created_at=utc("2026-11-18", 1), status="draft")
    x1, x2, y1, w1 = ca1.id or 0, ca2.id or 0, cb1.id or 0, cw.id or 0
    # A: a visit before the period (its follow-up, 11-12, is outside the period too)
    await _visit(sessions, x1, a_id, utc("2026-11-10", 2), "2026-11-12")
    # A: cA1 visited 11-16 (→ red), follow-up 11-18; next visit 11-19 00:30 local = 11-18
    # 16:30 UTC: late in Shanghai (it would be on time by the UTC date)
    await _visit(sessions, x1, a_id, utc("2026-11-16", 2), "2026-11-18", stage="red")
    await _visit(sessions, x1, a_id, utc("2026-11-18", 16, 30), "2026-11-30")
    # A: cA2 visited 11-17, follow-up 11-20, never visited again: overdue
    await _visit(sessions, x2, a_id, utc("2026-11-17", 3), "2026-11-20")
    # B: cB1 visited 11-16, follow-up 11-19, visited 11-19 (→ green): on time; that visit's
    # follow-up is today: not yet due
    await _visit(sessions, y1, b_id, utc("2026-11-16", 5), "2026-11-19")
    await _visit(sessions, y1, b_id, utc("2026-11-19", 2), "2026-11-22", stage="green")
    # C (West): follow-up 11-18 never done: overdue, West's only
    await _visit(sessions, w1, c_id, utc("2026-11-17", 2), "2026-11-18", stage="rotten")
    # complaints of East (on cA1): critical closed in 12 h, high closed late after 96 h,
    # medium open and past due, low received before the period and open
    await _complaint(
        sessions, x1, a_id, "critical", utc("2026-11-16", 2), utc("2026-11-17", 2),
        utc("2026-11-16", 14),
    )  # fmt: skip
    await _complaint(
        sessions, x1, a_id, "high", utc("2026-11-17", 0), utc("2026-11-20", 0),
        utc("2026-11-21", 0),
    )  # fmt: skip
    await _complaint(sessions, x1, a_id, "medium", utc("2026-11-18", 0), utc("2026-11-21", 0))
    await _complaint(sessions, x1, a_id, "low", utc("2026-11-10", 0), utc("2026-11-24", 0))
    # West: one complaint opened in the period
    await _complaint(sessions, w1, c_id, "low", utc("2026-11-18", 0), utc("2026-12-02", 0))
    return Week(a, b, c, manager, west_manager, sa.team_id or 0, sc.team_id or 0, a_id, b_id, c_id)


# what East's report must say (West's adds C: 1 visit, 1 overdue, 1 low complaint, 1 rotten)
EXPECTED_EAST = {
    "visits": {"Wang A": 3, "Li B": 2},
    "followups": {"Wang A": (0, 1, 1, 0), "Li B": (1, 0, 0, 1)},  # on time, late, overdue, open
    "new": 2,  # cA1 and cB1 (cA2 is older, the draft does not count)
    "approved": 1,
    "stages": {"red": 1, "yellow": 1, "green": 1, "rotten": 0, None: 0},
    "moved": {"red": 1, "yellow": 0, "green": 1, "rotten": 0},
    "opened": {"critical": 1, "high": 1, "medium": 1, "low": 0},
    "closed": {"critical": 1, "high": 1, "medium": 0, "low": 0},
    "past_due": {"critical": 0, "high": 1, "medium": 1, "low": 0},
    "hours": {"critical": 12.0, "high": 96.0},
    "open_now": 2,
}
