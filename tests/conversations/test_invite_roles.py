"""Managers invite salespeople only; manager and admin invitations are for admins (issue 8.5).

A manager who could invite a manager into their own team could approve their own submissions
through that second account, so every claim of a role is re-checked where the invite is made.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from storage.db import unit_of_work
from storage.models import AuditEntry, Invite, Role
from storage.staff import staff_by_telegram_id, token_hash
from storage.types import utcnow
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import labels
from tests.auxil.world import World

NOT_ALLOWED = "您没有权限执行此操作。"


async def invites(world: World) -> list[Invite]:
    async with unit_of_work(world.services.sessions) as session:
        return list((await session.exec(select(Invite))).all())


async def refused_flows(world: World) -> list[dict[str, str]]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(select(AuditEntry).where(AuditEntry.action == "flow.refused"))
        return [json.loads(e.detail or "{}") for e in rows.all()]


async def set_role(world: World, person: Person, role: str) -> None:
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, person.id)
        assert staff is not None
        staff.role = role
        session.add(staff)


async def test_a_manager_is_offered_only_the_salesperson_role(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    await manager.send("/invite")
    navigation = ("✖", "«")
    roles = [b for b in labels(manager.last_message()) if not any(n in b for n in navigation)]
    assert roles == ["业务员"]
    await manager.press("业务员")
    await manager.press("East")
    assert "start=" in manager.last_text()
    [invite] = await invites(world)
    assert invite.role == Role.salesperson


async def test_a_forged_press_for_a_second_role_is_refused(world: World) -> None:
    """The manager role was the second button before; a hand-made press on it gets nothing."""
    manager = await world.member("manager", "East", "Chen")
    await manager.send("/invite")
    prompt = manager.last_message()
    token = buttons(prompt)[0][1].split(":")[1]
    await manager.press_data(prompt, f"w:{token}:c:1")
    assert manager.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert await invites(world) == []


@pytest.mark.parametrize(("label", "role"), [("销售经理", "manager"), ("管理员", "admin")])
async def test_a_role_offered_before_a_demotion_is_refused_and_audited(
    world: World, label: str, role: str
) -> None:
    """The buttons were offered while Chen was an admin; pressed as a manager they are refused."""
    chen = await world.member("admin", "East", "Chen")
    await chen.send("/invite")
    assert label in labels(chen.last_message())
    await set_role(world, chen, Role.manager)
    await chen.press(label)
    if role == "manager":
        await chen.press("East")
    assert chen.last_text() == NOT_ALLOWED
    assert await invites(world) == []
    assert {"flow": "invite", "reason": "not_allowed"}.items() <= (await refused_flows(world))[
        -1
    ].items()


async def test_an_admin_still_invites_managers_and_admins(world: World) -> None:
    admin = world.admin()
    await admin.send("/invite")
    await admin.press("销售经理")
    await admin.press("新建团队")
    await admin.send("华南")
    assert "start=" in admin.last_text()
    await admin.send("/invite")
    await admin.press("管理员")
    assert "start=" in admin.last_text()
    assert sorted(i.role for i in await invites(world)) == ["admin", "manager"]


async def test_a_managers_link_for_a_manager_made_before_opens_nothing(world: World) -> None:
    """Links a manager made for a manager before this rule was kept no longer let anyone in."""
    manager = await world.member("manager", "East", "Chen")
    async with unit_of_work(world.services.sessions) as session:
        chen = await staff_by_telegram_id(session, manager.id)
        assert chen is not None
        session.add(
            Invite(
                token_hash=token_hash("old-manager-link-0123456789"),
                role=Role.manager,
                team_id=chen.team_id,
                created_by=chen.id,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
    second = world.person(555_300, "Chen's second account")
    await second.send("/start old-manager-link-0123456789")
    assert second.last_text() == "这个邀请链接无效。请向您的经理索取新的链接。"
    async with unit_of_work(world.services.sessions) as session:
        assert await staff_by_telegram_id(session, second.id) is None
        refused = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "invite.refused"))
        ).all()
    assert [e.actor_telegram_id for e in refused] == [second.id]
    # the same manager's link for a salesperson still works
    await manager.send("/invite")
    await manager.press("业务员")
    await manager.press("East")
    token = manager.last_text().split("start=")[1].split()[0]
    newcomer = world.person(555_301, "Xiao Wang")
    await newcomer.send(f"/start {token}")
    assert any("欢迎加入" in m["text"] for m in world.telegram.sent_to(newcomer.id))
