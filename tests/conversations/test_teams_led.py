"""A manager who leads several teams (a sales director over East and West), through the bot.

Zhou manages East and, since an admin said so, West as well: Zhou sees both teams' customers in
/find and /my, decides both teams' reviews (never Zhou's own), gets both teams' review cards.
Chen manages East only and sees nothing of West, even with forged buttons. Removing West from
Zhou takes effect on Zhou's very next update.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import col, select

from storage import search, team_leads
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import AuditEntry, Customer, Invite, Review, Staff, Team, TeamLead
from tests.auxil.customer_factory import add_customer, staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.world import World, start_app

EXPIRED = "这个按钮已过期,请使用最新的消息。"
NOT_FOUND = "找不到该记录,或您无权查看。"
NOT_ALLOWED = "您没有权限执行此操作。"


@pytest.fixture(autouse=True)
def fresh_indexes() -> None:
    search.forget_indexes()


# ---------------------------------------------------------------------------------------------
# helpers


async def lead(world: World, person: Person, team: str) -> None:
    """Let `person` lead `team` besides their own, as the command line would (no actor)."""
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, person.id)
        row = await staff_store.get_or_create_team(session, team, actor=None)
        assert staff is not None and staff.id is not None and row.id is not None
        await team_leads.lead_team(session, actor=None, staff_id=staff.id, team_id=row.id)


async def unlead(world: World, person: Person, team: str) -> None:
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, person.id)
        row = await staff_store.team_by_name(session, team)
        assert staff is not None and staff.id is not None and row is not None and row.id
        await team_leads.unlead_team(session, actor=None, staff_id=staff.id, team_id=row.id)


async def team_id(world: World, name: str) -> int:
    async with unit_of_work(world.services.sessions) as session:
        team = await staff_store.get_or_create_team(session, name, actor=None)
    assert team.id is not None
    return team.id


async def company(world: World) -> dict[str, Any]:
    """East (Li, manager Chen), West (Wang), North (Sun); Zhou manages East and leads West."""
    people = {
        "li": await world.member("salesperson", "East", "Li"),
        "wang": await world.member("salesperson", "West", "Wang"),
        "sun": await world.member("salesperson", "North", "Sun"),
        "chen": await world.member("manager", "East", "Chen"),
        "zhou": await world.member("manager", "East", "Zhou"),
    }
    await lead(world, people["zhou"], "West")
    return people


async def customer(world: World, owner: Person, name: str, **values: Any) -> Customer:
    return await add_customer(
        world.services.sessions, world.services.keyring, owner.id, name, **values
    )


def opened(message: dict[str, Any]) -> list[str]:
    """The names on a list's customer buttons (`cu:`), without their numbers."""
    return sorted(t.split(" · ")[0] for t, d in buttons(message) if d.startswith("cu:"))


def cards(world: World, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(chat_id) if m["text"].startswith("🔔")]


async def review_of(world: World, customer_id: int) -> Review:
    async with unit_of_work(world.services.sessions) as session:
        review = (
            await session.exec(select(Review).where(Review.customer_id == customer_id))
        ).first()
    assert review is not None
    return review


async def announce(world: World, customer_id: int) -> None:
    """What /new's Submitted.after does: queue and send the review's cards."""
    from bot import scheduler
    from bot.context import BotContext
    from conversations import review as review_chat

    review = await review_of(world, customer_id)
    await review_chat.announce(BotContext(world.app), review.id or 0)
    await scheduler.settle(world.app)  # the cards go out in the background


async def audit_actions(world: World, action: str) -> list[AuditEntry]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        )
        return list(rows.all())


async def lead_rows(world: World) -> list[tuple[int, int]]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(select(TeamLead).order_by(col(TeamLead.team_id)))
        return [(r.staff_id, r.team_id) for r in rows.all()]


# ---------------------------------------------------------------------------------------------
# seeing and deciding both teams


async def test_a_director_sees_both_teams_customers_in_find_and_my(world: World) -> None:
    people = await company(world)
    await customer(world, people["li"], "明远机械")
    west = await customer(world, people["wang"], "明远电子")
    await customer(world, people["sun"], "明远化工")

    zhou = people["zhou"]
    await zhou.send("/find 明远")
    assert opened(zhou.last_message()) == ["⏳ 明远机械", "⏳ 明远电子"]
    await zhou.send("/my")
    assert zhou.last_text().startswith("📋 您所辖 2 个团队的客户\n共 2 个")
    await zhou.press_data(zhou.last_message(), f"cu:{west.id}")
    assert zhou.last_text().startswith("⏳ 明远电子")

    chen = people["chen"]  # East only
    await chen.send("/find 明远")
    assert opened(chen.last_message()) == ["⏳ 明远机械"]
    await chen.send("/my")
    assert chen.last_text().startswith("📋 团队的客户\n共 1 个")


