"""The similar-name warning of /new still tells the truth now that team names are kept in process.

The names of a team are cored once (storage.duplicate_names) and kept in step with the database
before each check; these tests change customers behind the kept names' back, the way another
process (a second bot, the CLI, an import) would, and look at what /new warns about.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import make_session_factory, unit_of_work
from storage.models import Customer, Team
from storage.types import utcnow
from tests.auxil.flow_helpers import start_new_company
from tests.auxil.record_helpers import make_customer
from tests.auxil.world import World

OLD_NAME = "钱塘精工机械有限公司"
NEW_NAME = "西溪远景贸易有限公司"
WARNED = "名称与已有客户非常相近"


async def other_process(world: World, **values: object) -> None:
    """Change customers through a session of its own, as another process would."""
    engine = world.services.sessions.kw["bind"]
    sessions = make_session_factory(engine)
    async with unit_of_work(sessions) as session:
        assert isinstance(session, AsyncSession)
        await session.exec(update(Customer).values(updated_at=utcnow(), **values))  # type: ignore[call-overload]


async def warned_on(world: World, person, name: str) -> bool:  # type: ignore[no-untyped-def]
    await start_new_company(person, name)
    text = person.last_text()
    await person.send("/cancel")
    return WARNED in text


async def test_a_customer_added_a_moment_ago_is_warned_about(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    assert not await warned_on(world, manager, "钱塘精工机械")  # the team's names now kept
    colleague = await world.member("salesperson", "East", "Zhao")
    await make_customer(world, colleague, status="approved", name=OLD_NAME)
    assert await warned_on(world, manager, "钱塘精工机械")
    assert await warned_on(world, manager, "钱塘精功机械")  # a homophone, typed by pinyin


async def test_a_renamed_customer_is_matched_by_its_new_name_only(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    colleague = await world.member("salesperson", "East", "Zhao")
    await make_customer(world, colleague, status="approved", name=OLD_NAME)
    assert await warned_on(world, manager, "钱塘精工机械")
    await other_process(world, name=NEW_NAME)
    assert not await warned_on(world, manager, "钱塘精工机械")
    assert await warned_on(world, manager, "西溪远景贸易")


async def test_a_destroyed_customer_is_not_proposed(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    colleague = await world.member("salesperson", "East", "Zhao")
    await make_customer(world, colleague, status="approved", name=OLD_NAME)
    assert await warned_on(world, manager, "钱塘精工机械")
    await other_process(world, status="destroyed")
    assert not await warned_on(world, manager, "钱塘精工机械")


async def test_a_customer_moved_to_another_team_is_not_proposed(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    west = await world.member("manager", "West", "Xu")
    colleague = await world.member("salesperson", "East", "Zhao")
    await make_customer(world, colleague, status="approved", name=OLD_NAME)
    assert await warned_on(world, manager, "钱塘精工机械")
    assert not await warned_on(world, west, "钱塘精工机械")  # West's names kept too
    async with unit_of_work(world.services.sessions) as session:
        from sqlmodel import select

        west_id = (await session.exec(select(Team.id).where(Team.name == "West"))).one()
    await other_process(world, team_id=west_id)
    assert not await warned_on(world, manager, "钱塘精工机械")
    assert await warned_on(world, west, "钱塘精工机械")


async def test_a_change_stamped_before_the_newest_one_seen_is_still_picked_up(
    world: World,
) -> None:
    """A transaction that stamped its change a little before another's, and committed after."""
    manager = await world.member("manager", "East", "Chen")
    colleague = await world.member("salesperson", "East", "Zhao")
    first = await make_customer(world, colleague, status="approved", name="东方老客户有限公司")
    await make_customer(world, colleague, status="approved", name="南山新客户有限公司")
    assert not await warned_on(world, manager, "西溪远景贸易")
    engine = world.services.sessions.kw["bind"]
    async with unit_of_work(make_session_factory(engine)) as session:
        await session.exec(  # type: ignore[call-overload]
            update(Customer)
            .where(Customer.id == first)
            .values(name=NEW_NAME, updated_at=utcnow() - timedelta(seconds=30))
        )
    assert await warned_on(world, manager, "西溪远景贸易")
