"""Quicker entry (issue 13): the essentials first and "save now, complete later", a counter that
never jumps, no Back on a first question, shared contacts and locations, Back on the location
keyboard, "discard and start over" saying what it does; with its unhappy paths."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from sqlmodel import select

from storage import checkin
from storage import customers as customer_store
from storage.db import unit_of_work
from storage.models import Customer, Staff
from tests.auxil.fake_telegram import FakeTelegram, Person, buttons
from tests.auxil.flow_helpers import audit_actions, customers, draft_of, labels, question
from tests.auxil.world import World, start_app

PROGRESS = re.compile(
    r"📝 (?P<title>[^·]+) · (?P<section>[^·]+) · (第 )?(?P<n>\d+)(/| of )(?P<m>\d+)"
)


def progress(person: Person) -> tuple[str, int, int] | None:
    """(section, n, m) of the last prompt's counter, or None when it has no count."""
    found = PROGRESS.search(person.last_text())
    if found is None:
        return None
    return found["section"].strip(), int(found["n"]), int(found["m"])


async def share_contact(
    person: Person, phone: str | None, first: str = "王", last: str = ""
) -> Any:
    """The attach menu's contact (someone else's): a vCard without a phone has phone ''."""
    contact: dict[str, Any] = {"phone_number": phone or "", "first_name": first}
    if last:
        contact["last_name"] = last
    return await person._feed(person._message(contact=contact))


async def essentials(person: Person, *, name: str = "杭州明远机械有限公司") -> None:
    await person.send("/new")
    await person.press("企业")
    await person.send(name)
    await person.send("13812345678")
    await person.press("B 重要")
    await person.press("黄苹果")
    await person.press("拜访")


async def test_a_minimal_customer_takes_eight_interactions_and_is_valid(world: World) -> None:
    sales = await world.member()
    await essentials(sales)  # 7 interactions, /new included
    assert question(sales).startswith("基本信息已填好")
    assert labels(sales.last_message())[:2] == ["💾 现在保存,以后补全", "➡️ 继续填写"]
    await sales.press("现在保存")  # the 8th
    text = sales.last_text()
    assert "已提交审核" in text and "补全档案" in text
    [customer] = await customers(world.services.sessions)
    assert (customer.kind, customer.customer_class, customer.stage, customer.source) == (
        "company",
        "B",
        "yellow",
        "visit",
    )
    assert customer.deal_status == "none" and customer.consent_given is False
    assert customer.next_followup_on is not None  # the class's cycle
    assert await draft_of(world.services.sessions, sales.id) is None
    async with unit_of_work(world.services.sessions) as session:
        sealed = await customer_store.sealed_fields(session, world.services.keyring, customer)
    assert sealed["phones"] == ["+8613812345678"]


async def test_the_same_in_english(world: World) -> None:
    sales = await world.member(language="en")
    await sales.send("/new")
    assert progress(sales) == ("Essentials", 1, 6)
    await sales.press("Company")
    await sales.send("Mingyuan Machinery Co., Ltd.")
    await sales.send("13812345678")
    await sales.press("B important")
    await sales.press("Yellow apple")
    await sales.press("Visit")
    assert "Save now" in sales.last_text() or "Save now" in " ".join(labels(sales.last_message()))
    await sales.press("Save now, complete later")
    assert "Complete this record" in sales.last_text()
    assert len(await customers(world.services.sessions)) == 1


async def test_continue_goes_on_to_the_details_and_the_gate_is_not_on_the_summary(
    world: World,
) -> None:
    sales = await world.member()
    await essentials(sales)
    await sales.press("继续填写")
    assert progress(sales) == ("详细信息", 1, 17)  # a company's details
    assert question(sales) == "简称是?"
    await sales.press("上一步")  # back to "save now or continue?"
    assert question(sales).startswith("基本信息已填好")
    assert progress(sales) is None  # a question about the flow: not counted
    await sales.press("继续填写")
    await sales.press("跳过其余")
    summary = sales.last_text()
    assert summary.startswith("📋 新建客户")
    assert "下一步" not in summary and "✏️ 下一步" not in labels(sales.last_message())
    await sales.press("提交")
    assert len(await customers(world.services.sessions)) == 1