async def test_a_manager_of_east_only_cannot_open_or_decide_west_even_with_forged_buttons(
    world: World,
) -> None:
    people = await company(world)
    west = await customer(world, people["wang"], "宁波华泰电子")
    review = await review_of(world, west.id or 0)
    chen = people["chen"]
    await chen.send("/help")
    message = chen.last_message()
    for data in (f"cu:{west.id}", f"ch:{west.id}", f"cr:{west.id}:phones"):
        await chen.press_data(message, data)
        assert chen.last_answer() in (NOT_FOUND, EXPIRED), data
    await chen.press_data(message, f"rv:a:{review.id}")
    assert "宁波华泰电子" not in (chen.last_answer() or "")
    assert (await review_of(world, west.id or 0)).status == "pending"
    await chen.send("/review")
    assert "宁波华泰电子" not in chen.last_text()


async def test_a_director_decides_both_teams_reviews_but_never_their_own(world: World) -> None:
    people = await company(world)
    zhou, chen = people["zhou"], people["chen"]
    west = await customer(world, people["wang"], "宁波华泰电子")
    await announce(world, west.id or 0)
    [card] = cards(world, zhou.id)  # the West submission reaches its new manager...
    assert "宁波华泰电子" in card["text"]
    assert cards(world, chen.id) == []  # ...and not East's other manager
    east = await customer(world, people["li"], "杭州明远机械")
    await announce(world, east.id or 0)
    assert len(cards(world, chen.id)) == 1 and len(cards(world, zhou.id)) == 2

    await zhou.send("/review")
    queue = zhou.last_text()
    assert "【West】" in queue and "【East】" in queue  # the queue names each line's team
    await zhou.press("通过", card)
    assert (await review_of(world, west.id or 0)).status == "approved"

    own = await customer(world, zhou, "温州永固五金")  # Zhou's own, in East
    await announce(world, own.id or 0)
    assert all("温州永固五金" not in c["text"] for c in cards(world, zhou.id))
    assert any("温州永固五金" in c["text"] for c in cards(world, chen.id))
    review = await review_of(world, own.id or 0)
    await zhou.press_data(zhou.last_message(), f"rv:a:{review.id}")
    assert (await review_of(world, own.id or 0)).status == "pending"


async def test_after_unlead_the_very_next_update_no_longer_sees_west(world: World) -> None:
    people = await company(world)
    zhou = people["zhou"]
    west = await customer(world, people["wang"], "宁波华泰电子")
    await zhou.send("/find 华泰")
    results = zhou.last_message()
    assert opened(results) == ["⏳ 宁波华泰电子"]
    await unlead(world, zhou, "West")
    await zhou.press_data(results, f"cu:{west.id}")  # a button from before
    assert zhou.last_answer() == NOT_FOUND
    await zhou.send("/my")
    assert zhou.last_text().startswith("📋 团队的客户\n还没有客户")
    review = await review_of(world, west.id or 0)
    await zhou.press_data(results, f"rv:a:{review.id}")
    assert (await review_of(world, west.id or 0)).status == "pending"
    await zhou.send("/review")
    assert "宁波华泰电子" not in zhou.last_text()


async def test_a_demoted_director_keeps_no_other_team(world: World) -> None:
    """A role change that forgot `team_leads.tidy` still gives a salesperson nothing of West
    (the predicates ignore a non-manager's rows); `tidy` and deactivation remove them."""
    people = await company(world)
    zhou = people["zhou"]
    west = await customer(world, people["wang"], "宁波华泰电子")
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, zhou.id)
        assert staff is not None
        staff.role = "salesperson"
        session.add(staff)
    await zhou.send("/find 华泰")
    assert opened(zhou.last_message()) == []
    await zhou.press_data(zhou.last_message(), f"cu:{west.id}")
    assert zhou.last_answer() == NOT_FOUND
    assert len(await lead_rows(world)) == 1
    west_id = await team_id(world, "West")
    zhou_id = (await staff_of(world.services.sessions, zhou)).id or 0
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, zhou.id)
        assert staff is not None
        assert await team_leads.tidy(session, actor=None, staff=staff) == [west_id]
        staff.role = "manager"  # promoted again: West does not come back by itself
        session.add(staff)
    assert await lead_rows(world) == []
    await zhou.send("/find 华泰")
    assert opened(zhou.last_message()) == []

    await lead(world, zhou, "West")
    async with unit_of_work(world.services.sessions) as session:
        await staff_store.deactivate(session, actor=None, staff_id=zhou_id)
    assert await lead_rows(world) == []  # a leaver leads no team
    assert [a.detail for a in await audit_actions(world, "staff.unlead_team")][-1] == (
        f'{{"team_id": {west_id}, "why": "no_longer_counts"}}'
    )


