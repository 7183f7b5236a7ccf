"""Reassigning customers in post (在职继承, issue 10 item 3), through the bot's surface.

A manager reassigns one customer from its card or a selection from /my to someone of the team;
an admin across teams. Everything that follows the owner moves (complaints, reminders, pending
reviews), history and audit say so, both owners are told; forged, stale and racing presses move
nothing they should not.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from typing import Any

from sqlmodel import col, select

from bot import scheduler
from conversations.fit import LABEL_LIMIT, units
from storage import complaints
from storage.db import unit_of_work
from storage.models import (
    AuditEntry,
    Complaint,
    Customer,
    ReassignPick,
    Reminder,
    ReminderStatus,
    Review,
    ReviewStatus,
    Staff,
    Team,
)
from storage.types import utcnow
from tests.auxil.customer_factory import set_columns, staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person, buttons
from tests.auxil.record_helpers import audit_entries, customer_row, history_of, make_customer
from tests.auxil.world import NOW, World, start_app
from tests.conversations.test_review import submit_customer

TOMORROW = date(2026, 11, 23)
DUE_HOURS = {"critical": 24, "high": 72, "medium": 168, "low": 336}


# ---------------------------------------------------------------------------------------------
# helpers


def data_of(message: dict[str, Any], label: str) -> str:
    """The data of the button whose label contains `label`."""
    for text, data in buttons(message):
        if label in text:
            return data
    raise AssertionError(f"no button {label!r} in {buttons(message)}")


def ra_data(message: dict[str, Any]) -> list[str]:
    return [d for _, d in buttons(message) if d.startswith("ra:")]


async def open_card(person: Person, customer_id: int) -> dict[str, Any]:
    if not person.telegram.sent_to(person.id):
        await person.send("/help")
    await person.press_data(person.last_message(), f"cu:{customer_id}")
    return person.last_message()


async def owner_of(world: World, customer_id: int) -> int:
    return (await customer_row(world.services.sessions, customer_id)).owner_id


def texts_to(world: World, person: Person) -> list[str]:
    return [m["text"] for m in world.telegram.sent_to(person.id)]


def notices(world: World, person: Person) -> list[str]:
    return [t for t in texts_to(world, person) if t.startswith("🔁")]


async def staff_id(world: World, person: Person) -> int:
    return (await staff_of(world.services.sessions, person)).id or 0


async def approved(world: World, owner: Person, name: str, **values: Any) -> int:
    return await make_customer(world, owner, status="approved", name=name, **values)


async def log_complaint(world: World, handler: Person, customer_id: int) -> int:
    actor = await staff_of(world.services.sessions, handler)
    async with unit_of_work(world.services.sessions) as session:
        complaint = await complaints.log_complaint(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer_id=customer_id,
            values={
                "channel": "phone",
                "complaint_type": "delivery",
                "severity": "high",
                "description": "late again",
                "handler_id": actor.id,
            },
            now=NOW,
            due_hours=DUE_HOURS,
        )
    return complaint.id or 0


async def reassign_from_card(manager: Person, customer_id: int, successor: str) -> None:
    """The card's Reassign, the successor's button, the confirmation."""
    card = await open_card(manager, customer_id)
    await manager.press("改派", card)
    await manager.press(successor)
    assert "确认" in manager.last_text(), manager.last_text()
    await manager.press("确认改派")


async def refused(person: Person, data: str) -> str:
    """Press forged or stale data; the answer must be an alert with a reason."""
    await person.press_data(person.last_message(), data)
    answer = person.telegram.answers()[-1]
    assert answer.get("show_alert") and answer.get("text"), answer
    return str(answer["text"])


async def audit_of(world: World, action: str) -> list[AuditEntry]:
    return await audit_entries(world.services.sessions, action)


# ---------------------------------------------------------------------------------------------
# one customer from its card


async def test_a_manager_reassigns_one_customer_from_its_card(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    await world.member("salesperson", "West", "Wu")  # of another team: never offered
    customer_id = await approved(world, li, "杭州明远机械有限公司", next_followup_on=TOMORROW)
    complaint_id = await log_complaint(world, li, customer_id)
    await scheduler.run_once(world.app)  # plans Li's follow-up for tomorrow
    async with unit_of_work(world.services.sessions) as session:
        planned = (
            await session.exec(
                select(Reminder).where(
                    Reminder.kind == "followup", Reminder.subject_id == customer_id
                )
            )
        ).all()
    assert [r.recipient_id for r in planned] == [await staff_id(world, li)]

    card = await open_card(chen, customer_id)
    assert f"ra:o:{customer_id}" in ra_data(card)
    await chen.press("改派", card)
    choice = chen.last_message()
    assert "杭州明远机械有限公司" in choice["text"] and "Li" in choice["text"]
    offered = [t for t, d in buttons(choice) if d.startswith("ra:k:")]
    assert sorted(offered) == ["Chen · 经理", "Zhao · 业务员"]  # not Li (the owner), not Wu
    await chen.press("Zhao")
    confirmation = chen.last_text()
    assert "杭州明远机械有限公司" in confirmation
    assert "从 Li 改派给 Zhao" in confirmation and "East" in confirmation
    await chen.press("确认改派")
    assert "已把客户 杭州明远机械有限公司" in chen.last_text()
    assert "1 个处理中的投诉" in chen.last_text()

    customer = await customer_row(world.services.sessions, customer_id)
    assert customer.owner_id == await staff_id(world, zhao)
    async with unit_of_work(world.services.sessions) as session:
        complaint = await session.get(Complaint, complaint_id)
        assert complaint is not None and complaint.handler_id == customer.owner_id
        followups = (
            await session.exec(
                select(Reminder).where(
                    Reminder.kind == "followup",
                    Reminder.subject_id == customer_id,
                    Reminder.status == ReminderStatus.pending,
                )
            )
        ).all()
    assert [r.recipient_id for r in followups] == [customer.owner_id]

    # both told, each naming the customer and who reassigned it
    [told_li] = notices(world, li)
    assert "Chen" in told_li and "杭州明远机械有限公司" in told_li and "Zhao" in told_li
    [told_zhao] = notices(world, zhao)
    assert "Chen" in told_zhao and customer.customer_no in told_zhao and "Li" in told_zhao
    assert f"cu:{customer_id}" in [d for _, d in buttons(world.telegram.sent_to(zhao.id)[-1])]

    # the new owner has it in /my, the old one no longer, and its card is refused to him
    await zhao.send("/my")
    assert f"cu:{customer_id}" in [d for _, d in buttons(zhao.last_message())]
    await li.send("/my")
    assert f"cu:{customer_id}" not in [d for _, d in buttons(li.last_message())]
    await li.press_data(li.last_message(), f"cu:{customer_id}")
    assert li.telegram.answers()[-1].get("show_alert")

    # history: the reassignment, sealed, with both names; one audit entry
    history = await history_of(world, customer_id)
    moves = [(r, d) for r, d in history if r.action == "reassign" and r.entity == "customer"]
    assert [d for _, d in moves] == [{"owner": ["Li", "Zhao"]}]
    assert moves[0][0].changed_by == await staff_id(world, chen)
    assert [r.entity for r, _ in history if r.action == "reassign"] == ["customer", "complaint"]
    await chen.press_data(chen.last_message(), f"ch:{customer_id}")
    shown = chen.last_text()
    assert "改派(在职继承)" in shown and "负责人: Li → Zhao" in shown
    [entry] = await audit_of(world, "customer.reassign")
    assert entry.entity_id == customer_id and entry.actor_staff_id == await staff_id(world, chen)
    assert '"complaints": 1' in (entry.detail or "")

    # tomorrow the follow-up reminder goes to Zhao, not Li
    moment = NOW + timedelta(days=1)
    world.services.clock = lambda: moment
    before_li, before_zhao = len(texts_to(world, li)), len(texts_to(world, zhao))
    await scheduler.run_once(world.app)
    [reminder] = texts_to(world, zhao)[before_zhao:]
    assert "杭州明远机械有限公司" in reminder and not reminder.startswith("🔁")
    assert not any("杭州明远机械有限公司" in t for t in texts_to(world, li)[before_li:])


async def test_each_owner_is_told_in_their_own_language(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li", language="en")
    zhao = await world.member("salesperson", "East", "Zhao")
    await li.send("/help")  # the gate learns Li's language
    await zhao.send("/help")
    customer_id = await approved(world, li, "Mingyuan Machinery")
    await reassign_from_card(chen, customer_id, "Zhao")
    [told_li] = notices(world, li)
    assert told_li.startswith("🔁 Chen reassigned your customer Mingyuan Machinery")
    [told_zhao] = notices(world, zhao)
    assert "把客户 Mingyuan Machinery" in told_zhao


async def test_what_cannot_be_reassigned_is_refused(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    gone = await world.member("salesperson", "East", "Gone")
    customer_id = await approved(world, li, "杭州明远机械有限公司")
    async with unit_of_work(world.services.sessions) as session:
        person = (await session.exec(select(Staff).where(Staff.display_name == "Gone"))).one()
        person.active = False
        session.add(person)
    await open_card(chen, customer_id)
    li_id, admin_id = await staff_id(world, li), (await staff_of(world.services.sessions, 900_001))
    assert "已经是这个人的客户" in await refused(chen, f"ra:k:c{customer_id}:{li_id}")
    assert "不能改派给这个人" in await refused(chen, f"ra:k:c{customer_id}:{admin_id.id}")
    gone_id = await staff_id(world, gone)
    assert "不能改派给这个人" in await refused(chen, f"ra:y:c{customer_id}:{gone_id}:{li_id}")
    # in the team pool: the pool's, not the manager's to reassign; destroyed: nobody's
    await set_columns(world.services.sessions, customer_id, pooled_at=utcnow())
    card = await open_card(chen, customer_id)
    assert ra_data(card) == []
    zhao_id = await staff_id(world, zhao)
    assert "公海" in await refused(chen, f"ra:y:c{customer_id}:{zhao_id}:{li_id}")
    await set_columns(world.services.sessions, customer_id, pooled_at=None, status="destroyed")
    assert await refused(chen, f"ra:y:c{customer_id}:{zhao_id}:{li_id}")
    assert await owner_of(world, customer_id) == li_id
    assert await audit_of(world, "customer.reassign") == []


# ---------------------------------------------------------------------------------------------
# who may: forged data


async def test_a_salesperson_is_offered_nothing_and_forged_data_is_refused(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    customer_id = await approved(world, li, "杭州明远机械有限公司")
    card = await open_card(li, customer_id)
    assert ra_data(card) == []
    await li.send("/my")
    assert ra_data(li.last_message()) == []
    li_id, zhao_id = await staff_id(world, li), await staff_id(world, zhao)
    for data in (
        f"ra:o:{customer_id}",
        f"ra:p:c{customer_id}:1:0",
        f"ra:k:c{customer_id}:{zhao_id}",
        f"ra:y:c{customer_id}:{zhao_id}:{li_id}",
        "ra:m:0",
        f"ra:t:{customer_id}:0",
        "ra:n",
        f"ra:y:s:{zhao_id}:0123456789",
    ):
        await refused(li, data)
    assert await owner_of(world, customer_id) == li_id
    assert await audit_of(world, "customer.reassign") == []
    assert await audit_of(world, "customer.reassign_refused")


async def test_an_east_manager_cannot_reach_west_customers_or_people(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    wu = await world.member("salesperson", "West", "Wu")
    await world.member("salesperson", "West", "Sun")
    east_id = await approved(world, li, "杭州明远机械有限公司")
    west_id = await approved(world, wu, "西部客户有限公司")
    li_id, wu_id = await staff_id(world, li), await staff_id(world, wu)
    async with unit_of_work(world.services.sessions) as session:
        west_team = (await session.exec(select(Team).where(Team.name == "West"))).one().id
    await chen.send("/help")
    for data in (
        f"ra:o:{west_id}",  # a West customer
        f"ra:k:c{west_id}:{li_id}",
        f"ra:y:c{west_id}:{li_id}:{wu_id}",
        f"ra:t:{west_id}:0",
        f"ra:p:c{east_id}:{west_team}:0",  # West's people
        f"ra:T:c{west_id}:0",
        f"ra:k:c{east_id}:{wu_id}",  # a West salesperson for an East customer
        f"ra:y:c{east_id}:{wu_id}:{li_id}",
    ):
        await refused(chen, data)
    assert await owner_of(world, east_id) == li_id
    assert await owner_of(world, west_id) == wu_id
    async with unit_of_work(world.services.sessions) as session:
        picks = (await session.exec(select(ReassignPick))).all()
    assert picks == []
    assert await audit_of(world, "customer.reassign") == []
    refusals = await audit_of(world, "customer.reassign_refused")
    assert {e.entity_id for e in refusals if e.entity == "customer"} >= {west_id, east_id}


# ---------------------------------------------------------------------------------------------
# a selection from /my


async def test_a_manager_reassigns_thirty_selected_across_pages(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    ids = [await approved(world, li, f"客户{n:02d}号有限公司") for n in range(30)]
    await chen.send("/my")
    await chen.press("选择客户改派")
    message = chen.last_message()
    assert "已选 0 个" in message["text"]
    ticked: list[int] = []
    for page in range(4):  # 8 a page
        for _ in range(8):
            untouched = [
                d for t, d in buttons(message) if d.startswith("ra:t:") and t.startswith("▫️")
            ]
            if not untouched:
                break
            data = untouched[0]
            await chen.press_data(message, data)
            ticked.append(int(data.split(":")[2]))
            message = chen.last_message()
        assert f"已选 {len(ticked)} 个" in message["text"]
        if page < 3:
            await chen.press("›", message)
            message = chen.last_message()
    assert sorted(ticked) == sorted(ids)
    await chen.press("‹", message)  # back a page: the ticks are still there
    assert all(t.startswith("✅") for t, d in buttons(chen.last_message()) if d.startswith("ra:t"))

    await chen.press("改派已选的 30 个")
    await chen.press("Zhao")
    confirmation = chen.last_text()
    assert "下列 30 个客户改派给 Zhao" in confirmation and "另有 25 个" in confirmation
    assert "现负责人:Li (30)" in confirmation
    await chen.press("确认改派")
    assert "已把 30 个客户改派给 Zhao" in chen.last_text()

    zhao_id = await staff_id(world, zhao)
    assert [await owner_of(world, i) for i in ids] == [zhao_id] * 30
    [told_li] = notices(world, li)
    assert "30 个客户" in told_li and "另有 25 个" in told_li
    [told_zhao] = notices(world, zhao)
    assert "30 个客户" in told_zhao
    [entry] = await audit_of(world, "customer.reassign")
    assert '"customers": 30' in (entry.detail or "") and '"selection": true' in (entry.detail or "")
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(ReassignPick))).all() == []


async def test_a_selection_survives_a_restart_and_skips_what_changed_hands(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    wang = await world.member("salesperson", "East", "Wang")
    ids = [await approved(world, li, f"客户{n}号") for n in range(3)]
    await chen.send("/my")
    await chen.press("选择客户改派")
    for customer_id in ids:
        await chen.press_data(chen.last_message(), f"ra:t:{customer_id}:0")
    assert "已选 3 个" in chen.last_text()

    # a new process on the same database: the selection is in the database
    await world.app.shutdown()
    world.telegram = FakeTelegram()
    world.app = await start_app(world.services, world.telegram)
    chen, li, zhao, wang = (
        world.person(p.id, str(p.user["first_name"])) for p in (chen, li, zhao, wang)
    )
    await chen.send("/my")
    await chen.press("选择客户改派")
    assert "已选 3 个" in chen.last_text()
    selection = chen.last_message()
    await chen.press("改派已选的 3 个", selection)
    await chen.press("Zhao")
    confirmation = chen.last_message()

    # meanwhile the admin gives the first of them to Wang
    admin = world.admin()
    await reassign_from_card(admin, ids[0], "Wang")
    await chen.press("确认改派", confirmation)
    result = chen.last_text()
    assert "已把 2 个客户改派给 Zhao" in result
    assert "未改派 1 个" in result and "客户0号" in result and "选中后已换了负责人" in result
    zhao_id, wang_id = await staff_id(world, zhao), await staff_id(world, wang)
    assert [await owner_of(world, i) for i in ids] == [wang_id, zhao_id, zhao_id]


async def test_a_selection_changed_after_its_confirmation_is_not_confirmed_unseen(
    world: World,
) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    await world.member("salesperson", "East", "Zhao")
    ids = [await approved(world, li, f"客户{n}号") for n in range(2)]
    await chen.send("/my")
    await chen.press("选择客户改派")
    selection = chen.last_message()
    await chen.press_data(selection, f"ra:t:{ids[0]}:0")
    await chen.press("改派已选的 1 个", chen.last_message())
    await chen.press("Zhao")
    confirmation = chen.last_message()
    await chen.press_data(selection, f"ra:t:{ids[1]}:0")  # a second tick, in the other message
    assert "选择又有变动" in await refused(chen, data_of(confirmation, "确认改派"))
    li_id = await staff_id(world, li)
    assert [await owner_of(world, i) for i in ids] == [li_id, li_id]


# ---------------------------------------------------------------------------------------------
# an admin, across teams


async def test_an_admin_reassigns_across_teams_and_the_review_follows(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    ma = await world.member("manager", "West", "Ma")
    li = await world.member("salesperson", "East", "Li")
    wu = await world.member("salesperson", "West", "Wu")
    await submit_customer(li)  # pending, with its review for East's managers
    async with unit_of_work(world.services.sessions) as session:
        customer = (await session.exec(select(Customer))).one()
        review = (await session.exec(select(Review))).one()
    assert customer.id is not None and review.id is not None
    admin = world.admin()
    card = await open_card(admin, customer.id)
    await admin.press("改派", card)
    assert "先选择新负责人所在的团队" in admin.last_text()
    await admin.press("West")
    await admin.press("Wu")
    assert "从 Li 改派给 Wu(团队:West)" in admin.last_text()
    await admin.press("确认改派")

    moved = await customer_row(world.services.sessions, customer.id)
    async with unit_of_work(world.services.sessions) as session:
        west = (await session.exec(select(Team).where(Team.name == "West"))).one()
        review_now = await session.get(Review, review.id)
    assert moved.owner_id == await staff_id(world, wu) and moved.team_id == west.id
    assert review_now is not None and review_now.team_id == west.id
    assert review_now.submitted_by == moved.owner_id

    # East's manager no longer decides it; West's does
    await chen.send("/help")
    await refused(chen, f"rv:a:{review.id}")
    await ma.send("/help")
    await ma.press_data(ma.last_message(), f"rv:a:{review.id}")
    async with unit_of_work(world.services.sessions) as session:
        decided = await session.get(Review, review.id)
    assert decided is not None and decided.status == ReviewStatus.approved
    assert decided.decided_by == await staff_id(world, ma)


# ---------------------------------------------------------------------------------------------
# stale and racing presses


async def test_a_confirmation_made_stale_by_someone_else_moves_nothing(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    await world.member("salesperson", "East", "Zhao")
    wang = await world.member("salesperson", "East", "Wang")
    customer_id = await approved(world, li, "杭州明远机械有限公司")
    card = await open_card(chen, customer_id)
    await chen.press("改派", card)
    await chen.press("Zhao")
    confirmation = chen.last_message()
    await reassign_from_card(world.admin(), customer_id, "Wang")
    answer = await refused(chen, data_of(confirmation, "确认改派"))
    assert "已被改派" in answer and "Wang" in answer
    assert await owner_of(world, customer_id) == await staff_id(world, wang)
    assert len(await audit_of(world, "customer.reassign")) == 1


async def test_two_managers_reassigning_one_customer_at_once_one_wins(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    qian = await world.member("manager", "East", "Qian")
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    wang = await world.member("salesperson", "East", "Wang")
    customer_id = await approved(world, li, "杭州明远机械有限公司")
    confirmations = []
    for manager, successor in ((chen, "Zhao"), (qian, "Wang")):
        card = await open_card(manager, customer_id)
        await manager.press("改派", card)
        await manager.press(successor)
        confirmations.append(manager.last_message())
    before = len(world.telegram.answers())
    await asyncio.gather(
        chen.press_data(confirmations[0], data_of(confirmations[0], "确认改派")),
        qian.press_data(confirmations[1], data_of(confirmations[1], "确认改派")),
    )
    alerts = [a for a in world.telegram.answers()[before:] if a.get("show_alert")]
    assert len(alerts) == 1 and "已被改派" in alerts[0]["text"]
    owner = await owner_of(world, customer_id)
    assert owner in {await staff_id(world, zhao), await staff_id(world, wang)}
    assert len(await audit_of(world, "customer.reassign")) == 1
    assert len(notices(world, li)) == 1
    history = await history_of(world, customer_id)
    assert len([r for r, _ in history if r.action == "reassign"]) == 1


# ---------------------------------------------------------------------------------------------
# the longest names, and many people


async def test_the_longest_names_fit_every_list_and_message(world: World) -> None:
    long_team = "东" * 100
    chen = await world.member("manager", long_team, "陈" * 200)
    li = await world.member("salesperson", long_team, "李" * 200)
    for n in range(19):  # three pages of candidates
        await world.member("salesperson", long_team, f"{n:02d}" + "赵" * 198)
    customer_names = ["𠀋" * 200] + [f"{n}" + "客" * 199 for n in range(9)]
    ids = [await approved(world, li, name) for name in customer_names]

    card = await open_card(chen, ids[0])
    await chen.press("改派", card)
    choice = chen.last_message()
    labels = [t for t, d in buttons(choice) if d.startswith("ra:k:")]
    assert len(labels) == 8 and all(units(t) <= LABEL_LIMIT for t in labels)
    assert "1/3" in [t for t, _ in buttons(choice)]
    await chen.press("›", choice)
    await chen.press("›", chen.last_message())
    await chen.press("陈")  # Chen himself, on the last page
    assert units(chen.last_text()) <= 4096
    await chen.press("确认改派")
    assert units(chen.last_text()) <= 4096

    await chen.send("/my")
    await chen.press("选择客户改派")
    for customer_id in ids[1:]:
        page = 0 if customer_id in _on_first_page(chen) else 1
        await chen.press_data(chen.last_message(), f"ra:t:{customer_id}:{page}")
    assert "已选 9 个" in chen.last_text()
    await chen.press("改派已选的 9 个")
    await chen.press("00")
    await chen.press("确认改派")
    assert "已把 9 个客户" in chen.last_text()
    for person in (li, chen):
        for text in notices(world, person):
            assert units(text) <= 4096
    assert all(re.search("客{20}", t) for t in notices(world, li)[-1:])
    # the fake Telegram refuses anything over its limits (the world fixture checks)


def _on_first_page(person: Person) -> set[int]:
    return {
        int(d.split(":")[2]) for _, d in buttons(person.last_message()) if d.startswith("ra:t:")
    }


async def test_a_customer_with_many_records_moves_with_all_its_complaints(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    customer_id = await approved(world, li, "杭州明远机械有限公司")
    for _ in range(5):
        await log_complaint(world, li, customer_id)
    await reassign_from_card(chen, customer_id, "Zhao")
    async with unit_of_work(world.services.sessions) as session:
        handlers = (
            await session.exec(
                select(Complaint.handler_id).where(col(Complaint.customer_id) == customer_id)
            )
        ).all()
    assert set(handlers) == {await staff_id(world, zhao)}
    assert "5 个处理中的投诉" in chen.last_text()


async def test_a_deactivated_manager_is_refused_at_the_confirmation(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    await world.member("salesperson", "East", "Zhao")
    customer_id = await approved(world, li, "杭州明远机械有限公司")
    card = await open_card(chen, customer_id)
    await chen.press("改派", card)
    await chen.press("Zhao")
    confirmation = chen.last_message()
    async with unit_of_work(world.services.sessions) as session:
        manager = (await session.exec(select(Staff).where(Staff.display_name == "Chen"))).one()
        manager.active = False
        session.add(manager)
    await chen.press_data(confirmation, data_of(confirmation, "确认改派"))
    assert await owner_of(world, customer_id) == await staff_id(world, li)
    assert await audit_of(world, "customer.reassign") == []
    assert notices(world, li) == []


async def test_cancel_and_clear_leave_everything_as_it_was(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    li = await world.member("salesperson", "East", "Li")
    await world.member("salesperson", "East", "Zhao")
    ids = [await approved(world, li, f"客户{n}号") for n in range(2)]
    card = await open_card(chen, ids[0])
    await chen.press("改派", card)
    await chen.press("Zhao")
    await chen.press("取消")
    assert "已取消,没有改派" in chen.last_text() and ra_data(chen.last_message()) == []
    await chen.send("/my")
    await chen.press("选择客户改派")
    await chen.press_data(chen.last_message(), f"ra:t:{ids[0]}:0")
    await chen.press_data(chen.last_message(), f"ra:t:{ids[1]}:0")
    await chen.press_data(chen.last_message(), f"ra:t:{ids[1]}:0")  # untick
    assert "已选 1 个" in chen.last_text()
    await chen.press("清空选择")
    assert "团队的客户" in chen.last_text()  # /my as it was
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(ReassignPick))).all() == []
    assert "没有已选的客户" in await refused(chen, "ra:n")
    li_id = await staff_id(world, li)
    assert [await owner_of(world, i) for i in ids] == [li_id, li_id]
    assert await audit_of(world, "customer.reassign") == []
