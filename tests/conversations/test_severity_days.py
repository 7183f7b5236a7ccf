"""Complaint severities are shown in days when the time to resolve is whole days, and English
counts take their plural form ("1 day", "3 days"); Chinese reads as before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.context import Services
from bot.settings import Settings
from tests.auxil.field_helpers import customer_of, field_world
from tests.auxil.flow_helpers import question
from tests.auxil.world import World


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def test_an_english_complaint_shows_severities_in_days(world: World) -> None:
    li = await world.member("salesperson", "East", "Li", language="en")
    await customer_of(world, li, name="Mingyuan Machinery")
    await li.send("/complaint")
    await li.press("Mingyuan")
    await li.press("Phone")
    await li.press("Delivery")
    assert question(li) == (
        "How severe is it? Time to resolve: critical 1 day, high 3 days, medium 7 days, "
        "low 14 days."
    )
    assert "hours" not in question(li)


async def test_a_chinese_complaint_shows_severities_in_days(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    await customer_of(world, li)
    await li.send("/complaint")
    await li.press("明远")
    await li.press("电话")
    await li.press("交付")
    assert question(li) == "严重程度?处理期限:紧急 1 天,高 3 天,中 7 天,低 14 天。"


class TestTimesNotInWholeDays:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        """Times to resolve that are not all whole days."""
        return settings.model_copy(
            update={"COMPLAINT_DUE_HOURS": "critical=4,high=36,medium=48,low=1"}
        )

    async def test_hours_that_are_not_whole_days_stay_hours(self, world: World) -> None:
        li = await world.member("salesperson", "East", "Li", language="en")
        await customer_of(world, li, name="Mingyuan Machinery")
        await li.send("/complaint")
        await li.press("Mingyuan")
        await li.press("Phone")
        await li.press("Delivery")
        assert question(li) == (
            "How severe is it? Time to resolve: critical 4 hours, high 36 hours, medium 2 days, "
            "low 1 hour."
        )