# ---------------------------------------------------------------------------------------------
# the admins' "Teams led" view (reached from /staff with tl:<staff id>)


async def open_view(world: World, admin: Person, staff_id: int) -> dict[str, Any]:
    await admin.send("/help")
    await admin.press_data(admin.last_message(), f"tl:{staff_id}")
    return admin.last_message()


async def test_an_admin_adds_and_removes_a_team_with_a_confirmation(world: World) -> None:
    zhou = await world.member("manager", "East", "Zhou")
    await world.member("salesperson", "West", "Wang")
    await world.member("salesperson", "North", "Sun")
    zhou_id = (await staff_of(world.services.sessions, zhou)).id or 0
    west = await team_id(world, "West")
    admin = world.admin()
    view = await open_view(world, admin, zhou_id)
    assert view["text"].splitlines()[:3] == [
        "👥 Zhou（销售经理）所辖团队",
        "本人团队：East",
        "未另外管理其他团队。",
    ]
    assert [t for t, _ in buttons(view)] == ["➕ North", "➕ West"]  # not their own team

    await admin.press("West", view)
    confirm = admin.last_message()
    assert confirm["message_id"] == view["message_id"]  # edited in place
    assert confirm["text"].startswith("让 Zhou 另外管理团队 West？")
    await admin.press("取消", confirm)
    assert await lead_rows(world) == []
    await admin.press("West", admin.last_message())
    await admin.press("确认", admin.last_message())
    assert await lead_rows(world) == [(zhou_id, west)]
    after = admin.last_message()
    assert after["text"].startswith("✅ Zhou 现在另外管理团队 West。")
    assert "另外管理 1 个团队：West" in after["text"]
    assert [t for t, _ in buttons(after)] == ["➕ North", "✅ West"]
    assert zhou.last_text().startswith("👥 管理员已让您另外管理团队 West")  # through the outbox
    [entry] = await audit_actions(world, "staff.lead_team")
    assert entry.entity_id == zhou_id and entry.detail == f'{{"team_id": {west}}}'

    await admin.press_data(after, f"tl:{zhou_id}:{west}:a")  # confirmed twice: nothing new
    assert admin.last_answer() == "Zhou 已在管理团队 West。"
    assert len(await audit_actions(world, "staff.lead_team")) == 1

    await admin.press("West", admin.last_message())
    assert admin.last_text().startswith("不再让 Zhou 管理团队 West？")
    await admin.press("确认", admin.last_message())
    assert await lead_rows(world) == []
    assert zhou.last_text().startswith("👥 您不再管理团队 West")
    assert len(await audit_actions(world, "staff.unlead_team")) == 1


async def test_teams_led_pages_through_many_teams_with_long_names(world: World) -> None:
    zhou = await world.member("manager", "East", "Zhou" * 50)
    zhou_id = (await staff_of(world.services.sessions, zhou)).id or 0
    names = [f"{n:02d}" + "华" * 98 for n in range(30)]
    for name in names:
        await lead(world, zhou, name)
    admin = world.admin()
    view = await open_view(world, admin, zhou_id)
    assert len(view["text"]) <= 4096  # the fake refuses more anyway
    assert "另外管理 30 个团队" in view["text"]
    pages = 0
    seen: list[str] = []
    message = view
    while True:
        pages += 1
        seen += [t for t, d in buttons(message) if d.count(":") == 2 and ":p" not in d]
        if not any(t == "›" for t, _ in buttons(message)):
            break
        await admin.press("›", message)
        message = admin.last_message()
    assert pages == 4 and len(seen) == 30 and all(t.startswith("✅") for t in seen)


