"""A hand-over at its largest: 5,000 customers with names of the longest kind, held by a
leaver and given to a successor whose names are as long as Telegram allows; every list,
confirmation and summary fits (the fake Telegram refuses anything over its limits)."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from conversations import fit
from storage.db import unit_of_work
from storage.models import Staff
from tests.auxil.customer_factory import staff_of
from tests.auxil.handover_helpers import bulk_customers, leave, owners
from tests.auxil.world import World

LONGEST = "𠀀" * 100  # 100 characters of an extension plane: 200 units, the column's limit


async def _longest_name(world: World, staff_id: int) -> None:
    async with unit_of_work(world.services.sessions) as session:
        await session.exec(
            update(Staff).where(col(Staff.id) == staff_id).values(display_name=LONGEST)
        )


async def test_five_thousand_customers_and_the_longest_names_fit(world: World) -> None:
    sessions = world.services.sessions
    li = await world.member(name="Li")
    zhao = await world.member(name="Zhao")
    boss = await world.member(role="manager", name="Boss")
    li_s, zhao_s = await staff_of(sessions, li), await staff_of(sessions, zhao)
    ids = await bulk_customers(
        sessions, owner_id=li_s.id or 0, team_id=li_s.team_id, count=5000, name="𠀀"
    )
    for person in (li_s, zhao_s):
        await _longest_name(world, person.id or 0)
    hid = await leave(sessions, li_s.id or 0)
    admin = world.admin(language="en")
    await admin.send("/handover")
    await admin.press_data(admin.last_message(), f"ho:v:{hid}")
    assert "5000 customers (5000 with a next follow-up)" in admin.last_text()
    await admin.press("Split by customer")
    assert "Page 1 of 625" in admin.last_text()
    await admin.press("›")
    assert "Page 2 of 625" in admin.last_text()
    await admin.press_data(admin.last_message(), f"ho:a:{hid}:0")
    await admin.press("𠀀")  # the only candidate: Zhao, whose name is the longest
    await admin.press("Finish")
    assert "5000 customers → " in admin.last_text()
    await admin.press("Yes, hand over now")
    assert "5000 customers" in admin.last_text()
    assert set(await owners(sessions, ids)) == {zhao_s.id}
    summary = world.telegram.sent_to(zhao.id)[-1]["text"]
    assert fit.units(summary) <= fit.MESSAGE_LIMIT
    assert "4980" in summary  # twenty named, the rest counted
    manager = world.telegram.sent_to(boss.id)[-1]["text"]
    assert fit.units(manager) <= fit.MESSAGE_LIMIT and "5000" in manager
