"""Lookup from any chat: `@bot name` lists the member's visible customers as masked cards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from conversations import inline
from storage import search, vault
from storage.db import unit_of_work
from storage.models import AuditEntry, RecordStatus, Staff
from tests.auxil import telegram_rules
from tests.auxil.customer_factory import add_customer, staff_of
from tests.auxil.fake_telegram import BOT_USERNAME, Person
from tests.auxil.handover_helpers import bulk_customers
from tests.auxil.world import World, start_app

PHONE = "+8613812345678"


@pytest.fixture(autouse=True)
def fresh_indexes() -> None:
    search.forget_indexes()


async def customer(world: World, owner: Person, name: str, **values: Any) -> Any:
    return await add_customer(
        world.services.sessions, world.services.keyring, owner.id, name, **values
    )


def results(answer: dict[str, Any] | None) -> list[dict[str, Any]]:
    assert answer is not None, "the bot gave no answer"
    found = answer["results"]
    return json.loads(found) if isinstance(found, str) else list(found)


def titles(answer: dict[str, Any] | None) -> list[str]:
    return [r["title"] for r in results(answer)]


def inserted(result: dict[str, Any]) -> str:
    return str(result["input_message_content"]["message_text"])


async def with_data_keys(world: World, ids: list[int]) -> list[int]:
    """Bulk rows get the data keys a real entry gives them (their cards open)."""
    async with unit_of_work(world.services.sessions) as session:
        for customer_id in ids:
            await vault.create_data_key(session, world.services.keyring, customer_id)
    return ids


async def deactivate(world: World, person: Person) -> None:
    async with unit_of_work(world.services.sessions) as session:
        row = (await session.exec(select(Staff).where(Staff.telegram_id == person.id))).one()
        row.active = False
        session.add(row)


async def test_a_salesperson_inserts_a_masked_card_of_their_own_customer(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    wanted = await customer(world, sales, "杭州明远机械有限公司", short_name="明远", phones=[PHONE])
    await customer(world, sales, "宁波华泰电子有限公司")
    answer = await sales.inline("明远")
    assert answer is not None
    assert answer["is_personal"] is True
    assert answer["cache_time"] == inline.CACHE_SECONDS
    assert answer.get("next_offset", "") == ""
    (result,) = results(answer)
    assert result["id"] == f"c{wanted.id}"
    assert result["title"] == "⏳ 杭州明远机械有限公司"
    assert wanted.customer_no in result["description"]
    assert "138****5678" in result["description"]
    text = inserted(result)
    assert text.startswith("⏳ 杭州明远机械有限公司(明远)")
    assert "138****5678" in text
    assert "13812345678" not in text and "13812345678" not in json.dumps(answer)
    assert "查看敏感信息" not in text  # no Reveal button in another chat: no hint about one
    # its one button opens the card in the private chat, where the presser is checked again
    (row,) = result["reply_markup"]["inline_keyboard"]
    assert row == [
        {
            "text": "在机器人中打开",
            "url": f"https://t.me/{BOT_USERNAME}?start=card_{wanted.id}",
        }
    ]


async def test_english_results_and_the_card_opened_from_the_link(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li", language="en")
    await sales.send("/lang")
    await sales.press("English")
    wanted = await customer(world, sales, "Mingyuan Machinery Co", phones=[PHONE])
    answer = await sales.inline("Mingyuan")
    (result,) = results(answer)
    assert "Mingyuan Machinery Co" in inserted(result)
    assert "Customer no." in inserted(result) or wanted.customer_no in inserted(result)
    assert result["reply_markup"]["inline_keyboard"][0][0]["text"] == "Open in the bot"
    await sales.send(f"/start card_{wanted.id}")
    assert sales.last_text().startswith("⏳ Mingyuan Machinery Co")
    assert "138****5678" in sales.last_text()


async def test_a_stranger_gets_an_empty_answer_and_is_logged_once(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await customer(world, sales, "杭州明远机械有限公司")
    stranger = world.person(123_456, "Nosy")
    for text in ("明远", "杭州", ""):
        answer = await stranger.inline(text)
        assert results(answer) == []
        assert answer is not None and answer["is_personal"] is True
    async with unit_of_work(world.services.sessions) as session:
        refused = (
            await session.exec(
                select(AuditEntry).where(
                    AuditEntry.action == "access.refused", AuditEntry.actor_telegram_id == 123_456
                )
            )
        ).all()
    assert len(refused) == 1 and json.loads(refused[0].detail or "{}")["update"] == "inline"
    assert world.telegram.sent_to(stranger.id) == []  # nothing said in whatever chat it was


async def test_a_deactivated_salesperson_gets_nothing(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await customer(world, sales, "杭州明远机械有限公司")
    assert titles(await sales.inline("明远")) == ["⏳ 杭州明远机械有限公司"]
    await deactivate(world, sales)
    assert results(await sales.inline("明远")) == []


async def test_a_stranger_pressing_an_inserted_cards_link_is_refused(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    wanted = await customer(world, sales, "杭州明远机械有限公司", phones=[PHONE])
    stranger = world.person(123_457, "Nosy")
    await stranger.send(f"/start card_{wanted.id}")
    assert stranger.last_text().startswith("您好!本机器人仅供公司登记员工使用")
    assert "明远" not in stranger.last_text()


async def test_a_teammate_pressing_the_link_to_anothers_customer_is_refused(
    world: World,
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    teammate = await world.member("salesperson", "East", "Zhao")
    wanted = await customer(world, sales, "杭州明远机械有限公司")
    await teammate.send(f"/start card_{wanted.id}")
    assert "明远" not in teammate.last_text()
    async with unit_of_work(world.services.sessions) as session:
        denied = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "access.denied"))
        ).all()
    assert [d.entity_id for d in denied] == [wanted.id]


async def test_a_salesperson_never_finds_a_teammates_customer(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    teammate = await world.member("salesperson", "East", "Zhao")
    await customer(world, sales, "杭州明远机械有限公司")
    await customer(world, teammate, "杭州明远电子有限公司")
    assert titles(await sales.inline("明远")) == ["⏳ 杭州明远机械有限公司"]
    assert titles(await teammate.inline("明远")) == ["⏳ 杭州明远电子有限公司"]


async def test_a_manager_finds_their_teams_customers_and_an_admin_everyones(
    world: World,
) -> None:
    east = await world.member("salesperson", "East", "Li")
    west = await world.member("salesperson", "West", "Zhao")
    manager = await world.member("manager", "East", "Wang")
    await customer(world, east, "杭州明远机械有限公司")
    await customer(world, west, "杭州明远电子有限公司")
    assert titles(await manager.inline("明远")) == ["⏳ 杭州明远机械有限公司"]
    assert sorted(titles(await world.admin().inline("明远"))) == [
        "⏳ 杭州明远机械有限公司",
        "⏳ 杭州明远电子有限公司",
    ]


async def test_archived_customers_are_found_and_destroyed_ones_never(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await customer(world, sales, "杭州明远机械有限公司", status=RecordStatus.archived)
    await customer(world, sales, "杭州明远电子有限公司", status=RecordStatus.destroyed)
    (result,) = results(await sales.inline("明远"))
    assert result["title"] == "🗄 杭州明远机械有限公司"
    assert "此档案已归档" in inserted(result)
    # /find agrees
    await sales.send("/find 明远")
    assert "找到 1 个客户" in sales.last_text()


async def test_an_empty_query_offers_recent_customers_and_one_character_searches(
    world: World,
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await customer(world, sales, "杭州明远机械有限公司")
    await customer(world, sales, "宁波华泰电子有限公司")
    await customer(world, sales, "旧档案有限公司", status=RecordStatus.archived)
    assert sorted(titles(await sales.inline(""))) == [
        "⏳ 宁波华泰电子有限公司",
        "⏳ 杭州明远机械有限公司",
    ]
    assert titles(await sales.inline("泰")) == ["⏳ 宁波华泰电子有限公司"]
    assert titles(await sales.inline("   ")) == titles(await sales.inline(""))


async def test_a_query_without_matches_and_an_overlong_one_get_empty_answers(
    world: World,
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await customer(world, sales, "杭州明远机械有限公司")
    assert results(await sales.inline("完全不相干的词语")) == []
    assert results(await sales.inline("明" * (inline.QUERY_LIMIT + 1))) == []


async def test_a_thousand_matches_come_fifty_at_a_time_and_forged_offsets_get_nothing(
    world: World,
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    other = await world.member("salesperson", "West", "Zhao")
    me = await staff_of(world.services.sessions, sales)
    them = await staff_of(world.services.sessions, other)
    mine = await bulk_customers(
        world.services.sessions, owner_id=me.id or 0, team_id=me.team_id, count=1000
    )
    await with_data_keys(world, mine[: inline.MAX_RESULTS + 10])
    theirs = await bulk_customers(
        world.services.sessions, owner_id=them.id or 0, team_id=them.team_id, count=50, start=5000
    )
    await with_data_keys(world, theirs)
    seen: list[str] = []
    offset = ""
    pages = 0
    while True:
        answer = await sales.inline("客", offset)
        page = results(answer)
        assert len(page) <= telegram_rules.INLINE_RESULTS
        seen += [r["id"] for r in page]
        pages += 1
        assert answer is not None
        offset = answer.get("next_offset", "")
        if not offset:
            break
    assert pages == inline.MAX_RESULTS // inline.PAGE_SIZE
    assert len(seen) == len(set(seen)) == inline.MAX_RESULTS
    assert {int(i[1:]) for i in seen} <= set(mine)  # never another salesperson's
    for forged in ("1", "49", "-50", "abc", "50000", str(inline.MAX_RESULTS), "9" * 70):
        assert results(await sales.inline("客", forged)) == [], forged
    assert results(await sales.inline("", "50")) == []  # recent customers have one page


async def test_maximum_length_names_fit_in_the_results(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    long_name = "杭州" + "明" * 198
    wanted = await customer(
        world, sales, long_name, short_name="明" * 50, phones=[PHONE, "+8613912345678"]
    )
    (result,) = results(await sales.inline("杭州明明"))
    assert len(result["title"]) <= inline.TITLE_LIMIT
    assert len(result["description"]) <= inline.DESCRIPTION_LIMIT
    assert wanted.customer_no in result["description"]
    assert long_name in inserted(result)
    assert telegram_rules.units(inserted(result)) <= telegram_rules.MESSAGE_LIMIT
    assert "13812345678" not in inserted(result) and "13912345678" not in inserted(result)


def test_card_links_are_never_invite_tokens() -> None:
    from storage.crypto import random_token

    assert inline.card_link_target(inline.card_link_parameter(10**12 - 1)) == 10**12 - 1
    assert len(inline.card_link_parameter(10**12 - 1)) < len(random_token(18))
    for forged in (
        "card_",
        "card_0",
        "card_01",
        "card_-1",
        "card_1x",
        "Card_1",
        "card_" + "9" * 13,
    ):
        assert inline.card_link_target(forged) is None


async def test_the_fake_refuses_a_second_answer_and_too_many_results(world: World) -> None:
    """The fake Telegram holds the bot to the inline API's rules."""
    world.telegram.expect_refusals = True
    sales = await world.member("salesperson", "East", "Li")
    await customer(world, sales, "杭州明远机械有限公司")
    answer = await sales.inline("明远")
    assert answer is not None
    from telegram.error import BadRequest

    with pytest.raises(BadRequest, match="query id is invalid"):
        await world.app.bot.answer_inline_query(answer["inline_query_id"], [])
    world.telegram.inline_queries["iq-forged"] = sales.id
    from telegram import InlineQueryResultArticle, InputTextMessageContent

    many = [InlineQueryResultArticle(str(n), "t", InputTextMessageContent("x")) for n in range(51)]
    with pytest.raises(BadRequest, match=r"(?i)results_too_much"):
        await world.app.bot.answer_inline_query("iq-forged", many)
    twice = [InlineQueryResultArticle("a", "t", InputTextMessageContent("x"))] * 2
    with pytest.raises(BadRequest, match=r"(?i)result_id_duplicate"):
        await world.app.bot.answer_inline_query("iq-forged", twice)