async def test_forged_teams_led_buttons_are_refused_and_change_nothing(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    li = await world.member("salesperson", "East", "Li")
    await world.member("salesperson", "West", "Wang")
    ids = {p: (await staff_of(world.services.sessions, p)).id for p in (chen, zhou, li)}
    west, east = await team_id(world, "West"), await team_id(world, "East")

    await chen.send("/help")  # a manager, not an admin: nothing, and it is audited
    for data in (f"tl:{ids[zhou]}", f"tl:{ids[chen]}:{west}", f"tl:{ids[chen]}:{west}:a"):
        await chen.press_data(chen.last_message(), data)
        assert chen.last_answer() == NOT_ALLOWED, data
    assert await lead_rows(world) == []
    assert len([a for a in await audit_actions(world, "access.denied") if a.entity == "staff"])

    admin = world.admin()
    await admin.send("/help")
    message = admin.last_message()
    refusals = {
        f"tl:{ids[li]}:{west}:a": "只有在职的经理可以另外管理其他团队。",  # not a manager
        f"tl:{ids[li]}:{west}": "只有在职的经理可以另外管理其他团队。",
        f"tl:{ids[zhou]}:{east}:a": "这是 TA 本人的团队；如需更改，请调动 TA 的团队。",
        f"tl:{ids[zhou]}:{east}": "这是 TA 本人的团队；如需更改，请调动 TA 的团队。",
        f"tl:{ids[zhou]}:999999:a": "没有这个团队。",
        "tl:999999": NOT_FOUND,
        "tl:999999:1:a": NOT_FOUND,
        f"tl:{ids[zhou]}:{west}:x": EXPIRED,
        f"tl:{ids[zhou]}:q1": EXPIRED,
        "tl:g:1:2": EXPIRED,
    }
    for data, expected in refusals.items():
        await admin.press_data(message, data)
        assert admin.last_answer() == expected, data
    assert await lead_rows(world) == []
    view = await open_view(world, admin, ids[li] or 0)
    assert "只有经理可以另外管理其他团队。" in view["text"] and buttons(view) == []

    await admin.press_data(message, f"tl:{ids[zhou]}:{west}:a")
    async with unit_of_work(world.services.sessions) as session:  # Zhou is deactivated
        await staff_store.deactivate(session, actor=None, staff_id=ids[zhou] or 0)
    assert await lead_rows(world) == []
    await admin.press_data(message, f"tl:{ids[zhou]}:{west}:a")
    assert admin.last_answer() == "此人已停用。"
    assert await lead_rows(world) == []


async def test_a_confirmation_from_before_a_restart_still_works(world: World) -> None:
    zhou = await world.member("manager", "East", "Zhou")
    await world.member("salesperson", "West", "Wang")
    zhou_id = (await staff_of(world.services.sessions, zhou)).id or 0
    admin = world.admin()
    view = await open_view(world, admin, zhou_id)
    await admin.press("West", view)
    confirm = admin.last_message()
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)  # a new process, same database
    admin = world.admin()
    await admin.press("确认", confirm)
    assert await lead_rows(world) == [(zhou_id, await team_id(world, "West"))]


async def test_two_admins_adding_the_same_team_at_once_add_it_once(world: World) -> None:
    zhou = await world.member("manager", "East", "Zhou")
    await world.member("salesperson", "West", "Wang")
    zhou_id = (await staff_of(world.services.sessions, zhou)).id or 0
    west = await team_id(world, "West")

    async def add() -> bool:
        async with unit_of_work(world.services.sessions) as session:
            done = await team_leads.lead_team(session, actor=None, staff_id=zhou_id, team_id=west)
        return done.changed

    for _ in range(5):
        results = await asyncio.gather(add(), add(), add())
        assert sorted(results) in ([False, False, True], [False, False, False])
        assert await lead_rows(world) == [(zhou_id, west)]
        await unlead(world, zhou, "West")
    assert len(await audit_actions(world, "staff.lead_team")) == 5


# ---------------------------------------------------------------------------------------------
# /setgroup and /invite for a manager of several teams

GROUP = -100_777


def in_group(world: World, person: Person, group_id: int = GROUP) -> Person:
    member = world.person(person.id, str(person.user["first_name"]))
    member.chat = {"id": group_id, "type": "group", "title": "Managers"}
    return member


async def manager_chat(world: World, name: str) -> int | None:
    async with unit_of_work(world.services.sessions) as session:
        team = await staff_store.team_by_name(session, name)
    assert team is not None
    return team.manager_chat_id


