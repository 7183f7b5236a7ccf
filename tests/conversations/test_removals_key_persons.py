"""Removing a key person (issue 11 item 7): history keeps one line saying it was removed, by
whom and when, and no value of it, its earlier lines' values included; its phone indexes and
birthday reminders go with it, and the erasure ledger keeps it erased across restored backups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.context import Services
from storage import customers as customer_store
from storage import key_persons, search
from storage.db import unit_of_work
from storage.erasure_ledger import Ledger
from storage.models import BlindIndex, ChangeRecord, Reminder, ReminderStatus, Staff
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.record_helpers import (
    audit_entries,
    card,
    history_of,
    key_person_rows,
    make_customer,
)
from tests.auxil.world import NOW, World

PHONE = "13912345678"


@pytest.fixture
def ledger(services: Services, tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "erasures.log", services.keyring)


async def add_wang(person: Person, customer_id: int, zh: bool = True) -> None:
    """From the card: Key persons, Add, and a complete key person, submitted."""
    await person.press_data(card(person), f"ck:{customer_id}")
    await person.press("添加关键联系人" if zh else "Add key person")
    await person.send("王建国")
    await person.send("采购总监")
    await person.press("拍板人" if zh else "Decision maker")
    await person.press("90%")
    await person.send(PHONE)
    await person.send("1975-03-08")
    await person.send("喜欢打羽毛球")
    await person.press("提交" if zh else "Submit")


async def change_title(world: World, person: Person, customer_id: int) -> None:
    """An earlier change with values of its own (the title), straight through storage."""
    actor = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        customer = await customer_store.visible_customer(
            session, actor=actor, customer_id=customer_id, purpose="test"
        )
        assert customer is not None
        [found] = await key_persons.key_persons_of(
            session, keyring=world.services.keyring, actor=actor, customer=customer
        )
        await key_persons.update_key_person(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer=customer,
            key_person_id=found.id,
            version=found.version,
            values={**found.values, "kp_title": "副总经理"},
        )


async def birthday_reminder(world: World, person: Person, key_person_id: int) -> int:
    """A planned birthday reminder about the key person, as the planner writes them."""
    owner = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        row = Reminder(
            dedup_key=f"birthday:key_person:{key_person_id}:{owner.id}:2027-03-08",
            kind="birthday",
            subject_type="key_person",
            subject_id=key_person_id,
            recipient_id=owner.id,
            due_at=NOW,
            next_attempt_at=NOW,
        )
        session.add(row)
        await session.flush()
        return row.id or 0


async def key_person_lines(world: World, customer_id: int) -> list[tuple[ChangeRecord, object]]:
    return [
        (r, diff) for r, diff in await history_of(world, customer_id) if r.entity == "key_person"
    ]


async def found_by_phone(world: World, person: Person) -> list[int]:
    actor = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        found = await search.search_customers(
            session, keyring=world.services.keyring, actor=actor, text=PHONE
        )
    return [c.id or 0 for c in found]


async def test_removing_a_key_person_keeps_the_removal_and_no_value(
    world: World, ledger: Ledger
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, sales, status="approved")
    await add_wang(sales, customer_id)
    await change_title(world, sales, customer_id)
    [person] = await key_person_rows(world.services.sessions)
    reminder_id = await birthday_reminder(world, sales, person.id or 0)
    assert await found_by_phone(world, sales) == [customer_id]
    before = await key_person_lines(world, customer_id)
    assert [r.action for r, diff in before if diff] == ["create", "update"]

    await sales.press_data(card(sales), f"ck:{customer_id}")
    await sales.press("🗑 王建国")
    await sales.press("确认删除")
    assert await key_person_rows(world.services.sessions) == []

    # every line of it is there, none with a value: decrypting the records finds nothing
    lines = await key_person_lines(world, customer_id)
    assert [r.action for r, _ in lines] == ["create", "update", "remove"]
    assert all(r.diff_sealed is None and diff is None for r, diff in lines)
    remover = await staff_of(world.services.sessions, sales)
    assert lines[-1][0].changed_by == remover.id
    async with unit_of_work(world.services.sessions) as session:
        assert (
            await session.exec(select(BlindIndex).where(col(BlindIndex.key_person_id).is_not(None)))
        ).all() == []
        reminder = await session.get(Reminder, reminder_id)
    assert reminder is not None and reminder.status == ReminderStatus.cancelled
    assert await found_by_phone(world, sales) == []

    [removed] = await audit_entries(world.services.sessions, "key_person.remove")
    detail = json.loads(removed.detail) if isinstance(removed.detail, str) else removed.detail
    assert "kp_name" in detail["fields"] and "kp_phones" in detail["fields"]
    assert "王建国" not in json.dumps(detail, ensure_ascii=False) and PHONE not in str(detail)
    assert [(e.kind, e.record_id) for e in ledger.read()[0]] == [("key_person", person.id)]

    # the card's history reads right: removed, by whom; the earlier lines' values erased
    await sales.press_data(card(sales), f"ch:{customer_id}")
    history = sales.last_text()
    assert "· Li · 关键联系人 · 删除\n  (已删除:不保留其内容)" in history, history
    assert "· Li · 关键联系人 · 新建\n  (该记录删除时,其内容已一并清除)" in history, history
    assert "· Li · 关键联系人 · 修改\n  (该记录删除时,其内容已一并清除)" in history, history
    for value in ("王建国", "副总经理", "羽毛球", "5678"):
        assert value not in history


async def test_in_english_the_history_says_the_values_were_erased(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li", language="en")
    async with unit_of_work(world.services.sessions) as session:
        for staff in (await session.exec(select(Staff))).all():
            staff.language = "en"
            session.add(staff)
    customer_id = await make_customer(world, sales, status="approved")
    await add_wang(sales, customer_id, zh=False)
    await sales.press_data(card(sales), f"ck:{customer_id}")
    await sales.press("🗑 王建国")
    assert "Their details are erased for good" in sales.last_text()
    await sales.press("Remove")
    await sales.press_data(card(sales), f"ch:{customer_id}")
    history = sales.last_text()
    assert "· Li · Key person · removed\n  (removed: its values are not kept)" in history, history
    assert (
        "· Li · Key person · created\n  (its values were erased when the record was removed)"
        in (history)
    ), history
    assert "王建国" not in history


async def test_a_removal_that_rolls_back_erases_nothing_and_writes_no_ledger_line(
    world: World, ledger: Ledger
) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, sales, status="approved")
    await add_wang(sales, customer_id)
    [person] = await key_person_rows(world.services.sessions)
    actor = await staff_of(world.services.sessions, sales)
    with pytest.raises(RuntimeError):
        async with unit_of_work(world.services.sessions) as session:
            customer = await customer_store.visible_customer(
                session, actor=actor, customer_id=customer_id, purpose="test"
            )
            assert customer is not None
            await key_persons.remove_key_person(
                session,
                keyring=world.services.keyring,
                actor=actor,
                customer=customer,
                key_person_id=person.id or 0,
                version=person.version,
            )
            raise RuntimeError("the transaction fails after the removal")
    assert ledger.read()[0] == []
    assert len(await key_person_rows(world.services.sessions)) == 1
    [(_created, diff)] = await key_person_lines(world, customer_id)
    assert isinstance(diff, dict) and diff["kp_name"] == [None, "王建国"]
