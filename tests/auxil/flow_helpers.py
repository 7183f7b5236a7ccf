"""Short ways to walk a person through the new-customer flow in tests."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from storage import audit
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry, Customer, Draft
from tests.auxil.fake_telegram import Person, buttons


async def start_new_company(person: Person, name: str = "杭州明远机械有限公司") -> None:
    """/new, Company, and the name: the flow then asks for the short name."""
    await person.send("/new")
    await person.press("企业")
    await person.send(name)


async def answer_required_rest(person: Person, *, finance: str = "否", consent: str = "否") -> None:
    """From any optional question: skip the optional rest and answer the required ones."""
    await person.press("跳过其余")
    await person.press("拜访")  # source
    await person.press("A 战略")  # class
    await person.press("红苹果")  # stage
    await person.press("未成交")  # deal status
    await person.press(finance)  # financial data now?
    if finance == "是":
        return
    await person.press(consent)  # consent given?


def question(person: Person) -> str:
    """The question line of the last prompt (its second line)."""
    lines = person.last_text().splitlines()
    progress = next(i for i, line in enumerate(lines) if line.startswith("📝"))
    return lines[progress + 1]


def labels(message: dict[str, Any]) -> list[str]:
    return [text for text, _ in buttons(message)]


async def customers(sessions: SessionFactory) -> list[Customer]:
    async with unit_of_work(sessions) as session:
        return list((await session.exec(select(Customer))).all())


async def draft_of(sessions: SessionFactory, staff_telegram_id: int) -> Draft | None:
    from storage.staff import staff_by_telegram_id

    async with unit_of_work(sessions) as session:
        staff = await staff_by_telegram_id(session, staff_telegram_id)
        assert staff is not None
        return (await session.exec(select(Draft).where(Draft.staff_id == staff.id))).first()


async def audit_actions(sessions: SessionFactory) -> list[str]:
    async with unit_of_work(sessions) as session:
        rows = await session.exec(select(AuditEntry).order_by(AuditEntry.id))
        entries = list(rows.all())
        assert (await audit.verify_chain(session)).ok
    return [e.action for e in entries]
