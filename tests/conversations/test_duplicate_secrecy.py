"""Duplicate checks keep SPEC section 4: a warning names only customers the person may see.

A salesperson of one team types another team's customer's phone and tax number into /new and
into an edit: they are warned, but no message the bot sends names that customer, its number or
its owner; every hit is audited; look-ups are capped per person and day (Back and answering
again count); the manager's review cards show the duplicates the submitter was warned about;
a review card in a group chat carries no customer details.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from storage.db import unit_of_work
from storage.models import AuditEntry, DuplicateCheckCount, Review, Team
from tests.auxil.fake_telegram import Person
from tests.auxil.flow_helpers import FINANCE_QUESTION, question, skip_to, start_new_company
from tests.auxil.record_helpers import card, make_customer
from tests.auxil.world import NOW, World

GROUP_ID = -100_321
WEST_PHONE = "13900001111"
WEST_TAX = "91330100MA27XY1235"
WEST_NAME = "西湖远景贸易有限公司"
WEST_OWNER = "Xu Bowen"
EAST_TAX = "91330100MA27XY456J"
EAST_NAME = "钱塘精工机械有限公司"
EAST_OWNER = "Zhao Min"
LEAKS: list[str] = []  # one line per look-up whose answer named a customer it may not


# ---------------------------------------------------------------------------------------------
# helpers


async def west_customer(world: World) -> tuple[Person, int]:
    """Team West's customer, with the phone and tax number others will type."""
    owner = await world.member("salesperson", "West", WEST_OWNER)
    customer_id = await make_customer(
        world,
        owner,
        status="approved",
        name=WEST_NAME,
        phones=[f"+86{WEST_PHONE}"],
        tax_no=WEST_TAX,
    )
    return owner, customer_id


async def customer_no(world: World, customer_id: int) -> str:
    from storage.models import Customer

    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
    assert customer is not None
    return customer.customer_no


