"""A salesperson enters a new customer step by step: the happy path and every way it goes wrong."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from storage import customers as customer_store
from storage.db import unit_of_work
from storage.models import BlindIndex, ChangeRecord, Review
from tests.auxil.fake_telegram import FakeTelegram, Person, buttons
from tests.auxil.flow_helpers import (
    FINANCE_QUESTION,
    answer_essentials,
    answer_required_rest,
    audit_actions,
    customers,
    draft_of,
    labels,
    question,
    skip_to,
    start_new_company,
)
from tests.auxil.world import World, start_app


async def test_salesperson_enters_a_complete_customer(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await start_new_company(sales)
    await sales.send("13812345678，0571-87654321")  # phones, a full-width comma too
    await sales.press("B 重要")
    await sales.press("黄苹果")
    await sales.press("展会")  # source
    await sales.press("继续填写")  # not "save now": every field
    await sales.send("明远机械")  # short name
    await sales.send("机械制造")  # industry
    await sales.send("浙江 杭州")  # region
    await sales.send("杭州市西湖区文三路 100 号")  # address (sealed)
    await sales.send("明远集团")  # parent organisation
    await sales.press("50-200")  # size
    await sales.send("主营数控机床")  # profile
    await sales.send("Sales@Example.com")  # e-mail
    await sales.send("www.mingyuan.example.cn")  # website
    await sales.send("mingyuan_2026")  # WeChat
    await sales.press("首次成交")
    await sales.send("良好")  # credit
    await sales.send("2025 年采购 3 台")  # past trade
    await sales.send("王建国")  # legal representative (sealed)
    await sales.send("12月1日")  # next follow-up
    await sales.press("是")  # financial data now
    await sales.press("是")  # consent given
    await sales.send("杭州明远机械有限公司")  # invoice title
    await sales.send("91350100M000100Y43")  # tax number
    await sales.send("工商银行杭州分行")  # bank
    await sales.send("6222 0202 0011 2233 445")  # account
    await sales.press("跳过")  # billing address
    await sales.send("0571-87654322")  # billing phone
    await sales.press("书面")
    await sales.send("2026-11-20")
    await sales.send("现场签署告知书")
    card = sales.last_text()
    assert card.startswith("📋 新建客户")
    assert "客户名称: 杭州明远机械有限公司" in card
    assert "电话: 138 1234 5678, 0571 8765 4321" in card
    assert "邮箱: sales@example.com" in card
    assert "下次跟进日期: 2026-12-01" in card
    assert "✅ 提交" in labels(sales.last_message())
    await sales.press("提交")
    assert "KH-2026-000001" in sales.last_text()
    assert "已提交审核" in sales.last_text()

    [customer] = await customers(world.services.sessions)
    assert customer.status == "pending"
    assert customer.customer_no == "KH-2026-000001"
    assert customer.customer_class == "B" and customer.stage == "yellow"
    assert customer.next_followup_on == date(2026, 12, 1)
    assert customer.consent_given is True
    async with unit_of_work(world.services.sessions) as session:
        sealed = await customer_store.sealed_fields(session, world.services.keyring, customer)
        reviews = (await session.exec(select(Review))).all()
        history = (await session.exec(select(ChangeRecord))).all()
        index = (await session.exec(select(BlindIndex))).all()
    assert sealed["phones"] == ["+8613812345678", "+8657187654321"]
    assert sealed["account_no"] == "6222020200112233445"
    assert sealed["tax_no"] == "91350100M000100Y43"
    assert sealed["consent_on"] == "2026-11-20"
    assert sealed["address"] == "杭州市西湖区文三路 100 号"
    assert sealed["legal_representative"] == "王建国"
    assert [(r.kind, r.status) for r in reviews] == [("customer_new", "pending")]
    assert [h.action for h in history] == ["create"]
    assert sorted(i.kind for i in index) == ["phone", "phone", "phone", "tax_no"]
    assert await draft_of(world.services.sessions, sales.id) is None
    actions = await audit_actions(world.services.sessions)
    assert actions[-2:] == ["customer.create", "review.submit"]


async def test_skipped_follow_up_defaults_to_the_class_cycle(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales)
    assert "下次跟进日期: 2026-11-29(默认)" in sales.last_text()
    await sales.press("提交")
    [customer] = await customers(world.services.sessions)
    assert customer.next_followup_on == date(2026, 11, 29)  # class A: 7 days after 11-22
    assert customer.consent_given is False


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("12345", "这不是有效的电话号码"),
        ("138-1234-567x", "这不是有效的电话号码"),
        ("1,2,3,4,5,6", "太多了"),
    ],
)
async def test_invalid_phone_is_explained_and_asked_again(
    world: World, bad: str, reason: str
) -> None:
    sales = await world.member()
    await start_new_company(sales)
    assert question(sales) == "联系电话?多个号码用逗号隔开。"  # an essential, right after the name
    await sales.send(bad)
    text = sales.last_text()
    assert reason in text
    assert "例如:13812345678" in text
    assert question(sales) == "联系电话?多个号码用逗号隔开。"
    await sales.send("13812345678")
    assert question(sales) == "客户分类?"


async def test_invalid_email_website_and_over_long_text(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.press("企业")
    await sales.send("名" * 101)
    assert "太长了,最多 100 个字" in sales.last_text()
    assert question(sales) == "客户名称(全称)是?"
    await sales.send("明远")
    await answer_essentials(sales)
    await sales.press("继续填写")
    await skip_to(sales, "电子邮箱?")
    await sales.send("not-an-email")
    assert "这不是有效的电子邮箱" in sales.last_text()
    await sales.send("a@b.cn")
    await sales.send("no spaces allowed here")
    assert "这不是有效的网址" in sales.last_text()


async def test_tax_number_format_and_check_digit(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales, finance="是")
    await sales.press("跳过")  # invoice title
    await sales.send("12345")
    assert "18 位" in sales.last_text()
    await sales.send("91350100M000100Y44")
    assert "校验位不对" in sales.last_text()
    await sales.send("91350100m000100y43")  # lower case is accepted and normalised
    assert question(sales) == "开户银行?"


async def test_dates_are_checked(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales, consent="是")
    await sales.press("口头")
    await sales.send("2026-13-45")
    assert "这不是有效的日期" in sales.last_text()
    await sales.send("2027-01-01")  # consent cannot be in the future
    assert "日期不能晚于今天" in sales.last_text()
    await sales.send("2026/11/1")
    assert question(sales) == "关于同意的备注?"
    await sales.press("跳过")
    # the summary is shown (next follow-up was skipped with the rest); edit it to the past
    await sales.press("下次跟进日期")
    await sales.send("2020-01-01")
    assert "日期不能早于今天" in sales.last_text()
    await sales.send("+3")
    assert "下次跟进日期: 2026-11-25" in sales.last_text()


async def test_photo_sticker_and_location_where_text_is_expected(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.press("企业")
    for send in (sales.send_photo, sales.send_sticker):
        replies = await send()
        assert len(replies) == 1
        assert "需要文字回答" in sales.last_text()
        assert question(sales) == "客户名称(全称)是?"
    await sales.send_location(30.27, 120.15)
    assert "这一项不需要位置" in sales.last_text()
    await sales.send("明远")
    assert question(sales) == "联系电话?多个号码用逗号隔开。"


async def test_text_where_a_button_is_expected(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.send("随便")
    assert "请点击下面的按钮选择" in sales.last_text()
    assert labels(sales.last_message())[:2] == ["企业", "个人"]
    await sales.send("个人")  # typing a button's label works too
    assert question(sales) == "客户名称(全称)是?"
    await sales.send_photo()
    await sales.send("张三")
    await answer_essentials(sales)
    await sales.press("继续填写")
    await sales.send("张")  # short name
    # an individual customer is not asked company-only questions
    for _ in range(4):
        await sales.press("跳过")  # industry, region, address, profile
    assert question(sales) == "电子邮箱?"


async def test_back_from_the_first_step_and_back_then_forward(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    assert "上一步" not in " ".join(labels(sales.last_message()))  # no Back on a first question
    prompt = sales.last_message()
    token = buttons(prompt)[0][1].split(":")[1]
    await sales.press_data(prompt, f"w:{token}:b:")  # a hand-made Back
    assert "这已经是第一项了" in sales.last_text()
    assert question(sales) == "客户是企业还是个人?"
    await sales.press("企业")
    await sales.send("明远")
    await sales.press("上一步")  # back to the name
    assert question(sales) == "客户名称(全称)是?"
    await sales.press("上一步")  # back to the kind
    await sales.press("企业")
    # the name is still answered, so the flow goes on to the first unanswered question
    assert question(sales) == "联系电话?多个号码用逗号隔开。"


async def test_skip_on_a_required_step_is_refused(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    prompt = sales.last_message()
    assert "跳过 »" not in labels(prompt)
    token = buttons(prompt)[0][1].split(":")[1]
    await sales.press_data(prompt, f"w:{token}:s:")  # a hand-made Skip
    assert sales.last_answer() == "此项为必填,不能跳过。"
    assert question(sales) == "客户是企业还是个人?"
    draft = await draft_of(world.services.sessions, sales.id)
    assert draft is not None and draft.step == "kind"


async def test_cancel_leaves_nothing_behind(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await sales.press("取消")
    assert sales.last_text() == "已取消,未保存任何内容。"
    assert await draft_of(world.services.sessions, sales.id) is None
    assert await customers(world.services.sessions) == []
    await sales.send("/cancel")
    assert sales.last_text() == "当前没有进行中的操作。"
    await start_new_company(sales)
    await sales.send("/cancel")
    assert await draft_of(world.services.sessions, sales.id) is None


async def test_a_stale_button_has_expired(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    old_prompt = dict(sales.last_message())
    await sales.press("企业")
    await sales.press_data(old_prompt, buttons(old_prompt)[1][1])  # "个人" on the old message
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    await sales.send("明远")
    await sales.press("跳过其余")
    await sales.press("A 战略")
    draft = await draft_of(world.services.sessions, sales.id)
    assert draft is not None and draft.step == "stage"
    await sales.press_data(sales.last_message(), "w:notanumber:c:0")
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_submit_twice_saves_once(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales)
    card = dict(sales.last_message())
    await sales.press("提交", card)
    await sales.press("提交", card)
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert len(await customers(world.services.sessions)) == 1


async def test_edit_from_the_summary(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales)
    await sales.press("✏️ 客户名称")
    assert "当前值:杭州明远机械有限公司" in sales.last_text()
    await sales.send("宁波明远")
    assert "客户名称: 宁波明远" in sales.last_text()
    # turning consent on makes its required questions appear before the summary again
    await sales.press("✏️ 已告知并同意")
    await sales.press("是")
    assert question(sales) == "客户以什么方式同意?"
    await sales.press("电子")
    await sales.send("2026-11-21")
    assert question(sales) == "关于同意的备注?"  # newly applicable, optional: may be skipped
    await sales.press("跳过")
    card = sales.last_text()
    assert "同意方式: 电子" in card and "同意日期: 2026-11-21" in card
    await sales.press("提交")
    [customer] = await customers(world.services.sessions)
    assert customer.name == "宁波明远" and customer.consent_given


async def test_summary_buttons_are_expected_on_the_card(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales)
    await sales.send("提交吧")
    assert "请使用汇总卡片上的按钮" in sales.last_text()
    assert "✅ 提交" in labels(sales.last_message())


async def test_skip_the_remaining_optional_questions(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_essentials(sales)
    await sales.press("继续填写")
    await sales.press("跳过其余")
    assert sales.last_text().startswith("📋 新建客户")  # the summary: nothing left to ask


async def _classify_with_finance(person: Person) -> None:
    """From the class question to the tax number: classify, say yes to finance."""
    await person.press("A 战略")
    await person.press("红苹果")
    await person.press("拜访")
    await person.press("继续填写")
    await skip_to(person, FINANCE_QUESTION)
    await person.press("是")
    await person.press("否")  # consent
    await person.press("跳过")  # invoice title


async def test_duplicates_are_warned_about(world: World) -> None:
    first = await world.member("salesperson", "East", "Li")
    await start_new_company(first, "杭州明远机械有限公司")
    await first.send("13812345678")
    await _classify_with_finance(first)
    await first.send("91350100M000100Y43")
    await first.press("跳过其余")
    await first.press("提交")

    # the owner is shown the customer; a colleague may not see it (SPEC section 4), so they are
    # told only that it exists and whom to ask
    await start_new_company(first, "杭州明远机械有限公司 ")
    assert "名称与已有客户非常相近:KH-2026-000001 杭州明远机械有限公司(负责人:Li)" in (
        first.last_text()
    )
    await first.send("/cancel")
    colleague = await world.member("salesperson", "East", "Zhao")
    await start_new_company(colleague, "杭州明远机械有限公司 ")
    assert "团队中已有名称非常相近的客户(该客户不在您的查看范围内)。请向您的经理确认。" in (
        colleague.last_text()
    )
    await colleague.send("138 1234 5678")
    assert "电话号码与一位已有客户重复(该客户不在您的查看范围内)" in colleague.last_text()
    await _classify_with_finance(colleague)
    await colleague.send("91350100M000100Y43")
    assert "统一社会信用代码与一位已有客户重复" in colleague.last_text()
    assert "KH-2026-000001" not in colleague.last_text()

    stranger = await world.member("salesperson", "West", "Sun")
    await start_new_company(stranger, "杭州明远机械有限公司")
    assert "非常相近" not in stranger.last_text()  # names are compared within the team only


async def test_restart_in_the_middle_continues_where_it_stopped(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales, "明远")
    old_prompt = dict(sales.last_message())
    await world.app.shutdown()

    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    sales.app, sales.telegram = world.app, telegram
    await sales.send("13812345678")  # the answer to the question asked before the restart
    assert question(sales) == "客户分类?"
    await sales.press("A 战略")
    await sales.press("红苹果")
    await sales.press("拜访")
    await sales.press("继续填写")
    await sales.press("跳过其余")
    card = sales.last_text()
    assert "客户名称: 明远" in card and "电话: 138 1234 5678" in card
    await sales.press_data(old_prompt, buttons(old_prompt)[0][1])  # pre-restart button
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_start_after_a_restart_offers_the_unfinished_question(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales, "明远")
    await sales.send("/start")
    assert "继续您上次未完成的填写" in sales.last_text()
    assert question(sales) == "联系电话?多个号码用逗号隔开。"


async def test_new_while_a_draft_exists_offers_continue_or_discard(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales, "明远")
    await sales.send("/new")
    assert "未完成的“新建客户”" in sales.last_text()
    await sales.press("继续填写")
    assert question(sales) == "联系电话?多个号码用逗号隔开。"
    await sales.send("/new")
    await sales.press("放弃")
    assert question(sales) == "客户是企业还是个人?"


async def test_a_database_error_on_submit_keeps_the_answers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sales = await world.member()
    await start_new_company(sales, "明远")
    await answer_required_rest(sales)

    async def database_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(customer_store, "create_customer", database_down)
    await sales.press("提交")
    assert "请稍后再试" in sales.last_text()
    assert await draft_of(world.services.sessions, sales.id) is not None
    monkeypatch.undo()
    await sales.send("/start")  # brings the summary back
    await sales.press("提交")
    assert "KH-2026-000001" in sales.last_text()


async def test_a_salesperson_without_team_cannot_enter_customers(world: World) -> None:
    loner = await world.member("salesperson", None)
    await loner.send("/new")
    assert loner.last_text() == "您还没有所属团队,请联系管理员。"
