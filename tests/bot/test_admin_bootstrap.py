"""ADMIN_TELEGRAM_IDS bootstraps the first admins; afterwards staff changes win (issue 8.9)."""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import select

from bot.context import Services
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import AuditEntry, Role, Staff
from tests.auxil.flow_helpers import labels
from tests.auxil.world import ADMIN_ID, World, start_app


async def configured_admin(world: World) -> Staff:
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, ADMIN_ID)
        assert staff is not None
        return staff


async def restart(world: World, services: Services | None = None) -> None:
    """Build the application again, as a new process would, and run its start-up."""
    app = await start_app(services or world.services, world.telegram)
    await app.shutdown()


async def test_a_deactivated_configured_admin_stays_deactivated_after_a_restart(
    world: World,
) -> None:
    admin = world.admin()
    await world.member("admin", team=None, name="Second admin")  # the last admin stays active
    async with unit_of_work(world.services.sessions) as session:
        await staff_store.deactivate(
            session, actor=None, staff_id=(await configured_admin(world)).id or 0
        )
    await restart(world)
    staff = await configured_admin(world)
    assert (staff.active, staff.role) == (False, Role.admin)
    await admin.send("/invite")
    assert admin.last_text() == "您的账号已停用。如有疑问,请联系管理员。"


async def test_a_demoted_configured_admin_stays_demoted_after_a_restart(world: World) -> None:
    async with unit_of_work(world.services.sessions) as session:
        team = await staff_store.get_or_create_team(session, "East", actor=None)
        staff = await staff_store.staff_by_telegram_id(session, ADMIN_ID)
        assert staff is not None
        staff.role, staff.team_id = Role.manager, team.id
        session.add(staff)
    await restart(world)
    await restart(world)
    assert (await configured_admin(world)).role == Role.manager
    admin = world.admin()
    await admin.send("/invite")
    assert "管理员" not in labels(admin.last_message())


async def test_a_newly_configured_admin_is_created_once(world: World) -> None:
    newcomer = 900_777
    settings = world.services.settings.model_copy(
        update={"ADMIN_TELEGRAM_IDS": [ADMIN_ID, newcomer]}
    )
    services = replace(world.services, settings=settings)
    await restart(world, services)
    await restart(world, services)
    async with unit_of_work(world.services.sessions) as session:
        admins = (await session.exec(select(Staff).where(Staff.role == Role.admin))).all()
        created = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.action == "staff.admin_configured")
            )
        ).all()
    assert sorted(a.telegram_id for a in admins) == [ADMIN_ID, newcomer]
    assert sorted(e.actor_telegram_id for e in created) == [ADMIN_ID, newcomer]
    await world.person(newcomer, "New Boss").send("/invite")
    assert "管理员" in labels(world.telegram.sent_to(newcomer)[-1])