def strings(value: Any) -> list[str]:
    """Every text inside a Bot API call's parameters (texts, button labels, button data)."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return [value]
        return [value, *strings(decoded)] if not isinstance(decoded, str) else [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return [str(value)]


def everything_sent(world: World, since: int = 0) -> str:
    """All the bot said to anyone since call `since`: messages, edits, buttons, alerts."""
    return "\n".join(s for _name, params in world.telegram.calls[since:] for s in strings(params))


def leaked(world: World, since: int, secrets: list[str], what: str) -> list[str]:
    """The secrets that appear in what the bot sent since `since`; counted for the report."""
    sent = everything_sent(world, since)
    found = [s for s in secrets if s in sent]
    if found:
        LEAKS.append(f"{what}: {found}")
    return found


async def audit_of(world: World, action: str) -> list[AuditEntry]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        )
        return list(rows.all())


async def look_ups_counted(world: World) -> list[tuple[int, str, int]]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(select(DuplicateCheckCount))
        return [(r.staff_id, r.day.isoformat(), r.count) for r in rows.all()]


async def to_phone_question(person: Person, name: str = "东方新客户有限公司") -> None:
    await start_new_company(person, name)
    assert question(person) == "联系电话?多个号码用逗号隔开。", person.last_text()


async def from_email_to_tax_number(person: Person) -> None:
    """From the class question (after the phones) to the tax number."""
    await person.press("A 战略")
    await person.press("红苹果")
    await person.press("拜访")
    await person.press("继续填写")
    await skip_to(person, FINANCE_QUESTION)
    await person.press("是")  # financial data now
    await person.press("否")  # consent
    await person.press("跳过")  # invoice title


async def finish(person: Person) -> None:
    """From the question after the tax number to the summary card, and submit."""
    await person.press("跳过其余")
    assert "提交" in str(person.last_message().get("reply_markup")), person.last_text()
    await person.press("提交")
    assert "已提交审核" in person.last_text(), person.last_text()


async def the_review(world: World) -> Review:
    async with unit_of_work(world.services.sessions) as session:
        review = (await session.exec(select(Review).order_by(col(Review.id).desc()))).first()
    assert review is not None
    return review


def review_cards(world: World, chat_id: int) -> list[str]:
    return [m["text"] for m in world.telegram.sent_to(chat_id) if m["text"].startswith("🔔")]


# ---------------------------------------------------------------------------------------------
# another team's customer


async def test_another_teams_customer_is_warned_about_without_its_details(world: World) -> None:
    _owner, west_id = await west_customer(world)
    secrets = [WEST_NAME, WEST_OWNER, await customer_no(world, west_id), "西湖"]
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    since = len(world.telegram.calls)

    await to_phone_question(sales)
    await sales.send(WEST_PHONE)
    leak = leaked(world, since, secrets, "/new phone")
    warned = sales.last_text()
    assert "电话号码与一位已有客户重复(该客户不在您的查看范围内)" in warned
    assert "该客户属于 West 团队,请向该团队的经理确认。" in warned
    assert leak == []

    since = len(world.telegram.calls)
    await from_email_to_tax_number(sales)
    await sales.send(WEST_TAX)
    leak = leaked(world, since, secrets, "/new tax number")
    assert "统一社会信用代码与一位已有客户重复(该客户不在您的查看范围内)" in sales.last_text()
    assert leak == []

    since = len(world.telegram.calls)
    await finish(sales)  # the summary repeats the warnings; the manager gets the card
    assert leaked(world, since, secrets, "/new summary and review card") == []

    hits = await audit_of(world, "customer.duplicate")
    assert [(h.entity, h.entity_id, json.loads(h.detail or "")) for h in hits] == [
        ("customer", west_id, {"purpose": "new", "reason": "phone", "shown": False}),
        ("customer", west_id, {"purpose": "new", "reason": "tax_no", "shown": False}),
    ]
    details = "".join(h.detail or "" for h in hits)
    assert WEST_PHONE not in details and WEST_TAX not in details
    # the manager of the submitting team is told too, and may not see West's customer either
    [notice] = review_cards(world, manager.id)
    assert "提交时发现" in notice and "该客户属于 West 团队" in notice


async def test_an_edit_to_another_teams_phone_or_tax_number_hides_it_too(world: World) -> None:
    _owner, west_id = await west_customer(world)
    secrets = [WEST_NAME, WEST_OWNER, await customer_no(world, west_id), "西湖"]
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    mine = await make_customer(world, sales, status="approved", name="东方老客户有限公司")
    since = len(world.telegram.calls)

    await sales.press_data(card(sales), f"ce:{mine}")
    await sales.press("电话")
    await sales.send(WEST_PHONE)
    leak = leaked(world, since, secrets, "edit phone")
    assert "电话号码与一位已有客户重复(该客户不在您的查看范围内)" in sales.last_text()
    assert leak == []
    since = len(world.telegram.calls)
    await sales.press("提交")
    assert "修改已提交经理审批" in sales.last_text()
    assert leaked(world, since, secrets, "edit phone: summary and review card") == []

    since = len(world.telegram.calls)
    await sales.press_data(card(sales), f"ce:{mine}")
    await sales.press("统一社会信用代码")
    await sales.send(WEST_TAX)
    leak = leaked(world, since, secrets, "edit tax number")
    assert "统一社会信用代码与一位已有客户重复" in sales.last_text()
    assert leak == []

    hits = await audit_of(world, "customer.duplicate")
    assert [(h.entity_id, json.loads(h.detail or "")) for h in hits] == [
        (west_id, {"purpose": "edit", "reason": "phone", "shown": False}),
        (west_id, {"purpose": "edit", "reason": "tax_no", "shown": False}),
    ]
    # the pending change's card tells the manager a West customer has that phone
    change = await the_review(world)
    assert change.kind == "customer_change"
    [notice] = review_cards(world, manager.id)
    assert "该客户属于 West 团队" in notice and WEST_NAME not in notice


async def test_an_edit_is_not_its_own_duplicate(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    mine = await make_customer(world, sales, status="rejected", phones=[f"+86{WEST_PHONE}"])
    await sales.press_data(card(sales), f"ce:{mine}")
    await sales.press("电话")
    await sales.send(f"{WEST_PHONE}, 13900002222")
    assert "重复" not in sales.last_text()
    assert await audit_of(world, "customer.duplicate") == []


# ---------------------------------------------------------------------------------------------
# a colleague's customer: the manager sees it, a salesperson does not


async def test_a_colleagues_customer_is_shown_to_the_manager_not_to_a_salesperson(
    world: World,
) -> None:
    colleague = await world.member("salesperson", "East", EAST_OWNER)
    theirs = await make_customer(
        world, colleague, status="approved", name=EAST_NAME, tax_no=EAST_TAX
    )
    number = await customer_no(world, theirs)
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Chen")
    admin = world.admin()

    since = len(world.telegram.calls)
    await start_new_company(sales, "钱塘精工机械")  # a similar name within the team
    leak = leaked(world, since, [EAST_NAME, EAST_OWNER, number], "colleague's customer")
    assert "团队中已有名称非常相近的客户(该客户不在您的查看范围内)。请向您的经理确认。" in (
        sales.last_text()
    )
    assert leak == []
    await sales.send("/cancel")

    await start_new_company(manager, "钱塘精工机械")
    assert f"名称与已有客户非常相近:{number} {EAST_NAME}(负责人:{EAST_OWNER})" in (
        manager.last_text()
    )
    await manager.send("/cancel")
    await admin.send("/start")
    await admin.send("/new")
    await admin.press("企业")
    await admin.send("钱塘精工机械")  # the admin has no team: names are compared within it
    assert "相近" not in admin.last_text()

    hits = await audit_of(world, "customer.duplicate")
    assert [json.loads(h.detail or "")["shown"] for h in hits] == [False, True]
    assert {h.entity_id for h in hits} == {theirs}


# ---------------------------------------------------------------------------------------------
# the daily cap


async def test_back_and_answer_again_counts_and_the_cap_stops_look_ups(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world.services.settings, "DUPLICATE_CHECKS_PER_DAY", 4)
    _owner, west_id = await west_customer(world)
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await to_phone_question(sales)  # the name was the day's first look-up
    [(_staff, day, count)] = await look_ups_counted(world)
    assert (day, count) == ("2026-11-22", 1)
    for n in range(2, 5):
        await sales.send(WEST_PHONE)
        assert "该客户不在您的查看范围内" in sales.last_text()
        [(_staff, day, count)] = await look_ups_counted(world)
        assert (day, count) == ("2026-11-22", n)
        await sales.press("上一步")  # back to the phone question, to try another number
        assert question(sales).startswith("联系电话?")
    assert len(await audit_of(world, "customer.duplicate")) == 3

    await sales.send("13900009999")  # the fifth look-up of the day: refused, the flow goes on
    text = sales.last_text()
    assert "您今天的重复检查次数已用完(每天 4 次),这次没有检查是否与已有客户重复" in text
    assert question(sales) == "客户分类?"
    await sales.press("上一步")
    await sales.send(WEST_PHONE)  # not looked up either: no warning, no new hit
    assert "该客户不在您的查看范围内" not in sales.last_text()
    assert "次数已用完" in sales.last_text()
    assert len(await audit_of(world, "customer.duplicate")) == 3
    [capped] = await audit_of(world, "customer.duplicates_capped")  # once a day, not per try
    assert json.loads(capped.detail or "") == {"limit": 4, "purpose": "new"}
    [(_staff, _day, count)] = await look_ups_counted(world)
    assert count == 6

    # showing the summary repeats the answers' warnings without looking up again
    await from_email_to_tax_number(sales)
    await sales.press("跳过")  # tax number
    await sales.press("跳过其余")
    assert "次数已用完" in sales.last_text() and "✅ 提交" in sales.last_text() + str(
        sales.last_message().get("reply_markup")
    )
    [(_staff, _day, count)] = await look_ups_counted(world)
    assert count == 6
    await sales.press("提交")

    # the manager still sees the duplicate: the server looked it up at submission, uncapped
    [notice] = review_cards(world, manager.id)
    assert "电话号码与一位已有客户重复" in notice and "West" in notice
    review = await the_review(world)
    assert json.loads(review.duplicates or "") == [[west_id, "phone"]]

    # a new day, a new allowance
    world.services.clock = lambda: NOW + timedelta(days=1)
    await to_phone_question(sales, "东方第二家有限公司")
    await sales.send(WEST_PHONE)
    assert "该客户不在您的查看范围内" in sales.last_text()
    assert sorted(c for _s, _d, c in await look_ups_counted(world)) == [2, 6]


# ---------------------------------------------------------------------------------------------
# the manager's cards


async def test_the_review_cards_show_what_the_submitter_was_warned_about(world: World) -> None:
    _owner, west_id = await west_customer(world)
    west_no = await customer_no(world, west_id)
    colleague = await world.member("salesperson", "East", EAST_OWNER)
    theirs = await make_customer(
        world, colleague, status="approved", name=EAST_NAME, tax_no=EAST_TAX
    )
    east_no = await customer_no(world, theirs)
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")

    await to_phone_question(sales)
    await sales.send(WEST_PHONE)
    await from_email_to_tax_number(sales)
    await sales.send(EAST_TAX)
    await finish(sales)

    shown = f"⚠️ 统一社会信用代码与已有客户重复:{east_no} {EAST_NAME}(负责人:{EAST_OWNER})"
    hidden = "该客户属于 West 团队,请向该团队的经理确认。"
    [notice] = review_cards(world, manager.id)
    assert "重复提示(提交时发现):" in notice
    assert shown in notice and hidden in notice
    assert WEST_NAME not in notice and west_no not in notice and WEST_OWNER not in notice

    await manager.press("查看详情")  # the full card
    full = manager.last_text()
    assert "• 电话: 139****1111" in full
    assert shown in full and hidden in full and WEST_NAME not in full

    # an admin may see every customer: the full card opened by an admin names both
    review = await the_review(world)
    admin = world.admin()
    await admin.send("/start")
    await admin.press_data(card(admin), f"rv:o:{review.id}")
    assert f"{west_no} {WEST_NAME}(负责人:{WEST_OWNER})" in admin.last_text()

    # the decision keeps the warnings on the card
    await manager.press("通过", world.telegram.sent_to(manager.id)[0])
    [notice] = review_cards(world, manager.id)[:1]
    assert "✅ 已由 Chen 审核通过" in notice and shown in notice


# ---------------------------------------------------------------------------------------------
# a managers' group chat


async def test_a_group_review_card_holds_no_customer_details(world: World) -> None:
    await west_customer(world)
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    async with unit_of_work(world.services.sessions) as session:
        team = (await session.exec(select(Team).where(Team.name == "East"))).one()
        team.manager_chat_id = GROUP_ID
        session.add(team)

    await to_phone_question(sales, "东方群里客户有限公司")
    await sales.send(WEST_PHONE)
    await from_email_to_tax_number(sales)
    await sales.send(WEST_TAX)
    await finish(sales)

    [message] = [m for m in world.telegram.sent_to(GROUP_ID) if m["text"].startswith("🔔")]
    text = message["text"]
    assert text.splitlines()[:3] == [
        "🔔 审核 · 新客户建档",
        "KH-2026-000002",
        text.splitlines()[2],
    ]
    assert "提交人:Li(East)" in text and "⏳ 等待审核" in text
    assert "私聊" in text
    for detail in ("东方群里客户", "139****1111", "电话", "重复", "West", "A 战略"):
        assert detail not in text, detail

    # a manager opens it from the group: the details, duplicates included, come privately
    group_manager = world.person(manager.id, "Chen")
    group_manager.chat = {"id": GROUP_ID, "type": "group", "title": "East managers"}
    await group_manager.press("查看详情", message)
    private = manager.last_text()
    assert "东方群里客户有限公司" in private and "该客户属于 West 团队" in private

    # rejected: the group card says who decided, not the reason (it may name details)
    await group_manager.press("退回", message)
    await manager.send("与 KH-2026-000001 西湖远景重复")
    [message] = [m for m in world.telegram.sent_to(GROUP_ID) if m["text"].startswith("🔔")]
    assert "❌ 已由 Chen 退回" in message["text"]
    assert "西湖" not in message["text"] and "KH-2026-000001" not in message["text"]
    assert everything_sent(world).count("与 KH-2026-000001 西湖远景重复") >= 1  # the submitter


# ---------------------------------------------------------------------------------------------
# resubmitting, restarting, the setting


async def test_a_resubmitted_customer_is_checked_again_for_its_review(world: World) -> None:
    _owner, west_id = await west_customer(world)
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    mine = await make_customer(
        world, sales, status="rejected", name="东方退回客户有限公司", phones=[f"+86{WEST_PHONE}"]
    )
    await sales.press_data(card(sales), f"rv:rs:{mine}")
    review = await the_review(world)
    assert (review.customer_id, review.status) == (mine, "pending")
    assert json.loads(review.duplicates or "") == [[west_id, "phone"]]
    [notice] = review_cards(world, manager.id)
    assert "该客户属于 West 团队" in notice and WEST_NAME not in notice


async def test_after_a_restart_the_summary_repeats_the_warnings_without_a_look_up(
    world: World,
) -> None:
    from tests.auxil.fake_telegram import FakeTelegram
    from tests.auxil.world import start_app

    await west_customer(world)
    sales = await world.member("salesperson", "East", "Li")
    await to_phone_question(sales)
    await world.app.shutdown()
    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    world.telegram = telegram
    sales.app, sales.telegram = world.app, telegram
    await sales.send(WEST_PHONE)  # the phones question asked before the restart
    await from_email_to_tax_number(sales)
    await sales.press("跳过")  # tax number
    await sales.press("跳过其余")
    assert "电话号码与一位已有客户重复" in sales.last_text()
    assert "✅ 提交" in str(sales.last_message().get("reply_markup"))
    [(_staff, _day, count)] = await look_ups_counted(world)
    assert count == 2  # the name and the phone, each once
    assert len(await audit_of(world, "customer.duplicate")) == 1


@pytest.mark.parametrize("value", ["0", "-5", "100001", "many"])
def test_a_bad_daily_cap_is_refused_naming_the_setting(value: str) -> None:
    from pydantic import ValidationError

    from bot.settings import Settings, describe_errors
    from tests.auxil.fake_telegram import TOKEN

    with pytest.raises(ValidationError) as refused:
        Settings(  # type: ignore[call-arg]
            _env_file=None, TELEGRAM_BOT_TOKEN=TOKEN, DUPLICATE_CHECKS_PER_DAY=value
        )
    [line] = describe_errors(refused.value)
    assert line.startswith("DUPLICATE_CHECKS_PER_DAY: ")
    assert Settings(_env_file=None, TELEGRAM_BOT_TOKEN=TOKEN).DUPLICATE_CHECKS_PER_DAY == 100  # type: ignore[call-arg]


def test_zz_report_duplicate_lookups_leaked() -> None:
    """The figure of the issue: duplicate look-ups across teams that leaked (0)."""
    print(f"\nduplicate lookups across teams leaked: {len(LEAKS)}")
    assert LEAKS == []
