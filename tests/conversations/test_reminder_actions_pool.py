"""The team pool's notices act in one tap (issue 13): the warning logs a visit, the release
offers its last owner to claim it back (the pool's own rules decide, at the press)."""

from __future__ import annotations

from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World
from tests.conversations import test_pool as pool
from tests.conversations.test_pool import RELEASED, east, released, released_pool

settings, world = pool.settings, pool.world


async def test_the_released_owner_claims_it_back_in_one_tap(world: World) -> None:
    li, wang, _chen = await east(world)
    customer_id = await released_pool(world, li)
    told = next(m for m in world.telegram.sent_to(li.id) if RELEASED in m.get("text", ""))
    assert [d for _, d in buttons(told)] == [f"pl:C:{customer_id}"]
    await li.press(buttons(told)[0][0], told)
    assert not await released(world, customer_id)
    assert "明远机械" in li.last_text()  # the card opens
    # a second press, or a teammate's forged copy of the button, finds it taken
    await wang.press_data(
        {**told, "chat": {"id": wang.id, "type": "private"}}, f"pl:C:{customer_id}"
    )
    assert wang.last_answer() is not None and not await released(world, customer_id)


async def test_the_warning_in_english_offers_the_visit_and_the_card(world: World) -> None:
    li = await world.member("salesperson", "East", "Li", language="en")
    customer_id = await pool.overdue_customer(world, li, followup=pool.released_in(3))
    await pool.tick(world)
    warning = world.telegram.sent_to(li.id)[-1]
    assert [d for _, d in buttons(warning)] == [f"cv:{customer_id}", f"cu:{customer_id}"]