def _answer_for(step: str, kind: str, finance: str, consent: str) -> tuple[str, str] | None:
    """An answer for every question a full walk meets (None: Skip)."""
    answers = {
        "kind": ("press", kind),
        "name": ("send", "杭州明远机械有限公司"),
        "customer_class": ("press", "A 战略"),
        "stage": ("press", "红苹果"),
        "source": ("press", "拜访"),
        "then": ("press", "继续填写"),
        "finance": ("press", finance),
        "consent_given": ("press", consent),
        "consent_method": ("press", "书面"),
        "consent_on": ("send", "2026-11-20"),
        "size": ("press", "50-200"),
        "deal_status": ("press", "首次成交"),
    }
    return answers.get(step)


@pytest.mark.parametrize(
    ("kind", "finance", "consent"),
    list(itertools.product(("企业", "个人"), ("是", "否"), ("是", "否"))),
)
async def test_the_counter_never_changes_its_total_within_a_flow(
    world: World, kind: str, finance: str, consent: str
) -> None:
    """Whatever the answers, each section's total stays what it was when the section began,
    and n counts up by one: 1/19 → 2/22 → 21/28 can no longer happen."""
    sales = await world.member()
    await sales.send("/new")
    seen: dict[str, set[int]] = {}
    positions: dict[str, list[int]] = {}
    for _ in range(60):
        draft = await draft_of(world.services.sessions, sales.id)
        assert draft is not None
        if draft.mode == "summary":
            break
        shown = progress(sales)
        if shown is not None:
            section, n, m = shown
            seen.setdefault(section, set()).add(m)
            positions.setdefault(section, []).append(n)
        answer = _answer_for(draft.step or "", kind, finance, consent)
        if answer is None:
            await sales.press("跳过")
        elif answer[0] == "send":
            await sales.send(answer[1])
        else:
            await sales.press(answer[1])
    assert all(len(totals) == 1 for totals in seen.values()), seen
    for section, ns in positions.items():
        (m,) = seen[section]
        assert ns == list(range(1, m + 1)), (section, ns, m)  # every question, once, in order
    assert ("财务信息" in seen) == (finance == "是")
    assert ("告知同意" in seen) == (consent == "是")


async def test_no_back_on_a_first_question_and_one_skip_per_meaning(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    assert not any("上一步" in label for label in labels(sales.last_message()))
    await sales.send("/visit")  # the discard offer
    assert not any("上一步" in label for label in labels(sales.last_message()))


async def test_stale_buttons_of_an_old_step_and_a_forged_save_now(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.press("企业")
    old = dict(sales.last_message())
    await sales.send("明远")
    await sales.press_data(old, buttons(old)[-1][1])
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    prompt = sales.last_message()
    token = buttons(prompt)[0][1].split(":")[1]
    await sales.press_data(prompt, f"w:{token}:c:0")  # index 0 of no offered options (phones)
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert await customers(world.services.sessions) == []


async def test_save_now_twice_from_two_devices_saves_once(world: World) -> None:
    sales = await world.member()
    await essentials(sales)
    gate = dict(sales.last_message())
    await sales.press("现在保存", gate)  # the phone
    await sales.press("现在保存", gate)  # the desktop, the same message
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert len(await customers(world.services.sessions)) == 1


async def test_save_now_by_a_deactivated_salesperson_is_refused(world: World) -> None:
    sales = await world.member()
    await essentials(sales)
    async with unit_of_work(world.services.sessions) as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == sales.id))).one()
        staff.active = False
        session.add(staff)
    await sales.press("现在保存")
    assert await customers(world.services.sessions) == []