async def test_setgroup_lets_a_director_choose_which_teams_cards_come_to_the_group(
    world: World,
) -> None:
    people = await company(world)
    zhou = in_group(world, people["zhou"])
    await zhou.send("/setgroup")
    [choice] = world.telegram.sent_to(GROUP)
    assert choice["text"].startswith("您管理多个团队。")
    assert [t for t, _ in buttons(choice)] == ["➕ East", "➕ West"]
    await zhou.press("West", choice)
    assert await manager_chat(world, "West") == GROUP and await manager_chat(world, "East") is None
    assert zhou.last_answer() is not None and "West" in (zhou.last_answer() or "")
    [choice] = world.telegram.sent_to(GROUP)  # edited in place, West marked
    assert [t for t, _ in buttons(choice)] == ["➕ East", "✅ West"]

    wang_customer = await customer(world, people["wang"], "宁波华泰电子")
    await announce(world, wang_customer.id or 0)
    # the group's card names no customer (the group is not private); its submitter and team
    assert any("提交人:Wang(West)" in m["text"] for m in world.telegram.sent_to(GROUP))
    assert cards(world, people["zhou"].id) == []  # West's cards go to the group now

    chen = in_group(world, people["chen"])  # East only: West is not Chen's to change
    await chen.press_data(choice, f"tl:g:{await team_id(world, 'West')}:0")
    assert await manager_chat(world, "West") == GROUP
    li = in_group(world, people["li"])
    await li.press_data(choice, f"tl:g:{await team_id(world, 'East')}:1")
    assert await manager_chat(world, "East") is None
    await zhou.press_data(choice, f"tl:g:{await team_id(world, 'North')}:1")  # not Zhou's
    assert await manager_chat(world, "North") is None
    private = people["zhou"]  # the choice is for groups only
    await private.send("/help")
    await private.press_data(private.last_message(), f"tl:g:{await team_id(world, 'East')}:1")
    assert private.last_answer() == EXPIRED and await manager_chat(world, "East") is None

    await zhou.press("East", world.telegram.sent_to(GROUP)[0])
    assert await manager_chat(world, "East") == GROUP
    await zhou.send("/setgroup off")  # both come here: which one to stop?
    choice = world.telegram.sent_to(GROUP)[-1]
    assert [t for t, _ in buttons(choice)] == ["✅ East", "✅ West"]
    await zhou.press("West", choice)
    assert await manager_chat(world, "West") is None and await manager_chat(world, "East") == GROUP
    await zhou.send("/setgroup off")  # only East is left here: stopped at once
    assert await manager_chat(world, "East") is None


async def test_a_director_invites_into_a_chosen_team_among_those_led(world: World) -> None:
    people = await company(world)
    zhou = people["zhou"]
    await zhou.send("/invite")
    await zhou.press("业务员")
    assert sorted(t for t, _ in buttons(zhou.last_message()) if t in ("East", "West", "North")) == [
        "East",
        "West",
    ]
    await zhou.press("West")
    assert "t.me/" in zhou.last_text()
    async with unit_of_work(world.services.sessions) as session:
        invite = (await session.exec(select(Invite))).one()
    assert invite.team_id == await team_id(world, "West") and invite.role == "salesperson"

    chen = people["chen"]  # East only
    await chen.send("/invite")
    await chen.press("业务员")
    assert [t for t, _ in buttons(chen.last_message()) if t in ("East", "West", "North")] == [
        "East"
    ]
    # a forged choice beyond those offered (options are re-computed server-side, by index)
    token = chen.last_message()["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for index in (1, 2, await team_id(world, "North")):
        await chen.press_data(chen.last_message(), ":".join([*token.split(":")[:3], str(index)]))
    async with unit_of_work(world.services.sessions) as session:
        invites = (await session.exec(select(Invite))).all()
    assert [i.team_id for i in invites] == [invite.team_id]

    await unlead(world, zhou, "West")  # Zhou's West link is worth what Zhou may do now
    newcomer = world.person(990_001, "Xu")
    link = [w for w in zhou.telegram.sent_to(zhou.id) if "t.me/" in w["text"]][-1]["text"]
    token = link.split("start=")[1].split()[0]
    await newcomer.send(f"/start {token}")
    async with unit_of_work(world.services.sessions) as session:
        joined = (await session.exec(select(Staff).where(Staff.telegram_id == 990_001))).first()
    assert joined is None


async def test_team_names_in_the_queue_only_for_a_manager_of_several_teams(
    world: World,
) -> None:
    people = await company(world)
    await customer(world, people["li"], "杭州明远机械")
    await people["chen"].send("/review")
    assert "【East】" not in people["chen"].last_text()
    async with unit_of_work(world.services.sessions) as session:
        teams = (await session.exec(select(Team))).all()
    assert {t.name for t in teams} >= {"East", "West", "North"}
