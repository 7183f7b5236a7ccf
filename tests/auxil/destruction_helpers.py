"""What the destruction tests share: a customer with everything personal a customer can have,
archived; a destroy request filed as the archive flow files it; and a look at a database that
says whether anything of that customer can still be read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from bot import scheduler
from bot.context import BotContext
from storage import audit, complaints, customers, drafts, key_persons, life_cycle, outbox, visits
from storage.crypto import Keyring
from storage.db import SessionFactory, make_engine, make_session_factory, reading, unit_of_work
from storage.models import (
    Attachment,
    BlindIndex,
    ChangeRecord,
    Complaint,
    Customer,
    DataKey,
    Draft,
    KeyPerson,
    RecordStatus,
    Review,
    ReviewKind,
    Staff,
    Visit,
)
from tests.auxil.world import World

NAME = "杭州明远科技有限公司"
PHONE = "13812345678"
PERSON = "王总"
PERSON_PHONE = "13900001111"
VISIT_TEXT = "Meet 王总 at his home on 5 West Lake Road"
COMPLAINT_TEXT = "王总 says the driver was rude"
NOTES = "Paid late in 2025"
FILE_ID = "PHOTO-FILE-ID"  # an attachment's Telegram file id
REASON = "Archived for over three years; the contract ended"
DUE_HOURS = {"critical": 24, "high": 72, "medium": 168, "low": 336}
CYCLES = {"A": 7, "B": 14, "C": 30, "D": 60}


@dataclass(frozen=True)
class Rich:
    customer_id: int
    customer_no: str


async def staff_named(sessions: SessionFactory, name: str) -> Staff:
    async with reading(sessions) as session:
        found = (await session.exec(select(Staff).where(Staff.display_name == name))).first()
    assert found is not None, name
    return found


async def rich_customer(
    sessions: SessionFactory,
    keyring: Keyring,
    owner: Staff,
    *,
    now: datetime,
    name: str = NAME,
    approved: bool = True,
) -> Rich:
    """A customer with phones, notes, a key person, a visit with a photo, a closed complaint,
    history lines, and its owner's draft about it; approved (its creation review decided) or
    with that review still pending, for a test to decide in chat."""
    async with unit_of_work(sessions) as session:
        customer = await customers.create_customer(
            session,
            keyring=keyring,
            actor=owner,
            values={
                "kind": "company",
                "name": name,
                "phones": [PHONE],
                "profile": "Makes valves in Hangzhou",
                "trade_notes": NOTES,
            },
        )
        if approved:
            customer.status, customer.approved_at = RecordStatus.approved, now - timedelta(900)
            for review in (
                await session.exec(select(Review).where(Review.customer_id == customer.id))
            ).all():
                review.status = "approved"
                session.add(review)
        session.add(customer)
        await session.flush()
        cid = customer.id or 0
        await key_persons.add_key_person(
            session,
            keyring=keyring,
            actor=owner,
            customer=customer,
            values={"kp_name": PERSON, "kp_phones": [PERSON_PHONE], "kp_notes": "likes tea"},
        )
        await visits.log_visit(
            session,
            keyring=keyring,
            actor=owner,
            customer_id=cid,
            values={
                "kind": "on_site",
                "purpose": VISIT_TEXT,
                "discussion": "Budget",
                "location": {"latitude": 30.25, "longitude": 120.16, "accuracy": 5},
                "attachments": [{"kind": "photo", "file_id": FILE_ID, "unique": "u1"}],
            },
            now=now - timedelta(days=800),
            timezone="Asia/Shanghai",
            followup_cycles=CYCLES,
        )
        await complaints.log_complaint(
            session,
            keyring=keyring,
            actor=owner,
            customer_id=cid,
            values={
                "channel": "phone",
                "complaint_type": "service",
                "severity": "low",
                "description": COMPLAINT_TEXT,
                "handler_id": owner.id,
            },
            now=now - timedelta(days=800),
            due_hours=DUE_HOURS,
        )
        for complaint in (await session.exec(select(Complaint))).all():
            complaint.status = "closed"
            session.add(complaint)
        await drafts.save(
            session,
            keyring,
            owner.id or 0,
            drafts.DraftState(flow="visit", step="purpose", data={"customer_id": cid}),
            now=now,
        )
        number = customer.customer_no
    return Rich(cid, number)


async def archive(sessions: SessionFactory, customer_id: int, archived_at: datetime) -> None:
    """Archived as an approved archive request leaves it (the archive flow is tested apart)."""
    async with unit_of_work(sessions) as session:
        current = await session.get(Customer, customer_id)
        assert current is not None
        current.status, current.archived_at = RecordStatus.archived, archived_at
        current.next_followup_on = None
        current.version += 1
        session.add(current)


async def rich_archived_customer(
    sessions: SessionFactory,
    keyring: Keyring,
    owner: Staff,
    *,
    now: datetime,
    name: str = NAME,
    archived_at: datetime | None = None,
) -> Rich:
    """`rich_customer`, approved, then archived (30 days before `now` unless told)."""
    rich = await rich_customer(sessions, keyring, owner, now=now, name=name)
    await archive(sessions, rich.customer_id, archived_at or now - timedelta(days=30))
    return rich


async def file_destroy_request(
    sessions: SessionFactory, actor: Staff, customer_id: int, *, now: datetime
) -> tuple[int, list[int]]:
    """The destroy request as the archive flow files it: the review and its cards, queued."""
    async with unit_of_work(sessions) as session:
        review = await life_cycle.request(
            session,
            actor=actor,
            customer_id=customer_id,
            kind=ReviewKind.destroy,
            reason=REASON,
            now=now,
        )
        assert review.id is not None
        await outbox.queue_review_cards(session, review_id=review.id, now=now)
        return review.id, outbox.queued_in(session)


async def request_in_chat(world: World, actor: Staff, customer_id: int) -> int:
    """File the request and deliver its cards, as the archive flow's button would."""
    review_id, queued = await file_destroy_request(
        world.services.sessions, actor, customer_id, now=world.services.clock()
    )
    await BotContext(world.app).send_queued(queued)
    await scheduler.settle(world.app)  # the cards go out in the background
    return review_id


