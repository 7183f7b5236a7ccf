"""storage.handover's rules on both databases: two admins finishing at once, a customer gained
meanwhile, what is unassigned, who may receive, and the orphans that are left."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col, func, select

from conversations.handover_summary import notifier
from storage import audit
from storage import handover as handovers
from storage.db import reading, unit_of_work
from storage.errors import Refused
from storage.models import AuditEntry, ChangeRecord, HandoverStatus, Role, Staff
from tests.auxil.customer_factory import set_columns, staff_of
from tests.auxil.handover_helpers import company, deactivate, handlers, leave, owners
from tests.auxil.world import World

NOTIFY = notifier("zh")


async def _admin(world: World, telegram_id: int) -> Staff:
    async with unit_of_work(world.services.sessions) as session:
        staff = Staff(telegram_id=telegram_id, display_name=f"admin {telegram_id}", role=Role.admin)
        session.add(staff)
    return await staff_of(world.services.sessions, telegram_id)


async def test_two_admins_finishing_at_once_move_everything_exactly_once(world: World) -> None:
    sessions, keyring = world.services.sessions, world.services.keyring
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    first, second = await _admin(world, 1), await _admin(world, 2)
    async with unit_of_work(sessions) as session:
        await handovers.choose_successor(
            session, actor=first, handover_id=hid, successor_id=c.zhao_id
        )
        version = (await handovers.load(session, actor=first, handover_id=hid)).handover.version

    async def finish(actor: Staff) -> str:
        try:
            async with unit_of_work(sessions) as session:
                done = await handovers.finish(
                    session, keyring, actor=actor, handover_id=hid, version=version, notify=NOTIFY
                )
        except Refused as refusal:
            return refusal.code
        return f"moved {done.customers}"

    results = sorted(await asyncio.gather(finish(first), finish(second)))
    assert results == ["handover_closed", "moved 3"]
    assert await owners(sessions, c.customers) == [c.zhao_id] * 3
    async with reading(sessions) as session:
        lines = (
            await session.exec(
                select(func.count())
                .select_from(ChangeRecord)
                .where(ChangeRecord.action == "handover", ChangeRecord.entity == "customer")
            )
        ).one()
        assert lines == 3  # one history line each, not two
        finishes = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "handover.finish"))
        ).all()
        assert len(finishes) == 1
        report = await audit.verify_chain(session)
        assert report.ok
        assert (await handovers.orphans(session)).empty


async def test_finish_rereads_what_is_held_and_refuses_what_is_unassigned(world: World) -> None:
    sessions, keyring = world.services.sessions, world.services.keyring
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    admin = await _admin(world, 3)
    async with unit_of_work(sessions) as session:
        await handovers.pick(
            session,
            actor=admin,
            handover_id=hid,
            customer_id=c.customers[0],
            successor_id=c.qian_id,
        )
    with pytest.raises(Refused) as refused:
        async with unit_of_work(sessions) as session:
            await handovers.finish(
                session, keyring, actor=admin, handover_id=hid, version=None, notify=NOTIFY
            )
    assert refused.value.code == "handover_unassigned"
    assert refused.value.details == {"count": 4}  # two customers, two records on Zhao's
    async with reading(sessions) as session:
        opened = await handovers.load(session, actor=admin, handover_id=hid)
        assert opened.handover.status == HandoverStatus.open  # the refusal rolled back
    # Li "gains" Zhao's customer meanwhile (a move nobody finished): finish takes it too
    await set_columns(sessions, c.zhao_customer, owner_id=c.li_id)
    async with unit_of_work(sessions) as session:
        await handovers.choose_successor(
            session, actor=admin, handover_id=hid, successor_id=c.zhao_id
        )
    async with unit_of_work(sessions) as session:
        done = await handovers.finish(
            session, keyring, actor=admin, handover_id=hid, version=None, notify=NOTIFY
        )
    assert done.customers == 4 and done.messages == 3  # Qian, Zhao and their manager, Boss
    assert await owners(sessions, [*c.customers, c.zhao_customer]) == [
        c.qian_id,
        c.zhao_id,
        c.zhao_id,
        c.zhao_id,
    ]
    assert await handlers(sessions, c.complaints) == [c.qian_id, c.zhao_id]


async def test_who_may_receive_and_an_empty_team(world: World) -> None:
    sessions = world.services.sessions
    c = await company(world)
    hid = await leave(sessions, c.li_id)
    admin = await _admin(world, 4)
    wu = await staff_of(sessions, c.wu)
    for refused_id in (wu.id or 0, c.li_id, admin.id or 0, 999_999):
        with pytest.raises(Refused) as refused:
            async with unit_of_work(sessions) as session:
                await handovers.choose_successor(
                    session, actor=admin, handover_id=hid, successor_id=refused_id
                )
        assert refused.value.code == "handover_successor"
    boss = await staff_of(sessions, c.boss)
    with pytest.raises(Refused) as refused:
        async with unit_of_work(sessions) as session:
            await handovers.choose_successor(
                session, actor=boss, handover_id=hid, successor_id=c.zhao_id
            )
    assert refused.value.code == "not_allowed"  # a manager of the team: admins only
    # everyone else in East leaves too: then someone of another team may take it all
    for person in (c.zhao_id, c.qian_id, boss.id or 0):
        await deactivate(sessions, person)
    async with reading(sessions) as session:
        opened = await handovers.load(session, actor=admin, handover_id=hid)
        found = await handovers.candidates(session, opened)
    assert found.elsewhere and [p.display_name for p in found.people] == ["Wu"]
    async with unit_of_work(sessions) as session:
        await handovers.choose_successor(
            session, actor=admin, handover_id=hid, successor_id=wu.id or 0
        )
        done = await handovers.finish(
            session,
            world.services.keyring,
            actor=admin,
            handover_id=hid,
            version=None,
            notify=NOTIFY,
        )
    assert done.customers == 3
    async with reading(sessions) as session:
        from storage.models import Customer

        teams = (
            await session.exec(select(Customer.team_id).where(col(Customer.id).in_(c.customers)))
        ).all()
    assert set(teams) == {wu.team_id}  # the customers moved to Wu's team
