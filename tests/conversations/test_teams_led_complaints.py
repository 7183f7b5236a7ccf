"""Complaints of a team its director leads besides their own: the director logs one for a West
customer, assigns its handler among West's people, and approves its resolution; East's other
manager can do none of it. Helpers and the `world` fixture are test_complaint.py's."""

from __future__ import annotations

from storage import staff as staff_store
from storage import team_leads
from storage.db import unit_of_work
from storage.models import Complaint
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.field_helpers import all_rows, customer_of
from tests.auxil.flow_helpers import labels, question
from tests.auxil.world import World
from tests.conversations import test_complaint
from tests.conversations.test_complaint import card_of, log_complaint

world = test_complaint.world  # the field-work world (photos, files) of test_complaint.py
NOT_FOUND = test_complaint.NOT_FOUND


async def lead(world: World, person: Person, team: str) -> None:
    staff = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        row = await staff_store.get_or_create_team(session, team, actor=None)
        assert staff.id is not None and row.id is not None
        await team_leads.lead_team(session, actor=None, staff_id=staff.id, team_id=row.id)


async def test_a_director_handles_and_approves_a_west_complaint(world: World) -> None:
    wu = await world.member("salesperson", "West", "Wu")
    xu = await world.member("salesperson", "West", "Xu")
    zhou = await world.member("manager", "East", "Zhou")
    chen = await world.member("manager", "East", "Chen")
    await lead(world, zhou, "West")
    await customer_of(world, wu)

    await log_complaint(zhou)  # the director logs it and chooses West's handler
    assert question(zhou) == "由谁处理?默认是客户的负责人。"
    assert labels(zhou.last_message())[:2] == ["Wu(客户负责人)", "Xu"]
    await zhou.press("Xu")
    await zhou.press("提交")
    [complaint] = await all_rows(world, Complaint)
    assert complaint.handler_id == (await staff_of(world.services.sessions, xu)).id

    await chen.send("/help")  # East only: the complaint is not Chen's to see or move
    await chen.press_data(chen.last_message(), f"cx:{complaint.id}:v")
    assert chen.last_answer() == NOT_FOUND

    await xu.press("填写处理结果", card_of(xu, world, "交给您处理"))
    await xu.send("更换部件")
    await xu.send("客户满意")
    await xu.press("跳过")
    await xu.press("提交")
    assert all("投诉处理结果" not in str(m.get("text")) for m in world.telegram.sent_to(chen.id))
    await zhou.press("通过", card_of(zhou, world, "投诉处理结果"))
    [complaint] = await all_rows(world, Complaint)
    assert (complaint.status, complaint.approver_id) == (
        "closed",
        (await staff_of(world.services.sessions, zhou)).id,
    )
