"""Destruction (销毁) in chat: a manager's request, another's approval on the review card, then
the tombstone for anyone who opens an old button to the customer, and the review cards that
named it taken back through the outbox. Requests are filed as the archive flow files them
(storage.life_cycle.request and the review cards queued); decisions go through the review
buttons (conversations/review.py)."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import col, select

from bot import scheduler
from bot.context import BotContext
from conversations import review as review_chat
from storage import reviews
from storage.db import reading, unit_of_work
from storage.models import AuditEntry, Customer, RecordStatus, Reminder, ReviewNotice
from storage.types import utcnow
from tests.auxil.customer_factory import staff_of
from tests.auxil.destruction_helpers import (
    NAME,
    REASON,
    archive,
    file_destroy_request,
    request_in_chat,
    review_cards,
    rich_archived_customer,
    rich_customer,
    what_is_readable,
)
from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World


async def _team(world: World) -> tuple:
    # reviews.decide stamps decisions with the real time, and so the rows a decision queues:
    # the bot's clock must not be behind it for them to be due at once
    world.services.clock = utcnow
    chen = await world.member("manager", "East", "Chen")
    wang = await world.member("manager", "East", "Wang")
    li = await world.member("salesperson", "East", "Li")
    wu = await world.member("salesperson", "West", "Wu")
    return chen, wang, li, wu


def _deleted(world: World) -> set[tuple[int, int]]:
    return {
        (int(p["chat_id"]), int(p["message_id"]))
        for name, p in world.telegram.calls
        if name == "deleteMessage"
    }


async def test_approved_destruction_leaves_a_tombstone_and_takes_back_old_cards(
    world: World, database_url: str
) -> None:
    chen, wang, li, wu = await _team(world)
    sessions, keyring = world.services.sessions, world.services.keyring
    owner = await staff_of(sessions, li)
    rich = await rich_customer(sessions, keyring, owner, now=world.services.clock(), approved=False)
    # the creation review went to both managers; Wang approved it in chat
    async with reading(sessions) as session:
        creation = await reviews.pending_review_of(session, customer_id=rich.customer_id)
    assert creation is not None and creation.id is not None
    await review_chat.announce(BotContext(world.app), creation.id)
    await scheduler.settle(world.app)  # the cards go out in the background
    [old_chen] = review_cards(world, chen.id)
    [old_wang] = review_cards(world, wang.id)
    assert NAME in old_chen["text"]
    await wang.press("通过", old_wang)
    await archive(sessions, rich.customer_id, world.services.clock() - timedelta(days=40))

    review_id = await request_in_chat(world, await staff_of(sessions, chen), rich.customer_id)
    card = review_cards(world, wang.id)[-1]
    assert card["message_id"] != old_wang["message_id"] and REASON in card["text"]
    await wang.press("通过", card)

    assert await what_is_readable(database_url, keyring, rich.customer_id) == {
        "status": RecordStatus.destroyed
    }
    # the creation cards named the customer: deleted through the outbox on commit
    deleted = _deleted(world)
    assert (chen.id, old_chen["message_id"]) in deleted
    assert (wang.id, old_wang["message_id"]) in deleted
    async with reading(sessions) as session:
        left = (await session.exec(select(ReviewNotice))).all()
        assert {n.review_id for n in left} == {review_id}  # the destruction's own card stays
        audit = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "customer.destroyed"))
        ).one()
        assert audit.detail is not None and json.loads(audit.detail)["notices"] == 2

    # an old button to the card: the tombstone, and nothing to press
    for person in (chen, li):
        await person.press_data(old_chen, f"cu:{rich.customer_id}")
        text = person.last_text()
        assert text.startswith(f"🪦 客户 {rich.customer_no}：已销毁"), text
        assert "申请销毁: Chen" in text and "批准销毁: Wang" in text, text
        assert REASON in text and NAME not in text and "13812345678" not in text
        assert buttons(person.last_message()) == []
    # one who may not see the customer learns nothing, not even that it was destroyed
    await wu.press_data(old_chen, f"cu:{rich.customer_id}")
    assert rich.customer_no not in (wu.last_answer() or "")
    assert all(rich.customer_no not in m["text"] for m in world.telegram.sent_to(wu.id))


async def test_nobody_destroys_alone_and_a_forged_press_changes_nothing(
    world: World, database_url: str
) -> None:
    chen, wang, li, wu = await _team(world)
    west = await world.member("manager", "West", "Zhou")
    sessions, keyring = world.services.sessions, world.services.keyring
    rich = await rich_archived_customer(
        sessions, keyring, await staff_of(sessions, li), now=world.services.clock()
    )
    review_id = await request_in_chat(world, await staff_of(sessions, chen), rich.customer_id)
    [card] = review_cards(world, wang.id)
    for stranger in (chen, li, west, wu):  # the requester, the owner, another team's people
        await stranger.press_data(card, f"rv:a:{review_id}")
    readable = await what_is_readable(database_url, keyring, rich.customer_id)
    assert readable["status"] == RecordStatus.archived and readable["name"] == NAME
    assert readable["key_persons"] == 1 and readable["visits"]
    assert _deleted(world) == set()
    # a restart in the middle: a new application on the same database decides it
    await world.app.shutdown()
    from tests.auxil.world import start_app

    world.app = await start_app(world.services, world.telegram)
    wang.app = world.app
    await wang.press("通过", card)
    assert await what_is_readable(database_url, keyring, rich.customer_id) == {
        "status": RecordStatus.destroyed
    }
    # a second press (another manager at once, or a double tap) decides nothing more
    await wang.press_data(card, f"rv:a:{review_id}")
    async with reading(sessions) as session:
        destroyed = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "customer.destroyed"))
        ).all()
    assert len(destroyed) == 1


async def test_destroyed_customers_are_not_listed_or_found(world: World) -> None:
    chen, wang, li, _ = await _team(world)
    sessions, keyring = world.services.sessions, world.services.keyring
    rich = await rich_archived_customer(
        sessions, keyring, await staff_of(sessions, li), now=world.services.clock()
    )
    review_id, _queued = await file_destroy_request(
        sessions, await staff_of(sessions, chen), rich.customer_id, now=world.services.clock()
    )
    async with unit_of_work(sessions) as session:
        await reviews.decide(
            session,
            keyring=keyring,
            actor=await staff_of(sessions, wang),
            review_id=review_id,
            approve=True,
        )
    for person in (chen, li):
        for query in (rich.customer_no, "明远", "13812345678"):
            await person.send(f"/find {query}")
            assert person.last_text().startswith("🔎 没有找到"), person.last_text()
        await person.send("/my")
        assert rich.customer_no not in person.last_text()
    async with reading(sessions) as session:
        customer = await session.get(Customer, rich.customer_id)
        assert customer is not None and customer.status == RecordStatus.destroyed
        pending = (
            await session.exec(select(Reminder).where(col(Reminder.subject_id) == customer.id))
        ).all()
        assert all(r.status != "pending" for r in pending if r.subject_type == "customer")


async def test_the_tombstone_fits_with_the_longest_reason_and_names(world: World) -> None:
    chen = await world.member("manager", "East", "陈" * 64)
    wang = await world.member("manager", "East", "王" * 64)
    li = await world.member("salesperson", "East", "Li")
    sessions, keyring = world.services.sessions, world.services.keyring
    rich = await rich_archived_customer(
        sessions, keyring, await staff_of(sessions, li), now=world.services.clock()
    )
    async with unit_of_work(sessions) as session:
        from storage import life_cycle, outbox

        review = await life_cycle.request(
            session,
            actor=await staff_of(sessions, chen),
            customer_id=rich.customer_id,
            kind="destroy",
            reason="销" * 500,
            now=world.services.clock(),
        )
        await outbox.queue_review_cards(session, review_id=review.id or 0, now=review.submitted_at)
        queued = outbox.queued_in(session)
    await BotContext(world.app).send_queued(queued)
    await scheduler.settle(world.app)  # the cards go out in the background
    [card] = review_cards(world, wang.id)
    await wang.press("通过", card)
    await chen.press_data(card, f"cu:{rich.customer_id}")
    text = chen.last_text()
    assert text.startswith("🪦") and "销" * 100 in text and len(text) <= 4096