def review_cards(world: World, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(chat_id) if m["text"].startswith("🔔")]


async def what_is_readable(url: str, keyring: Keyring, customer_id: int) -> dict[str, Any]:
    """Everything personal of the customer that a database still holds (empty when destroyed)."""
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        audit.use_keyring(factory, keyring)
        async with reading(factory) as session:
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            found: dict[str, Any] = {"status": customer.status}
            if customer.name != customer.customer_no:
                found["name"] = customer.name
            for column in ("profile", "trade_notes", "sealed", "short_name"):
                if getattr(customer, column):
                    found[column] = getattr(customer, column)
            key = (
                await session.exec(
                    select(DataKey.wrapped).where(DataKey.customer_id == customer_id)
                )
            ).first()
            if key:
                found["data_key"] = True
            people = (
                await session.exec(select(KeyPerson).where(KeyPerson.customer_id == customer_id))
            ).all()
            if people:
                found["key_persons"] = len(people)
            texts = (
                await session.exec(
                    select(Visit.purpose, Visit.discussion, Visit.latitude).where(
                        Visit.customer_id == customer_id
                    )
                )
            ).all()
            if any(v for row in texts for v in row):
                found["visits"] = texts
            complaint_texts = (
                await session.exec(
                    select(Complaint.description).where(Complaint.customer_id == customer_id)
                )
            ).all()
            if any(complaint_texts):
                found["complaints"] = complaint_texts
            visit_ids = (
                await session.exec(select(Visit.id).where(Visit.customer_id == customer_id))
            ).all()
            files = (
                await session.exec(
                    select(Attachment.file_id).where(col(Attachment.visit_id).in_(visit_ids))
                )
            ).all()
            if files:
                found["attachments"] = list(files)
            diffs = (
                await session.exec(
                    select(ChangeRecord.id).where(
                        ChangeRecord.customer_id == customer_id,
                        col(ChangeRecord.diff_sealed).is_not(None),
                    )
                )
            ).all()
            if diffs:
                found["history_values"] = len(diffs)
            indexes = (
                await session.exec(
                    select(BlindIndex.id).where(BlindIndex.customer_id == customer_id)
                )
            ).all()
            if indexes:
                found["indexes"] = len(indexes)
            for draft in (await session.exec(select(Draft))).all():
                data = keyring.open_json(draft.sealed or b"", context=f"draft:{draft.staff_id}")
                if str(data.get("customer_id")) == str(customer_id):
                    found["drafts"] = True
            return found
    finally:
        await engine.dispose()


async def latest_review(sessions: SessionFactory, customer_id: int) -> Review:
    async with reading(sessions) as session:
        review = (
            await session.exec(
                select(Review)
                .where(Review.customer_id == customer_id)
                .order_by(col(Review.id).desc())
            )
        ).first()
    assert review is not None
    return review


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
