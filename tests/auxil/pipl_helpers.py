"""A customer holding as much as the archive can hold, for the PIPL export tests, and ways to
compare an export with what the database holds."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from storage import cards, complaints, key_persons, vault, visits
from storage import customers as customer_store
from storage.db import unit_of_work
from storage.models import (
    Attachment,
    ChangeRecord,
    Complaint,
    Customer,
    KeyPerson,
    Review,
    Visit,
)
from tests.auxil.customer_factory import add_customer, staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.world import NOW, World

LONG_NAME = "杭" * 100  # the longest name /new takes


def _text(seed: str, length: int) -> str:
    return (seed * length)[:length]


FULL = {
    "kind": "company",
    "short_name": _text("明远", 30),
    "industry": _text("机械制造", 50),
    "region": _text("浙江杭州", 50),
    "address": _text("杭州市西湖区文三路", 200),
    "parent_org": _text("明远集团", 100),
    "legal_representative": _text("张三", 50),
    "size": "large",
    "profile": _text("专业生产数控机床。", 1000),
    "source": "referral",
    "phones": ["+8613812345678", "+8613912345679", "+8657187654321"],
    "email": "purchase@mingyuan.example.com",
    "website": "https://mingyuan.example.com",
    "wechat": _text("mingyuan", 50),
    "customer_class": "A",
    "stage": "yellow",
    "deal_status": "repeat",
    "credit_status": _text("良好", 100),
    "trade_notes": _text("月结三十天。", 1000),
    "invoice_title": _text("杭州明远机械有限公司", 100),
    "tax_no": "91350100M000100Y43",
    "bank": _text("中国工商银行杭州分行", 100),
    "account_no": "6222020202020202020",
    "billing_address": _text("杭州市滨江区江南大道", 200),
    "billing_phone": "+8657188886666",
    "consent_given": True,
    "consent_method": "written",
    "consent_on": "2026-01-05",
    "consent_note": _text("签署了个人信息告知书", 200),
}


async def rich_customer(
    world: World,
    owner: Person,
    *,
    people: int = 12,
    visit_count: int = 30,
    complaint_count: int = 8,
) -> int:
    """A customer with every field at its longest, many key persons, visits (with places and
    attachments) and complaints, a change in its history and reveals of its values."""
    services = world.services
    customer = await add_customer(services.sessions, services.keyring, owner, LONG_NAME, **FULL)
    cid = customer.id or 0
    actor = await staff_of(services.sessions, owner)
    async with unit_of_work(services.sessions) as session:
        row = await session.get(Customer, cid)
        assert row is not None
        row.status = "approved"
        session.add(row)
        await session.exec(  # its entry review, decided
            update(Review).where(col(Review.customer_id) == cid).values(status="approved")
        )
        for number in range(people):
            await key_persons.add_key_person(
                session,
                keyring=services.keyring,
                actor=actor,
                customer=row,
                values={
                    "kp_name": _text(f"王{number}", 100),
                    "kp_title": _text("采购总监", 100),
                    "kp_role": "decision_maker",
                    "kp_influence": 90,
                    "kp_phones": [f"+86139{number:08d}"],
                    "kp_birthday": "1975-03-08",
                    "kp_notes": _text(f"喜欢打羽毛球{number}", 1000),
                },
            )
    for number in range(visit_count):
        async with unit_of_work(services.sessions) as session:
            await visits.log_visit(
                session,
                keyring=services.keyring,
                actor=actor,
                customer_id=cid,
                values={
                    "kind": "on_site",
                    "visited_at": NOW - timedelta(days=number + 1),
                    "location": {"latitude": 30.25, "longitude": 120.16, "accuracy": 12},
                    "purpose": _text(f"目的{number}", 500),
                    "discussion": _text(f"讨论{number}", 2000),
                    "needs_feedback": _text(f"反馈{number}", 2000),
                    "outcome": _text(f"结果{number}", 1000),
                    "attachments": [
                        {"kind": "photo", "file_id": f"photo-{number}", "unique": f"u{number}"}
                    ],
                },
                now=NOW,
                timezone=services.settings.TIMEZONE,
                followup_cycles=services.settings.followup_cycles,
            )
    for number in range(complaint_count):
        async with unit_of_work(services.sessions) as session:
            await complaints.log_complaint(
                session,
                keyring=services.keyring,
                actor=actor,
                customer_id=cid,
                values={
                    "channel": "phone",
                    "complaint_type": "quality",
                    "severity": "high",
                    "description": _text(f"投诉{number}", 2000),
                },
                now=NOW,
                due_hours=services.settings.complaint_due_hours,
            )
    for field in ("phones", "tax_no"):  # two reveals, audited as reads
        async with unit_of_work(services.sessions) as session:
            await cards.reveal(
                session, keyring=services.keyring, actor=actor, customer_id=cid, field=field
            )
    return cid


async def held(world: World, customer_id: int) -> dict[str, Any]:
    """What the database holds about the customer, opened: to compare an export with."""
    services = world.services
    async with unit_of_work(services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        sealed = await customer_store.sealed_fields(session, services.keyring, customer)
        people = (
            await session.exec(select(KeyPerson).where(KeyPerson.customer_id == customer_id))
        ).all()
        opened = [await key_persons._open(session, services.keyring, p) for p in people]
        visit_rows = (
            await session.exec(select(Visit).where(Visit.customer_id == customer_id))
        ).all()
        complaint_rows = (
            await session.exec(select(Complaint).where(Complaint.customer_id == customer_id))
        ).all()
        attachments = (
            await session.exec(
                select(Attachment).where(col(Attachment.visit_id).in_([v.id for v in visit_rows]))
            )
        ).all()
        changes = (
            await session.exec(select(ChangeRecord).where(ChangeRecord.customer_id == customer_id))
        ).all()
        key = await vault.data_key(session, services.keyring, customer_id)
        diffs = [vault.open_change(key, c) for c in changes]
        return {
            "customer": customer,
            "sealed": sealed,
            "people": opened,
            "visits": list(visit_rows),
            "complaints": list(complaint_rows),
            "attachments": list(attachments),
            "diffs": diffs,
        }


def strings_of(value: Any) -> set[str]:
    """Every text inside a JSON value (keys aside), for "the export contains it" checks."""
    if isinstance(value, dict):
        return set().union(*(strings_of(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings_of(v) for v in value)) if value else set()
    if isinstance(value, str):
        return {value}
    return {json.dumps(value)} if value is not None else set()
