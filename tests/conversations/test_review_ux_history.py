"""A customer's history (issue 13): one entry per change with who proposed and who decided it,
sensitive fields masked before → after, choices by their labels, long histories paged."""

from __future__ import annotations

from typing import Any

from storage import changes, vault
from storage.db import unit_of_work
from storage.models import ChangeRecord, Customer, Review, ReviewKind, ReviewStatus
from storage.types import utcnow
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import customers
from tests.auxil.world import World
from tests.conversations.test_review import announce, cards, quick_customer, the_review

RAW = ("pending", "rejected", "approved", "customer_new", "status:", "green", "red")
# English texts say "rejected by Chen"; a stored value would show as a before → after
RAW_EN = ("pending", "→ rejected", "rejected →", "→ approved", "customer_new", "status:", "red →")


async def history_of(person: Person, customer_id: int | None, page: int = 0) -> dict[str, Any]:
    if not person.telegram.sent_to(person.id):
        await person.send("/help")
    await person.press_data(person.last_message(), f"ch:{customer_id}:{page}")
    return person.last_message()


async def propose(world: World, sales: Person, **values: Any) -> None:
    """A change filed as the edit flow files it, and its cards sent."""
    actor = await staff_of(world.services.sessions, sales)
    [customer] = await customers(world.services.sessions)
    async with unit_of_work(world.services.sessions) as session:
        row = await session.get(Customer, customer.id)
        assert row is not None
        result = await changes.edit_customer(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer=row,
            version=row.version,
            values=values,
        )
    assert result.review_id is not None
    await announce(world, result.review_id)


async def _a_life(world: World, manager: Person, sales: Person) -> Customer:
    """Submitted, sent back with a quick reason, resubmitted, approved, then changed."""
    li = await staff_of(world.services.sessions, sales)
    await quick_customer(world, li, "杭州明远机械有限公司")
    reject = f"rv:r:{(await the_review(world)).id}"
    await manager.press_data(cards(world, manager.id)[-1], reject)
    [reason] = [
        d
        for label, d in buttons(manager.last_message())
        if "不完整" in label or "incomplete" in label.lower()
    ]
    await manager.press_data(manager.last_message(), reason)
    [customer] = await customers(world.services.sessions)
    await sales.press_data(sales.last_message(), f"rv:rs:{customer.id}")
    await manager.press_data(cards(world, manager.id)[-1], f"rv:a:{(await the_review(world)).id}")
    await propose(world, sales, phones=["+8613900001111"], stage="red")
    await manager.press_data(cards(world, manager.id)[-1], f"rv:a:{(await the_review(world)).id}")
    [customer] = await customers(world.services.sessions)
    assert customer.status == "approved"
    return customer


async def test_one_entry_per_change_with_who_proposed_and_who_decided(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    customer = await _a_life(world, manager, sales)
    text = (await history_of(sales, customer.id))["text"]
    entries = text.split("\n\n")[1:]
    assert len(entries) == 3, text  # the change, the resubmission, the first submission
    change, resubmitted, submitted = entries
    assert "Li · 客户档案 · 提交修改" in change and "✅ Chen 审核通过 · " in change
    assert "电话: 138****5678 → 139****1111" in change  # masked before → after
    assert "客户阶段:" in change and "红苹果" in change
    assert "Li · 客户档案 · 提交审核" in resubmitted and "✅ Chen 审核通过" in resubmitted
    assert "Li · 客户档案 · 新建" in submitted and "↩️ Chen 驳回 · " in submitted
    assert "原因:信息不完整,请补充后重新提交" in submitted
    for raw in RAW:
        assert raw not in text, raw
    assert "13900001111" not in text and "13812345678" not in text


async def test_the_history_in_english_names_choices_in_english(world: World) -> None:
    manager = await world.member("manager", "East", "Chen", language="en")
    sales = await world.member("salesperson", "East", "Li", language="en")
    for person in (manager, sales):
        await person.send("/help")
    customer = await _a_life(world, manager, sales)
    text = (await history_of(sales, customer.id))["text"]
    assert len(text.split("\n\n")[1:]) == 3, text
    assert "138****5678 → 139****1111" in text
    assert "Reason: Information incomplete" in text
    for raw in RAW_EN:
        assert raw not in text, raw
    for chinese in ("红苹果", "客户档案", "审核通过"):
        assert chinese not in text


async def test_a_long_history_of_long_values_is_paged_within_telegrams_limits(
    world: World,
) -> None:
    manager = await world.member("manager", "East", "Chen" * 25)  # a 100-character name
    sales = await world.member("salesperson", "East", "Li" * 50)
    li = await staff_of(world.services.sessions, sales)
    chen = await staff_of(world.services.sessions, manager)
    await quick_customer(world, li, "长" * 200)
    [customer] = await customers(world.services.sessions)
    async with unit_of_work(world.services.sessions) as session:
        key = await vault.data_key(session, world.services.keyring, customer.id or 0)
        for _n in range(23):
            review = Review(
                kind=ReviewKind.customer_change,
                status=ReviewStatus.rejected,
                customer_id=customer.id,
                team_id=customer.team_id,
                submitted_by=li.id or 0,
                decided_by=chen.id,
                decided_at=utcnow(),
                reason="理" * 500,
            )
            session.add(review)
            await session.flush()
            for action in ("propose", "reject"):
                diff = (
                    {
                        "notes": ["旧" * 2000, "新" * 2000],
                        "address": ["杭" * 300, "州" * 300],
                        "phones": [["+8613812345678"] * 5, ["+8613900001111"] * 5],
                        "customer_class": ["C", "A"],
                        "industry": ["行" * 100, "业" * 100],
                    }
                    if action == "propose"
                    else None
                )
                session.add(
                    ChangeRecord(
                        entity="customer",
                        entity_id=customer.id or 0,
                        customer_id=customer.id or 0,
                        action=action,
                        changed_by=li.id if action == "propose" else chen.id,
                        review_id=review.id,
                        diff_sealed=(
                            vault.seal(key, diff, table="change_records", row_id=customer.id or 0)
                            if diff
                            else None
                        ),
                    )
                )
    first = await history_of(sales, customer.id)
    assert "第 1/5 页" in first["text"]  # 23 changes and the submission: 24 entries, 5 a page
    seen = 0
    for page in range(5):
        message = await history_of(sales, customer.id, page)
        assert len(message["text"]) <= 4096
        assert all(len(d.encode()) <= 64 for _label, d in buttons(message))
        entries = message["text"].split("\n\n")[1:]
        seen += len(entries)
        assert "13812345678" not in message["text"]
    assert seen == 24
