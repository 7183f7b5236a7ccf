"""Typed input that is not an answer: edited messages, and control characters in text.

An edited message is neither an answer nor a command (editing an earlier message during /new
used to become the current answer; editing an old /help into /new started /new). NUL and other
control characters are dropped from answers: PostgreSQL refuses NUL in text, so such a draft
could never be submitted there.
"""

from __future__ import annotations

from typing import Any

from storage import drafts
from storage.db import unit_of_work
from storage.staff import staff_by_telegram_id
from tests.auxil.fake_telegram import Person
from tests.auxil.flow_helpers import (
    answer_essentials,
    customers,
    draft_of,
    question,
    start_new_company,
)
from tests.auxil.world import World

EDIT_NOT_TAKEN = "修改过的消息不会作为回答。请把回答重新发送一条新消息。"


async def edit(person: Person, message_id: int, text: str) -> list[dict[str, Any]]:
    """The person edits one of their earlier messages into `text`."""
    content: dict[str, Any] = {"text": text, "edit_date": 1_790_000_100}
    if text.startswith("/"):
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    payload = {
        "edited_message": {
            "message_id": message_id,
            "date": 1_790_000_000,
            "chat": person.chat,
            "from": person.user,
            **content,
        }
    }
    return await person._feed(payload)


async def answers(world: World, person: Person) -> dict[str, Any]:
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, person.id)
        assert staff is not None and staff.id is not None
        state = await drafts.load(session, world.services.keyring, staff.id, not_before=None)
    assert state is not None
    return state.data


async def test_editing_an_earlier_answer_during_new_is_not_taken(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales, "杭州明远机械有限公司")  # messages 1 (/new) and 2 (the name)
    asked = question(sales)
    before = await draft_of(world.services.sessions, sales.id)

    sent = await edit(sales, 2, "宁波华泰电子有限公司")
    assert [m["text"] for m in sent] == [EDIT_NOT_TAKEN]
    after = await draft_of(world.services.sessions, sales.id)
    assert before is not None and after is not None
    assert (after.step, after.token) == (before.step, before.token)
    assert (await answers(world, sales))["name"] == "杭州明远机械有限公司"
    assert "phones" not in await answers(world, sales)

    await edit(sales, 1, "/cancel")  # an edited command is no command either
    assert await draft_of(world.services.sessions, sales.id) is not None

    await sales.send("13812345678")  # the answer sent again, as a new message, is taken
    assert (await answers(world, sales))["phones"] == ["+8613812345678"]
    assert question(sales) != asked


async def test_editing_an_old_help_into_new_starts_nothing(world: World) -> None:
    sales = await world.member()
    await sales.send("/help")  # message 1
    sent = await edit(sales, 1, "/new")
    assert sent == []  # no flow open: nothing to say
    assert await draft_of(world.services.sessions, sales.id) is None


async def test_editing_help_into_new_during_a_flow_only_says_edits_are_not_taken(
    world: World,
) -> None:
    sales = await world.member()
    await sales.send("/help")  # message 1
    await sales.send("/visit")
    before = await draft_of(world.services.sessions, sales.id)
    sent = await edit(sales, 1, "/new")
    assert [m["text"] for m in sent] == [EDIT_NOT_TAKEN]
    after = await draft_of(world.services.sessions, sales.id)
    assert before is not None and after is not None
    assert (after.flow, after.token) == (before.flow, before.token)


async def test_an_edit_from_a_stranger_is_refused_like_any_update(world: World) -> None:
    stranger = world.person(123_456, "Stranger")
    sent = await edit(stranger, 1, "/new")
    assert len(sent) == 1 and "仅供公司登记员工使用" in sent[0]["text"]


async def test_control_characters_are_dropped_and_the_draft_submits(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales, "杭州\x00明远\x1b机械有限公司\x7f")
    await answer_essentials(sales)
    await sales.press("继续填写")
    await sales.send("明\x00远\r")
    assert (await answers(world, sales))["short_name"] == "明远"
    await sales.send("\x00\x01")  # nothing left: refused as empty, asked again
    assert "industry" not in await answers(world, sales)
    await sales.send("机械\t制造")
    assert (await answers(world, sales))["industry"] == "机械\t制造"
    await sales.send("浙江\r\n杭州")
    assert (await answers(world, sales))["region"] == "浙江\n杭州"
    await sales.press("跳过其余")
    await sales.press("提交")
    assert "已提交审核" in sales.last_text()
    [customer] = await customers(world.services.sessions)
    assert customer.name == "杭州明远机械有限公司"
