"""English counts read right through the bot: "1 attachment", "2 attachments", never "(s)"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.context import Services
from tests.auxil.fake_telegram import Person
from tests.auxil.field_helpers import customer_of, field_world
from tests.auxil.world import World


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def _to_attachments(li: Person) -> None:
    await li.send("/visit")
    await li.press("Mingyuan")
    await li.press("On site")
    await li.send("09:00")
    await li.send("Skip »")  # location
    for _ in range(4):  # purpose, discussion, needs, outcome
        await li.press("Skip")
    await li.press("No change")
    await li.press("Skip")  # next follow-up: the default


@pytest.mark.parametrize(("photos", "shown"), [(1, "1 attachment"), (2, "2 attachments")])
async def test_a_visits_attachments_are_counted_in_english(
    world: World, photos: int, shown: str
) -> None:
    li = await world.member("salesperson", "East", "Li", language="en")
    await customer_of(world, li, name="Mingyuan Machinery")
    await _to_attachments(li)
    for _ in range(photos):
        await li.send_photo()
    await li.press("Done")
    summary = li.last_text()
    assert shown in summary
    assert "(s)" not in summary
