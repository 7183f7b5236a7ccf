"""Finding customers: by name (fuzzily), number and phone, with filters, only what one may see."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select

from storage import cards, search
from storage import customers as customer_store
from storage import staff as staff_store
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry, BlindIndex, Customer, Staff
from storage.search import Filters
from storage.types import utcnow


@dataclass
class Company:
    """Two teams: East (Li and Wang sell, Zhou manages) and West (Chen sells, Qian manages)."""

    sessions: SessionFactory
    keyring: Keyring
    people: dict[str, Staff]

    async def customer(self, owner: str, name: str, **values: Any) -> Customer:
        fields = {"kind": "company", "name": name, "customer_class": "C", "stage": "green"}
        fields.update(values)
        async with unit_of_work(self.sessions) as session:
            return await customer_store.create_customer(
                session, keyring=self.keyring, actor=self.people[owner], values=fields
            )

    async def find(self, who: str, text: str, **options: Any) -> list[str]:
        async with unit_of_work(self.sessions) as session:
            found = await search.search_customers(
                session, keyring=self.keyring, actor=self.people[who], text=text, **options
            )
        return [c.name for c in found]

    async def change(self, customer: Customer, *, touch: bool = True, **columns: Any) -> None:
        if touch:
            columns |= {"updated_at": utcnow(), "version": Customer.version + 1}
        async with unit_of_work(self.sessions) as session:
            await session.exec(
                update(Customer).where(Customer.id == customer.id).values(**columns)  # type: ignore[arg-type]
            )


@pytest.fixture(autouse=True)
def fresh_indexes() -> None:
    """Each test's database is new; so is the process's name index of it."""
    search.forget_indexes()


@pytest.fixture
async def company(session_factory: SessionFactory) -> Company:
    people: dict[str, Staff] = {}
    async with unit_of_work(session_factory) as session:
        east = await staff_store.get_or_create_team(session, "East", actor=None)
        west = await staff_store.get_or_create_team(session, "West", actor=None)
        for n, (name, role, team) in enumerate(
            [
                ("li", "salesperson", east.id),
                ("wang", "salesperson", east.id),
                ("zhou", "manager", east.id),
                ("chen", "salesperson", west.id),
                ("qian", "manager", west.id),
                ("boss", "admin", None),
            ]
        ):
            people[name] = Staff(telegram_id=1000 + n, display_name=name, role=role, team_id=team)
            session.add(people[name])
        await session.flush()
    return Company(session_factory, Keyring([os.urandom(32)]), people)


async def test_part_of_a_name_or_short_name_finds_it_prefix_first(company: Company) -> None:
    await company.customer("li", "宁波明远贸易有限公司")
    await company.customer("li", "明远机械有限公司", short_name="明远")
    await company.customer("li", "杭州华泰电子有限公司", short_name="华泰")
    await company.customer("li", "Acme Trading Ltd")
    assert await company.find("li", "明远") == ["明远机械有限公司", "宁波明远贸易有限公司"]
    assert await company.find("li", "华泰") == ["杭州华泰电子有限公司"]
    assert await company.find("li", "acme") == ["Acme Trading Ltd"]
    assert await company.find("li", "  ") == []


@pytest.mark.parametrize("small_scope", [search.SMALL_SCOPE, 0])
async def test_a_wrong_character_still_finds_the_name(
    company: Company, monkeypatch: pytest.MonkeyPatch, small_scope: int
) -> None:
    """A homophone from the input method (明元 for 明远), with and without the bigram pre-filter."""
    monkeypatch.setattr(search, "SMALL_SCOPE", small_scope)
    await company.customer("li", "杭州明远泰机械有限公司", short_name="明远泰")
    await company.customer("li", "温州东方电子有限公司")
    assert await company.find("li", "明元泰") == ["杭州明远泰机械有限公司"]
    assert await company.find("li", "杭州明元泰机械") == ["杭州明远泰机械有限公司"]
    assert await company.find("li", "Acme") == []


async def test_customer_number_in_full_or_by_its_serial(company: Company) -> None:
    first = await company.customer("li", "明远机械")
    second = await company.customer("li", "华泰电子")
    year = first.customer_no.split("-")[1]
    assert first.customer_no == f"KH-{year}-000001"
    assert await company.find("li", first.customer_no) == ["明远机械"]
    assert await company.find("li", f"kh{year}000002") == ["华泰电子"]
    assert await company.find("li", f"{year}-2") == ["华泰电子"]
    assert await company.find("li", "2") == ["华泰电子"]
    assert await company.find("li", f"KH-{year}-000009") == []
    assert second.customer_no.endswith("-000002")


async def test_phone_through_the_blind_index_only(company: Company) -> None:
    customer = await company.customer("li", "明远机械", phones=["+8613812345678"])
    await company.customer("li", "华泰电子", phones=["+8613900001111"])
    assert await company.find("li", "138 1234 5678") == ["明远机械"]
    assert await company.find("li", "+86 13812345678") == ["明远机械"]
    assert await company.find("li", "13812345679") == []
    async with unit_of_work(company.sessions) as session:
        digests = (await session.exec(select(BlindIndex.digest))).all()
    assert all("13812345678" not in d for d in digests)
    # a key person's phone finds the customer too
    async with unit_of_work(company.sessions) as session:
        session.add(
            BlindIndex(
                kind="phone",
                digest=company.keyring.blind_index("phone", "+8613700007777"),
                kek_id=company.keyring.current.kid,
                customer_id=customer.id or 0,
            )
        )
    assert await company.find("li", "13700007777") == ["明远机械"]


async def test_each_sees_only_what_they_may(company: Company) -> None:
    mine = await company.customer("li", "明远机械", phones=["+8613812345678"])
    await company.customer("wang", "明远电子")
    await company.customer("chen", "明远化工")
    assert await company.find("li", "明远") == ["明远机械"]
    assert await company.find("li", "13812345678") == ["明远机械"]
    assert await company.find("chen", "13812345678") == []
    assert await company.find("chen", "明远") == ["明远化工"]
    assert sorted(await company.find("zhou", "明远")) == ["明远机械", "明远电子"]
    assert await company.find("qian", "明远") == ["明远化工"]
    assert sorted(await company.find("boss", "明远")) == ["明远化工", "明远机械", "明远电子"]
    assert await company.find("li", mine.customer_no) == ["明远机械"]
    assert await company.find("chen", mine.customer_no) == []
    assert await company.find("chen", "1") == []
    company.people["li"].active = False
    assert await company.find("li", "明远") == []


async def test_destroyed_customers_are_never_found(company: Company) -> None:
    customer = await company.customer("li", "明远机械")
    await company.change(customer, status="destroyed")
    assert await company.find("li", "明远") == []
    assert await company.find("boss", customer.customer_no) == []


async def test_filters_narrow_a_search(company: Company) -> None:
    await company.customer("li", "明远机械", customer_class="A", industry="机械")
    await company.customer("li", "明远电子", customer_class="B", industry="电子")
    found = await company.find("li", "明远", filters=Filters(customer_class="A"))
    assert found == ["明远机械"]
    assert await company.find("li", "明远", filters=Filters(industry="电子")) == ["明远电子"]
    assert await company.find("li", "明远", filters=Filters(status="approved")) == []


async def test_the_index_follows_renames_new_customers_and_hand_overs(company: Company) -> None:
    customer = await company.customer("li", "明远机械")
    assert await company.find("li", "明远") == ["明远机械"]
    await company.change(customer, name="华泰机械")
    assert await company.find("li", "明远") == []
    assert await company.find("li", "华泰") == ["华泰机械"]
    await company.customer("li", "明远新材料")
    assert await company.find("li", "明远") == ["明远新材料"]
    await company.change(customer, owner_id=company.people["wang"].id)
    assert await company.find("li", "华泰") == []
    assert await company.find("wang", "华泰") == ["华泰机械"]


async def test_a_stale_index_never_shows_what_one_may_not_see(company: Company) -> None:
    """A hand-over written without touching `updated_at` leaves the index behind; SQL decides."""
    customer = await company.customer("li", "明远机械")
    assert await company.find("li", "明远") == ["明远机械"]
    await company.change(customer, touch=False, owner_id=company.people["wang"].id)
    assert await company.find("li", "明远") == []


async def test_many_changes_at_once_rebuild_the_index(
    company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search._NameIndex, "REBUILD_OVER", 1)
    one = await company.customer("li", "明远机械")
    two = await company.customer("li", "华泰电子")
    assert await company.find("li", "明远") == ["明远机械"]
    await company.change(one, name="东方机械")
    await company.change(two, name="东方电子")
    assert sorted(await company.find("li", "东方")) == ["东方机械", "东方电子"]
    assert await company.find("li", "明远") == []


async def test_recent_customers_newest_change_first_without_archived(company: Company) -> None:
    old = await company.customer("li", "明远机械")
    await company.customer("li", "华泰电子")
    archived = await company.customer("li", "东方化工")
    await company.change(archived, status="archived")
    await company.change(old, stage="red")
    async with unit_of_work(company.sessions) as session:
        recent = await search.recent_customers(session, actor=company.people["li"])
        none = await search.recent_customers(session, actor=company.people["chen"])
    assert [c.name for c in recent] == ["明远机械", "华泰电子"]
    assert none == []


async def test_my_customers_due_first_and_filter_values(company: Company) -> None:
    today = date(2026, 11, 22)
    for name, day in [
        ("later", "2026-12-01"),
        ("none", None),
        ("today", "2026-11-22"),
        ("overdue", "2026-11-10"),
        ("older", "2026-11-01"),
    ]:
        customer = await company.customer("li", name, industry="机械" if day else "电子")
        await company.change(customer, next_followup_on=date.fromisoformat(day) if day else None)
    async with unit_of_work(company.sessions) as session:
        listed = await cards.my_customers(
            session, actor=company.people["li"], today=today, page=0, page_size=3
        )
        second = await cards.my_customers(
            session, actor=company.people["li"], today=today, page=1, page_size=3
        )
        industries = await cards.filter_values(session, actor=company.people["li"], kind="industry")
        west = await cards.my_customers(session, actor=company.people["qian"], today=today, page=0)
    assert [e.name for e in listed.entries] == ["older", "overdue", "today"]
    assert [e.due for e in listed.entries] == ["overdue", "overdue", "today"]
    assert [e.name for e in second.entries] == ["later", "none"]
    assert (listed.total, listed.pages, listed.overdue, listed.due_today) == (5, 2, 2, 1)
    assert industries == ["机械", "电子"]
    assert west.total == 0


async def test_a_refused_card_is_audited(company: Company) -> None:
    customer = await company.customer("li", "明远机械", phones=["+8613812345678"])
    async with unit_of_work(company.sessions) as session:
        card = await cards.customer_card(
            session, keyring=company.keyring, actor=company.people["chen"], customer_id=customer.id
        )
        shown = await cards.reveal(
            session,
            keyring=company.keyring,
            actor=company.people["chen"],
            customer_id=customer.id or 0,
            field="phones",
        )
    assert card is None and shown is None
    async with unit_of_work(company.sessions) as session:
        denied = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "access.denied"))
        ).all()
    assert [(d.entity_id, d.actor_staff_id) for d in denied] == [
        (customer.id, company.people["chen"].id)
    ] * 2
