"""Short ways to walk a person through the new-customer flow in tests."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from storage import audit
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry, Customer, Draft
from tests.auxil.fake_telegram import Person, buttons

FINANCE_QUESTION = "现在填写财务信息(开票、银行账户)吗?"
CONSENT_QUESTION = "是否已告知客户信息收集的用途并取得同意?"


async def start_new_company(person: Person, name: str = "杭州明远机械有限公司") -> None:
    """/new, Company, and the name: the flow then asks for the phones (the essentials first)."""
    await person.send("/new")
    await person.press("企业")
    await person.send(name)


async def answer_essentials(person: Person) -> None:
    """From the phones question: skip it, classify (A, red apple), source 拜访; the flow then
    asks whether to save now or go on."""
    await person.press("跳过")  # phones
    await person.press("A 战略")
    await person.press("红苹果")
    await person.press("拜访")


async def skip_to(person: Person, wanted: str) -> None:
    """Press Skip until the question is `wanted` (a details question further on)."""
    for _ in range(40):
        if question(person) == wanted:
            return
        await person.press("跳过")
    raise AssertionError(f"never asked {wanted!r}; last: {person.last_text()!r}")


async def answer_required_rest(person: Person, *, finance: str = "否", consent: str = "否") -> None:
    """From the phones question: the essentials, then on to the summary (finance and consent
    "no"); with finance or consent "是" it stops at the first question that answer opens."""
    if finance == "否" and consent == "否":
        await person.press("跳过其余")  # phones and every optional question after them
        await person.press("A 战略")
        await person.press("红苹果")
        await person.press("拜访")
        await person.press("继续填写")  # nothing left to ask: the summary
        return
    await answer_essentials(person)
    await person.press("继续填写")
    await skip_to(person, FINANCE_QUESTION)
    await person.press(finance)
    await person.press(consent)


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