async def test_an_answer_too_late_is_dropped_quietly(world: World) -> None:
    """Telegram refuses an answer after ~10 s (the person typed on): no error, no message."""
    world.telegram.expect_refusals = True
    sales = await world.member("salesperson", "East", "Li")
    await customer(world, sales, "杭州明远机械有限公司")
    world.telegram.inline_answered.add("iq-late")  # what the fake does to a late answer
    world.telegram.inline_queries["iq-late"] = sales.id
    query = {"id": "iq-late", "from": sales.user, "query": "明远", "offset": ""}
    sent = await sales._feed({"inline_query": query})
    assert sent == []
    assert [r.description for r in world.telegram.refused] == [telegram_rules.QUERY_INVALID]


async def test_no_sensitive_value_of_a_full_record_leaves_in_clear(world: World) -> None:
    """Every sealed field set: the answer (list and inserted card) holds masks only, and the
    same masks the card in the private chat shows."""
    from tests.conversations.test_card import FULL

    sales = await world.member("salesperson", "East", "Li")
    wanted = await customer(world, sales, "杭州明远机械有限公司", **FULL)
    answer = await sales.inline("明远")
    (result,) = results(answer)
    everything = json.dumps(answer, ensure_ascii=False)
    for field in ("email", "address", "account_no", "tax_no", "bank"):
        assert FULL[field] not in everything, field
    for phone in FULL["phones"]:
        assert phone.removeprefix("+86") not in everything
    await sales.send(f"/start card_{wanted.id}")
    private = sales.last_text()
    masked_lines = [line for line in private.splitlines() if "*" in line]
    assert masked_lines and all(line in inserted(result) for line in masked_lines)


