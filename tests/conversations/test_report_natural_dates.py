"""/report with a period in words (上个月, 本周, "last monday to yesterday"), zh and en.

The clock stands at Sunday 2026-11-22, 10:00 in Shanghai; the crafted week (tests/auxil/
report_helpers.py) is Monday 11-16 to that Sunday, with five visits.
"""

from __future__ import annotations

from typing import Any

from storage.crypto import Keyring
from tests.auxil.fake_telegram import Person
from tests.auxil.report_helpers import crafted_week
from tests.auxil.world import World


def _photos(world: World, person: Person) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(person.id) if "photo" in m]


async def test_this_week_in_chinese_words_is_the_crafted_week(
    world: World, keyring: Keyring
) -> None:
    week = await crafted_week(world, keyring)
    await week.manager.send("/report 本周")
    assert len(_photos(world, week.manager)) == 1
    assert "拜访 5 次" in week.manager.last_text()
    assert "2026-11-16" in week.manager.last_text()


async def test_a_period_from_a_day_to_a_word(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    await week.manager.send("/report 11月16日 至 今天")
    assert "拜访 5 次" in week.manager.last_text()
    await week.manager.send("/report 上个月")  # October: nothing crafted, still a chart
    assert len(_photos(world, week.manager)) == 2
    assert "2026-10-01" in week.manager.last_text()
    assert "2026-10-31" in week.manager.last_text()


async def test_unreadable_words_are_explained_with_examples(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    await week.manager.send("/report 最近")
    assert "看不懂这个时间段" in week.manager.last_text()
    assert "/report 上个月" in week.manager.last_text()
    await week.manager.send("/report 今天 至 上周一")
    assert "结束日期早于开始日期" in week.manager.last_text()
    assert _photos(world, week.manager) == []


async def test_an_english_manager_types_the_period_in_english(
    world: World, keyring: Keyring
) -> None:
    week = await crafted_week(world, keyring)
    english = await world.member("manager", "East", "Manager E", language="en")
    await english.send("/report this week")
    assert len(_photos(world, english)) == 1
    await english.send("/report last monday to yesterday")
    assert len(_photos(world, english)) == 2
    await english.send("/report recently")
    assert "I could not read that period" in english.last_text()
    assert "/report last month" in english.last_text()
    assert week.manager.id != english.id
