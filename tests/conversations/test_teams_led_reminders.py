"""What a manager of several teams is sent unasked: one weekly summary covering each team they
lead, the overdue follow-ups of every team, the review reminders of every team.

The clock, the scheduler and the record builders are test_reminders.py's (imported).
"""

from __future__ import annotations

from datetime import date

from storage import staff as staff_store
from storage import team_leads
from storage.db import unit_of_work
from storage.models import Staff
from tests.auxil.world import World
from tests.conversations import test_reminders as reminders
from tests.conversations.test_reminders import (
    SHANGHAI,
    Clock,
    Member,
    add_customer,
    add_review,
    member,
    rows,
    texts,
    tick,
    utc,
)

# test_reminders.py's fixtures: its settings (a Wednesday summary), clock, paced sender
settings, services, clock, pacing = (
    reminders.settings,
    reminders.services,
    reminders.clock,
    reminders.pacing,
)
fake_pacing, fresh_numbers = reminders.fake_pacing, reminders.fresh_numbers

WEDNESDAY_NINE = utc(2026, 11, 25, 1, 0)  # the summary's hour in Shanghai (weekday 3 here)


async def lead(world: World, who: Member, team: str) -> None:
    async with unit_of_work(world.services.sessions) as session:
        row = await staff_store.get_or_create_team(session, team, actor=None)
        assert row.id is not None
        await team_leads.lead_team(session, actor=None, staff_id=who.staff_id, team_id=row.id)


async def test_the_weekly_summary_covers_each_team_a_director_leads(
    world: World, clock: Clock
) -> None:
    wang = await member(world, timezone=SHANGHAI, name="Wang")  # East
    qian = await member(world, team="West", timezone=SHANGHAI, name="Qian")
    sun = await member(world, team="North", timezone=SHANGHAI, name="Sun")
    zhou = await member(world, "manager", timezone=SHANGHAI, name="Zhou")  # East, leads West
    chen = await member(world, "manager", timezone=SHANGHAI, name="Chen")  # East only
    await lead(world, zhou, "West")
    await add_customer(world, wang, "甲", next_followup_on=date(2026, 11, 10))
    await add_customer(world, qian, "乙", status="pending")
    await add_customer(world, qian, "丙")
    await add_customer(world, sun, "丁")  # North: nobody's here but the admins'

    clock.set(WEDNESDAY_NINE)
    await tick(world)
    [summary] = texts(world, zhou)
    assert summary.splitlines() == [
        "📊 本周小结 · 您所辖的 2 个团队",
        "客户 3 个（已审核 2，待审核 1，被退回 0）",
        "本周新增客户：0",
        "本周拜访：0 次",
        "逾期未跟进：1 个客户",
        "未结投诉：0 件（其中超期 0 件）",
        "待审核：0 项",
        "",
        "• East：客户 1，新增 0，拜访 0，跟进逾期 1，投诉 0，待审核 0",
        "• West：客户 2，新增 0，拜访 0，跟进逾期 0，投诉 0，待审核 0",
    ]
    [east_only] = texts(world, chen)
    assert east_only.splitlines()[:2] == [
        "📊 本周小结 · East",
        "客户 1 个（已审核 1，待审核 0，被退回 0）",
    ]


async def test_a_summary_over_many_teams_with_long_names_stays_one_message(
    world: World, clock: Clock
) -> None:
    zhou = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    for n in range(45):
        name = f"{n:02d}" + "华" * 98
        await lead(world, zhou, name)
        seller = await member(world, team=name, timezone=SHANGHAI, name=f"S{n}")
        await add_customer(world, seller, f"客户{n}")
    clock.set(WEDNESDAY_NINE)
    await tick(world)
    [summary] = texts(world, zhou)  # the fake Telegram refuses a message over 4,096
    lines = summary.splitlines()
    assert lines[0] == "📊 本周小结 · 您所辖的 46 个团队"
    assert lines[1].startswith("客户 45 个")
    assert lines[-1] == "……另有 26 个团队"
    assert len(summary) < 4096


async def test_overdue_follow_ups_and_review_reminders_of_a_led_team_reach_its_director(
    world: World, clock: Clock
) -> None:
    qian = await member(world, team="West", timezone=SHANGHAI, name="Qian")
    zhou = await member(world, "manager", timezone=SHANGHAI, name="Zhou")  # East, leads West
    chen = await member(world, "manager", timezone=SHANGHAI, name="Chen")  # East only
    await lead(world, zhou, "West")
    late = await add_customer(world, qian, "乙公司", next_followup_on=date(2026, 11, 20))
    await add_review(world, late, qian, submitted_at=utc(2026, 11, 21, 1, 0), kind="customer_new")

    clock.set(utc(2026, 11, 23, 1, 0))  # three days overdue, 09:00 in Shanghai
    await tick(world)
    # the review reminder; the review digest and the overdue digest (a button per line) each
    # in its own message (issue 14: the escalation is one digest per manager and day)
    sent = texts(world, zhou)
    assert len(sent) == 3
    assert any(t.startswith("🗂 待审核汇总") for t in sent)
    [overdue_digest] = [t for t in sent if t.startswith("⚠️")]
    assert "跟进已逾期 3 天" in overdue_digest
    assert "1. 乙公司（KH-2026-000001），Qian 的客户" in overdue_digest
    assert texts(world, chen) == []
    assert {r.recipient_id for r in await rows(world, kind="overdue")} == {zhou.staff_id}
    assert {r.recipient_id for r in await rows(world, kind="review")} == {zhou.staff_id}

    async with unit_of_work(world.services.sessions) as session:  # demoted: nothing more
        staff = await session.get(Staff, zhou.staff_id)
        assert staff is not None
        staff.role = "salesperson"
        session.add(staff)
    clock.set(utc(2026, 11, 24, 1, 0))
    await tick(world)
    assert len(texts(world, zhou)) == 3