async def test_a_teammates_customer_is_not_found_by_phone_or_number_either(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    teammate = await world.member("salesperson", "East", "Zhao")
    manager_west = await world.member("manager", "West", "Zhou")
    theirs = await customer(world, teammate, "杭州明远电子有限公司", phones=[PHONE])
    for text in ("13812345678", PHONE, theirs.customer_no):
        assert results(await sales.inline(text)) == [], text
        assert results(await manager_west.inline(text)) == [], text
        assert [r["id"] for r in results(await teammate.inline(text))] == [f"c{theirs.id}"]


async def test_the_next_page_still_comes_after_a_restart(world: World) -> None:
    """An offset carries no state: a page asked for after a restart is the same page."""
    sales = await world.member("salesperson", "East", "Li")
    me = await staff_of(world.services.sessions, sales)
    ids = await bulk_customers(
        world.services.sessions, owner_id=me.id or 0, team_id=me.team_id, count=80
    )
    await with_data_keys(world, ids)
    first = await sales.inline("客")
    assert first is not None and first["next_offset"] == "50"
    before = [r["id"] for r in results(await sales.inline("客", "50"))]
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    sales.app = world.app
    after = [r["id"] for r in results(await sales.inline("客", "50"))]
    assert after == before and len(after) == 30
    assert not {r["id"] for r in results(first)} & set(after)
