"""法定代表人, the field added as one catalogue line and one /new step: asked for companies,
sealed, masked on the card, revealable with an audit entry, and masked in review diffs."""

from __future__ import annotations

import json

from conversations import new_customer
from storage import vault
from storage.db import unit_of_work
from storage.models import Customer
from tests.auxil.fake_telegram import buttons
from tests.auxil.flow_helpers import labels
from tests.auxil.record_helpers import (
    audit_entries,
    card,
    customer_row,
    make_customer,
    sealed_of,
)
from tests.auxil.world import ADMIN_ID, World
from tests.conversations.test_edit import reviews, start_edit


async def test_it_is_sealed_masked_on_the_card_and_revealed_with_an_audit(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, sales, legal_representative="王建国")
    assert "legal_representative" not in Customer.model_fields  # no column: the sealed blob
    assert (await sealed_of(world, customer_id))["legal_representative"] == "王建国"

    await sales.send("/help")
    await sales.press_data(sales.last_message(), f"cu:{customer_id}")
    text = sales.last_text()
    assert "法定代表人: 王**" in text
    assert "王建国" not in text
    await sales.press("🔓", sales.last_message())
    menu = sales.last_message()
    assert f"cr:{customer_id}:legal_representative" in [data for _, data in buttons(menu)]
    await sales.press("法定代表人", menu)
    assert "王建国" in sales.last_text()
    [entry] = await audit_entries(world.services.sessions, "customer.reveal")
    assert json.loads(entry.detail or "{}") == {"field": "legal_representative"}


async def test_a_change_is_reviewed_with_masked_values(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(
        world, sales, status="approved", legal_representative="王建国"
    )
    await start_edit(sales, customer_id, "法定代表人")
    assert "王**" in sales.last_text() and "王建国" not in sales.last_text()
    await sales.send("李四")
    await sales.press("提交")
    assert "• 法定代表人:王** → 李*" in sales.last_text()
    [_new, change] = await reviews(world)
    async with unit_of_work(world.services.sessions) as session:
        key = await vault.data_key(session, world.services.keyring, customer_id)
    assert vault.unseal(key, change.changes_sealed, table="reviews", row_id=change.id or 0) == {
        "legal_representative": ["王建国", "李四"]
    }
    told = [m["text"] for m in world.telegram.sent_to(ADMIN_ID) if "法定代表人" in m["text"]]
    assert told and all("李四" not in t and "王建国" not in t for t in told)
    assert (await sealed_of(world, customer_id))["legal_representative"] == "王建国"


async def test_a_too_long_name_is_asked_again(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, sales, status="rejected")
    await start_edit(sales, customer_id, "法定代表人")
    await sales.send("王" * 51)
    assert "太长了,最多 50 个字。" in sales.last_text()
    await sales.send("王" * 50)
    await sales.press("提交")
    assert (await sealed_of(world, customer_id))["legal_representative"] == "王" * 50
    assert (await customer_row(world.services.sessions, customer_id)).status == "rejected"


async def test_it_is_asked_only_for_companies(world: World) -> None:
    step = new_customer.FLOW.step("legal_representative")
    assert step is not None and not step.required
    assert step.applies({"kind": "company"}) and not step.applies({"kind": "individual"})
    sales = await world.member("salesperson", "East", "Li")
    person = await make_customer(world, sales, status="rejected", kind="individual")
    await sales.press_data(card(sales), f"ce:{person}")
    assert "法定代表人" not in labels(sales.last_message())
