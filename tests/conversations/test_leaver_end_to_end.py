"""A salesperson leaves, through the chat only: /staff deactivates them, the same message's
"Choose successors" opens their hand-over, one successor takes everything, and nothing is left
owned by an inactive person (the orphans check), while the leaver is refused at once."""

from __future__ import annotations

from sqlmodel import col, select

from storage import handover as handovers
from storage.db import reading
from storage.models import Customer, Handover, HandoverStatus
from tests.auxil.customer_factory import add_customer
from tests.auxil.world import World
from tests.conversations.test_staff import DEACTIVATED, open_person


async def test_a_leaver_is_deactivated_and_handed_over_in_chat(world: World) -> None:
    sessions, keyring = world.services.sessions, world.services.keyring
    admin = world.admin("en")
    li = await world.member("salesperson", team="East", name="Li")
    await world.member("salesperson", team="East", name="Zhao")
    for n in range(3):
        await add_customer(sessions, keyring, li, f"客户{n}")

    await open_person(admin, "Li")
    await admin.press("Deactivate")
    await admin.press("Confirm")
    await li.send("/my")
    assert li.last_text() == DEACTIVATED  # refused from the very next update

    await admin.press("Choose successors")
    assert "Hand-over of Li" in admin.last_text()
    await admin.press("One successor for all")
    await admin.press("Zhao")
    await admin.press("Finish")
    await admin.press("Yes, hand over now")
    assert "Hand-over of Li done: 3 customers" in admin.last_text()

    async with reading(sessions) as session:
        assert (await handovers.orphans(session)).empty
        handover = (await session.exec(select(Handover))).one()
        assert handover.status == HandoverStatus.done
        owners = (await session.exec(select(Customer.owner_id).where(col(Customer.id) > 0))).all()
        assert len(set(owners)) == 1 and handover.successor_id in set(owners)
