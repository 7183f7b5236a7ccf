"""The bot removed from (or muted in) a team's review group, and added back (issue 13).

Telegram sends `my_chat_member` about the bot itself; the managers are told privately, the
change is audited, and cards go privately until the bot can post in the group again."""

from __future__ import annotations

import itertools
from typing import Any

from sqlmodel import select
from telegram import Update

from bot import scheduler
from storage.db import unit_of_work
from storage.models import Team
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import BOT_ID, BOT_USERNAME, Person
from tests.auxil.world import World
from tests.conversations.test_review import (
    GROUP_ID,
    audit_of,
    cards,
    in_group,
    quick_customer,
    the_review,
)

_updates = itertools.count(900_000)
BOT = {"id": BOT_ID, "is_bot": True, "first_name": "Archive", "username": BOT_USERNAME}


async def membership(
    world: World,
    by: Person,
    status: str,
    *,
    chat_id: int = GROUP_ID,
    about: dict[str, Any] | None = None,
    **rights: Any,
) -> None:
    """What Telegram sends when `by` changes the bot's membership of a group."""
    old = {"user": about or BOT, "status": "member"}
    new: dict[str, Any] = {"user": about or BOT, "status": status, **rights}
    if status == "kicked":
        new["until_date"] = 0
    if status == "restricted":
        new.setdefault("until_date", 0)
        for right in (
            "is_member",
            "can_send_messages",
            "can_send_audios",
            "can_send_documents",
            "can_send_photos",
            "can_send_videos",
            "can_send_video_notes",
            "can_send_voice_notes",
            "can_send_polls",
            "can_send_other_messages",
            "can_add_web_page_previews",
            "can_change_info",
            "can_invite_users",
            "can_pin_messages",
            "can_manage_topics",
            "can_edit_tag",
            "can_react_to_messages",
        ):
            new.setdefault(right, right == "is_member")
    payload = {
        "update_id": next(_updates),
        "my_chat_member": {
            "chat": {"id": chat_id, "type": "supergroup", "title": "East managers"},
            "from": by.user,
            "date": 1_790_000_000,
            "old_chat_member": old,
            "new_chat_member": new,
        },
    }
    await world.app.process_update(Update.de_json(payload, world.app.bot))
    await scheduler.settle(world.app)  # the notices and cards go out in the background


def told(world: World, person: Person, text: str) -> bool:
    """Whether one of the person's last messages says it (the notice and the cards it brings
    are delivered side by side)."""
    return any(text in m["text"] for m in world.telegram.sent_to(person.id)[-3:])


async def team(world: World) -> Team:
    async with unit_of_work(world.services.sessions) as session:
        return (await session.exec(select(Team).where(Team.name == "East"))).one()


async def review_group(world: World) -> tuple[Person, Person, Person]:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou", language="en")
    await zhou.send("/help")
    sales = await world.member("salesperson", "East", "Li")
    await in_group(world, chen).send("/setgroup")
    assert (await team(world)).manager_chat_id == GROUP_ID
    return chen, zhou, sales


async def test_removed_from_the_review_group_the_managers_are_told_and_get_cards(
    world: World,
) -> None:
    chen, zhou, sales = await review_group(world)
    li = await staff_of(world.services.sessions, sales)
    await quick_customer(world, li, "等待中的客户有限公司")  # waiting, its card in the group
    assert cards(world, GROUP_ID) and cards(world, chen.id) == []
    outsider = world.person(123_456, "Owner")  # the group's owner, not staff

    await membership(world, outsider, "kicked")
    assert told(world, chen, "我已被移出 East 团队的审核群“East managers”")
    assert told(world, zhou, "I was removed from team East's review group “East managers”")
    assert world.telegram.sent_to(outsider.id) == []  # not refused, not answered
    [lost] = await audit_of(world, "team.review_group_lost")
    assert lost.entity == "team" and lost.actor_telegram_id == outsider.id
    assert (await team(world)).manager_chat_lost_at is not None
    # the waiting review came to them privately, and new ones do too
    [waiting] = cards(world, chen.id)
    assert "等待中的客户有限公司" in waiting["text"]
    await quick_customer(world, li, "新提交的客户有限公司")
    assert len(cards(world, chen.id)) == 2 and len(cards(world, zhou.id)) == 2
    assert len(cards(world, GROUP_ID)) == 1
    await chen.press_data(cards(world, chen.id)[-1], f"rv:a:{(await the_review(world)).id}")
    assert (await the_review(world)).status == "approved"

    await membership(world, outsider, "kicked")  # told once, not twice
    assert len(await audit_of(world, "team.review_group_lost")) == 1

    await membership(world, outsider, "member")  # added back
    assert "我已回到 East 团队的审核群" in chen.last_text()
    assert "I'm back in team East's review group" in zhou.last_text()
    assert len(await audit_of(world, "team.review_group_restored")) == 1
    await quick_customer(world, li, "回到群里的客户有限公司")
    assert len(cards(world, GROUP_ID)) == 2 and len(cards(world, chen.id)) == 2


async def test_muted_in_the_group_counts_as_lost(world: World) -> None:
    chen, _zhou, _sales = await review_group(world)
    await membership(world, chen, "restricted", can_send_messages=False)
    assert "我已被移出" in chen.last_text()
    assert (await team(world)).manager_chat_lost_at is not None
    await membership(world, chen, "restricted", can_send_messages=True)  # may post again
    assert "我已回到" in chen.last_text()
    assert (await team(world)).manager_chat_lost_at is None


async def test_setgroup_again_restores_the_group(world: World) -> None:
    chen, _zhou, sales = await review_group(world)
    await membership(world, chen, "left")
    await in_group(world, chen).send("/setgroup")
    assert (await team(world)).manager_chat_lost_at is None
    await quick_customer(world, await staff_of(world.services.sessions, sales), "客户有限公司")
    assert len(cards(world, GROUP_ID)) == 1 and cards(world, chen.id) == []


async def test_a_chat_that_is_no_review_group_changes_nothing(world: World) -> None:
    chen, _zhou, _sales = await review_group(world)
    before = len(world.telegram.sent_to(chen.id))
    await membership(world, chen, "kicked", chat_id=-100_999)  # some other group
    assert len(world.telegram.sent_to(chen.id)) == before
    assert await audit_of(world, "team.review_group_lost") == []
    assert (await team(world)).manager_chat_lost_at is None


async def test_an_update_about_someone_else_is_ignored(world: World) -> None:
    chen, _zhou, _sales = await review_group(world)
    before = len(world.telegram.sent_to(chen.id))
    someone = {"id": 555, "is_bot": False, "first_name": "Guest"}
    await membership(world, chen, "kicked", about=someone)
    assert len(world.telegram.sent_to(chen.id)) == before
    assert await audit_of(world, "team.review_group_lost") == []
    assert (await team(world)).manager_chat_lost_at is None
