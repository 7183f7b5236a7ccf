"""The similar-name warning of /new: the same company in other clothes is warned about, names
that merely share a prefix and a number ("QA Trading N44X" / "QA Trading N0X") are not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.context import Services
from tests.auxil.field_helpers import customer_of, field_world
from tests.auxil.world import World

WARNED_ZH = "名称与已有客户非常相近"
WARNED_EN = "A very similar name exists"


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def _new(world: World, language: str, existing: str, typed: str) -> str:
    """The owner of a customer named `existing` starts /new and types `typed` as the name."""
    li = await world.member("salesperson", "East", "Li", language=language)
    await customer_of(world, li, name=existing)
    await li.send("/new")
    await li.press("企业" if language == "zh" else "Company")
    await li.send(typed)
    return li.last_text()


@pytest.mark.parametrize(
    ("existing", "typed"),
    [
        ("广东省深圳市华信科技有限公司", "华信科技"),
        ("广东省深圳市华信科技有限公司", "深圳华信科技股份有限公司"),
        ("华信科技(中国)有限公司", "华信科技（中国）有限公司"),
        ("上海市宏达机械集团有限公司", "宏达机械有限公司"),
        ("北京华信科技有限公司", "华信科技（北京）有限公司"),
        ("ＡＢＣ贸易有限公司", "ABC贸易"),
        ("广东省深圳市华信科技有限公司", "华新科技有限公司"),  # a homophone typo
    ],
)
async def test_the_same_company_in_other_words_is_warned_in_chinese(
    world: World, existing: str, typed: str
) -> None:
    assert f"{WARNED_ZH}:KH-2026-000001 {existing}" in await _new(world, "zh", existing, typed)


@pytest.mark.parametrize(
    ("existing", "typed"),
    [
        ("北京华信科技有限公司", "北京宏达科技有限公司"),
        ("上海市华信科技有限公司", "上海市华信物流有限公司"),
        ("测试客户12号", "测试客户13号"),
        ("杭州明远机械有限公司", "杭州明远"),  # the city and a brand only: too little to tell
    ],
)
async def test_other_companies_sharing_words_are_not_warned_in_chinese(
    world: World, existing: str, typed: str
) -> None:
    assert WARNED_ZH not in await _new(world, "zh", existing, typed)


@pytest.mark.parametrize(
    ("existing", "typed"),
    [
        ("Acme Trading Co., Ltd.", "Acme Trading"),
        ("Acme Trading Co., Ltd.", "Shanghai Acme Trading Limited"),
        ("Bright Star Machinery Inc.", "Brigth Star Machinery"),  # a typo
        ("Bright Star Machinery Inc.", "bright star machinery (China)"),
    ],
)
async def test_the_same_company_in_other_words_is_warned_in_english(
    world: World, existing: str, typed: str
) -> None:
    assert WARNED_EN in await _new(world, "en", existing, typed)


@pytest.mark.parametrize(
    ("existing", "typed"),
    [
        ("QA Trading N44X", "QA Trading N0X"),
        ("QA Trading N44X", "QA Trading N45X"),
        ("Test Customer 7", "Test Customer 17"),
        ("Bright Star Machinery Inc.", "Bright Sun Machinery Inc."),
    ],
)
async def test_names_sharing_a_prefix_and_a_number_are_not_warned(
    world: World, existing: str, typed: str
) -> None:
    assert WARNED_EN not in await _new(world, "en", existing, typed)


async def test_the_same_numbered_name_is_still_warned(world: World) -> None:
    assert WARNED_EN in await _new(world, "en", "QA Trading N44X", "qa trading n44x")


async def test_many_long_names_in_the_team_still_answer_within_the_limits(world: World) -> None:
    """200 customers, names of the longest length (100): the warning lists at most five, fits."""
    li = await world.member("salesperson", "East", "Li")
    long_name = "广东省深圳市" + "华信" * 45 + "科技有限公司"
    for n in range(5):
        await customer_of(world, li, name=long_name[: 100 - 1] + str(n))
    for n in range(195):
        await customer_of(world, li, name=f"上海市客户{n:03d}号贸易有限公司")
    await li.send("/new")
    await li.press("企业")
    await li.send(long_name[: 100 - 1] + "0")
    text = li.last_text()
    assert text.count(WARNED_ZH) == 1  # numbers differ: only the same one
    assert len(text) <= 4096