async def test_a_restart_resumes_at_the_same_step_and_the_same_counter(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.press("企业")
    await sales.send("明远")
    await sales.send("13812345678")
    before = (question(sales), progress(sales))
    assert before[1] == ("基本信息", 4, 6)
    await world.app.shutdown()
    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    sales.app, sales.telegram = world.app, telegram
    await sales.send("/start")
    assert (question(sales), progress(sales)) == before
    await sales.press("B 重要")
    assert progress(sales) == ("基本信息", 5, 6)


async def test_a_shared_contact_answers_the_phone_question(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.press("企业")
    await sales.send("明远")
    assert "附件菜单 📎 分享一个联系人" in sales.last_text()
    await share_contact(sales, None)  # a vCard without a phone
    assert "这个联系人没有电话号码" in sales.last_text()
    assert question(sales) == "联系电话?多个号码用逗号隔开。"
    await share_contact(sales, "12345")
    assert "这不是有效的电话号码" in sales.last_text()
    await share_contact(sales, "+86 138 1234 5678")
    assert question(sales) == "客户分类?"
    await sales.press("B 重要")
    await share_contact(sales, "13900001111")  # a contact where a button is expected
    assert "请点击下面的按钮选择" in sales.last_text()
    state = await _answers(world, sales)
    assert state["phones"] == ["+8613812345678"]


async def test_a_contact_where_none_is_expected_is_no_answer(world: World) -> None:
    sales = await world.member(language="en")
    await sales.send("/new")
    await sales.press("Company")
    await share_contact(sales, "13812345678")  # the name question takes no contact in /new
    assert "does not take a contact" in sales.last_text()
    assert "name" not in await _answers(world, sales)


async def test_a_key_persons_contact_gives_the_name_and_the_phone(world: World) -> None:
    from tests.auxil.record_helpers import card, make_customer

    sales = await world.member()
    customer_id = await make_customer(world, sales, status="approved")
    await sales.press_data(card(sales), f"kp:add:{customer_id}")
    await share_contact(sales, "13812345678", "建国", "王")
    answers = await _answers(world, sales)
    assert answers["kp_name"] == "建国 王" and answers["kp_phones"] == ["+8613812345678"]
    assert question(sales) != "联系电话?多个号码用逗号隔开。"


async def test_a_shared_location_answers_the_address(world: World) -> None:
    sales = await world.member()
    await essentials(sales)
    await sales.press("继续填写")
    for _ in range(3):  # short name, industry, region
        await sales.press("跳过")
    assert "分享位置" in sales.last_text()
    await sales.send_location(30.27415, 120.15515)
    answers = await _answers(world, sales)
    assert answers["address"] == "📍 30.27415, 120.15515"
    assert answers["address_location"]["latitude"] == pytest.approx(30.27415)
    await sales.press("跳过其余")
    await sales.press("提交")
    [customer] = await customers(world.services.sessions)
    async with unit_of_work(world.services.sessions) as session:
        sealed = await customer_store.sealed_fields(session, world.services.keyring, customer)
    assert sealed["address"] == "📍 30.27415, 120.15515"
    # and it is the customer's place, which check-ins are measured from
    async with unit_of_work(world.services.sessions) as session:
        place = await checkin.customer_location(session, world.services.keyring, customer)
    assert place == checkin.Place(30.27415, 120.15515)
    # 0.01° of longitude at 30° north is about 960 m: past the 500 m radius
    assert checkin.distance_m(place, checkin.Place(30.27415, 120.16515)) == pytest.approx(
        962, abs=5
    )
    assert (await audit_actions(world.services.sessions)).count("customer.location") == 1


async def test_an_address_typed_over_a_shared_location_places_nobody(world: World) -> None:
    sales = await world.member()
    await essentials(sales)
    await sales.press("继续填写")
    for _ in range(3):  # short name, industry, region
        await sales.press("跳过")
    await sales.send_location(30.27415, 120.15515)
    await sales.press("跳过其余")
    await sales.press("✏️ 地址")  # changed from the summary: now a typed address
    await sales.send("杭州市西湖区文三路 90 号")
    await sales.press("提交")
    [customer] = await customers(world.services.sessions)
    assert customer.location_sealed is None
    assert "customer.location" not in await audit_actions(world.services.sessions)


async def test_back_on_the_location_keyboard_is_back_not_an_answer(world: World) -> None:
    from tests.conversations.test_visit import customer_of, up_to_location

    li = await world.member()
    await customer_of(world, li)
    await up_to_location(li)
    asked = question(li)
    sent = await li.send("« 上一步")  # the reply keyboard's Back arrives as text
    texts = [m.get("text") for m in sent]
    assert "↩️" not in texts  # no bare arrow left in the chat
    assert texts[0] == "↩️ 回到上一项"
    assert world.telegram.reply_keyboard(li.id) == {"remove_keyboard": True}
    assert question(li) != asked and question(li).startswith("拜访时间?")
    # a stale reply keyboard's Back on a text question is Back too, never the answer
    await li.send("跳过 »")  # the time: skipped, the location asked again
    await li.send("跳过 »")  # the location: skipped
    purpose = question(li)
    await li.send("« 上一步")
    answers = await _answers(world, li)
    assert answers.get("purpose") != "« 上一步"
    assert question(li) != purpose


async def test_discard_and_start_over_says_what_it_does(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.press("企业")
    await sales.send("/visit")
    text = sales.last_text()
    assert "“新建客户”" in text and "开始“拜访记录”" in text
    assert "🗑 放弃草稿,开始“拜访记录”" in labels(sales.last_message())
    await sales.press("放弃草稿")
    sent = world.telegram.sent_to(sales.id)
    assert any("已放弃“新建客户”草稿,开始“拜访记录”" in (m.get("text") or "") for m in sent)
    draft = await draft_of(world.services.sessions, sales.id)
    assert draft is not None and draft.flow == "visit"


async def test_discard_in_english(world: World) -> None:
    sales = await world.member(language="en")
    await sales.send("/new")
    await sales.send("/visit")
    assert "Discard: delete that draft and start “Visit" in sales.last_text()
    assert any(label.startswith("🗑 Discard it, start") for label in labels(sales.last_message()))


async def test_a_long_name_keeps_every_message_within_telegram_limits(world: World) -> None:
    sales = await world.member()
    await essentials(sales, name="长" * 100)
    await sales.press("现在保存")
    [customer] = await customers(world.services.sessions)
    assert customer.name == "长" * 100


async def _answers(world: World, person: Person) -> dict[str, Any]:
    from storage import drafts
    from storage.staff import staff_by_telegram_id

    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, person.id)
        assert staff is not None and staff.id is not None
        state = await drafts.load(session, world.services.keyring, staff.id, not_before=None)
    assert state is not None
    return state.data


async def test_the_record_saved_now_is_the_one_the_card_offers_to_complete(world: World) -> None:
    sales = await world.member()
    await essentials(sales)
    await sales.press("现在保存")
    async with unit_of_work(world.services.sessions) as session:
        customer = (await session.exec(select(Customer))).one()
    assert customer.industry is None and customer.region is None


async def test_changing_an_answer_from_the_summary_keeps_it_unless_cleared(world: World) -> None:
    """One button per meaning: "Back to summary" keeps the answer, so no Skip; Clear empties
    an optional one; a forged Skip keeps it too."""
    sales = await world.member()
    await essentials(sales)
    await sales.press("继续填写")
    await sales.send("明远")  # short name
    await sales.press("跳过其余")
    await sales.press("✏️ 简称")
    shown = labels(sales.last_message())
    assert "跳过 »" not in shown and "🧹 清空" in shown and "« 返回汇总" in " ".join(shown)
    prompt = sales.last_message()
    token = buttons(prompt)[0][1].split(":")[1]
    await sales.press_data(prompt, f"w:{token}:s:")  # a hand-made Skip
    assert "简称: 明远" in sales.last_text()
    await sales.press("✏️ 简称")
    await sales.press("清空")
    assert "简称: —" in sales.last_text()
    await sales.press("✏️ 行业")  # never answered (skipped): nothing to clear
    assert "🧹 清空" not in labels(sales.last_message())


async def test_a_key_persons_field_changed_from_the_summary_is_kept_or_cleared(
    world: World,
) -> None:
    from tests.auxil.record_helpers import card, make_customer

    sales = await world.member(language="en")
    customer_id = await make_customer(world, sales, status="approved")
    await sales.press_data(card(sales), f"kp:add:{customer_id}")
    await sales.send("Wang")
    await sales.send("General manager")  # title
    await sales.press("Skip the remaining")
    await sales.press("✏️ Title")
    assert "Skip »" not in labels(sales.last_message())
    await sales.press("Back to summary")
    assert "General manager" in sales.last_text()
    await sales.press("✏️ Title")
    await sales.press("Clear")
    assert "General manager" not in sales.last_text()
